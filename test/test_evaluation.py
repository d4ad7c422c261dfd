"""Odometry metrics against hand-computed values and a perfect estimate."""

import numpy as np
import pytest

from dkp_slam.evaluation import pose_auc, relative_pose_errors, summarize, trajectory_metrics
from dkp_slam.geometry import so3_exp
from dkp_slam.records import FrameRecord
from dkp_slam.tracking import TrackingStatus as S


def test_pose_auc_hand_computed():
    # Errors 0 and 10 deg, threshold 10: recall 0.5 on [0, 10) -> area 5 + ... ; the curve is
    # (0,0)->(0,0.5) then flat 0.5 until 10 -> area 0.5*10 = 5, normalised 0.5.
    assert pose_auc(np.array([0.0, 10.0]), (10.0,)) == pytest.approx([0.5])
    # Errors 2 and 4 deg, threshold 5: recall 0 on [0,2), 0.5 on [2,4), 1 on [4,5] with linear
    # interpolation between samples: trapezoids 0.5*2*0.5 + 2*(0.5+1)/2 + 1*1 = 0.5+1.5+1 = 3.
    assert pose_auc(np.array([2.0, 4.0]), (5.0,)) == pytest.approx([3.0 / 5.0])
    assert pose_auc(np.array([np.inf, np.inf]), (5.0,)) == [0.0]
    assert pose_auc(np.zeros(5), (5.0, 10.0)) == pytest.approx([1.0, 1.0])


def _perfect_records(gt: np.ndarray) -> list[FrameRecord]:
    recs = []
    for i in range(len(gt)):
        ref = i - 1
        T = np.linalg.inv(gt[ref]) @ gt[i] if i else np.eye(4)
        t = T[:3, 3] / np.linalg.norm(T[:3, 3]) if i else np.zeros(3)
        recs.append(FrameRecord(i, 0.1 * i, S.OK if i else S.INITIALISING,
                                reference_index=ref if i else -1, R=T[:3, :3], t=t,
                                keypoints=100, inliers=80, timings={"total": 1.0}))
    chain = np.eye(4)
    for i, r in enumerate(recs):  # unit-step chain, as the front-end reports it
        if i:
            step = np.eye(4)
            step[:3, :3], step[:3, 3] = r.R, r.t
            chain = chain @ step
        r.T_world_cam = chain.copy()
    return recs


def _curved_gt(n: int = 30) -> np.ndarray:
    gt = np.tile(np.eye(4), (n, 1, 1))
    for i in range(n):
        gt[i, :3, :3] = so3_exp([0.0, 0.03 * i, 0.0])
        gt[i, :3, 3] = [np.sin(0.1 * i), 0.02 * i, 1.0 * i]  # constant-ish speed, curved
    return gt


def test_perfect_estimate_scores_perfectly():
    gt = _curved_gt()
    # Equal step lengths, so the unit-step chain is a scaled copy of the truth.
    steps = np.linalg.norm(np.diff(gt[:, :3, 3], axis=0), axis=1)
    gt[1:, :3, 3] = gt[0, :3, 3] + np.cumsum(
        np.diff(gt[:, :3, 3], axis=0) / steps[:, None] * steps.mean(), axis=0)
    recs = _perfect_records(gt)
    rot, tdir = relative_pose_errors(recs, gt)
    assert np.nanmax(rot) < 1e-4 and np.nanmax(tdir) < 1e-4
    m = trajectory_metrics(recs, gt)
    assert m["pose_auc@5"] == pytest.approx(1.0, abs=1e-6)
    assert m["ate_sim3_rmse_m"] < 1e-6
    assert m["rpe_rot_rmse_deg"] < 1e-6 and m["rpe_trans_rmse_m"] < 1e-6


def test_errors_and_failures_lower_the_scores():
    gt = _curved_gt()
    recs = _perfect_records(gt)
    recs[5].R = so3_exp([0.0, 0.0, np.radians(2.0)]) @ recs[5].R  # 2 deg rotation error
    recs[9].status = S.FEW_MATCHES  # a failure
    rot, _ = relative_pose_errors(recs, gt)
    assert rot[5] == pytest.approx(2.0, abs=1e-6) and np.isnan(rot[9])
    m = trajectory_metrics(recs, gt)
    # 29 pairs: 27 perfect, one at 2 deg, one failure. The recall curve is 27/29 at 0, rises
    # linearly to 28/29 at 2 deg and stays there: area (2 * 27.5 + 3 * 28) / 29 over 5 deg.
    assert m["pose_auc@5"] == pytest.approx((2 * 27.5 + 3 * 28) / 29 / 5, abs=1e-6)
    s = summarize(recs, gt, 1.0, "orb")
    assert s["tracked_fraction"] == pytest.approx(28 / 29)
    assert s["rot_err_p90_deg"] < 2.0 < s["rot_err_median_deg"] + 2.1


def test_static_ground_truth_gives_nan_ate_not_an_exception():
    gt = np.tile(np.eye(4), (10, 1, 1))
    recs = [FrameRecord(i, 0.1 * i, S.LOW_PARALLAX if i else S.INITIALISING,
                        reference_index=i - 1) for i in range(10)]
    m = trajectory_metrics(recs, gt)
    assert np.isnan(m["ate_sim3_rmse_m"])
    assert m["pose_auc@5"] == pytest.approx(1.0)  # no motion: rotation-only is the right answer
