"""Two-view geometry: RANSAC homography / essential matrix (OpenCV USAC), pose recovery with a
cheirality check, GRIC model selection, parallax and a pose covariance.

Pose convention: the relative pose returned for a pair (reference 0, current 1) is
``T_0_1 = [R | t]``, the pose of camera 1 expressed in camera 0 (it maps points from camera-1
coordinates to camera-0 coordinates), so that ``T_world_1 = T_world_0 @ T_0_1``. Cameras use
the OpenCV frame (x right, y down, z forward). ``t`` has unit norm: monocular scale is unknown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import cv2
import numpy as np

from .config import GeometryConfig

_RANSAC_FLAGS = {
    "magsac": cv2.USAC_MAGSAC,
    "usac_default": cv2.USAC_DEFAULT,
    "usac_fast": cv2.USAC_FAST,
    "ransac": cv2.RANSAC,
}
#: A plane normal within this angle (deg) of the one seen before is taken as the same plane
#: when the two decompositions of a homography are told apart.
PLANE_NORMAL_MATCH_DEG = 30.0
#: The homography model is used instead of the essential matrix when it explains this share
#: of the essential matrix's inliers (a planar scene, where E is degenerate).
PLANAR_SHARE = 0.9
#: :func:`rival_direction` is looked for below this parallax (pixels): on the validation
#: scenarios every confidently wrong direction had less than 3.5 px; above, the search would
#: only cost time (about as much as the rest of the geometry).
RIVAL_CHECK_MAX_PARALLAX_PX = 4.0
#: An essential matrix whose inliers are in front of both cameras for less than this share is a
#: wrong minimum of the epipolar cost, and the pose is searched again
#: (:func:`escape_wrong_minimum`).
CHEIRALITY_SHARE = 0.8
#: ... or whose rotation leaves more than this times the flow the matches have (a turn traded
#: for a sideways step).
FLOW_GAIN = 2.0
#: Variance used for unobservable directions in covariances (m^2 or rad^2).
UNKNOWN_VARIANCE = 1e6


@dataclass
class TwoViewResult:
    """Outcome of :func:`estimate_relative_pose`.

    Attributes:
        model: ``essential`` (general motion), ``homography`` (planar scene, pose from H),
            ``rotation`` (parallax too small: rotation only, translation unknown),
            ``homography_only`` (no intrinsics: H only, no pose) or ``none`` (failed).
        R, t: relative pose ``T_0_1`` (see module docstring); ``t`` is unit-norm, or zeros
            when the translation is unobservable: always with ``rotation``, and with
            ``essential`` / ``homography`` when the parallax is below
            ``min_translation_parallax_px`` or the direction's standard deviation exceeds
            ``max_direction_sigma_deg`` (the rotation is then that model's). None when no pose
            could be estimated.
        inliers: (N,) bool mask over the input correspondences for the chosen model.
        H, E: the estimated matrices (pixel homography 0->1; essential matrix with
            ``x1^T E x0 = 0`` in normalised coordinates), None when not estimated.
        parallax_px: median rotation-compensated flow of the inliers (pixels), NaN if unknown.
        gric_h, gric_e, gric_rot: GRIC scores (lower is better) of the homography, essential
            and rotation-only models; NaN if not computed.
        direction_sigma_deg: standard deviation of the translation's direction (degrees,
            :func:`direction_sigma_deg`) for ``essential`` / ``homography``, else NaN.
        plane_normal: with the ``homography`` model, the unit normal of the plane in the
            reference camera's frame (pointing away from the camera), else None.
        covariance: 6x6 covariance of ``(t, rotation)`` in the ROS order (x, y, z, rotX, rotY,
            rotZ), rotations as small angles about the reference frame's axes (rad^2);
            :data:`UNKNOWN_VARIANCE` on unobservable directions.
    """

    model: str = "none"
    R: Optional[np.ndarray] = None
    t: Optional[np.ndarray] = None
    inliers: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    H: Optional[np.ndarray] = None
    E: Optional[np.ndarray] = None
    parallax_px: float = float("nan")
    gric_h: float = float("nan")
    gric_e: float = float("nan")
    gric_rot: float = float("nan")
    direction_sigma_deg: float = float("nan")
    plane_normal: Optional[np.ndarray] = None
    covariance: np.ndarray = field(default_factory=lambda: np.eye(6) * UNKNOWN_VARIANCE)

    @property
    def num_inliers(self) -> int:
        return int(self.inliers.sum())

    @property
    def translation_valid(self) -> bool:
        return self.t is not None and bool(np.linalg.norm(self.t) > 0.5)


# ---------------------------------------------------------------------- robust estimation
def find_homography(p0: np.ndarray, p1: np.ndarray, conf: GeometryConfig
                    ) -> tuple[Optional[np.ndarray], np.ndarray]:
    """RANSAC homography mapping pixels ``p0`` to ``p1``; returns (H or None, inlier mask)."""
    mask = np.zeros(len(p0), dtype=bool)
    if len(p0) < 4:
        return None, mask
    H, m = cv2.findHomography(p0, p1, _RANSAC_FLAGS[conf.ransac_method], conf.ransac_threshold_px,
                              maxIters=conf.ransac_max_iters, confidence=conf.ransac_confidence)
    if H is None or m is None or not np.all(np.isfinite(H)):
        return None, mask
    return H / H[2, 2] if abs(H[2, 2]) > 1e-12 else H, m.ravel().astype(bool)


def find_essential(p0: np.ndarray, p1: np.ndarray, K: np.ndarray, conf: GeometryConfig,
                   normalised: Optional[tuple[np.ndarray, np.ndarray]] = None
                   ) -> tuple[Optional[np.ndarray], np.ndarray]:
    """RANSAC essential matrix from undistorted pixels; returns (E or None, inlier mask).
    ``normalised``: ``(to_normalised(p0, K), to_normalised(p1, K))`` when the caller has them.

    The model OpenCV returns is refined on all its inliers by :func:`polish_essential`, on every
    OpenCV version and RANSAC method: OpenCV 4.5 / 4.6 have no final polishing step, OpenCV >= 4.7
    has its own (MAGSAC by default), which stops short of the least-squares optimum, so one
    polish for all keeps the pose the same wherever the package runs."""
    mask = np.zeros(len(p0), dtype=bool)
    if len(p0) < 5:
        return None, mask
    E, m = cv2.findEssentialMat(p0, p1, K, method=_RANSAC_FLAGS[conf.ransac_method],
                                prob=conf.ransac_confidence, threshold=conf.ransac_threshold_px,
                                maxIters=conf.ransac_max_iters)
    if E is None or m is None or E.shape != (3, 3) or not np.all(np.isfinite(E)):
        return None, mask  # OpenCV may stack several solutions when RANSAC is skipped
    inliers = m.ravel().astype(bool)
    x0, x1 = normalised if normalised is not None else (to_normalised(p0, K),
                                                         to_normalised(p1, K))
    E, inliers = polish_essential(E, x0, x1, inliers,
                                  conf.ransac_threshold_px / (0.5 * (K[0, 0] + K[1, 1])))
    return E, inliers


def polish_essential(E: np.ndarray, x0: np.ndarray, x1: np.ndarray, inliers: np.ndarray,
                     threshold: float, rounds: int = 3, iterations: int = 10
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Refine E on all its inliers (the final polishing step of :func:`find_essential`).

    Levenberg-Marquardt on the Sampson residuals of the inliers, with E kept essential by its
    parametrisation ``E = U diag(1, 1, 0) V^T`` (``U``, ``V`` updated by small rotations); then
    the inliers are re-classified at ``threshold`` and the fit repeated, ``rounds`` times. The
    result replaces the input only if it explains the matches better (truncated squared
    Sampson cost).

    Args:
        E: essential matrix with ``x1^T E x0 = 0``.
        x0, x1: (N,3) homogeneous normalised coordinates.
        inliers: (N,) bool mask of the RANSAC inliers.
        threshold: inlier bound on the Sampson distance, in normalised units (pixels / focal).

    Returns:
        ``(E, inliers)``: the polished (or the given) matrix and its inlier mask.
    """
    thr2 = threshold ** 2

    def cost(E_: np.ndarray) -> float:
        return float(np.minimum(sampson_residuals(x0, x1, E_) ** 2, thr2).sum())

    U, _, Vt = np.linalg.svd(E)
    U, V = U * np.sign(np.linalg.det(U)), Vt.T * np.sign(np.linalg.det(Vt))
    D = np.diag([1.0, 1.0, 0.0])

    def compose(U_: np.ndarray, V_: np.ndarray, delta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return U_ @ so3_exp(delta[:3]), V_ @ so3_exp(delta[3:])

    # First-order perturbations of U and V by the 6 generators, for the Jacobian in one batch.
    h = 1e-7
    steps = [np.eye(3) + h * skew(e) for e in np.eye(3)]

    best_E, best_cost, best_mask = E, cost(E), inliers
    mask = inliers
    for _ in range(rounds):
        if mask.sum() < 8:
            break
        a, b = x0[mask], x1[mask]
        lam = 1e-3
        for _ in range(iterations):
            Es = np.stack([U @ D @ V.T] + [U @ S @ D @ V.T for S in steps]
                          + [U @ D @ (V @ S).T for S in steps])
            rs = _sampson_batch(a, b, Es)
            r, J = rs[0], (rs[1:] - rs[0]).T / h
            JtJ, Jtr = J.T @ J, J.T @ r
            while lam < 1e8:
                delta = np.linalg.solve(JtJ + lam * np.diag(np.diag(JtJ) + 1e-12), -Jtr)
                Un, Vn = compose(U, V, delta)
                rn = sampson_residuals(a, b, Un @ D @ Vn.T)
                if rn @ rn < r @ r:
                    U, V, lam = Un, Vn, lam * 0.1
                    break
                lam *= 10.0
            else:
                break
            if r @ r - rn @ rn < 1e-6 * (r @ r):  # converged
                break
        E_new = U @ D @ V.T
        sq = sampson_residuals(x0, x1, E_new) ** 2
        new_mask = sq < thr2
        c = float(np.minimum(sq, thr2).sum())
        if c < best_cost:
            best_E, best_cost, best_mask = E_new, c, new_mask
        if np.array_equal(new_mask, mask):  # the same inliers: another round fits the same
            break
        mask = new_mask
    return best_E, best_mask


def recover_pose(E: np.ndarray, x0: np.ndarray, x1: np.ndarray, inliers: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decompose E and keep the solution with most inliers in front of both cameras.

    The four ``(R, +-t)`` candidates of ``cv2.decomposeEssentialMat`` are scored by
    least-squares two-ray triangulation of the inliers, vectorised in numpy.

    Args:
        E: essential matrix with ``x1^T E x0 = 0``.
        x0, x1: (N,3) homogeneous normalised coordinates (see :func:`to_normalised`).
        inliers: (N,) bool mask of the points to use.

    Returns:
        ``(R_0_1, t_0_1, mask)``: the pose of camera 1 in camera 0 (unit ``t``) and the
        inliers that also pass the cheirality check.
    """
    R1, R2, t = cv2.decomposeEssentialMat(E)
    t = t.ravel()
    idx = np.flatnonzero(inliers)
    a0, b = x0[idx], x1[idx]
    best, best_front, best_mask = None, -1, None
    for R10 in (R1, R2):
        a = a0 @ R10.T  # rays of camera 0, rotated into camera-1 coordinates
        for t10 in (t, -t):
            d0, d1 = _two_ray_depths(a, b, t10)
            front = (d0 > 0) & (d1 > 0)
            n_front = int(front.sum())
            if n_front > best_front:
                best, best_front, best_mask = (R10, t10), n_front, front
    mask = np.zeros(len(x0), dtype=bool)
    mask[idx[best_mask]] = True
    R01, t01 = invert_pose(best[0], best[1])
    return R01, unit(t01), mask


def _two_ray_depths(a: np.ndarray, b: np.ndarray, t: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Per-row depths ``(s, u)`` minimising ``|s a + t - u b|``.

    With ``a = R_10 x0`` and ``b = x1`` (normalised rays, z = 1) a point ``s x0`` in camera 0
    lands at ``u x1`` in camera 1, so ``s`` and ``u`` are its depths in the two cameras."""
    aa = np.einsum("ij,ij->i", a, a)
    bb = np.einsum("ij,ij->i", b, b)
    ab = np.einsum("ij,ij->i", a, b)
    at = a @ t
    bt = b @ t
    den = aa * bb - ab * ab
    den = np.where(np.abs(den) < 1e-12, 1e-12, den)
    s = (ab * bt - bb * at) / den
    u = (aa * bt - ab * at) / den
    return s, u


# ---------------------------------------------------------------------- small helpers
def invert_pose(R: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of the rigid transform ``x -> R x + t``."""
    return R.T, -R.T @ t


def unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v)
    return v / n if n > 0 else v


def essential_from_pose(R01: np.ndarray, t01: np.ndarray) -> np.ndarray:
    """The essential matrix of the pose ``T_0_1 = (R01, t01)``: ``x1^T E x0 = 0`` for the
    normalised coordinates of one point in views 0 and 1 (scaled by ``|t01|``)."""
    R10, t10 = invert_pose(R01, t01)
    return skew(t10) @ R10


def skew(v: np.ndarray) -> np.ndarray:
    return np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])


def so3_exp(w: np.ndarray) -> np.ndarray:
    return cv2.Rodrigues(np.asarray(w, dtype=np.float64).reshape(3, 1))[0]


def rotation_angle_deg(R: np.ndarray) -> float:
    """Angle of a rotation matrix in degrees."""
    c = (np.trace(R) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


def angle_between_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Angle between two vectors in degrees (NaN if either is zero)."""
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return float("nan")
    return float(np.degrees(np.arccos(np.clip(np.dot(a, b) / (na * nb), -1.0, 1.0))))


def nearest_rotation(M: np.ndarray) -> np.ndarray:
    """Closest rotation matrix (Frobenius) to ``M`` up to scale."""
    U, _, Vt = np.linalg.svd(M)
    R = U @ Vt
    return R * np.sign(np.linalg.det(R))


def to_normalised(p: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Pixels (N,2) -> homogeneous normalised coordinates (N,3)."""
    ph = np.hstack([p, np.ones((len(p), 1))])
    return ph @ np.linalg.inv(K).T


# ---------------------------------------------------------------------- errors and GRIC
def sampson_residuals(x0: np.ndarray, x1: np.ndarray, E: np.ndarray) -> np.ndarray:
    """Signed Sampson distances of normalised correspondences (N,3) to ``x1^T E x0 = 0``."""
    Ex0 = x0 @ E.T
    Etx1 = x1 @ E
    num = np.sum(x1 * Ex0, axis=1)
    den = np.sqrt(Ex0[:, 0] ** 2 + Ex0[:, 1] ** 2 + Etx1[:, 0] ** 2 + Etx1[:, 1] ** 2)
    return num / np.maximum(den, 1e-15)


def apply_homography(H: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Map (N,2) points by a 3x3 homography; points sent to or behind infinity
    (``w <= 1e-12``) become ``inf``."""
    pts = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    q = pts @ H[:2, :2].T + H[:2, 2]
    w = pts @ H[2, :2] + H[2, 2]
    bad = w <= 1e-12
    if bad.any():
        w = np.where(bad, 1.0, w)
        q[bad] = np.inf
    return q / w[:, None]


def transfer_residuals(p0: np.ndarray, p1: np.ndarray, H: np.ndarray) -> np.ndarray:
    """Per-point transfer error vectors ``p1 - H p0`` (N,2) in pixels."""
    return p1 - apply_homography(H, p0)


def gric(sq_residuals: np.ndarray, sigma: float, d: int, k: int, r: int = 4) -> float:
    """Torr's Geometric Robust Information Criterion (lower is better).

    ``GRIC = sum rho(e^2 / sigma^2) + lambda1 d n + lambda2 k`` with
    ``rho(x) = min(x, lambda3 (r - d))``, ``lambda1 = log r``, ``lambda2 = log(r n)``,
    ``lambda3 = 2``; r = 4 for two-view point pairs, d = 2 (H) or 3 (E/F), k = 8 (H) or 5 (E).
    """
    n = len(sq_residuals)
    rho = np.minimum(sq_residuals / sigma**2, 2.0 * (r - d))
    return float(rho.sum() + np.log(r) * d * n + np.log(r * n) * k)


def refine_rotation(x0: np.ndarray, x1: np.ndarray, p0: np.ndarray, p1: np.ndarray,
                    K: np.ndarray, R01: np.ndarray, sq_res: np.ndarray, inlier_sq: float,
                    iterations: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Refine a rotation-only model (``x1 ~ R_10 x0``) by Kabsch/Wahba alignment of the unit
    bearing vectors of its inliers (squared transfer error below ``inlier_sq`` px^2).

    A step is kept only if it lowers the robust cost :func:`capped_cost`; iteration stops when
    the inlier set no longer changes.

    Args:
        x0, x1: (N,3) homogeneous normalised coordinates; p0, p1: the same points in pixels.
        R01: initial rotation (pose of camera 1 in camera 0); sq_res: its squared errors.

    Returns the refined ``R_0_1`` and the squared transfer errors (px^2) of all points.
    """
    Kinv = np.linalg.inv(K)
    b0 = x0 / np.sqrt(np.einsum("ij,ij->i", x0, x0))[:, None]
    b1 = x1 / np.sqrt(np.einsum("ij,ij->i", x1, x1))[:, None]
    inl = sq_res < inlier_sq
    cost = capped_cost(sq_res, inlier_sq)
    for _ in range(iterations):
        if inl.sum() < 3:
            break
        U, _, Vt = np.linalg.svd(b1[inl].T @ b0[inl])  # R_10 = argmin sum |b1 - R b0|^2
        if np.linalg.det(U) * np.linalg.det(Vt) < 0:
            U[:, 2] = -U[:, 2]
        R10 = U @ Vt
        sq_new = _sq_transfer(p0, p1, K @ R10 @ Kinv)
        cost_new = capped_cost(sq_new, inlier_sq)
        if cost_new >= cost:
            break
        R01, sq_res, cost = R10.T, sq_new, cost_new
        inl_new = sq_res < inlier_sq
        if np.array_equal(inl_new, inl):
            break
        inl = inl_new
    return R01, sq_res


def capped_cost(sq_res: np.ndarray, cap: float) -> float:
    """Truncated least squares ``sum min(e^2, cap)``: the robust cost used to compare models."""
    return float(np.minimum(sq_res, cap).sum())


# ---------------------------------------------------------------------- covariance
def _numeric_covariance(residual_fn: Callable[[np.ndarray], np.ndarray], n_params: int,
                        bias: float = 0.0, eps: float = 1e-6) -> np.ndarray:
    """Gauss-Newton covariance ``(s^2 + M bias^2) (J^T J)^-1`` from forward differences at
    zero, for M residuals: ``s`` (the larger of the residuals' RMS and their MAD-based sigma)
    is independent noise, ``bias`` an error shared by all residuals, which more residuals do
    not average away.

    ``residual_fn`` maps a (P, n_params) stack of parameter vectors to (P, M) residuals, so
    the base point and all perturbations are evaluated in one vectorised call."""
    params = np.vstack([np.zeros(n_params), np.eye(n_params) * eps])
    r = residual_fn(params)
    r0 = r[0]
    J = ((r[1:] - r0) / eps).T
    dof = max(len(r0) - n_params, 1)
    s2 = max(float(r0 @ r0) / dof, (1.4826 * float(np.median(np.abs(r0)))) ** 2)
    try:
        return (s2 + len(r0) * bias**2) * np.linalg.inv(J.T @ J)
    except np.linalg.LinAlgError:
        return np.eye(n_params) * UNKNOWN_VARIANCE


def _sampson_batch(x0: np.ndarray, x1: np.ndarray, Es: np.ndarray) -> np.ndarray:
    """:func:`sampson_residuals` for a stack of essential matrices (P,3,3) -> (P,N).

    Written as five (N,k) x (k,P) products, which numpy runs as matrix multiplications, instead
    of a (P,N,3) batch of small ones."""
    Es = np.asarray(Es, dtype=np.float64)
    outer = (x1[:, :, None] * x0[:, None, :]).reshape(len(x0), 9)
    num = outer @ Es.reshape(-1, 9).T  # (N,P): x1^T E x0
    den = np.sqrt((x0 @ Es[:, 0, :].T) ** 2 + (x0 @ Es[:, 1, :].T) ** 2
                  + (x1 @ Es[:, :, 0].T) ** 2 + (x1 @ Es[:, :, 1].T) ** 2)
    return (num / np.maximum(den, 1e-15)).T


def pose_covariance(x0: np.ndarray, x1: np.ndarray, R01: np.ndarray, t01: np.ndarray,
                    focal: float, translation_valid: bool, bias_px: float = 0.0,
                    max_points: int = 200) -> np.ndarray:
    """6x6 covariance of ``T_0_1`` from the epipolar residuals of the inliers.

    Parameters are a small rotation ``w`` (``R = exp(w) R01``) and, when the translation is
    observable, a 2-D step on the unit sphere of ``t``. Residuals are Sampson distances in
    pixels (normalised distance x focal); the scale along ``t`` stays unknown, so that
    direction gets :data:`UNKNOWN_VARIANCE`. The keypoint noise is the larger of the residuals'
    RMS and their MAD-based sigma (the inlier threshold truncates the RMS).

    The information is that of at most ``max_points`` inliers (evenly strided): keypoint errors
    are not independent (neighbouring keypoints share blur, texture and interpolation error), so
    the information ``J^T J`` does not keep growing with the point count as independent noise
    would have it; ``bias_px`` (``GeometryConfig.keypoint_bias_px``) adds the shared error.
    With 200 points and 0.05 px, 84 % of the direction errors on the validation scenarios fall
    within 2 sigma (docs/BENCHMARKS.md). It also bounds the cost.
    """
    cov = np.eye(6) * UNKNOWN_VARIANCE
    n = len(x0)
    if n < 6:
        return cov
    if n > max_points:
        keep = np.linspace(0, n - 1, max_points).round().astype(np.int64)
        x0, x1 = x0[keep], x1[keep]
    if translation_valid:
        residuals = _pose_residuals(x0, x1, R01, t01, focal)
        B = residuals.basis
        c = _numeric_covariance(residuals, 5, bias_px)
        cov[3:, 3:] = c[:3, :3]
        cov[:3, :3] = B @ c[3:, 3:] @ B.T + np.outer(t01, t01) * UNKNOWN_VARIANCE
        cov[:3, 3:] = B @ c[3:, :3]
        cov[3:, :3] = cov[:3, 3:].T
    else:
        def residuals(params: np.ndarray) -> np.ndarray:
            # rotation-only homography in normalised coordinates
            return np.stack([transfer_residuals(x0[:, :2], x1[:, :2],
                                                (so3_exp(p) @ R01).T).ravel()
                             for p in params]) * focal

        cov[3:, 3:] = _numeric_covariance(residuals, 3, bias_px)
    return cov


def _pose_residuals(x0: np.ndarray, x1: np.ndarray, R01: np.ndarray, t01: np.ndarray,
                    focal: float) -> Callable[[np.ndarray], np.ndarray]:
    """Sampson residuals (pixels) of ``(P,5)`` stacked pose steps around ``(R01, t01)``: a
    small rotation ``w`` (``R = exp(w) R01``) and a 2-D step of ``t`` on the unit sphere."""
    B = np.linalg.svd(t01.reshape(1, 3))[2][1:].T  # 3x2 tangent basis at t

    def residuals(params: np.ndarray) -> np.ndarray:
        Es = [essential_from_pose(so3_exp(p[:3]) @ R01, unit(t01 + B @ p[3:])) for p in params]
        return _sampson_batch(x0, x1, np.array(Es)) * focal

    residuals.basis = B  # type: ignore[attr-defined]
    return residuals


def refine_pose(x0: np.ndarray, x1: np.ndarray, R01: np.ndarray, t01: np.ndarray, focal: float,
                iterations: int = 15) -> tuple[np.ndarray, np.ndarray, float]:
    """Levenberg-Marquardt on the Sampson residuals of ``x0 <-> x1`` over the pose (rotation
    and translation direction) from ``(R01, t01)``. Returns ``(R01, t01, cost)``, the cost the
    sum of squared residuals in pixels^2."""
    eps, lam = 1e-6, 1e-3
    fn = _pose_residuals(x0, x1, R01, t01, focal)
    r = fn(np.zeros((1, 5)))[0]
    for _ in range(iterations):
        rs = fn(np.vstack([np.zeros(5), np.eye(5) * eps]))
        r, J = rs[0], ((rs[1:] - rs[0]) / eps).T
        JtJ, Jtr = J.T @ J, J.T @ r
        while lam < 1e8:
            step = np.linalg.solve(JtJ + lam * np.diag(np.diag(JtJ) + 1e-12), -Jtr)
            rn = fn(step[None])[0]
            if rn @ rn < r @ r:
                R01, t01 = so3_exp(step[:3]) @ R01, unit(t01 + fn.basis @ step[3:])
                fn, lam = _pose_residuals(x0, x1, R01, t01, focal), lam * 0.1
                break
            lam *= 10.0
        else:
            break
        if r @ r - rn @ rn < 1e-6 * (r @ r):
            r = rn
            break
        r = rn
    return R01, t01, float(r @ r)


def rival_direction(x0: np.ndarray, x1: np.ndarray, R01: np.ndarray, t01: np.ndarray,
                    focal: float, sigma_deg: float, bias_px: float, max_points: int = 100
                    ) -> Optional[np.ndarray]:
    """A second minimum of the epipolar cost whose translation direction is far from ``t01``
    but whose cost is about as low, or None.

    With a few pixels of parallax the cost over the direction has more than one valley: the
    estimate can sit in a wrong one (80-90 deg off) whose local curvature, and so whose
    covariance, looks confident. On at most ``max_points`` evenly strided inliers: starts
    from the three axis directions (``t`` and ``-t`` have the same cost: cheirality, not this
    cost, tells them apart), refines each
    (:func:`refine_pose`) and returns the first whose direction is more than
    ``max(3 sigma_deg, 10 deg)`` from the estimate (a least-squares one) with a cost within
    the 99 % bound of a 2-dof chi-square (9.21) times the noise variance (residuals' and
    ``bias_px``'s, as in :func:`pose_covariance`) of it.
    """
    n = len(x0)
    if n > max_points:
        keep = np.linspace(0, n - 1, max_points).round().astype(np.int64)
        x0, x1 = x0[keep], x1[keep]
    R_best, t_best = R01, t01  # already least squares (polish_essential)
    r = _pose_residuals(x0, x1, R_best, t_best, focal)(np.zeros((1, 5)))[0]
    c_best = float(r @ r)
    s2 = max(c_best / max(len(r) - 5, 1), (1.4826 * float(np.median(np.abs(r)))) ** 2)
    bound = 9.21 * (s2 + len(r) * bias_px**2)
    far = max(3.0 * sigma_deg, 10.0)

    def line_angle(a: np.ndarray) -> float:  # -t has the same epipolar cost (E up to sign)
        angle = angle_between_deg(a, t_best)
        return min(angle, 180.0 - angle)

    for start in np.eye(3):
        if line_angle(start) < far:
            continue
        _, t, c = refine_pose(x0, x1, R_best, start, focal, iterations=10)
        if c <= c_best + bound and line_angle(t) > far:
            return t
    return None


def escape_wrong_minimum(E: np.ndarray, inliers: np.ndarray, R01: np.ndarray,
                         t01: np.ndarray, H: Optional[np.ndarray], K: np.ndarray,
                         x0: np.ndarray, x1: np.ndarray, conf: GeometryConfig,
                         max_points: int = 200,
                         extra_starts: Sequence[tuple[np.ndarray, np.ndarray]] = (),
                         only_extra: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """RANSAC's essential matrix, or a better minimum of the epipolar cost: ``(E, inliers)``.

    RANSAC can return a wrong minimum: over a near plane (a desk, a floor) with a few to a few
    tens of pixels of parallax, a translation 60-100 deg off, a rotation 0.3-3 deg off and a
    third of the inliers behind a camera; driving forward, a turn of 2-11 deg traded for a
    sideways translation that leaves 5-20x the flow the frames have. The pose is refined
    (:func:`refine_pose`, on at most ``max_points`` evenly strided inliers) from the two axis
    directions farthest from E's translation ``t01`` (the nearest leads back to E), starting
    from E's rotation and from the rotation nearest the homography ``H`` (the identity without
    one), and from each ``(R01, t01)`` of ``extra_starts`` (a motion prior: the motion of the
    frame before), refined on the matches that start itself explains; with ``only_extra``
    from those alone, a cheap check for any frame. The solution that explains all matches
    best (truncated squared Sampson cost, RANSAC's own criterion) replaces E when it beats it,
    polished (:func:`polish_essential`)."""
    focal = 0.5 * (K[0, 0] + K[1, 1])
    thr2 = (conf.ransac_threshold_px / focal) ** 2

    def cost(E_: np.ndarray) -> float:
        return float(np.minimum(sampson_residuals(x0, x1, E_) ** 2, thr2).sum())

    def strided(mask: np.ndarray) -> np.ndarray:
        idx = np.flatnonzero(mask)
        if len(idx) > max_points:
            idx = idx[np.linspace(0, len(idx) - 1, max_points).round().astype(np.int64)]
        return idx

    # A start with a translation (the prior) is refined on the matches it explains itself,
    # the axis starts (no translation to judge by) on E's inliers.
    starts = [(R, t, strided(sampson_residuals(x0, x1, essential_from_pose(R, t)) ** 2 < thr2))
              for R, t in extra_starts]
    if not only_extra:
        rotations = [R01, nearest_rotation(np.linalg.inv(K) @ H @ K).T if H is not None
                     else np.eye(3)]
        axes = np.eye(3)[np.argsort(np.abs(t01))[:2]]
        idx = strided(inliers)
        starts = [(R, t, idx) for R in rotations for t in axes] + starts
    best_E, best_cost = E, cost(E)
    for R_start, t_start, idx in starts:
        if len(idx) < 8:
            continue
        R, t, _ = refine_pose(x0[idx], x1[idx], R_start, t_start, focal, iterations=10)
        E_c = essential_from_pose(R, t)
        c = cost(E_c)
        if c < best_cost:
            best_E, best_cost = E_c, c
    if best_E is E:
        return E, inliers
    return polish_essential(best_E, x0, x1, sampson_residuals(x0, x1, best_E) ** 2 < thr2,
                            np.sqrt(thr2))


# ---------------------------------------------------------------------- the estimator
def estimate_relative_pose(p0: np.ndarray, p1: np.ndarray, K: Optional[np.ndarray],
                           conf: GeometryConfig, plane_normal: Optional[np.ndarray] = None,
                           motion_prior: Optional[tuple[np.ndarray, np.ndarray]] = None
                           ) -> TwoViewResult:
    """Relative pose between two views from matched, undistorted pixel coordinates.

    Steps: essential matrix by RANSAC (``conf.ransac_method``) with a cheirality check, searched
    again from other starts when it looks like a wrong minimum (:func:`escape_wrong_minimum`:
    a fifth of its inliers behind a camera, or a rotation that leaves twice the flow the
    matches have); a homography fitted to the epipolar inliers (RANSAC when there is no E);
    a rotation-only model refined on bearing vectors. Torr's GRIC, on the matches any model
    explains and with the keypoint noise estimated from the epipolar residuals, picks among
    rotation only (d=2, k=3: static camera, pure rotation), homography (d=2, k=8: planar
    scene) and essential matrix (d=3, k=5: general motion); an essential matrix whose inliers
    the homography explains almost all (:data:`PLANAR_SHARE`) is degenerate and gives way to
    H.
    ``conf.model_selection`` can force H or E. A median rotation-compensated parallax (after
    the chosen model's own rotation) below ``conf.min_parallax_px`` always means rotation
    only, whose result has ``t = 0`` and a rotation covariance that includes the turn such a
    translation looks like (the rotation takes the step in); a translation with a parallax
    below ``conf.min_translation_parallax_px`` or whose direction's standard deviation exceeds
    ``conf.max_direction_sigma_deg`` is not reported either (``t = 0``, its covariance
    unknown), the translating model's rotation is kept: a few pixels fix the rotation, not the
    direction. A planar scene with enough parallax gets its pose from the
    decomposition of H that passes the cheirality check; when two remain, the one whose plane
    normal is closest to ``plane_normal`` (the plane seen before, in the reference camera's
    frame: a floor or a desk stays the same plane from frame to frame), else the one closest
    to the 5-point solution. Without intrinsics only a RANSAC homography is estimated.

    Args:
        p0, p1: (N,2) matched undistorted pixel coordinates in the reference / current view.
        K: 3x3 intrinsics, or None (then only a homography is estimated).
        conf: geometry options.
        plane_normal: unit normal of the plane expected in the scene, in the reference camera's
            frame (:attr:`TwoViewResult.plane_normal` of an earlier frame), or None.
        motion_prior: ``(R, t)``, a guess of ``T_0_1`` (the motion of the last frame whose
            translation was known), or None. The pose is also refined from it, and replaces
            RANSAC's when it explains the matches better (:func:`escape_wrong_minimum`).
    """
    p0 = np.ascontiguousarray(p0, dtype=np.float64).reshape(-1, 2)
    p1 = np.ascontiguousarray(p1, dtype=np.float64).reshape(-1, 2)
    n = len(p0)
    res = TwoViewResult(inliers=np.zeros(n, dtype=bool))
    if n < conf.min_inliers:
        return res
    if K is None:
        H, inl_h = find_homography(p0, p1, conf)
        res.H = H
        if H is not None:
            res.model, res.inliers = "homography_only", inl_h
        return res

    Kinv = np.linalg.inv(K)
    focal = 0.5 * (K[0, 0] + K[1, 1])
    x0, x1 = to_normalised(p0, K), to_normalised(p1, K)
    thr2 = (2.0 * conf.ransac_threshold_px) ** 2  # inlier bound for the rotation model

    E, inl_e, H, inl_h = _fit_essential_and_homography(p0, p1, x0, x1, K, conf)
    res.E, res.H = E, H
    R_e = t_e = None
    if E is not None:
        R_e, t_e, front = recover_pose(E, x0, x1, inl_e)
        suspect = (front.sum() < CHEIRALITY_SHARE * inl_e.sum()
                   or _median_flow(p1[front], apply_homography(K @ R_e.T @ Kinv, p0[front]))
                   > FLOW_GAIN * _median_flow(p1[front], p0[front]))
        if suspect or motion_prior is not None:
            # a wrong-looking minimum is searched from every start, any other from the prior
            E_s, inl_s = escape_wrong_minimum(
                E, inl_e, R_e, t_e, H, K, x0, x1, conf, only_extra=not suspect,
                extra_starts=[motion_prior] if motion_prior is not None else ())
            if E_s is not E:
                E, inl_e = E_s, inl_s
                res.E = E
                R_e, t_e, front = recover_pose(E, x0, x1, inl_e)
        inl_e = front
    rotation = _rotation_model(p0, p1, x0, x1, K, Kinv, R_e, H, thr2)
    if rotation is None:
        return res
    R_rot, sq_rot = rotation
    inl_rot = sq_rot < thr2
    _score_models(res, p0, p1, x0, x1, sq_rot, (inl_rot, inl_h, inl_e), focal, conf.pixel_sigma)
    model = _select_model(res, conf, R_e is not None)
    if (model == "essential" and conf.model_selection == "gric" and H is not None
            and inl_h.sum() >= PLANAR_SHARE * inl_e.sum()):
        # Nearly every epipolar inlier lies on one plane: E is degenerate there (its 5-point
        # translation then often points anywhere, about 90 deg off), the homography is not.
        model = "homography"
    inliers = {"rotation": inl_rot, "homography": inl_h, "essential": inl_e}[model]
    if inliers.sum() < conf.min_inliers:
        res.inliers = inliers
        return res
    # Parallax: the flow the model's translation causes, i.e. what is left after its own
    # rotation is compensated. Not the rotation-only fit's rotation: that one absorbs a small
    # translation (a step along a plane looks like a turn to first order), which would make
    # any translation look like none.
    pts0 = p0[inliers]
    R = None
    if model == "homography":
        R, t, normal = _pose_from_homography(H, K, pts0, p1[inliers], R_e, t_e, plane_normal)
        if R is None:  # no decomposition: the translation is not observable either
            model = "rotation"
    if R is not None:
        # from H itself, not the matches: its translation part, free of keypoint noise
        parallax = _median_flow(apply_homography(H, pts0),
                                apply_homography(K @ R.T @ Kinv, pts0))
    else:
        R, t = (R_e, t_e) if model == "essential" else (R_rot, np.zeros(3))
        parallax = _median_flow(p1[inliers], apply_homography(K @ R.T @ Kinv, pts0))
    res.parallax_px, res.inliers = parallax, inliers
    if model == "rotation" or parallax < conf.min_parallax_px:
        res.model, res.R, res.t = "rotation", R_rot, np.zeros(3)
        res.covariance = pose_covariance(x0[inliers], x1[inliers], R_rot, res.t, focal, False)
        # The rotation takes in whatever translation there is (a step across the view moves
        # the image like a turn about the axis across it): as much as the translating model's
        # parallax, which is below min_parallax_px here, about the x and y axes.
        if model != "rotation":
            absorbed_px = parallax
        elif R_e is not None:
            absorbed_px = _median_flow(p1[inl_e], apply_homography(K @ R_e.T @ Kinv, p0[inl_e]))
        else:
            absorbed_px = conf.min_parallax_px
        if not absorbed_px <= conf.min_parallax_px:  # (also NaN: no E inlier in front)
            absorbed_px = conf.min_parallax_px
        res.covariance[3:5, 3:5] += np.eye(2) * (absorbed_px / focal) ** 2
        return res
    res.model, res.R = model, R
    res.covariance = pose_covariance(x0[inliers], x1[inliers], R, t, focal, True,
                                     conf.keypoint_bias_px)
    res.direction_sigma_deg = direction_sigma_deg(res.covariance, t)
    if (parallax < conf.min_translation_parallax_px
            or not res.direction_sigma_deg <= conf.max_direction_sigma_deg
            or (model == "essential"  # a plane's two decompositions fit E's cost alike
                and parallax < RIVAL_CHECK_MAX_PARALLAX_PX
                and rival_direction(x0[inliers], x1[inliers], R, t, focal,
                                    res.direction_sigma_deg, conf.keypoint_bias_px)
                is not None)):
        # A few pixels of parallax fix the rotation (the translating model's: it does not absorb
        # the step as the rotation-only fit does) but not the direction. Below about 3 px an
        # essential matrix can fit a near-rotation with a direction 80-90 deg off and a small
        # covariance (a different minimum than the true one), hence the parallax bound too.
        res.t = np.zeros(3)
        res.covariance[:3, :] = res.covariance[:, :3] = 0.0
        res.covariance[:3, :3] = np.eye(3) * UNKNOWN_VARIANCE
    else:
        res.t = t
        if model == "homography":
            res.plane_normal = normal
    return res


def direction_sigma_deg(covariance: np.ndarray, t: np.ndarray) -> float:
    """Standard deviation (degrees, the larger axis) of the direction of the unit translation
    ``t`` under the 6x6 pose ``covariance`` (:func:`pose_covariance`'s layout)."""
    P = np.eye(3) - np.outer(t, t)
    worst = float(np.linalg.eigvalsh(P @ covariance[:3, :3] @ P).max())
    return float(np.degrees(np.sqrt(max(worst, 0.0))))


def _fit_essential_and_homography(p0: np.ndarray, p1: np.ndarray, x0: np.ndarray,
                                  x1: np.ndarray, K: np.ndarray, conf: GeometryConfig
                                  ) -> tuple[Optional[np.ndarray], np.ndarray,
                                             Optional[np.ndarray], np.ndarray]:
    """``(E, E inliers, H, H inliers)``: E by RANSAC unless a homography is forced; H by RANSAC
    without an E, else fitted to the E inliers."""
    E, inl_e = (None, np.zeros(len(p0), dtype=bool))
    if conf.model_selection != "homography":
        E, inl_e = find_essential(p0, p1, K, conf, (x0, x1))
    if E is None or conf.model_selection == "homography":
        H, inl_h = find_homography(p0, p1, conf)
    else:
        # A plane's (or a rotation's) correspondences all satisfy the epipolar constraint too,
        # so H is fitted to the E inliers by least squares and refitted once to its own inliers
        # instead of running a second RANSAC. Where the E inliers are not planar this H fits
        # badly and GRIC rejects it, which is the right answer.
        H, inl_h = _refit_homography(p0, p1, inl_e, conf.ransac_threshold_px ** 2)
    return E, inl_e, H, inl_h


def _rotation_model(p0: np.ndarray, p1: np.ndarray, x0: np.ndarray, x1: np.ndarray,
                    K: np.ndarray, Kinv: np.ndarray, R_e: Optional[np.ndarray],
                    H: Optional[np.ndarray], thr2: float
                    ) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """Rotation-only model (k = 3): the better start of the 5-point rotation and the rotation
    nearest to H, refined on its inliers, scored with the translation-free homography. Returns
    ``(R, squared transfer errors)``, or None without a start."""
    R_rot, sq_rot = None, None
    for R in (R_e, nearest_rotation(Kinv @ H @ K).T if H is not None else None):
        if R is not None:
            sq = _sq_transfer(p0, p1, K @ R.T @ Kinv)
            if sq_rot is None or capped_cost(sq, thr2) < capped_cost(sq_rot, thr2):
                R_rot, sq_rot = R, sq
    if R_rot is None:
        return None
    return refine_rotation(x0, x1, p0, p1, K, R_rot, sq_rot, thr2)


def _score_models(res: TwoViewResult, p0: np.ndarray, p1: np.ndarray, x0: np.ndarray,
                  x1: np.ndarray, sq_rot: np.ndarray,
                  inliers: tuple[np.ndarray, np.ndarray, np.ndarray], focal: float,
                  pixel_sigma: float) -> None:
    """GRIC of the rotation, homography and essential models into ``res.gric_*``.

    ``inliers``: those of the rotation, homography and essential models. GRIC is evaluated on
    the matches that at least one model explains: gross outliers would otherwise favour the
    model with the smaller robust cap (E) in proportion to their number."""
    inl_rot, inl_h, inl_e = inliers
    E, H = res.E, res.H
    support = inl_rot | inl_h | inl_e
    sigma = pixel_sigma
    if E is not None and inl_e.sum() >= 8:
        # Keypoint noise from the epipolar residuals of the most general model (MAD), so that
        # detectors with coarse positions (ORB's pyramid) are not judged with too small a sigma.
        r_e = np.abs(sampson_residuals(x0[inl_e], x1[inl_e], E)) * focal
        sigma = max(sigma, 1.4826 * float(np.median(r_e)))
    # GRIC wants the squared geometric distance in the joint (p0, p1) space: with noise in both
    # images that is half the squared one-sided transfer error (2 sigma^2 expected for d = 2,
    # as the Sampson distance has sigma^2 for d = 3).
    res.gric_rot = gric(0.5 * sq_rot[support], sigma, 2, 3)
    if H is not None:
        res.gric_h = gric(0.5 * _sq_transfer(p0[support], p1[support], H), sigma, 2, 8)
    if E is not None:
        res.gric_e = gric((sampson_residuals(x0[support], x1[support], E) * focal) ** 2,
                          sigma, 3, 5)


def _select_model(res: TwoViewResult, conf: GeometryConfig, have_essential_pose: bool) -> str:
    """The model of lowest GRIC among those allowed by ``conf.model_selection``; a forced
    model is chosen over rotation-only whenever it exists."""
    candidates = {"rotation": res.gric_rot}
    if res.H is not None and conf.model_selection in ("gric", "homography"):
        candidates["homography"] = res.gric_h
    if have_essential_pose and conf.model_selection in ("gric", "essential"):
        candidates["essential"] = res.gric_e
    if conf.model_selection != "gric" and len(candidates) > 1:
        candidates.pop("rotation")  # a forced model still falls back to rotation-only below
    return min(candidates, key=candidates.get)


def _sq_transfer(p0: np.ndarray, p1: np.ndarray, H: np.ndarray) -> np.ndarray:
    d = transfer_residuals(p0, p1, H)
    return np.einsum("ij,ij->i", d, d)


def _median_flow(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.median(np.linalg.norm(a - b, axis=1))) if len(a) else float("nan")


def _refit_homography(p0: np.ndarray, p1: np.ndarray, subset: np.ndarray, thr2: float
                      ) -> tuple[Optional[np.ndarray], np.ndarray]:
    """Least-squares homography (normalised DLT) on ``subset``, refitted once to its own
    inliers (squared transfer error below ``thr2``). Returns (H or None, inlier mask)."""
    mask = subset
    H = None
    for _ in range(2):
        if mask.sum() < 4:
            return None, np.zeros(len(p0), dtype=bool)
        H = homography_dlt(p0[mask], p1[mask])
        if H is None:
            return None, np.zeros(len(p0), dtype=bool)
        mask = _sq_transfer(p0, p1, H) < thr2
    return H, mask


def homography_dlt(p0: np.ndarray, p1: np.ndarray) -> Optional[np.ndarray]:
    """Least-squares homography ``p1 ~ H p0`` by Hartley-normalised DLT (N >= 4 points)."""

    def normaliser(p):
        c = p.mean(axis=0)
        d = p - c
        s = np.sqrt(2.0) / max(float(np.sqrt(np.einsum("ij,ij->i", d, d)).mean()), 1e-12)
        return np.array([[s, 0.0, -s * c[0]], [0.0, s, -s * c[1]], [0.0, 0.0, 1.0]])

    T0, T1 = normaliser(p0), normaliser(p1)
    a = p0 @ T0[:2, :2].T + T0[:2, 2]
    b = p1 @ T1[:2, :2].T + T1[:2, 2]
    # Normal equations A^T A of the DLT rows [-m, 0, bx m] and [0, -m, by m], m = (ax, ay, 1),
    # assembled from 3x3 moment blocks instead of materialising the 2N x 9 matrix A.
    m = np.hstack([a, np.ones((len(a), 1))])
    mm = m.T @ m
    AtA = np.zeros((9, 9))
    AtA[0:3, 0:3] = AtA[3:6, 3:6] = mm
    AtA[0:3, 6:9] = -(m * b[:, :1]).T @ m
    AtA[3:6, 6:9] = -(m * b[:, 1:]).T @ m
    AtA[6:9, 6:9] = (m * np.einsum("ij,ij->i", b, b)[:, None]).T @ m
    AtA[6:9, 0:6] = AtA[0:6, 6:9].T
    _, _, Vt = np.linalg.svd(AtA)
    H = np.linalg.inv(T1) @ Vt[-1].reshape(3, 3) @ T0
    if not np.all(np.isfinite(H)) or abs(H[2, 2]) < 1e-12:
        return None
    return H / H[2, 2]


def _pose_from_homography(H, K, p0, p1, R_ref, t_ref, normal_ref=None):
    """``(R, t, plane normal)``: pose ``T_0_1`` from a plane-induced homography and the normal
    in camera 0. Of the physically valid solutions it picks the one whose normal is closest
    to ``normal_ref`` when given, else the one closest to ``(R_ref, t_ref)`` (the 5-point
    estimate, which a plane leaves ill-determined); ``(None, None, None)`` without one."""
    n_sol, Rs, ts, normals = cv2.decomposeHomographyMat(H, K)
    cand = list(range(n_sol))
    # The visibility test (the plane in front of both cameras) wants normalised coordinates as
    # float32 (N,1,2): pixels leave the wrong solution standing.
    x0, x1 = (to_normalised(p, K)[:, :2].astype(np.float32).reshape(-1, 1, 2) for p in (p0, p1))
    valid = cv2.filterHomographyDecompByVisibleRefpoints(Rs, normals, x0, x1)
    if valid is not None and len(valid):
        cand = [int(i) for i in np.asarray(valid).ravel()]
    solutions = []
    for i in cand:
        R01, t01 = invert_pose(Rs[i], ts[i].ravel())
        normal = unit(np.asarray(normals[i], dtype=np.float64).ravel())
        if normal[2] < 0:  # the convention here: pointing away from camera 0 (into the scene)
            normal = -normal
        solutions.append((R01, unit(t01), normal))
    if not solutions:
        return None, None, None
    if normal_ref is not None:
        angles = [angle_between_deg(n, normal_ref) for _, _, n in solutions]
        if min(angles) <= PLANE_NORMAL_MATCH_DEG:  # still the same plane
            return solutions[int(np.argmin(angles))]
    if R_ref is None:
        return solutions[0]
    costs = [rotation_angle_deg(R.T @ R_ref) + angle_between_deg(t, t_ref)
             for R, t, _ in solutions]
    return solutions[int(np.argmin(costs))]
