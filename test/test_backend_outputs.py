"""What the node gives a back-end, computed by the core on real frames (no ROS): VINS-Fusion's
feature message (dkp_slam.messages.vins) and the angular velocity for a fusion back-end
(dkp_slam.odometry.AngularVelocity). Over DDS: test_ros_node's backend-interfaces test."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_data
from scipy.spatial.transform import Rotation

from dkp_slam.config import FrontEndConfig
from dkp_slam.datasets import load_kitti
from dkp_slam.frontend import FrontEnd
from dkp_slam.geometry import UNKNOWN_VARIANCE
from dkp_slam.messages.vins import (VINS_ID_MODULUS, VinsFeatureTracks, VinsFeatures,
                                    decode_vins_features)
from dkp_slam.odometry import AngularVelocity


#: KITTI07 frames 60-69: the car drives and turns (frames 0-37 pull away from standstill).
FIRST = 60


@pytest.fixture(scope="module")
def kitti():
    seq = load_kitti(shared_data("sequences", "kitti07_0000-0159"))
    return seq, [seq.load_image(FIRST + i) for i in range(10)]


def _run(seq, images, reference: str, camera=True):
    conf = FrontEndConfig.from_dict({"detector.name": "orb", "detector.max_keypoints": 1500,
                                     "tracker.reference": reference})
    fe = FrontEnd(conf, seq.camera if camera else None)
    return [fe.process(im, float(seq.stamps[FIRST + i])) for i, im in enumerate(images)]


def test_vins_features_are_what_the_estimator_reads(kitti):
    seq, images = kitti
    results = _run(seq, images[:4], "previous")
    tracks = VinsFeatureTracks()
    messages = [tracks.update(r) for r in results]
    assert len(messages[0]) == 0  # no feature is tracked in two frames yet
    for before, result, msg in zip(results, results[1:], messages[1:]):
        seen = decode_vins_features(msg.points, msg.channels)
        tracked = result.track_ages >= 1
        assert len(seen) == tracked.sum() > 300
        assert [o.feature_id for o in seen] == list(result.track_ids[tracked] % VINS_ID_MODULUS)
        np.testing.assert_allclose([(o.x, o.y) for o in seen],
                                   result.keypoints_normalised[tracked], atol=1e-6)
        np.testing.assert_allclose([(o.p_u, o.p_v) for o in seen], result.keypoints[tracked],
                                   atol=1e-4)
        # velocity: the same track's normalised motion since the previous frame, per second
        where = {int(t): k for k, t in enumerate(before.track_ids)}
        dt = result.stamp - before.stamp
        for o, t, xy in zip(seen, result.track_ids[tracked],
                            result.keypoints_normalised[tracked]):
            k = where.get(int(t))
            want = (0, 0) if k is None else (xy - before.keypoints_normalised[k]) / dt
            np.testing.assert_allclose((o.velocity_x, o.velocity_y), want, rtol=1e-4,
                                       atol=1e-5)
    # another camera of a multi-camera estimator: id = track * NUM_OF_CAM + camera_id
    stereo = VinsFeatureTracks(camera_id=1, num_cameras=2)
    stereo.update(results[0])
    seen = decode_vins_features(*_arrays(stereo.update(results[1])), num_cameras=2)
    assert {o.camera_id for o in seen} == {1}
    assert [o.feature_id for o in seen] == list(results[1].track_ids[results[1].track_ages >= 1])
    # no intrinsics, no normalised coordinates: nothing to send
    assert VinsFeatureTracks().update(_run(seq, images[:1], "previous", camera=False)[0]) is None
    with pytest.raises(ValueError, match="camera_id"):
        VinsFeatureTracks(camera_id=1)


def _arrays(features: VinsFeatures):
    return features.points, features.channels


def test_decode_vins_features_checks_like_the_estimator():
    points = np.array([[0.1, 0.2, 1.0], [0.3, 0.4, 1.0]], np.float32)
    channels = np.array([[7, 9], [10, 20], [11, 21], [0.5, 0], [0, -0.5]], np.float32)
    seen = decode_vins_features(points, channels)
    assert [(o.feature_id, o.p_u, o.velocity_y) for o in seen] == [(7, 10, 0), (9, 20, -0.5)]
    with pytest.raises(ValueError, match="z == 1"):
        decode_vins_features(points * 2, channels)
    with pytest.raises(ValueError, match="5 channels"):
        decode_vins_features(points, channels[:4])
    with pytest.raises(ValueError, match="channel lengths"):
        decode_vins_features(points[:1], channels)


@pytest.mark.parametrize("reference", ["previous", "keyframe"])
def test_angular_velocity_matches_the_ground_truth(kitti, reference):
    """Both references: against the previous frame directly, against a shared keyframe by
    composing two measured rotations."""
    seq, images = kitti
    results = _run(seq, images, reference)
    omega_of = AngularVelocity()
    measured = 0
    for i, result in enumerate(results):
        omega, cov = omega_of.update(result)
        if i == 0:
            assert not omega.any() and np.all(np.diag(cov) >= UNKNOWN_VARIANCE)
            continue
        k = FIRST + i
        dt = seq.stamps[k] - seq.stamps[k - 1]
        R_gt = seq.gt_poses[k - 1][:3, :3].T @ seq.gt_poses[k][:3, :3]
        error_deg = np.degrees((Rotation.from_rotvec(omega * dt).inv()
                                * Rotation.from_matrix(R_gt)).magnitude())
        sigma_deg = np.degrees(np.sqrt(np.trace(cov))) * dt  # all three axes together
        assert 0.005 < sigma_deg < 0.2  # a measured rotation: small, but not zero
        assert error_deg < 0.15 and error_deg < 4 * sigma_deg, (i, result.status)
        measured += result.reference_index != result.index - 1
    assert (measured > 0) == (reference == "keyframe")  # the keyframe path was taken


class _Frame:
    """The FrameResult fields AngularVelocity reads."""

    def __init__(self, index, ref, stamp, status="OK", angle_deg=1.0):
        from dkp_slam.tracking import TrackingStatus

        self.index, self.reference_index, self.stamp = index, ref, stamp
        self.status = TrackingStatus(status)
        self.R = Rotation.from_euler("z", angle_deg, degrees=True).as_matrix()
        self.covariance = np.eye(6) * 1e-6


def test_angular_velocity_is_unknown_when_not_measured():
    unknown = lambda cov: bool(np.all(np.diag(cov) >= UNKNOWN_VARIANCE))  # noqa: E731
    w = AngularVelocity()
    assert unknown(w.update(_Frame(0, -1, 0.0, "INITIALISING"))[1])
    omega, cov = w.update(_Frame(1, 0, 0.1))
    np.testing.assert_allclose(omega, [0, 0, np.radians(10.0)])
    np.testing.assert_allclose(cov, np.eye(3) * 1e-4)
    assert unknown(w.update(_Frame(2, 1, 0.1))[1])  # time did not advance
    assert unknown(w.update(_Frame(3, 2, 0.3, "FEW_MATCHES"))[1])
    assert unknown(w.update(_Frame(4, 2, 0.4))[1])  # its reference is not the previous frame's
    w.reset()
    assert unknown(w.update(_Frame(5, 4, 0.5))[1])  # after a restart
