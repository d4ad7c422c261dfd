"""End-to-end tests of dkp_slam.frontend.FrontEnd on real KITTI 07 and EuRoC V1_01 (static)
excerpts from ../shared/data, plus robustness of ``process`` against unusable input."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from conftest import shared_data
from dkp_slam.camera import Camera, CameraError
from dkp_slam.config import FrontEndConfig
from dkp_slam.datasets import load_euroc, load_kitti
from dkp_slam.frontend import FrameResult, FrontEnd
from dkp_slam.geometry import angle_between_deg, rotation_angle_deg
from dkp_slam.image import ImageError
from dkp_slam.tracking import TrackingStatus

S = TrackingStatus


@dataclass
class Rec:
    """The parts of a FrameResult the tests look at (descriptors are not kept)."""

    index: int
    status: TrackingStatus
    model: str
    reference_index: int
    R: np.ndarray
    t: np.ndarray
    track_ids: np.ndarray
    track_ages: np.ndarray
    n_keypoints: int
    num_inliers: int
    is_keyframe: bool
    T_world_cam: np.ndarray

    @classmethod
    def of(cls, r: FrameResult) -> "Rec":
        return cls(r.index, r.status, r.model, r.reference_index, r.R.copy(), r.t.copy(),
                   r.track_ids.copy(), r.track_ages.copy(), len(r.keypoints), r.num_inliers,
                   r.is_keyframe, r.T_world_cam.copy())


def _gt_errors(recs: list[Rec], gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation / translation-direction errors (deg) of tracked frames vs ground truth."""
    rot, tdir = [], []
    for r in recs:
        if not r.status.tracked:
            continue
        T = np.linalg.inv(gt[r.reference_index]) @ gt[r.index]
        rot.append(rotation_angle_deg(r.R.T @ T[:3, :3]))
        if np.linalg.norm(r.t) > 0.5:
            tdir.append(angle_between_deg(r.t, T[:3, 3]))
    return np.array(rot), np.array(tdir)


# ====================================================================== fixtures
@pytest.fixture(scope="module")
def kitti():
    return load_kitti(shared_data("sequences", "kitti07_0000-0159"))


@pytest.fixture(scope="module")
def kitti_frames(kitti) -> list[np.ndarray]:
    """The first 40 KITTI frames in memory (the robustness tests reuse a few)."""
    return [kitti.load_image(i) for i in range(40)]


@pytest.fixture(scope="module")
def kitti_run(kitti) -> list[Rec]:
    """All 160 KITTI frames, ORB 2000, consecutive frames (the default reference)."""
    conf = FrontEndConfig.from_dict({"detector.name": "orb", "detector.max_keypoints": 2000})
    assert conf.tracker.reference == "previous"
    fe = FrontEnd(conf, kitti.camera)
    recs = []
    for stamp, image in kitti:
        recs.append(Rec.of(fe.process(image, stamp)))
    return recs


# ====================================================================== KITTI accuracy
def test_kitti_consecutive_accuracy(kitti, kitti_run) -> None:
    recs = kitti_run
    assert len(recs) == 160
    statuses = [r.status for r in recs]
    assert statuses[0] == S.INITIALISING
    assert S.LOST not in statuses
    assert S.INITIALISING not in statuses[1:]
    # The car pulls away: over the first frames ORB's direction is too uncertain (or the
    # parallax under 2 px) to be claimed, LOW_PARALLAX then; later it drives at ~9 m/s.
    assert sum(s == S.OK for s in statuses) >= 120  # 130 on pip's OpenCV 5.1
    assert sum(s == S.OK for s in statuses[60:]) >= 90  # 97
    assert all(s in (S.OK, S.LOW_PARALLAX) for s in statuses[1:])
    for i, r in enumerate(recs):
        assert r.index == i
        assert r.reference_index == i - 1
    rot, tdir = _gt_errors(recs, kitti.gt_poses)
    assert len(rot) == 159 and len(tdir) >= 120
    assert np.median(rot) <= 0.15, np.median(rot)
    assert np.median(tdir) <= 3.5, np.median(tdir)
    for r in recs[1:]:
        if r.status.tracked:
            assert np.linalg.det(r.R) == pytest.approx(1.0, abs=1e-6)
            assert np.linalg.norm(r.t) == pytest.approx(1.0 if r.status == S.OK else 0.0,
                                                        abs=1e-6)
            assert r.model in ("essential", "homography", "rotation")


def test_kitti_chained_pose(kitti, kitti_run) -> None:
    """T_world_cam chains the relative poses: T_w_k = T_w_{k-1} @ T_{k-1}_k."""
    recs = kitti_run
    np.testing.assert_allclose(recs[0].T_world_cam, np.eye(4))
    for prev, cur in zip(recs[:-1], recs[1:]):
        if cur.status.tracked:
            T = np.eye(4)
            T[:3, :3], T[:3, 3] = cur.R, cur.t
            np.testing.assert_allclose(cur.T_world_cam, prev.T_world_cam @ T, atol=1e-9)
    # The car pulls away and turns left: the chained unit steps (none while the direction is
    # withheld) point where the true position is, once the car has driven off (frame 40: the
    # first 20 frames, 0.1-0.2 m each, are mostly withheld, which bends the chain before).
    for k in range(40, len(recs), 20):
        end = recs[k].T_world_cam[:3, 3]
        assert angle_between_deg(end, kitti.gt_poses[k][:3, 3]) < 15, k


def test_the_motion_before_outlasts_a_withheld_step(kitti) -> None:
    """The motion of the last frame with a known translation stays the next frame's start
    over a LOW_PARALLAX frame (one step too short for a direction); a frame with no pose
    drops it."""
    fe = FrontEnd(FrontEndConfig.from_dict({"detector.name": "orb"}), kitti.camera)
    frame60, frame61 = kitti.load_image(60), kitti.load_image(61)
    fe.process(frame60, 6.0)
    assert fe.process(frame61, 6.1).status == TrackingStatus.OK
    known = fe.tracker.last_motion
    assert known is not None
    # The same view again: the camera stood still, no direction to tell.
    assert fe.process(frame61, 6.2).status == TrackingStatus.LOW_PARALLAX
    assert fe.tracker.last_motion is known
    blank = np.full_like(frame61, 128)
    assert fe.process(blank, 6.3).status == TrackingStatus.FEW_MATCHES
    assert fe.tracker.last_motion is None


def test_kitti_track_ids(kitti_run) -> None:
    recs = kitti_run
    seen_max = -1
    for k, (prev, cur) in enumerate(zip(recs[:-1], recs[1:])):
        ids, ages = cur.track_ids, cur.track_ages
        assert ids.shape == ages.shape == (cur.n_keypoints,)
        assert len(np.unique(ids)) == len(ids), "track ids must be unique within a frame"
        seen_max = max(seen_max, int(prev.track_ids.max()))
        common, i_prev, i_cur = np.intersect1d(prev.track_ids, ids, return_indices=True)
        # Many tracks continue from one frame to the next ...
        assert len(common) > 0.2 * cur.n_keypoints, (k, len(common))
        # ... and a continued track is one frame older.
        np.testing.assert_array_equal(ages[i_cur], prev.track_ages[i_prev] + 1)
        # Everything else is a new track: age 0 and an id never used before.
        new = np.ones(len(ids), bool)
        new[i_cur] = False
        assert np.all(ages[new] == 0)
        assert np.all(ids[new] > seen_max)
        # Continued tracks can be no more than the geometric inliers to the previous frame.
        assert len(common) <= cur.num_inliers
    # Some tracks live long.
    assert max(int(r.track_ages.max()) for r in recs) >= 10


def test_kitti_keyframe_mode(kitti, kitti_frames) -> None:
    conf = FrontEndConfig.from_dict({"tracker.reference": "keyframe",
                                     "detector.max_keypoints": 1000})
    fe = FrontEnd(conf, kitti.camera)
    recs = [Rec.of(fe.process(img, kitti.stamps[i])) for i, img in enumerate(kitti_frames)]
    assert recs[0].status == S.INITIALISING and recs[0].is_keyframe
    assert all(r.status != S.LOST for r in recs)
    assert all(r.status.tracked for r in recs[1:])
    keyframes = [r.index for r in recs if r.is_keyframe]
    assert len(keyframes) >= 4  # keyframe_max_interval_s = 1 s at 10 Hz at least
    assert len(keyframes) < 40  # ... but not every frame
    last_kf = None
    for r in recs:
        if last_kf is not None:
            assert r.reference_index == last_kf
        if r.is_keyframe:
            last_kf = r.index
    # Keyframe intervals respect keyframe_max_interval_s (1 s ~ 10 KITTI frames).
    assert np.max(np.diff(kitti.stamps[keyframes])) <= 1.0 + 0.11
    # Poses against the keyframe are still accurate (wider baseline).
    rot, tdir = _gt_errors(recs, kitti.gt_poses)
    assert np.median(rot) < 0.3 and np.median(tdir) < 5.0


def test_reset_makes_next_frame_initialise(kitti, kitti_frames) -> None:
    fe = FrontEnd(FrontEndConfig(), kitti.camera)
    assert fe.process(kitti_frames[0], 0.0).status == S.INITIALISING
    assert fe.process(kitti_frames[1], 0.1).status == S.OK
    fe.reset()
    r = fe.process(kitti_frames[2], 0.2)
    assert r.status == S.INITIALISING
    assert r.reference_index == -1 and np.isnan(r.reference_stamp)
    assert np.all(r.track_ages == 0)
    np.testing.assert_allclose(r.T_world_cam, np.eye(4))
    r3 = fe.process(kitti_frames[3], 0.3)
    assert r3.status == S.OK and r3.reference_index == r.index


# ====================================================================== EuRoC static
@pytest.fixture(scope="module")
def euroc_run():
    seq = load_euroc(shared_data("sequences", "euroc_v101_static"))
    assert seq.camera is not None and seq.camera.model == "radtan" and seq.camera.has_distortion
    fe = FrontEnd(FrontEndConfig(), seq.camera)
    return seq, [fe.process(img, stamp) for stamp, img in seq]


def test_euroc_static_low_parallax(euroc_run) -> None:
    seq, res = euroc_run
    assert res[0].status == S.INITIALISING
    rest = res[1:]
    low = [r.status == S.LOW_PARALLAX for r in rest]
    assert np.mean(low) >= 0.95, [(r.index, r.status.value, r.parallax_px) for r in rest
                                  if r.status != S.LOW_PARALLAX]
    assert all(r.status.tracked for r in rest)
    for r in rest:
        if r.status == S.LOW_PARALLAX:
            assert r.model == "rotation"
            np.testing.assert_array_equal(r.t, np.zeros(3))
            assert np.all(np.diag(r.covariance)[:3] >= 1e5)  # translation unknown
        assert rotation_angle_deg(r.R) < 0.3, (r.index, rotation_angle_deg(r.R))
        assert r.keypoints_normalised is not None
        assert r.keypoints_normalised.shape == r.keypoints.shape


def test_euroc_static_reports_no_translation(euroc_run) -> None:
    _, res = euroc_run
    moving = [(r.index, r.model, round(r.parallax_px, 2)) for r in res[1:]
              if np.any(r.t != 0)]
    assert not moving


def test_euroc_keypoints_normalised_use_distortion(euroc_run) -> None:
    """keypoints_normalised are undistorted: they differ from the plain pinhole mapping."""
    seq, res = euroc_run
    cam = seq.camera
    r = res[1]
    pin = (r.keypoints.astype(np.float64) - [cam.cx, cam.cy]) / [cam.fx, cam.fy]
    diff = np.linalg.norm(r.keypoints_normalised - pin, axis=1)
    assert diff.max() > 0.01  # radial distortion k1 = -0.28 is strong at the borders
    np.testing.assert_allclose(r.keypoints_normalised, cam.undistort_points(r.keypoints),
                               atol=1e-5)


# ====================================================================== robustness
@pytest.fixture()
def kitti_fe(kitti):
    return FrontEnd(FrontEndConfig(), kitti.camera)


@pytest.mark.parametrize("image", [
    np.zeros((0, 0), np.uint8),
    np.zeros((1, 1), np.uint8),
    np.zeros((370, 1), np.uint8),
    np.full((370, 1226), np.nan, np.float32),
    np.zeros((370, 1226), np.int32),
    np.zeros((370, 1226), bool),
    np.zeros((370, 1226, 2), np.uint8),
    np.zeros((1, 370, 1226), np.uint8),
    np.zeros((1, 370, 1226, 1), np.uint8),
    np.zeros((370, 1226, 3), np.uint8).tolist(),
], ids=["empty", "1x1", "1-wide", "nan", "int32", "bool", "2-channel", "CHW", "4-D", "list"])
def test_bad_images_raise_and_state_survives(kitti_fe, kitti_frames, image) -> None:
    fe = kitti_fe
    r0 = fe.process(kitti_frames[0], 0.0)
    with pytest.raises(ImageError):
        fe.process(image, 0.05)
    # The tracker state is untouched: the next real frame tracks against frame 0.
    r1 = fe.process(kitti_frames[1], 0.1)
    assert r1.status == S.OK
    assert r1.reference_index == r0.index
    assert r1.index == r0.index + 1


def test_image_size_must_match_camera(kitti_fe, kitti_frames) -> None:
    with pytest.raises(ImageError, match="camera"):
        kitti_fe.process(kitti_frames[0][:, :1000], 0.0)
    with pytest.raises(ImageError, match="camera"):
        kitti_fe.process(kitti_frames[0].T.copy(), 0.0)
    assert kitti_fe.process(kitti_frames[0], 0.0).status == S.INITIALISING


@pytest.mark.parametrize("stamp", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_stamp_raises(kitti_fe, kitti_frames, stamp) -> None:
    with pytest.raises(ImageError, match="timestamp"):
        kitti_fe.process(kitti_frames[0], stamp)


def test_constant_image_sequence_of_states(kitti, kitti_frames) -> None:
    conf = FrontEndConfig.from_dict({"tracker.lost_after": 3})
    fe = FrontEnd(conf, kitti.camera)
    blank = np.full((370, 1226), 128, np.uint8)
    # No texture, no reference: initialising, with an explicit message.
    r = fe.process(blank, 0.0)
    assert r.status == S.INITIALISING and len(r.keypoints) == 0 and not r.is_keyframe
    assert "keypoints" in r.message
    r = fe.process(blank, 0.1)
    assert r.status == S.INITIALISING and len(r.keypoints) == 0
    # A textured frame becomes the reference.
    r = fe.process(kitti_frames[0], 0.2)
    assert r.status == S.INITIALISING and r.is_keyframe and len(r.keypoints) > 100
    ref_index = r.index
    # Blank frames then fail: FEW_MATCHES until lost_after failures in a row, then LOST.
    states = [fe.process(blank, 0.3 + 0.1 * k) for k in range(3)]
    assert [s.status for s in states] == [S.FEW_MATCHES, S.FEW_MATCHES, S.LOST]
    for s in states:
        assert len(s.keypoints) == 0 and s.num_inliers == 0
        assert not s.status.tracked
        np.testing.assert_array_equal(s.R, np.eye(3))
        np.testing.assert_array_equal(s.t, np.zeros(3))
        assert s.model == "none"
    assert states[0].reference_index == ref_index
    # The front-end keeps working on real frames afterwards.
    later = [fe.process(kitti_frames[k], 1.0 + 0.1 * k) for k in (1, 2, 3)]
    assert all(x.status != S.LOST for x in later)
    assert later[-1].status == S.OK
    assert later[-1].reference_index == later[-2].index


def test_failures_counter_resets_after_success(kitti, kitti_frames) -> None:
    fe = FrontEnd(FrontEndConfig.from_dict({"tracker.lost_after": 2}), kitti.camera)
    blank = np.full((370, 1226), 128, np.uint8)
    fe.process(kitti_frames[0], 0.0)
    assert fe.process(blank, 0.1).status == S.FEW_MATCHES
    assert fe.process(kitti_frames[1], 0.2).status == S.OK
    # One failure after a success is FEW_MATCHES again, not LOST.
    assert fe.process(blank, 0.3).status == S.FEW_MATCHES
    assert fe.process(blank, 0.4).status == S.LOST


def test_non_contiguous_and_colour_images(kitti, kitti_frames) -> None:
    img = kitti_frames[5]
    wide = np.zeros((370, 1226 * 2), np.uint8)
    wide[:, ::2] = img
    view = wide[:, ::2]
    assert not view.flags["C_CONTIGUOUS"]
    fe_a = FrontEnd(FrontEndConfig(), kitti.camera)
    fe_b = FrontEnd(FrontEndConfig(), kitti.camera)
    ra = fe_a.process(img, 0.0)
    rb = fe_b.process(view, 0.0)
    np.testing.assert_array_equal(ra.keypoints, rb.keypoints)
    np.testing.assert_array_equal(ra.descriptors, rb.descriptors)
    # A 3-channel BGR copy of the grey image gives the same keypoints as well.
    rc = FrontEnd(FrontEndConfig(), kitti.camera).process(np.dstack([img] * 3), 0.0)
    np.testing.assert_array_equal(ra.keypoints, rc.keypoints)
    # And tracking continues on a non-contiguous frame.
    wide[:, ::2] = kitti_frames[6]
    assert fe_b.process(wide[:, ::2], 0.1).status == S.OK


@pytest.mark.parametrize("kwargs", [dict(fx=float("nan")), dict(fx=0.0), dict(fy=-1.0),
                                    dict(cy=float("inf"))])
def test_degenerate_intrinsics_raise(kwargs) -> None:
    args = dict(width=1226, height=370, fx=707.0912, fy=707.0912, cx=601.8873, cy=183.1104)
    args.update(kwargs)
    with pytest.raises(CameraError):
        FrontEnd(FrontEndConfig(), Camera(**args))


def test_camera_mutated_after_construction_is_rechecked(kitti) -> None:
    cam = Camera(**kitti.camera.to_dict())
    cam.fx = 0.0
    with pytest.raises(CameraError):
        FrontEnd(FrontEndConfig(), cam)
    fe = FrontEnd(FrontEndConfig(), kitti.camera)
    with pytest.raises(CameraError):
        fe.set_camera(cam)


def test_without_camera_homography_only(kitti_frames) -> None:
    fe = FrontEnd(FrontEndConfig(), None)
    res = [fe.process(img, 0.1 * i) for i, img in enumerate(kitti_frames[:6])]
    assert res[0].status == S.INITIALISING
    for r in res[1:]:
        assert r.status == S.OK
        assert r.model == "homography_only"
        assert r.keypoints_normalised is None
        assert r.num_inliers >= FrontEndConfig().geometry.min_inliers
        assert r.matches.shape == (r.num_inliers, 2)


def test_without_camera_pose_is_identity(kitti_frames) -> None:
    fe = FrontEnd(FrontEndConfig(), None)
    fe.process(kitti_frames[0], 0.0)
    r = fe.process(kitti_frames[1], 0.1)
    assert r.status == S.OK and r.model == "homography_only"
    assert isinstance(r.R, np.ndarray) and isinstance(r.t, np.ndarray)
    np.testing.assert_array_equal(r.R, np.eye(3))  # no pose without intrinsics
    np.testing.assert_array_equal(r.t, np.zeros(3))
    np.testing.assert_array_equal(r.T_ref_cur, np.eye(4))


def test_frame_result_contents(kitti, kitti_frames) -> None:
    fe = FrontEnd(FrontEndConfig(), kitti.camera)
    r0 = fe.process(kitti_frames[0], 12.5)
    r1 = fe.process(kitti_frames[1], 12.6)
    assert r1.stamp == 12.6 and r1.reference_stamp == 12.5
    n = len(r1.keypoints)
    assert 0 < n <= FrontEndConfig().detector.max_keypoints
    # the default detector, DKPNet: 64-D float descriptors
    assert r1.scores.shape == (n,) and r1.descriptors.shape == (n, 64)
    assert r1.descriptors.dtype == np.float32
    assert r1.matches.dtype == np.int64 and r1.matches.shape == (r1.num_inliers, 2)
    assert np.all(r1.matches[:, 0] < len(r0.keypoints)) and np.all(r1.matches[:, 1] < n)
    assert 0 < r1.inlier_ratio <= 1 and r1.num_matches >= r1.num_inliers
    # Inlier matches continue the tracks of frame 0.
    np.testing.assert_array_equal(r1.track_ids[r1.matches[:, 1]],
                                  r0.track_ids[r1.matches[:, 0]])
    T = r1.T_ref_cur
    np.testing.assert_array_equal(T[:3, :3], r1.R)
    np.testing.assert_array_equal(T[:3, 3], r1.t)
    cov = r1.covariance
    assert cov.shape == (6, 6) and np.allclose(cov, cov.T)
    for key in ("detect", "match", "geometry", "track", "total"):
        assert r1.timings[key] >= 0


# ---------------------------------------------------------------- where robots really are
def _run(seq, reference: str, detector: str = "orb", **settings) -> list[FrameResult]:
    fe = FrontEnd(FrontEndConfig.from_dict({"detector.name": detector,
                                            "tracker.reference": reference, **settings}),
                  seq.camera)
    return [fe.process(img, stamp, "bgr") for stamp, img in seq]


@pytest.mark.parametrize("reference", ["previous", "keyframe"])
def test_translation_along_a_plane_is_not_taken_for_a_rotation(reference):
    """Looking down at a floor from 1 m, 2 cm per frame: to first order the step looks like a
    1.1 deg turn. The model must be a translating one (homography / essential), with the
    rotation error far below that, not rotation only with the step absorbed into the rotation.
    Its direction is claimed where it is certain enough (from one 2 cm step ORB's often is
    not: LOW_PARALLAX with the translating model's rotation), and then right."""
    from dkp_slam.synthetic import make_scenario

    seq = make_scenario("drone_down", n_frames=16, seed=2)
    res = _run(seq, reference)[1:]
    rot, tdir = _gt_errors(res, seq.gt_poses)
    translating = [r.model in ("homography", "essential") for r in res]
    assert np.mean(translating) >= 0.8, [(r.index, r.status.value, r.model) for r in res]
    assert all(r.status in (S.OK, S.LOW_PARALLAX) for r in res)
    assert np.median(rot) < 0.15
    if reference == "keyframe":  # the baseline grows: most frames claim a direction
        assert np.mean([r.status == S.OK for r in res]) >= 0.5
    assert len(tdir) == 0 or np.median(tdir) < 5


def test_keyframe_kept_while_the_camera_only_turns():
    """Pure rotation: the rotation-compensated parallax stays ~0, so the keyframe is renewed
    only by track survival or time (1 s), not on every frame as raw flow would ask."""
    from dkp_slam.synthetic import make_scenario

    seq = make_scenario("pure_rotation", n_frames=30, seed=2)
    res = _run(seq, "keyframe")
    # (a rare frame still claims a translation: with Debian's OpenCV 4.6, 1 of 29 here; the
    # benchmark's pure_rotation row shows the same, docs/BENCHMARKS.md)
    assert np.mean([r.status == S.LOW_PARALLAX for r in res[1:]]) >= 0.9
    assert sum(r.is_keyframe for r in res) <= 5
    rot, _ = _gt_errors(res[1:], seq.gt_poses)
    assert np.median(rot) < 0.1


@pytest.mark.parametrize("scenario", ["creep", "handheld"])
def test_slow_motion_claims_no_direction_it_cannot_see(scenario):
    """1.5-3 mm per frame at 0.45 m: from one frame to the next the direction is unobservable
    (it was reported 10-25 deg off with a covariance claiming < 1 deg). It is now not claimed
    (LOW_PARALLAX, the translating model's rotation, translation covariance unknown); with a
    keyframe the baseline grows and the direction is claimed, and right."""
    from dkp_slam.synthetic import make_scenario

    seq = make_scenario(scenario, n_frames=30, seed=2)
    res = _run(seq, "previous")[1:]
    assert np.mean([r.status == S.LOW_PARALLAX for r in res]) >= 0.9
    low = [r for r in res if r.status == S.LOW_PARALLAX]
    assert all(np.all(np.diag(r.covariance)[:3] >= 1e6) and not r.t.any() for r in low)
    rot, tdir = _gt_errors(res, seq.gt_poses)
    # (ORB's rotation from one 3 mm step is 0.1-0.35 deg off: docs/BENCHMARKS.md)
    assert np.median(rot) < 0.5 and np.all(tdir < 20)
    res = _run(seq, "keyframe")[1:]
    rot, tdir = _gt_errors(res, seq.gt_poses)
    assert len(tdir) >= 8 and np.median(tdir) < 5 and np.median(rot) < 0.3


def test_slow_frames_take_their_rotation_from_an_anchor():
    """Creeping along a corridor at 1 cm per frame with ``reference: previous``: one step
    cannot tell the step from a turn of a tenth of a degree, so the one-step rotation carries
    the step. Measured against an earlier frame with enough parallax to both frames, the
    difference of the two rotations does not; its covariance says what it is worth. ORB with
    its 8-level pyramid, whose coarse keypoints make the one-step rotation carry the step
    most."""
    from dkp_slam.synthetic import make_scenario

    seq = make_scenario("corridor_slow", n_frames=40, seed=2)
    pyramid = {"detector.orb.n_levels": 8}
    one_step = _run(seq, "previous", **pyramid, **{"tracker.rotation_anchor_parallax_px": 0.0})[1:]
    anchored = _run(seq, "previous", **pyramid)[1:]
    assert not any("measured against" in r.message for r in one_step)
    used = [r for r in anchored if "rotation measured against frame" in r.message]
    assert len(used) >= len(anchored) / 2 and all(r.status == S.LOW_PARALLAX for r in used)
    rot_one, _ = _gt_errors(one_step, seq.gt_poses)
    rot_anchored, _ = _gt_errors(anchored, seq.gt_poses)
    assert np.median(rot_anchored) < 0.08
    assert np.median(rot_one) > 1.5 * np.median(rot_anchored)
    # The translation stays unknown, the rotation's covariance is the two estimates'.
    rot_used, _ = _gt_errors(used, seq.gt_poses)
    sigma_deg = np.degrees([np.sqrt(np.trace(r.covariance[3:, 3:])) for r in used])
    assert all(np.all(np.diag(r.covariance)[:3] >= 1e6) and not r.t.any() for r in used)
    assert np.all(sigma_deg < 1.0) and np.mean(rot_used < 3 * sigma_deg) >= 0.8


def test_wrong_minima_over_a_desk_are_escaped():
    """Handheld over a desk through a barrel lens, keyframes: with tens of pixels of parallax
    RANSAC often returned a wrong minimum of the epipolar cost (a third of its inliers behind
    a camera, the rotation 1.5-3.8 deg off: 11 of 59 frames with ORB here, and 4 claimed
    directions more than 20 deg off). The estimator now searches again from other starts."""
    from dkp_slam.synthetic import make_scenario

    seq = make_scenario("handheld_distorted", n_frames=60, seed=1)
    res = _run(seq, "keyframe")[1:]
    rot, tdir = _gt_errors(res, seq.gt_poses)
    assert np.sum(rot > 0.8) <= 3, np.round(rot, 2)
    assert len(tdir) >= 20 and np.all(tdir < 20)
    assert np.median(rot) < 0.15
