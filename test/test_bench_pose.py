"""``dkp-slam bench pose``: the SuperGlue / LoFTR pairs format, the error conventions, and the
benchmark end to end on the real Strecha pairs of ../shared/data."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from conftest import shared_data

from dkp_slam.bench.pose import PairsFileError, load_pose_pairs, pose_errors
from dkp_slam.geometry import so3_exp


def strecha():
    return shared_data("pairs", "strecha", "pairs_with_gt.txt")


def test_load_strecha_pairs():
    pairs = load_pose_pairs(strecha())
    assert len(pairs) == 32
    p = pairs[0]
    assert p.name0 == "fountain-P11/0000.jpg" and p.image0.shape == (512, 768)
    assert p.image0.dtype == np.uint8 and p.K0[0, 0] == pytest.approx(689.87)
    assert np.allclose(p.T_0to1[:3, :3] @ p.T_0to1[:3, :3].T, np.eye(3), atol=1e-6)
    # an image shared by two pairs is read once
    shared = [q for q in pairs if q.name0 == pairs[0].name1]
    assert shared and shared[0].image0 is pairs[0].image1


def _line(**change) -> str:
    base = open(strecha()).read().splitlines()[0].split()
    for index, value in change.items():
        base[int(index[1:])] = value
    return " ".join(base)


@pytest.mark.parametrize("line, reason", [
    ("a.jpg b.jpg 0 0 1 2 3", "7 values, expected 38"),
    (_line(i2="1"), "EXIF rotations 1 0: only 0 is supported"),
    (_line(i4="nan"), "not finite"),
    (_line(i4="0", i8="0"), "K0 is not a camera matrix"),
    (_line(i22="2.0"), "T_0to1 is not a rigid transform"),
    (_line(i5="x"), "could not convert"),
])
def test_bad_pairs_files_name_the_line_and_the_reason(tmp_path, line, reason):
    path = tmp_path / "pairs.txt"
    path.write_text("# a comment\n" + line + "\n")
    with pytest.raises(PairsFileError, match=f"pairs.txt:2: .*{reason}"):
        load_pose_pairs(path)


def test_missing_image_and_empty_file(tmp_path):
    (tmp_path / "empty.txt").write_text("\n# nothing\n")
    with pytest.raises(PairsFileError, match="no pairs"):
        load_pose_pairs(tmp_path / "empty.txt")
    (tmp_path / "p.txt").write_text(_line() + "\n")
    with pytest.raises(FileNotFoundError, match="fountain-P11/0000.jpg"):
        load_pose_pairs(tmp_path / "p.txt")


def test_pose_errors_conventions():
    """T_0to1 maps camera 0 -> camera 1; the estimate is the pose of camera 1 in camera 0."""
    R01 = so3_exp(np.array([0.02, -0.1, 0.03]))  # camera 0 -> camera 1
    t01 = np.array([1.0, 0.2, -0.3])
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R01, t01
    R_est, t_est = R01.T, -R01.T @ t01 / np.linalg.norm(t01)  # the exact answer
    rot, tdir = pose_errors(R_est, t_est, T)
    assert rot == pytest.approx(0, abs=1e-6) and tdir == pytest.approx(0, abs=1e-5)
    # the sign of t is folded (as the field does); a perpendicular t is 90 deg off
    assert pose_errors(R_est, -t_est, T)[1] == pytest.approx(0, abs=1e-5)
    perp = np.cross(t_est, [0, 0, 1.0])
    assert pose_errors(R_est, perp / np.linalg.norm(perp), T)[1] == pytest.approx(90)
    # the estimate given in the wrong direction (T_0to1 itself) shows a rotation error
    assert pose_errors(R01, t_est, T)[0] == pytest.approx(2 * np.degrees(np.linalg.norm(
        [0.02, -0.1, 0.03])), rel=1e-6)
    # translation unknown (rotation only) and no pose
    assert math.isnan(pose_errors(R_est, np.zeros(3), T)[1])
    assert all(math.isnan(v) for v in pose_errors(None, None, T))


def test_bench_pose_on_strecha(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "dkp_slam.cli", "bench", "pose", strecha(),
                           "--methods", "orb,sift", "--output", tmp_path, "--json",
                           tmp_path / "p.json", "--no-progress"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    res = json.loads((tmp_path / "p.json").read_text())
    assert set(res) == {"orb", "sift"}
    for m in res.values():
        assert len(m["pairs"]) == 32 and m["failures"] == 0
        assert m["essential"] + m["homography"] + m["rotation"] == 32
        # real facades with laser-scan ground truth: both classical detectors are accurate
        assert m["rot_err_median_deg"] < 0.5 and m["tdir_err_median_deg"] < 2
        assert 0.6 < m["pose_auc@5"] <= m["pose_auc@10"] <= m["pose_auc@20"] <= 1
    assert res["sift"]["pose_auc@5"] > res["orb"]["pose_auc@5"]
    assert (tmp_path / "pose_strecha_n32_k1000.md").is_file()
    assert "| sift |" in proc.stdout


def test_bench_pose_bad_file_is_one_line_exit_2(tmp_path):
    (tmp_path / "p.txt").write_text("a b 0 0\n")
    proc = subprocess.run([sys.executable, "-m", "dkp_slam.cli", "bench", "pose",
                           tmp_path / "p.txt", "--methods", "orb", "--output", tmp_path],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.startswith("dkp-slam: error: ")
    assert "4 values, expected 38" in proc.stderr and "Traceback" not in proc.stderr
