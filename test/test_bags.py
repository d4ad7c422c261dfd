"""Bag tools without ROS: real rosbag2 (MCAP, sqlite3) and ROS 1 bags written with rosbags into
tmp_path from KITTI07 frames; ``make-bag``, ``bag-eval`` (same metrics as ``run``), robustness
counters, calibration and ground-truth formats, scoring of a node recording."""

from __future__ import annotations

import csv

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml

from conftest import shared_data

pytest.importorskip("rosbags")

from dkp_slam.bags.eval import BagEvalOptions, evaluate_bag  # noqa: E402
from dkp_slam.bags.reader import BagError, BagReader, read_pose_track  # noqa: E402
from dkp_slam.bags.writer import BagWriter, MakeBagOptions, make_bag, play_order  # noqa: E402
from dkp_slam.cli import main  # noqa: E402
from dkp_slam.config import FrontEndConfig  # noqa: E402
from dkp_slam.datasets import (load_calibration, load_euroc_camera, load_kitti,  # noqa: E402
                               load_trajectory, write_tum_trajectory)
from dkp_slam.frontend import FrontEnd  # noqa: E402
from dkp_slam.messages.decode import camera_from_info, image_to_array  # noqa: E402

N = 20
KITTI = ("sequences", "kitti07_0000-0159")
#: Summary values that must not depend on whether the frames came from a folder or a bag.
METRICS = ("frames", "tracked_fraction", "status_counts", "keypoints_median", "inliers_median",
           "rot_err_median_deg", "rot_err_p90_deg", "tdir_err_median_deg", "tdir_err_p90_deg",
           "frames_with_gt_error", "pose_auc@5", "pose_auc@10", "pose_auc@20",
           "ate_sim3_rmse_m", "rpe_rot_rmse_deg", "rpe_trans_rmse_m", "skipped_frames",
           "has_ground_truth", "detector", "config")


@pytest.fixture(scope="module")
def kitti():
    return load_kitti(shared_data(*KITTI)).subset(0, N)


@pytest.fixture(scope="module")
def bags(kitti, tmp_path_factory):
    """The KITTI subset as a raw MCAP bag, a sqlite3 bag with PNG CompressedImage and Odometry
    ground truth, and a ROS 1 bag."""
    root = tmp_path_factory.mktemp("bags")
    out = {"mcap": root / "k_mcap", "sqlite3": root / "k_sqlite", "ros1": root / "k.bag"}
    make_bag(kitti, out["mcap"], MakeBagOptions(), progress=False)
    make_bag(kitti, out["sqlite3"], MakeBagOptions(storage="sqlite3", compressed=True,
                                                   gt_type="odometry"), progress=False)
    make_bag(kitti, out["ros1"], MakeBagOptions(), progress=False)
    return out


def _ns(stamps):
    return np.round(np.asarray(stamps) * 1e9).astype(np.int64)


# ---------------------------------------------------------------------- make-bag
@pytest.mark.parametrize("kind", ["mcap", "sqlite3", "ros1"])
def test_make_bag_round_trip(kind, bags, kitti):
    with BagReader(bags[kind]) as bag:
        assert bag.format == {"mcap": "rosbag2/mcap", "sqlite3": "rosbag2/sqlite3",
                              "ros1": "ros1"}[kind]
        image_topic = "/camera/image_raw" + ("/compressed" if kind == "sqlite3" else "")
        assert {t: i.count for t, i in bag.topics.items()} == {
            image_topic: N, "/camera/camera_info": N, "/ground_truth/pose": N}
        k = 0
        for raw in bag.messages([image_topic, "/camera/camera_info"]):
            msg = bag.deserialize(raw)
            if raw.topic == "/camera/camera_info":
                assert camera_from_info(msg).to_dict() == kitti.camera.to_dict()
                continue
            if kind == "sqlite3":
                assert msg.format == "png"
                import cv2

                image = cv2.imdecode(msg.data, cv2.IMREAD_UNCHANGED)
            else:
                image, order = image_to_array(msg)
                assert msg.encoding == "mono8" and order == "bgr"
            np.testing.assert_array_equal(image, kitti.load_image(k))
            assert raw.time_ns == _ns(kitti.stamps)[k]
            k += 1
        assert k == N
        stamps, poses, problems = read_pose_track(bag, "/ground_truth/pose")
        np.testing.assert_array_equal(stamps, _ns(kitti.stamps))
        np.testing.assert_allclose(poses, kitti.gt_poses, atol=1e-6)
        assert problems == {"corrupt": 0}


def test_play_order_ping_pong_keeps_time_and_motion_continuous():
    order = list(play_order(np.array([0.0, 0.1, 0.25]), repeat=3))
    assert [i for i, _ in order] == [0, 1, 2, 1, 0, 1, 2]
    t = [s for _, s in order]
    assert t == [0, 100_000_000, 250_000_000, 400_000_000, 500_000_000, 600_000_000,
                 750_000_000]


def test_make_bag_cli_image_folder_with_times_and_calib(tmp_path, kitti):
    import cv2

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(5):
        cv2.imwrite(str(folder / f"f{i}.png"), cv2.cvtColor(kitti.load_image(i),
                                                             cv2.COLOR_GRAY2BGR))
    (folder / "times.txt").write_text("".join(f"{100 + 0.1 * i:.6f}\n" for i in range(5)))
    cam = kitti.camera
    (folder / "camera_info.yaml").write_text(yaml.safe_dump({
        "image_width": cam.width, "image_height": cam.height,
        "camera_matrix": {"rows": 3, "cols": 3, "data": cam.K.reshape(-1).tolist()},
        "distortion_model": "plumb_bob", "distortion_coefficients": {
            "rows": 1, "cols": 5, "data": [0.0] * 5}}))
    out = tmp_path / "folder_bag"
    assert main(["make-bag", str(folder), str(out), "--storage", "sqlite3", "--encoding",
                 "rgb8", "--no-progress"]) == 0
    with BagReader(out) as bag:
        assert set(bag.topics) == {"/camera/image_raw", "/camera/camera_info"}
        raw = next(bag.messages(["/camera/image_raw"]))
        msg = bag.deserialize(raw)
        assert msg.encoding == "rgb8" and raw.time_ns == 100_000_000_000
        image, order = image_to_array(msg)
        assert order == "rgb" and image.shape == (cam.height, cam.width, 3)
    assert main(["make-bag", str(folder), str(out)]) == 2  # exists: one-line error


# ---------------------------------------------------------------------- bag-eval == run
def test_bag_eval_gives_the_metrics_of_run(tmp_path, bags):
    """Same frames, same FrontEnd, same ground truth -> the same summary (timings aside),
    the same keys in --json, the same trajectory; from every storage format."""
    kitti_dir = shared_data(*KITTI)
    assert main(["run", str(kitti_dir), "--max-frames", str(N), "--output",
                 str(tmp_path / "run"), "--json", str(tmp_path / "run.json"),
                 "--no-progress"]) == 0
    run = json.loads((tmp_path / "run.json").read_text())
    assert main(["bag-eval", str(bags["mcap"]), "--gt", str(kitti_dir / "poses.txt"),
                 "--output", str(tmp_path / "bag"), "--json", str(tmp_path / "bag.json"),
                 "--no-progress", "--html"]) == 0
    bag = json.loads((tmp_path / "bag.json").read_text())
    assert bag.keys() == run.keys()
    for key in METRICS:
        if isinstance(run[key], float):
            assert bag[key] == pytest.approx(run[key], rel=1e-9, abs=1e-12), key
        else:
            assert bag[key] == run[key], key
    assert bag["frames"] == N and bag["has_ground_truth"]
    assert bag["input"]["counters"]["images"] == N
    assert sum(bag["input"]["counters"].values()) == 2 * N  # images + CameraInfo, no problem
    est_run = np.loadtxt(tmp_path / "run" / "trajectory_tum.txt")
    est_bag = np.loadtxt(tmp_path / "bag" / "trajectory_tum.txt")
    np.testing.assert_allclose(est_bag, est_run, rtol=0, atol=1e-9)
    for name in ("report.md", "report.html", "trajectory_sim3.png", "errors.png",
                 "inliers.png", "frames.csv"):
        assert (tmp_path / "bag" / name).is_file(), name
    assert "trajectory_sim3.png" in (tmp_path / "bag" / "report.md").read_text()

    # The other storage formats, with the ground truth from the bag's own topic: identical
    # estimates; the rotation errors differ only by the quaternion round trip of KITTI's not
    # exactly orthonormal ground-truth rotations (see docs/BAGS.md).
    for kind in ("sqlite3", "ros1"):
        s = evaluate_bag(bags[kind], FrontEndConfig(), tmp_path / kind, progress=False)
        assert s["input"]["ground_truth"].startswith("topic /ground_truth/pose")
        np.testing.assert_allclose(np.loadtxt(tmp_path / kind / "trajectory_tum.txt"),
                                   est_run, rtol=0, atol=1e-9)
        for key in ("frames", "status_counts", "inliers_median", "tdir_err_median_deg",
                    "ate_sim3_rmse_m", "rpe_trans_rmse_m", "pose_auc@20"):
            assert s[key] == pytest.approx(run[key], rel=1e-6), (kind, key)
        assert s["rot_err_median_deg"] == pytest.approx(run["rot_err_median_deg"], abs=0.01)


# ---------------------------------------------------------------------- robustness
def test_corrupt_messages_encodings_and_time_problems_are_counted(tmp_path, kitti):
    ns = _ns(kitti.stamps + 10.0)
    path = tmp_path / "bad"
    with BagWriter(path) as b:
        for i in range(12):
            image, t = kitti.load_image(i), int(ns[i])
            stamp = t
            if i == 3:  # truncated message
                data = b.typestore.serialize_cdr(b.image(image, t, "cam", "mono8"),
                                                 "sensor_msgs/msg/Image")
                b.add_topic("/cam/image_raw", "sensor_msgs/msg/Image")
                b.write_raw("/cam/image_raw", t, bytes(data)[:5000])
                continue
            msg = b.image(image, stamp, "cam", "mono8")
            if i == 5:
                msg.encoding = "yuv422"  # unknown encoding
            if i == 6:
                msg.header.stamp = b.header(int(ns[4]), "cam").stamp  # time goes backwards
            if i == 8:
                msg.header.stamp = b.header(int(ns[7]), "cam").stamp  # duplicate stamp
            if i == 9:
                msg.data = msg.data[:1000]  # data shorter than step x height
            if i == 10:
                msg.header.stamp = b.header(0, "cam").stamp  # not stamped
            if i == 11:
                msg.header.stamp = b.header(1, "cam").stamp  # 10.9 s back: a restart
            b.write("/cam/image_raw", t, msg)
            b.write("/ground_truth/pose", t, b.pose_stamped(kitti.gt_poses[i], t, "world"))
    calib = tmp_path / "camera_info.yaml"
    calib.write_text(yaml.safe_dump(kitti.camera.to_dict() | {"dist": []}))
    s = evaluate_bag(path, FrontEndConfig(), tmp_path / "out",
                     BagEvalOptions(calib=str(calib)), progress=False)
    c = s["input"]["counters"]
    assert c["images"] == 12 and c["corrupt"] == 1 and c["unsupported_encoding"] == 1
    assert c["stamp_backwards"] == 1 and c["stamp_duplicate"] == 1
    assert c["stamp_invalid"] == 1 and c["stamp_resets"] == 1
    assert c["invalid_image"] == 1 and c["camera_info_missing"] == 0
    assert s["frames"] == 6 and s["skipped_frames"] == 6
    assert sorted(k["frame"] for k in s["skipped"]) == [3, 5, 6, 8, 9, 10]
    assert [r["frame"] for r in s["restarts"]] == [11]
    assert "jumped back" in s["restarts"][0]["reason"]
    assert s["status_counts"]["INITIALISING"] == 2  # the first frame and the restart
    assert s["has_ground_truth"] and s["tracked_fraction"] >= 0.8
    assert s["input"]["camera_source"].startswith("calibration file")
    assert "stamp_backwards" in (tmp_path / "out" / "report.md").read_text()

    # Without intrinsics anywhere: counted, homography-only, still a complete run.
    s = evaluate_bag(path, FrontEndConfig(), tmp_path / "nocam", progress=False)
    assert s["input"]["counters"]["camera_info_missing"] == 1
    assert s["frames"] == 6 and s["input"]["camera_source"].startswith("none")


def test_truncated_bag_file_is_refused_with_one_line(tmp_path, bags):
    import shutil

    bag = tmp_path / "trunc"
    shutil.copytree(bags["mcap"], bag)
    f = next(bag.glob("*.mcap"))
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(BagError, match="cannot open bag"):
        BagReader(bag)
    proc = subprocess.run([sys.executable, "-m", "dkp_slam.cli", "bag-eval", str(bag),
                           "--output", str(tmp_path / "o")], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "cannot open bag" in proc.stderr


# ---------------------------------------------------------------------- calibration, GT
def test_calibration_file_formats_agree(tmp_path):
    sensor = shared_data("sequences", "euroc_v101_static", "mav0", "cam0", "sensor.yaml")
    cam, T_BS = load_euroc_camera(sensor)
    c1, T1, topic1 = load_calibration(sensor)
    assert c1.to_dict() == cam.to_dict() and np.allclose(T1, T_BS) and topic1 is None
    # Kalibr camchain of the same camera (T_cam_imu = inverse of T_BS)
    chain = tmp_path / "camchain.yaml"
    chain.write_text(yaml.safe_dump({"cam0": {
        "camera_model": "pinhole", "intrinsics": [cam.fx, cam.fy, cam.cx, cam.cy],
        "distortion_model": "radtan", "distortion_coeffs": cam.dist.tolist(),
        "resolution": [cam.width, cam.height], "rostopic": "/cam0/image_raw",
        "T_cam_imu": np.linalg.inv(T_BS).tolist()}}))
    c2, T2, topic2 = load_calibration(chain)
    assert c2.to_dict() == cam.to_dict() and topic2 == "/cam0/image_raw"
    np.testing.assert_allclose(T2, T_BS, atol=1e-12)
    # ROS camera_info YAML
    info = tmp_path / "camera_info.yaml"
    info.write_text(yaml.safe_dump({
        "image_width": cam.width, "image_height": cam.height,
        "camera_matrix": {"rows": 3, "cols": 3, "data": cam.K.reshape(-1).tolist()},
        "distortion_model": "plumb_bob",
        "distortion_coefficients": {"rows": 1, "cols": 5,
                                    "data": cam.dist.tolist() + [0.0]}}))
    c3, T3, _ = load_calibration(info)
    assert T3 is None and np.allclose(c3.K, cam.K) and np.allclose(c3.dist[:4], cam.dist)
    with pytest.raises(ValueError, match="cam7"):
        load_calibration(chain, "cam7")


def test_ground_truth_file_formats(tmp_path, kitti):
    kitti_dir = shared_data(*KITTI)
    ns, poses, fmt = load_trajectory(kitti_dir / "poses.txt")
    assert fmt == "kitti" and len(ns) == len(poses) == 160
    np.testing.assert_allclose(poses[:N], kitti.gt_poses)
    tum = tmp_path / "gt.txt"
    write_tum_trajectory(tum, kitti.stamps, kitti.gt_poses)
    ns, poses, fmt = load_trajectory(tum)
    assert fmt == "tum" and np.array_equal(ns, _ns(kitti.stamps))
    np.testing.assert_allclose(poses, kitti.gt_poses, atol=1e-6)
    euroc = shared_data("sequences", "euroc_v101_static", "groundtruth.csv")
    ns, poses, fmt = load_trajectory(euroc)
    assert fmt == "euroc" and ns.dtype == np.int64 and poses.shape[1:] == (4, 4)
    lone = tmp_path / "kitti_alone" / "poses.txt"  # no times.txt: one pose per frame
    lone.parent.mkdir()
    lone.write_text((kitti_dir / "poses.txt").read_text())
    assert load_trajectory(lone)[0] is None


def test_ground_truth_from_tf_with_frame_choice(tmp_path, kitti):
    ns = _ns(kitti.stamps)
    path = tmp_path / "tf_bag"
    with BagWriter(path, "sqlite3") as b:
        for i in range(6):
            t = int(ns[i])
            tfs = []
            for child, T in (("camera", kitti.gt_poses[i]), ("other", np.eye(4))):
                p = b.pose(T)
                tfs.append(b.new("geometry_msgs/msg/TransformStamped",
                                 header=b.header(t, "world"), child_frame_id=child,
                                 transform=b.new("geometry_msgs/msg/Transform",
                                                 translation=b.new(
                                                     "geometry_msgs/msg/Vector3",
                                                     x=p.position.x, y=p.position.y,
                                                     z=p.position.z),
                                                 rotation=p.orientation)))
            b.write("/tf", t, b.new("tf2_msgs/msg/TFMessage", transforms=tfs))
    with BagReader(path) as bag:
        with pytest.raises(BagError, match="--gt-frame"):
            read_pose_track(bag, "/tf")
        stamps, poses, _ = read_pose_track(bag, "/tf", "camera")
    np.testing.assert_array_equal(stamps, ns[:6])
    np.testing.assert_allclose(poses, kitti.gt_poses[:6], atol=1e-6)


# ---------------------------------------------------------------------- node recordings
def _node_recording(path, kitti, with_status: bool = True) -> list[str]:
    """What bag-record writes from the node, produced in-process: ~/status, ~/relative_pose,
    ~/odometry (and the replayed ground truth). Returns the recorded frames' statuses."""
    from dkp_slam.odometry import OdometryChain

    frontend = FrontEnd(FrontEndConfig(), kitti.camera)
    chain = OdometryChain()
    statuses = []
    ns = _ns(kitti.stamps)
    with BagWriter(path) as b:
        for i in range(N):
            if i == 7:
                continue  # a frame the node dropped
            r = frontend.process(kitti.load_image(i), ns[i] * 1e-9)
            statuses.append(r.status.value)
            t = int(ns[i]) + 30_000_000  # received 30 ms later
            T, cov = chain.update(r)
            pose = b.new("geometry_msgs/msg/PoseWithCovariance", pose=b.pose(r.T_ref_cur),
                         covariance=np.nan_to_num(r.covariance, nan=1e9).reshape(-1))
            b.write("/frontend/relative_pose", t, b.new(
                "geometry_msgs/msg/PoseWithCovarianceStamped",
                header=b.header(int(ns[i]), "cam"), pose=pose))
            odo = b.odometry(T, int(ns[i]), "odom", "cam")
            odo.pose.covariance = cov.reshape(-1)
            b.write("/frontend/odometry", t, odo)
            if with_status:
                b.write("/frontend/status", t, b.new("std_msgs/msg/String", data=json.dumps({
                    "stamp": float(ns[i] * 1e-9), "index": r.index,
                    "status": r.status.value, "model": r.model,
                    "keypoints": len(r.keypoints), "matches": r.num_matches,
                    "inliers": r.num_inliers, "parallax_px": r.parallax_px,
                    "reference_index": r.reference_index,
                    "reference_stamp": r.reference_stamp if np.isfinite(r.reference_stamp)
                    else None, "is_keyframe": r.is_keyframe, "timings_ms": r.timings,
                    "received": i + 1, "processed": i, "dropped": int(i >= 7)})))
            b.write("/ground_truth/pose", int(ns[i]),
                    b.pose_stamped(kitti.gt_poses[i], int(ns[i]), "world"))
    return statuses


def test_score_node_recording_matches_offline(tmp_path, kitti):
    path = tmp_path / "rec"
    statuses = _node_recording(path, kitti)
    gt_file = str(shared_data(*KITTI) / "poses.txt")  # the exact ground truth of `run`
    s = evaluate_bag(path, FrontEndConfig(), tmp_path / "score", BagEvalOptions(gt=gt_file),
                     progress=False)
    assert s["input"]["mode"] == "node output" and s["frames"] == N - 1
    assert s["input"]["frames_without_output"] == 1
    assert s["input"]["node_counters"]["dropped"] == 1
    # every recorded frame after the first is tracked: OK, or LOW_PARALLAX where the car pulling
    # away gives no direction to claim (one frame with Debian's OpenCV 4.6, none with 5.x)
    assert s["has_ground_truth"] and statuses.count("INITIALISING") == 1
    assert {k: n for k, n in s["status_counts"].items() if n} == \
        {k: statuses.count(k) for k in set(statuses)}
    assert statuses.count("OK") + statuses.count("LOW_PARALLAX") == N - 2
    # the same frames evaluated offline from a folder-like sequence
    from dkp_slam.runner import run_sequence

    kept = [i for i in range(N) if i != 7]
    seq = kitti.subset(0, N)
    seq.stamps, seq.gt_poses = seq.stamps[kept], seq.gt_poses[kept]
    base_load = seq.load_image
    seq.load_image = lambda k: base_load(kept[k])
    ref = run_sequence(seq, FrontEndConfig(), tmp_path / "ref", progress=False)
    for key in ("rot_err_median_deg", "tdir_err_median_deg", "ate_sim3_rmse_m",
                "pose_auc@10", "inliers_median", "tracked_fraction"):
        assert s[key] == pytest.approx(ref[key], rel=1e-6), key
    assert (tmp_path / "score" / "report.md").is_file()
    # run chains the odometry covariance as the node does (dkp_slam.odometry): the column
    # computed offline equals the one read from the recorded ~/odometry
    def odom_sigma(folder):
        with open(folder / "frames.csv") as f:
            return [row["odom_rot_sigma_deg"] for row in csv.DictReader(f)]

    offline, recorded = odom_sigma(tmp_path / "ref"), odom_sigma(tmp_path / "score")
    assert offline == recorded and len(offline) == N - 1 and float(offline[-1]) > 0

    # odometry alone (no status): statuses inferred, frames relative to the previous one
    s2 = evaluate_bag(path, FrontEndConfig(), tmp_path / "odo",
                      BagEvalOptions(pose_topic="/frontend/odometry", gt=gt_file),
                      progress=False)
    assert s2["frames"] == N - 1 and s2["input"]["pose_topic"] == "/frontend/odometry"
    assert s2["rot_err_median_deg"] == pytest.approx(s["rot_err_median_deg"], abs=0.02)
    assert s2["ate_sim3_rmse_m"] == pytest.approx(s["ate_sim3_rmse_m"], rel=1e-6)
