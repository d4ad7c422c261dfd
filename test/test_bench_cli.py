"""``dkp-slam bench`` end to end on small subsets of the real data (the full runs are in
docs/BENCHMARKS.md)."""

import json
import subprocess
import sys

from conftest import shared_data


def bench(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dkp_slam.cli", "bench", *map(str, args)],
                          capture_output=True, text=True, timeout=900)


def test_bench_odometry_kitti_subset(tmp_path):
    kitti = shared_data("sequences", "kitti07_0000-0159")
    # From frame 60 on the car drives at 0.6-0.8 m per frame: the translation is observable.
    # (Frames 0-15, 0.1-0.2 m per frame straight ahead, give 1.5-2.5 px of parallax, where the
    # direction is rightly reported unknown, more or less often depending on RANSAC's draws.)
    proc = bench("odometry", kitti, "--methods", "orb,sift,orb:n_levels=4", "--start", 60,
                 "--max-frames", 15, "--output", tmp_path, "--json", tmp_path / "o.json",
                 "--no-progress")
    assert proc.returncode == 0, proc.stderr
    res = json.loads((tmp_path / "o.json").read_text())
    assert set(res) == {"orb", "sift", "orb:n_levels=4"}
    # a method with options gets its own run folder, named from the method and the frames used
    tag = "kitti07_0000-0159_from60_step1_n15"
    assert (tmp_path / f"{tag}_orb_n_levels_4_k1000" / "summary.json").is_file()
    for m in res.values():
        assert m["tracked_fraction"] == 1.0
        assert 0 < m["rot_err_median_deg"] < 0.5
        assert 0 < m["tdir_err_median_deg"] < 10
        assert 0.3 < m["pose_auc@5"] <= m["pose_auc@10"] <= m["pose_auc@20"] <= 1
        assert m["ms_per_frame"] > 0
    assert (tmp_path / f"trajectories_{tag}_k1000.png").is_file()
    assert (tmp_path / f"odometry_{tag}_k1000.md").is_file()
    assert "| orb |" in proc.stdout and "| sift |" in proc.stdout


def test_bench_speed_reports_stages_and_memory(tmp_path):
    kitti = shared_data("sequences", "kitti07_0000-0159")
    proc = bench("speed", kitti, "--methods", "orb", "--sizes", "320x240,native",
                 "--frames", 5, "--output", tmp_path, "--json", tmp_path / "s.json")
    assert proc.returncode == 0, proc.stderr
    res = json.loads((tmp_path / "s.json").read_text())
    assert set(res) == {"orb@320x240", "orb@1226x370"}
    for r in res.values():
        assert r["frames"] == 5
        assert r["detect_ms_median"] > 0 and r["total_ms_p90"] >= r["total_ms_median"]
        assert r["ms_per_frame"] >= r["detector_ms"]
        assert r["peak_rss_mb"] > 50
        assert r["fps"] > 0
    assert (tmp_path / "speed_cpu_k1000.md").read_text().count("| orb@") == 2


def test_bench_rejects_unknown_method(tmp_path):
    proc = bench("speed", "--methods", "nope", "--sizes", "320x240", "--frames", 2,
                 "--output", tmp_path)
    assert proc.returncode == 2
    assert "nope" in proc.stderr and "available: " in proc.stderr
    assert "Traceback" not in proc.stderr
    # a method's own options are checked before anything runs
    proc = bench("speed", "--methods", "orb,dkp:n_levels=0", "--sizes", "320x240",
                 "--frames", 2, "--output", tmp_path)
    assert proc.returncode == 2 and "detector.dkp.n_levels" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bench_homography_oxford_and_synthetic(tmp_path):
    oxford = shared_data("homography", "oxford")
    photos = shared_data("train", "bsds500", "val")
    proc = bench("homography", oxford, "--methods", "orb", "--output", tmp_path,
                 "--json", tmp_path / "ox.json", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    ox = json.loads((tmp_path / "ox.json").read_text())["orb"]
    assert ox["pairs"] == 30
    assert 0.3 < ox["repeatability"] < 0.9 and 0.2 < ox["mma@3"] <= 1.0
    assert ox["mma@1"] <= ox["mma@3"] <= ox["mma@5"]
    assert ox["hom_acc@1"] <= ox["hom_acc@3"] <= ox["hom_acc@5"]
    assert (tmp_path / "homography_oxford_k1000_mma.png").is_file()
    proc = bench("homography", photos, "--methods", "orb,sift", "--pairs", 4, "--seed", 3,
                 "--output", tmp_path, "--json", tmp_path / "sy.json", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    sy = json.loads((tmp_path / "sy.json").read_text())
    assert set(sy) == {"orb", "sift"} and sy["sift"]["pairs"] == 4
    assert (tmp_path / "homography_bsds500-val_synth4_s3_k1000.md").is_file()
