"""The ``dkp-slam`` command line, run as a user would: a real subprocess, real outputs."""

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from conftest import shared_data

SUMMARY_KEYS = {"frames", "fps", "rot_err_median_deg", "tdir_err_median_deg",
                "tracked_fraction", "detector"}


def dkp(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dkp_slam.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=600)


def test_demo_recovers_ground_truth(tmp_path):
    out = tmp_path / "demo"
    proc = dkp("demo", "--frames", 40, "--output", out, "--json", tmp_path / "s.json",
               "--no-progress")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    assert SUMMARY_KEYS <= summary.keys()
    assert summary["frames"] == 40 and summary["detector"] == "dkp"  # the default detector
    assert summary["tracked_fraction"] == 1.0
    assert summary["rot_err_median_deg"] < 0.2
    assert summary["tdir_err_median_deg"] < 6.0
    for name in ("trajectory.png", "trajectory_tum.txt", "groundtruth_tum.txt",
                 "trajectory_gtscale_tum.txt", "frames.csv", "summary.json"):
        assert (out / name).is_file(), name
    assert len(list((out / "frames").glob("*.png"))) == 4
    tum = np.loadtxt(out / "trajectory_tum.txt")
    assert tum.shape == (40, 8)
    assert "median rotation error" in proc.stdout


def test_run_kitti_subset_with_config_and_overrides(tmp_path):
    kitti = shared_data("sequences", "kitti07_0000-0159")
    cfg = tmp_path / "params.yaml"
    cfg.write_text("/**:\n  ros__parameters:\n    detector:\n      name: orb\n"
                   "      max_keypoints: 800\n")
    proc = dkp("run", kitti, "--config", cfg, "--set", "tracker.reference=keyframe",
               "--max-frames", 20, "--output", tmp_path / "k", "--json", tmp_path / "k.json",
               "--no-progress")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "k.json").read_text())
    assert summary["frames"] == 20
    assert summary["config"]["detector"]["max_keypoints"] == 800
    assert summary["config"]["tracker"]["reference"] == "keyframe"
    assert summary["keypoints_median"] <= 800
    assert summary["rot_err_median_deg"] < 0.3


def test_run_image_folder_and_video_without_intrinsics(tmp_path):
    """Plain folders and videos have no intrinsics: homography-only, said on the console."""
    rng = np.random.default_rng(0)
    base = (rng.random((240, 320)) * 255).astype(np.uint8)
    base = cv2.GaussianBlur(base, (0, 0), 2.0)
    base = cv2.normalize(base, None, 0, 255, cv2.NORM_MINMAX)
    folder = tmp_path / "imgs"
    folder.mkdir()
    writer = cv2.VideoWriter(str(tmp_path / "v.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10,
                             (320, 240))
    for i in range(8):
        frame = np.roll(base, 2 * i, axis=1)
        cv2.imwrite(str(folder / f"img{i}.png"), frame)
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    writer.release()
    for src in (folder, tmp_path / "v.avi"):
        proc = dkp("run", src, "--output", tmp_path / "o", "--json", tmp_path / "o.json",
                   "--no-progress")
        assert proc.returncode == 0, proc.stderr
        assert "homography-only" in proc.stdout and "--calib FILE" in proc.stdout
        assert "nan" not in proc.stdout  # said in words, not as NaN figures
        summary = json.loads((tmp_path / "o.json").read_text())
        assert summary["frames"] == 8 and summary["homography_only"]
        assert summary["tracked_fraction"] == 1.0
        assert np.isnan(summary["rot_err_median_deg"])  # no ground truth, no error figure
        # no trajectory of identity poses
        assert not (tmp_path / "o" / "trajectory.png").exists()
        assert not (tmp_path / "o" / "trajectory_tum.txt").exists()


def _camera_info_yaml(path, camera):
    """A ROS camera_info YAML (camera_calibration_parsers' layout) for ``camera``."""
    K = camera.K.reshape(-1).tolist()
    path.write_text(
        f"image_width: {camera.width}\nimage_height: {camera.height}\ncamera_name: cam\n"
        f"camera_matrix: {{rows: 3, cols: 3, data: {K}}}\n"
        f"distortion_model: plumb_bob\n"
        f"distortion_coefficients: {{rows: 1, cols: 5, data: [0, 0, 0, 0, 0]}}\n")


def test_run_folder_with_calib_file(tmp_path):
    """Your own camera: a folder of frames plus --calib gives poses and a trajectory."""
    from dkp_slam.datasets import load_kitti

    kitti = shared_data("sequences", "kitti07_0000-0159")
    camera = load_kitti(kitti).camera
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(80, 88):  # driving (over frames 0-37 the car pulls away: LOW_PARALLAX)
        src = kitti / "image_0" / f"{i:06d}.png"
        (folder / src.name).write_bytes(src.read_bytes())
    _camera_info_yaml(tmp_path / "cam.yaml", camera)
    proc = dkp("run", folder, "--calib", tmp_path / "cam.yaml", "--set", "detector.name=orb",
               "--output", tmp_path / "o", "--json", tmp_path / "o.json", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "o.json").read_text())
    assert not summary["homography_only"] and summary["frames"] == 8
    assert summary["status_counts"].get("OK", 0) >= 6
    assert "not computed: no ground truth" in proc.stdout and "nan" not in proc.stdout
    tum = np.loadtxt(tmp_path / "o" / "trajectory_tum.txt")
    assert tum.shape == (8, 8) and tum[-1, 3] > 0.5  # driving forward (+z), unit steps
    assert (tmp_path / "o" / "trajectory.png").is_file()

    # intrinsics for another image size: one line, exit 2, nothing run
    small = type(camera)(640, 480, camera.fx, camera.fy, 320.0, 240.0)
    _camera_info_yaml(tmp_path / "small.yaml", small)
    proc = dkp("run", folder, "--calib", tmp_path / "small.yaml", "--output", tmp_path / "o2")
    assert proc.returncode == 2 and "calibration is for 640x480 images" in proc.stderr
    assert "are 1226x370" in proc.stderr and "Traceback" not in proc.stderr
    proc = dkp("run", folder, "--calib", tmp_path / "missing.yaml", "--output", tmp_path / "o2")
    assert proc.returncode == 2 and "missing.yaml" in proc.stderr


@pytest.mark.parametrize("args, message", [
    (["run", "/nonexistent/path"], "does not exist"),
    (["demo", "--set", "detector.name=nope"], "detector.name"),
    (["demo", "--set", "detector.max_keypoints"], "key=value"),
    (["demo", "--config", "/nonexistent.yaml"], "not found"),
])
def test_errors_are_one_clear_line(args, message):
    proc = dkp(*args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_weight_files_are_one_line_and_exit_2(tmp_path):
    """Missing, corrupt and foreign weight files are start-up errors naming the file (#15)."""
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 8)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    for path, message in [(tmp_path / "missing.pt", "not found"), (corrupt, "corrupt"),
                          (foreign, "not a DKPNet weight file")]:
        proc = dkp("demo", "--frames", "3", "--no-progress", "--output", tmp_path / "o",
                   "--set", f"detector.dkp.weights={path}")
        assert proc.returncode == 2, proc.stderr
        assert str(path) in proc.stderr and message in proc.stderr
        assert "Traceback" not in proc.stderr and "weights_only=False" not in proc.stderr


def test_info_lists_detectors_and_defaults():
    proc = dkp("info")
    assert proc.returncode == 0, proc.stderr
    assert "detectors: akaze, aliked-n16, aliked-t16, disk, dkp, orb, sift, xfeat" in proc.stdout
    assert '"max_keypoints": 1000' in proc.stdout


def test_corrupt_and_unusable_frames_are_skipped_and_counted(tmp_path):
    """A truncated PNG and a 1-pixel image in a folder: reported, not fatal."""
    rng = np.random.default_rng(1)
    base = cv2.GaussianBlur((rng.random((240, 320)) * 255).astype(np.uint8), (0, 0), 2.0)
    base = cv2.normalize(base, None, 0, 255, cv2.NORM_MINMAX)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(6):
        cv2.imwrite(str(folder / f"{i:02d}.png"), np.roll(base, 2 * i, axis=1))
    data = (folder / "03.png").read_bytes()
    (folder / "03.png").write_bytes(data[: len(data) // 3])  # truncated file
    cv2.imwrite(str(folder / "04.png"), np.zeros((1, 1), np.uint8))
    proc = dkp("run", folder, "--output", tmp_path / "o", "--json", tmp_path / "o.json",
               "--no-progress")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "o.json").read_text())
    assert summary["frames"] == 4
    assert summary["skipped_frames"] == 2
    reasons = " ".join(s["reason"] for s in summary["skipped"])
    assert "03.png" in reasons and "smaller than" in reasons
    assert "skipped frames              2" in proc.stdout


def test_a_run_that_processes_no_frame_fails(tmp_path):
    """3 corrupt PNGs and a damaged JPEG: every frame skipped -> exit 1 with the reasons on
    stderr (the outputs are still written)."""
    rng = np.random.default_rng(2)
    base = (rng.random((240, 320)) * 255).astype(np.uint8)
    folder = tmp_path / "bad"
    folder.mkdir()
    png = cv2.imencode(".png", base)[1].tobytes()
    for i in range(3):
        (folder / f"{i:02d}.png").write_bytes(png[: len(png) // 2])
    jpeg = bytearray(cv2.imencode(".jpg", base)[1].tobytes())
    jpeg[len(jpeg) // 2:len(jpeg) // 2 + 400] = rng.integers(0, 256, 400, np.uint8).tobytes()
    (folder / "03.jpg").write_bytes(bytes(jpeg))
    proc = dkp("run", folder, "--output", tmp_path / "o", "--no-progress")
    assert proc.returncode == 1, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("dkp-slam: error: none of the 4 frames could be processed")
    assert "00.png" in line and "Traceback" not in proc.stderr
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["frames"] == 0 and summary["skipped_frames"] == 4
    assert any("03.jpg" in k["reason"] and "libjpeg" in k["reason"] for k in summary["skipped"])


def test_summary_says_in_words_what_is_not_defined():
    """A static camera (EuRoC's standing drone): no translation claimed, no ATE; the console
    summary says so instead of printing NaN."""
    from dkp_slam.runner import format_summary

    summary = {"frames": 95, "skipped_frames": 0, "fps": 10.0, "detector": "dkp",
               "tracked_fraction": 1.0, "status_counts": {"LOW_PARALLAX": 94},
               "has_ground_truth": True, "homography_only": False,
               "rot_err_median_deg": 0.008, "tdir_err_median_deg": float("nan"),
               "pose_auc@5": 0.76, "pose_auc@10": 0.76, "pose_auc@20": 0.76,
               "ate_sim3_rmse_m": float("nan"), "keypoints_median": 1000.0,
               "inliers_median": 600.0, "ms_per_stage": {"total": 80.0}}
    text = format_summary(summary)
    assert "nan" not in text and "0.008 deg" in text
    assert "no frame claims a translation" in text and "ground truth hardly moves" in text
