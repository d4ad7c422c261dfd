"""Tests for dkp_slam.datasets: real KITTI / EuRoC excerpts from ../shared/data and generated
TUM, image-folder and video sequences."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from dkp_slam.camera import Camera
from dkp_slam.datasets import (
    associate_nearest,
    detect_format,
    interpolate_poses,
    load_camera_yaml,
    load_euroc,
    load_image_folder,
    load_kitti,
    load_tum,
    load_tum_trajectory,
    load_video,
    open_sequence,
    read_image,
    tum_camera_from_name,
    write_tum_trajectory,
)
from dkp_slam.sequence import Sequence

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
KITTI = DATA / "sequences" / "kitti07_0000-0159"
EUROC = DATA / "sequences" / "euroc_v101_static"


def _need(path: Path) -> Path:
    if not path.is_dir():
        pytest.skip(f"shared test data not found at {path} (expected ../shared/data next to the "
                    f"repository)")
    return path


def _pattern(i: int, h: int = 48, w: int = 64, color: bool = False) -> np.ndarray:
    """A frame whose content identifies ``i``: a bright square at an i-dependent column."""
    img = np.full((h, w), 20, np.uint8)
    x = 4 + 6 * i
    img[10:30, x:x + 12] = 230
    return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if color else img


def _random_poses(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    T = np.tile(np.eye(4), (n, 1, 1))
    T[:, :3, :3] = Rotation.random(n, random_state=seed).as_matrix()
    T[:, :3, 3] = rng.normal(size=(n, 3))
    return T


# ====================================================================== KITTI (real)
def test_kitti07_real() -> None:
    root = _need(KITTI)
    seq = load_kitti(root)
    assert isinstance(seq, Sequence)
    assert len(seq) == 160
    assert seq.meta["format"] == "kitti"
    img = seq.load_image(0)
    assert img.shape == (370, 1226) and img.dtype == np.uint8
    assert seq.load_image(159).shape == (370, 1226)
    cam = seq.camera
    assert cam is not None and cam.model == "none"
    assert (cam.width, cam.height) == (1226, 370)
    assert cam.fx == pytest.approx(707.0912) and cam.fy == pytest.approx(707.0912)
    assert cam.cx == pytest.approx(601.8873) and cam.cy == pytest.approx(183.1104)
    times = np.loadtxt(root / "times.txt")
    np.testing.assert_allclose(seq.stamps, times)
    assert np.all(np.diff(seq.stamps) > 0)
    assert seq.gt_poses is not None and seq.gt_poses.shape == (160, 4, 4)
    np.testing.assert_allclose(seq.gt_poses[0], np.eye(4), atol=1e-8)
    line2 = np.array((root / "poses.txt").read_text().splitlines()[1].split(), float)
    np.testing.assert_allclose(seq.gt_poses[1][:3, :4], line2.reshape(3, 4))
    np.testing.assert_allclose(seq.gt_poses[:, 3], np.tile([0, 0, 0, 1.0], (160, 1)))
    # about 90 m of travel over the excerpt
    path_len = np.linalg.norm(np.diff(seq.gt_poses[:, :3, 3], axis=0), axis=1).sum()
    assert 60 < path_len < 120
    with pytest.raises(IndexError):
        seq.load_image(160)


def test_kitti07_open_sequence_and_subset() -> None:
    root = _need(KITTI)
    assert detect_format(root) == "kitti"
    seq = open_sequence(str(root))
    assert len(seq) == 160 and seq.camera is not None
    sub = seq.subset(10, 20, 2)
    np.testing.assert_array_equal(sub.load_image(1), seq.load_image(12))
    # the command-line selection: same frames, ground truth and stamps, a name that says so
    sel = seq.select(start=10, step=2, max_frames=5)
    assert len(sel) == 5 and sel.name == "kitti07_0000-0159_from10_step2"
    np.testing.assert_array_equal(sel.stamps, seq.stamps[10:20:2])
    np.testing.assert_array_equal(sel.gt_poses, seq.gt_poses[10:20:2])
    np.testing.assert_array_equal(sel.load_image(4), seq.load_image(18))
    assert seq.select(max_frames=7).name == seq.name and len(seq.select(max_frames=7)) == 7
    assert len(seq.select(start=150, max_frames=20)) == 10 and len(seq.select()) == 160
    for bad in ({"start": -1}, {"step": 0}, {"max_frames": -3}):
        with pytest.raises(ValueError, match="frame selection"):
            seq.select(**bad)


def test_kitti_generated_image2_and_frame_numbers(tmp_path: Path) -> None:
    """A KITTI folder holding frames 3..5 of longer times/poses files, using image_2 / P2."""
    root = tmp_path / "kitti_x"
    (root / "image_2").mkdir(parents=True)
    for i in (3, 4, 5):
        cv2.imwrite(str(root / "image_2" / f"{i:06d}.png"), _pattern(i, color=True))
    (root / "times.txt").write_text("\n".join(f"{0.1 * i:.6f}" for i in range(8)) + "\n")
    poses = _random_poses(8, seed=3)
    (root / "poses.txt").write_text(
        "\n".join(" ".join(f"{v:.12g}" for v in T[:3, :4].ravel()) for T in poses) + "\n")
    f, cx, cy, tx = 700.0, 30.0, 20.0, 0.54
    p0 = f"{f} 0 {cx} 0 0 {f} {cy} 0 0 0 1 0"
    p2 = f"{f} 0 {cx} {-f * tx} 0 {f} {cy} 0 0 0 1 0"  # camera 2 sits tx to the right of cam 0
    (root / "calib.txt").write_text(f"P0: {p0}\nP1: {p0}\nP2: {p2}\nP3: {p0}\n")
    seq = open_sequence(root)
    assert seq.meta["camera"] == "image_2"
    assert len(seq) == 3
    np.testing.assert_allclose(seq.stamps, [0.3, 0.4, 0.5])
    assert seq.load_image(0).shape == (48, 64, 3)
    assert (seq.camera.width, seq.camera.height) == (64, 48)
    # T_world_cam2 = T_world_cam0 @ [I | (tx, 0, 0)]
    for k, i in enumerate((3, 4, 5)):
        expect = poses[i].copy()
        expect[:3, 3] += poses[i][:3, :3] @ np.array([tx, 0, 0])
        np.testing.assert_allclose(seq.gt_poses[k], expect, atol=1e-9)


# ====================================================================== EuRoC (real)
def test_euroc_static_real() -> None:
    root = _need(EUROC)
    seq = load_euroc(root)
    assert len(seq) == 95
    assert seq.meta["format"] == "euroc"
    img = seq.load_image(0)
    assert img.shape == (480, 752) and img.dtype == np.uint8
    cam = seq.camera
    assert cam is not None
    assert (cam.width, cam.height) == (752, 480)
    assert cam.model == "radtan" and cam.dist.size == 4
    assert cam.fx == pytest.approx(458.654) and cam.cy == pytest.approx(248.375)
    np.testing.assert_allclose(cam.dist, [-0.28340811, 0.07395907, 0.00019359, 1.76187114e-05])
    ns = seq.meta["stamps_ns"]
    assert ns[0] == 1403715273262142976
    np.testing.assert_allclose(seq.stamps, ns * 1e-9)
    assert np.all(np.diff(seq.stamps) > 0)
    T_BS = seq.meta["T_BS"]
    assert T_BS.shape == (4, 4)
    assert T_BS[0, 1] == pytest.approx(-0.999880929698)
    np.testing.assert_allclose(T_BS[3], [0, 0, 0, 1])

    # Ground truth: 77 of 95 camera stamps appear in groundtruth.csv. The other 18 sit 50 ms from
    # their neighbouring GT samples, beyond the 20 ms interpolation limit, so they are NaN.
    gt_rows = [ln.split(",") for ln in (root / "groundtruth.csv").read_text().splitlines()
               if ln and not ln.startswith("#")]
    gt_ns = np.array([int(r[0]) for r in gt_rows])
    has = np.isin(ns, gt_ns)
    assert has.sum() == 77
    finite = np.all(np.isfinite(seq.gt_poses.reshape(95, -1)), axis=1)
    np.testing.assert_array_equal(finite, has)
    assert np.all(np.isnan(seq.gt_poses[~has]))

    # camera pose = body pose @ T_BS, for a frame whose stamp is in groundtruth.csv
    k = int(np.flatnonzero(has)[5])
    row = next(r for r in gt_rows if int(r[0]) == ns[k])
    p = np.array(row[1:4], float)
    qw, qx, qy, qz = (float(v) for v in row[4:8])
    T_wb = np.eye(4)
    T_wb[:3, :3] = Rotation.from_quat([qx, qy, qz, qw]).as_matrix()
    T_wb[:3, 3] = p
    np.testing.assert_allclose(seq.gt_poses[k], T_wb @ T_BS, atol=1e-9)
    assert not np.allclose(seq.gt_poses[k], T_wb, atol=1e-3)  # T_BS really applied
    # the drone is static: a few mm of motion
    t = seq.gt_poses[finite, :3, 3]
    assert np.linalg.norm(t - t[0], axis=1).max() < 0.02


def test_euroc_wider_gap_interpolates() -> None:
    """With max_dt large enough, the 18 frames between GT samples are interpolated."""
    root = _need(EUROC)
    seq = load_euroc(root, max_dt=0.06)
    assert np.all(np.isfinite(seq.gt_poses))
    for T in seq.gt_poses:
        np.testing.assert_allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-9)


def test_euroc_open_sequence_real() -> None:
    root = _need(EUROC)
    assert detect_format(root) == "euroc"
    assert detect_format(root / "mav0") == "euroc"
    seq = open_sequence(root / "mav0")
    assert len(seq) == 95 and seq.name == "euroc_v101_static"


def test_euroc_generated_state_groundtruth_and_interpolation(tmp_path: Path) -> None:
    """EuRoC layout with GT in mav0/state_groundtruth_estimate0, equidistant camera, 200 Hz GT."""
    root = tmp_path / "MH_XX"
    cam_dir = root / "mav0" / "cam0"
    (cam_dir / "data").mkdir(parents=True)
    t0 = 1_400_000_000_000_000_000
    img_ns = [t0 + 50_000_000 * i + 2_500_000 for i in range(4)]  # midway between GT samples
    lines = ["#timestamp [ns],filename"]
    for i, t in enumerate(img_ns):
        cv2.imwrite(str(cam_dir / "data" / f"{t}.png"), _pattern(i))
        lines.append(f"{t},{t}.png")
    (cam_dir / "data.csv").write_text("\n".join(lines) + "\n")
    (cam_dir / "sensor.yaml").write_text(
        "%YAML:1.0\nsensor_type: camera\nT_BS:\n  cols: 4\n  rows: 4\n"
        "  data: [1, 0, 0, 0.1, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]\n"
        "resolution: [64, 48]\ncamera_model: pinhole\nintrinsics: [50, 51, 31.5, 23.5]\n"
        "distortion_model: equidistant\ndistortion_coefficients: [0.01, -0.002, 0.0003, 0]\n")
    gt_dir = root / "mav0" / "state_groundtruth_estimate0"
    gt_dir.mkdir(parents=True)
    g_ns = [t0 + 5_000_000 * j for j in range(0, 30)]  # 200 Hz, ends before the last image
    rows = ["#timestamp,p_x,p_y,p_z,q_w,q_x,q_y,q_z,v..."]
    for j, t in enumerate(g_ns):
        q = Rotation.from_euler("z", 0.01 * j).as_quat()  # x y z w
        rows.append(f"{t},{0.001 * j},0,0,{q[3]},{q[0]},{q[1]},{q[2]},0,0,0")
    (gt_dir / "data.csv").write_text("\n".join(rows) + "\n")

    seq = open_sequence(root)
    assert seq.camera.model == "equidistant" and seq.camera.dist.size == 4
    assert (seq.camera.width, seq.camera.height) == (64, 48)
    np.testing.assert_allclose(seq.meta["T_BS"][:3, 3], [0.1, 0, 0])
    # image i at t0 + 50 ms i + 2.5 ms -> GT index j = 10 i + 0.5
    for i in range(3):
        j = 10 * i + 0.5
        T_wb = np.eye(4)
        T_wb[:3, :3] = Rotation.from_euler("z", 0.01 * j).as_matrix()
        T_wb[:3, 3] = [0.001 * j, 0, 0]
        np.testing.assert_allclose(seq.gt_poses[i], T_wb @ seq.meta["T_BS"], atol=1e-9)
    assert np.all(np.isnan(seq.gt_poses[3]))  # after the last GT sample
    np.testing.assert_array_equal(seq.load_image(2), _pattern(2))


def test_interpolate_poses_rules() -> None:
    ref_ns = np.array([0, 10_000_000, 100_000_000])
    ref = _random_poses(3, seed=1)
    q = np.array([10_000_000, 5_000_000, 50_000_000, 200_000_000, -1])
    out = interpolate_poses(q, ref_ns, ref, max_dt=0.02)
    np.testing.assert_allclose(out[0], ref[1])  # exact
    assert np.all(np.isfinite(out[1]))  # bracketed within 20 ms
    np.testing.assert_allclose(out[1][:3, 3], 0.5 * (ref[0, :3, 3] + ref[1, :3, 3]))
    assert np.all(np.isnan(out[2])) and np.all(np.isnan(out[3])) and np.all(np.isnan(out[4]))


# ====================================================================== TUM (generated)
def _make_tum(root: Path, n: int = 5, with_gt: bool = True) -> np.ndarray:
    (root / "rgb").mkdir(parents=True)
    stamps = 1305031102.175304 + 0.0333 * np.arange(n)
    lines = ["# color images", "# file: 'rgbd_dataset_freiburg1_xyz.bag'", "# timestamp filename"]
    for i, t in enumerate(stamps):
        name = f"rgb/{t:.6f}.png"
        cv2.imwrite(str(root / name), _pattern(i, color=True))
        lines.append(f"{t:.6f} {name}")
    (root / "rgb.txt").write_text("\n".join(lines) + "\n")
    if with_gt:
        # GT at 100 Hz offset by 3 ms, except around frame 2 (gap > 20 ms on both sides)
        gt_t = np.arange(stamps[0] - 0.05, stamps[-1] + 0.05, 0.01) + 0.003
        gt_t = gt_t[np.abs(gt_t - stamps[2]) > 0.025]
        poses = _random_poses(len(gt_t), seed=7)
        write_tum_trajectory(root / "groundtruth.txt", gt_t, poses,
                             header="ground truth trajectory\ntimestamp tx ty tz qx qy qz qw")
    return stamps


def test_tum_generated(tmp_path: Path) -> None:
    root = tmp_path / "rgbd_dataset_freiburg1_xyz"
    stamps = _make_tum(root)
    assert detect_format(root) == "tum"
    seq = open_sequence(root)
    assert seq.meta["format"] == "tum"
    assert len(seq) == 5
    np.testing.assert_allclose(seq.stamps, np.round(stamps, 6))
    img = seq.load_image(3)
    assert img.shape == (48, 64, 3) and img.dtype == np.uint8
    np.testing.assert_array_equal(img, _pattern(3, color=True))
    cam = seq.camera
    assert cam is not None and cam.model == "radtan"
    assert (cam.fx, cam.fy, cam.cx, cam.cy) == (517.3, 516.5, 318.6, 255.3)
    np.testing.assert_allclose(cam.dist, [0.2624, -0.9531, -0.0054, 0.0026, 1.1633])
    assert (cam.width, cam.height) == (64, 48)  # size taken from the images
    # association: nearest GT sample within 20 ms, NaN for frame 2
    gt_t, gt_p = load_tum_trajectory(root / "groundtruth.txt")
    for i in range(5):
        if i == 2:
            assert np.all(np.isnan(seq.gt_poses[i]))
            continue
        j = int(np.argmin(np.abs(gt_t - seq.stamps[i])))
        assert abs(gt_t[j] - seq.stamps[i]) <= 0.02
        np.testing.assert_allclose(seq.gt_poses[i], gt_p[j])


def test_tum_calibrations_and_no_gt(tmp_path: Path) -> None:
    root = tmp_path / "my_sequence"
    _make_tum(root, n=3, with_gt=False)
    seq = load_tum(root)
    assert seq.camera is None and seq.gt_poses is None and len(seq) == 3
    c3 = tum_camera_from_name("rgbd_dataset_freiburg3_long_office_household")
    assert c3.model == "none" and (c3.fx, c3.fy, c3.cx, c3.cy) == (535.4, 539.2, 320.1, 247.6)
    assert (c3.width, c3.height) == (640, 480)
    c2 = tum_camera_from_name("rgbd_dataset_freiburg2_desk")
    assert c2.fx == 520.9 and c2.dist.size == 5
    assert tum_camera_from_name("fr1_desk").fx == 517.3
    assert tum_camera_from_name("frame_sequence") is None
    assert tum_camera_from_name("freiburg4") is None


def test_tum_missing_image_raises_ioerror(tmp_path: Path) -> None:
    root = tmp_path / "tum"
    _make_tum(root, n=3, with_gt=False)
    missing = sorted((root / "rgb").iterdir())[1]
    missing.unlink()
    seq = load_tum(root)
    seq.load_image(0)
    with pytest.raises(IOError, match=missing.name):
        seq.load_image(1)
    # a corrupt file too
    bad = sorted((root / "rgb").iterdir())[0]
    bad.write_bytes(b"not a png")
    with pytest.raises(IOError, match="decode"):
        seq.load_image(0)


def test_tum_trajectory_round_trip(tmp_path: Path) -> None:
    n = 6
    stamps = 1305031102.175304 + 0.1 * np.arange(n)
    poses = _random_poses(n, seed=11)
    poses[3] = np.nan  # lost frame: skipped by the writer
    path = tmp_path / "out" / "traj.txt"
    assert write_tum_trajectory(path, stamps, poses) == n - 1
    text = path.read_text().splitlines()
    assert len(text) == n - 1 and len(text[0].split()) == 8
    t, P = load_tum_trajectory(path)
    keep = np.array([0, 1, 2, 4, 5])
    np.testing.assert_allclose(t, stamps[keep], atol=1e-9)
    np.testing.assert_allclose(P, poses[keep], atol=1e-8)
    q = np.array([ln.split()[4:8] for ln in text], float)
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-8)
    assert np.all(q[:, 3] >= 0)
    # 3x4 input works too; empty input writes an empty file
    write_tum_trajectory(path, stamps[:2], poses[:2, :3, :4])
    np.testing.assert_allclose(load_tum_trajectory(path)[1], poses[:2], atol=1e-8)
    assert write_tum_trajectory(path, [], np.zeros((0, 4, 4))) == 0
    assert load_tum_trajectory(path)[0].shape == (0,)
    with pytest.raises(ValueError):
        write_tum_trajectory(path, stamps, poses[:3])
    (tmp_path / "bad.txt").write_text("1 2 3\n")
    with pytest.raises(ValueError, match="8 values"):
        load_tum_trajectory(tmp_path / "bad.txt")


def test_associate_nearest() -> None:
    ref = np.array([0.3, 0.0, 0.1, 0.2])
    idx = associate_nearest([0.01, 0.26, 0.5, -0.1, 0.149], ref, 0.05)
    np.testing.assert_array_equal(idx, [1, 0, -1, -1, 2])


# ====================================================================== image folder / video
def test_image_folder_natural_sort_and_fps(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(12):
        cv2.imwrite(str(folder / f"img{i}.png"), _pattern(i))
    (folder / "notes.txt").write_text("not an image")
    assert detect_format(folder) == "images"
    seq = open_sequence(folder, fps=20.0)
    assert len(seq) == 12 and seq.camera is None and seq.gt_poses is None
    assert seq.meta["files"][:3] == ["img0.png", "img1.png", "img2.png"]
    assert seq.meta["files"][-1] == "img11.png"
    np.testing.assert_allclose(seq.stamps, np.arange(12) / 20.0)
    for i in (0, 2, 10, 11):
        np.testing.assert_array_equal(seq.load_image(i), _pattern(i))
    stamps_imgs = list(seq)
    assert len(stamps_imgs) == 12 and stamps_imgs[5][0] == pytest.approx(0.25)
    assert load_image_folder(folder).stamps[1] == pytest.approx(0.1)  # default 10 fps


def test_image_folder_times_and_camera_info(tmp_path: Path) -> None:
    folder = tmp_path / "cam"
    folder.mkdir()
    for i, ext in enumerate([".jpg", ".png", ".bmp"]):
        cv2.imwrite(str(folder / f"{i:03d}{ext}"), _pattern(i, color=True))
    (folder / "timestamps.txt").write_text("# seconds\n100.0\n100.5\n101.25\n")
    (folder / "camera_info.yaml").write_text(
        "image_width: 64\nimage_height: 48\ncamera_name: test\n"
        "camera_matrix:\n  rows: 3\n  cols: 3\n  data: [60.0, 0, 31.5, 0, 61.0, 23.5, 0, 0, 1]\n"
        "distortion_model: plumb_bob\n"
        "distortion_coefficients:\n  rows: 1\n  cols: 5\n  data: [-0.1, 0.01, 0.001, 0.0, 0.0]\n")
    seq = load_image_folder(folder)
    np.testing.assert_allclose(seq.stamps, [100.0, 100.5, 101.25])
    cam = seq.camera
    assert cam.model == "radtan" and cam.dist.size == 5
    assert (cam.width, cam.height, cam.fx, cam.fy, cam.cx, cam.cy) == (64, 48, 60, 61, 31.5, 23.5)
    assert seq.load_image(0).shape == (48, 64, 3)  # JPEG, approximately the pattern
    np.testing.assert_array_equal(seq.load_image(2), _pattern(2, color=True))
    # timestamp count mismatch is an error
    (folder / "timestamps.txt").write_text("1\n2\n")
    with pytest.raises(ValueError, match="2 stamps but"):
        load_image_folder(folder)


def test_camera_yaml_variants(tmp_path: Path) -> None:
    cam = Camera(640, 480, 500.0, 501.0, 319.5, 239.5, "equidistant", np.array([0.1, 0, 0, 0]))
    import yaml

    (tmp_path / "calib.yaml").write_text(yaml.safe_dump(cam.to_dict()))
    back = load_camera_yaml(tmp_path / "calib.yaml")
    assert back.to_dict() == cam.to_dict()
    (tmp_path / "ocv.yaml").write_text(
        "%YAML:1.0\n---\nimage_width: 320\nimage_height: 240\n"
        "camera_matrix: !!opencv-matrix\n   rows: 3\n   cols: 3\n   dt: d\n"
        "   data: [ 300., 0., 160., 0., 300., 120., 0., 0., 1. ]\n"
        "distortion_coefficients: !!opencv-matrix\n   rows: 1\n   cols: 5\n   dt: d\n"
        "   data: [ 0., 0., 0., 0., 0. ]\n")
    c = load_camera_yaml(tmp_path / "ocv.yaml")
    assert c.model == "none" and c.fx == 300 and c.width == 320
    (tmp_path / "junk.yaml").write_text("just a string\n")
    with pytest.raises(ValueError, match="junk.yaml"):
        load_camera_yaml(tmp_path / "junk.yaml")


def test_sixteen_bit_and_alpha_images(tmp_path: Path) -> None:
    img16 = (np.arange(48 * 64, dtype=np.uint16).reshape(48, 64) * 20)
    cv2.imwrite(str(tmp_path / "a16.png"), img16)
    out = read_image(tmp_path / "a16.png")
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, img16)
    bgra = np.dstack([_pattern(1, color=True), np.full((48, 64), 255, np.uint8)])
    cv2.imwrite(str(tmp_path / "b.png"), bgra)
    assert read_image(tmp_path / "b.png").shape == (48, 64, 3)
    with pytest.raises(IOError, match="nope.png"):
        read_image(tmp_path / "nope.png")


def _write_video(path: Path, n: int, fps: float = 15.0) -> bool:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (64, 48))
    if not writer.isOpened():
        return False
    for i in range(n):
        writer.write(_pattern(i, color=True))
    writer.release()
    return path.is_file() and path.stat().st_size > 0


def _frame_id(img: np.ndarray) -> int:
    """Recover ``i`` from a decoded _pattern frame (position of the bright square)."""
    col = img[20].mean(axis=-1) if img.ndim == 3 else img[20]
    x = int(np.flatnonzero(col > 128)[0])
    return int(round((x - 4) / 6))


@pytest.fixture()
def video_path(tmp_path: Path) -> Path:
    path = tmp_path / "clip.avi"
    if not _write_video(path, 8):
        pytest.skip("OpenCV cannot write MJPG .avi here (no video backend)")
    return path


def test_video_sequential_and_random_access(video_path: Path) -> None:
    assert detect_format(video_path) == "video"
    seq = open_sequence(video_path)
    assert seq.meta["format"] == "video"
    assert len(seq) == 8
    assert seq.meta["fps"] == pytest.approx(15.0)
    np.testing.assert_allclose(seq.stamps, np.arange(8) / 15.0, atol=1e-6)
    imgs = [img for _, img in seq]
    assert all(im.shape == (48, 64, 3) and im.dtype == np.uint8 for im in imgs)
    assert [_frame_id(im) for im in imgs] == list(range(8))
    # random access: backwards, repeat, jump forwards, back to the start
    for i in (5, 2, 2, 7, 0, 3, 4):
        assert _frame_id(seq.load_image(i)) == i
    with pytest.raises(IndexError):
        seq.load_image(8)
    seq.meta["reader"].close()


def test_video_exact_stamps(video_path: Path) -> None:
    seq = load_video(video_path, exact_stamps=True)
    assert len(seq) == 8
    assert seq.meta["stamps_from"] in ("CAP_PROP_POS_MSEC", "frame/fps")
    np.testing.assert_allclose(seq.stamps, np.arange(8) / 15.0, atol=2e-3)
    assert _frame_id(seq.load_image(6)) == 6


# ====================================================================== autodetection / errors
def test_open_sequence_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_sequence(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="empty"):
        open_sequence(empty)
    odd = tmp_path / "odd"
    (odd / "sub").mkdir(parents=True)
    (odd / "readme.md").write_text("hello")
    with pytest.raises(ValueError, match="unrecognised sequence layout"):
        open_sequence(odd)
    txt = tmp_path / "file.txt"
    txt.write_text("x")
    with pytest.raises(ValueError, match="not a video"):
        open_sequence(txt)
    with pytest.raises(FileNotFoundError):
        load_video(tmp_path / "missing.mp4")
    with pytest.raises(FileNotFoundError, match="rgb.txt"):
        load_tum(empty)
    with pytest.raises(FileNotFoundError, match="data.csv"):
        load_euroc(empty)
    with pytest.raises(FileNotFoundError, match="image_0"):
        load_kitti(empty)


def test_kitti_missing_calib_is_reported(tmp_path: Path) -> None:
    root = tmp_path / "k"
    (root / "image_0").mkdir(parents=True)
    cv2.imwrite(str(root / "image_0" / "000000.png"), _pattern(0))
    (root / "times.txt").write_text("0\n")
    # without calib.txt this is not detected as KITTI, but as an empty image folder layout
    with pytest.raises(ValueError, match="unrecognised"):
        open_sequence(root)
    with pytest.raises(FileNotFoundError, match="calib.txt"):
        load_kitti(root)
