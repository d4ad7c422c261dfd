"""Camera intrinsics, distortion models and keypoint undistortion.

Pixel convention used throughout dkp_slam (the OpenCV one): the centre of the top-left pixel is
at ``(u, v) = (0.0, 0.0)``; ``u`` grows to the right (columns), ``v`` downwards (rows). A pixel
with integer index ``(row, col)`` covers ``[col - 0.5, col + 0.5) x [row - 0.5, row + 0.5)``.
Normalised coordinates are ``x = (u - cx) / fx``, ``y = (v - cy) / fy`` after undistortion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import cv2
import numpy as np

from .compat import undistort_points_iter

#: Distortion models understood by :class:`Camera`, with the ROS ``distortion_model`` names
#: that map to them.
DISTORTION_MODELS = {
    "none": "none",
    "pinhole": "none",
    "plumb_bob": "radtan",
    "radtan": "radtan",
    "radial-tangential": "radtan",
    "rational_polynomial": "radtan",
    "equidistant": "equidistant",
    "fisheye": "equidistant",
    "kannala_brandt": "equidistant",
}


class CameraError(ValueError):
    """Raised for intrinsics that cannot describe a real camera (NaN, zero focal, ...)."""


@dataclass
class Camera:
    """A pinhole camera with optional lens distortion.

    Attributes:
        width, height: image size in pixels.
        fx, fy, cx, cy: intrinsics in pixels (pixel-centre convention above).
        model: ``"none"``, ``"radtan"`` (OpenCV / ROS plumb_bob and rational_polynomial:
            k1 k2 p1 p2 [k3 [k4 k5 k6]]) or ``"equidistant"`` (Kannala-Brandt / OpenCV fisheye:
            k1 k2 k3 k4).
        dist: distortion coefficients in the order of ``model``.
    """

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    model: str = "none"
    dist: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        self.model = DISTORTION_MODELS.get(str(self.model).lower(), None) or self._bad_model()
        self.dist = np.asarray(self.dist, dtype=np.float64).reshape(-1)
        if self.model == "none" or not np.any(self.dist):
            if self.model == "equidistant" and self.dist.size not in (0, 4):
                raise CameraError(f"equidistant model needs 4 coefficients, got {self.dist.size}")
        self.validate()

    def _bad_model(self) -> str:
        raise CameraError(
            f"unknown distortion model {self.model!r}; known: {sorted(DISTORTION_MODELS)}"
        )

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_K(
        cls,
        K: np.ndarray,
        width: int,
        height: int,
        dist: np.ndarray | None = None,
        model: str = "radtan",
    ) -> "Camera":
        """Build from a 3x3 (or flat 9-element) intrinsic matrix."""
        K = np.asarray(K, dtype=np.float64).reshape(3, 3)
        dist = np.zeros(0) if dist is None else np.asarray(dist, dtype=np.float64)
        if dist.size == 0:
            model = "none"
        return cls(int(width), int(height), K[0, 0], K[1, 1], K[0, 2], K[1, 2], model, dist)

    def validate(self) -> None:
        """Raise :class:`CameraError` unless the intrinsics are finite and plausible."""
        vals = np.array([self.fx, self.fy, self.cx, self.cy], dtype=np.float64)
        if not np.all(np.isfinite(vals)) or not np.all(np.isfinite(self.dist)):
            raise CameraError(f"intrinsics contain NaN/inf: f=({self.fx},{self.fy}) "
                              f"c=({self.cx},{self.cy}) dist={self.dist.tolist()}")
        if self.fx <= 0 or self.fy <= 0:
            raise CameraError(f"focal lengths must be positive, got fx={self.fx}, fy={self.fy}")
        if self.width <= 0 or self.height <= 0:
            raise CameraError(f"image size must be positive, got {self.width}x{self.height}")
        if self.model == "radtan" and self.dist.size not in (4, 5, 8, 12, 14):
            raise CameraError(f"radtan model takes 4, 5, 8, 12 or 14 coefficients, "
                              f"got {self.dist.size}")
        if self.model == "equidistant" and self.dist.size != 4:
            raise CameraError(f"equidistant model needs 4 coefficients, got {self.dist.size}")

    #: Focal lengths outside ``[MIN, MAX] x max(width, height)`` are implausible (a 200 deg
    #: fisheye has about 0.3, a 2 deg telephoto about 30).
    FOCAL_RANGE = (0.1, 50.0)
    #: Distortion round trip (undistort, then distort) error allowed over the image (pixels).
    ROUND_TRIP_PX = 0.5
    #: Allowed undistorted / distorted radius at the image border (a 170 deg fisheye: ~10).
    FOV_SCALE = (0.1, 20.0)

    def implausible(self) -> Optional[str]:
        """Why these intrinsics cannot describe a real camera of this image size, or None.

        Checks that the principal point lies inside the image, that the focal lengths are
        within :attr:`FOCAL_RANGE` of the image size and within a factor 5 of each other, and
        that the distortion model is invertible over the whole image: every border pixel
        undistorts to a finite point that distorts back to within :attr:`ROUND_TRIP_PX`, the
        undistorted radius at the border is within :attr:`FOV_SCALE` of the distorted one, and
        along the rays to the corners and edge midpoints the distorted radius grows with the
        undistorted one (no fold-over).
        """
        w, h = self.width, self.height
        if not (0.0 <= self.cx <= w and 0.0 <= self.cy <= h):
            return (f"principal point ({self.cx:g}, {self.cy:g}) is outside the {w}x{h} "
                    f"image")
        lo, hi = (k * max(w, h) for k in self.FOCAL_RANGE)
        for name, f in (("fx", self.fx), ("fy", self.fy)):
            if not lo <= f <= hi:
                return (f"{name}={f:g} is outside [{lo:g}, {hi:g}] px "
                        f"({self.FOCAL_RANGE[0]:g}-{self.FOCAL_RANGE[1]:g} x the larger image "
                        f"side)")
        if not 0.2 <= self.fx / self.fy <= 5.0:
            return f"fx/fy = {self.fx / self.fy:g} is outside [0.2, 5]"
        if not self.has_distortion:
            return None
        n = 33
        t = np.linspace(0.0, 1.0, n)
        border = np.concatenate([np.stack([t * (w - 1), np.zeros(n)], 1),
                                 np.stack([t * (w - 1), np.full(n, h - 1.0)], 1),
                                 np.stack([np.zeros(n), t * (h - 1)], 1),
                                 np.stack([np.full(n, w - 1.0), t * (h - 1)], 1)])
        with np.errstate(all="ignore"):
            xy = self.undistort_points(border)
            if not np.all(np.isfinite(xy)):
                return f"the {self.model} distortion {self.dist.tolist()} cannot be inverted " \
                       f"at the image border"
            back = self.project(np.concatenate([xy, np.ones((len(xy), 1))], 1))
            err = float(np.max(np.linalg.norm(back - border, axis=1)))
            if not np.isfinite(err) or err > self.ROUND_TRIP_PX:
                return (f"the {self.model} distortion {self.dist.tolist()} is not invertible "
                        f"over the image (undistort + distort misses a border pixel by "
                        f"{err:.3g} px)")
            # a plausible lens neither shrinks nor stretches the field of view by 10x or more
            r_d = np.linalg.norm((border - [self.cx, self.cy]) / [self.fx, self.fy], axis=1)
            far = r_d > 0.05 * r_d.max()
            ratio = np.linalg.norm(xy, axis=1)[far] / r_d[far]
            lo, hi = self.FOV_SCALE
            if ratio.size and not (lo <= ratio.min() and ratio.max() <= hi):
                return (f"the {self.model} distortion {self.dist.tolist()} scales the image "
                        f"border by {ratio.min():.3g}-{ratio.max():.3g} (undistorted / "
                        f"distorted radius), outside [{lo:g}, {hi:g}]")
            # fold-over: along rays to the corners and edge midpoints the distorted radius
            # must keep growing up to the border
            c = np.array([self.cx, self.cy])
            ends = [0, n - 1, n, 2 * n - 1, n // 2, n + n // 2, 2 * n + n // 2, 3 * n + n // 2]
            s_ = np.linspace(0.0, 1.0, 200)[1:, None]
            for k in ends:
                ray = s_ * xy[k]
                px = self.project(np.concatenate([ray, np.ones((len(ray), 1))], 1))
                radius = np.linalg.norm(px - c, axis=1)
                if not np.all(np.isfinite(radius)) or np.any(np.diff(radius) <= 0):
                    return (f"the {self.model} distortion {self.dist.tolist()} folds over "
                            f"inside the image (not invertible)")
        return None

    # ------------------------------------------------------------------ properties
    @property
    def K(self) -> np.ndarray:
        """3x3 intrinsic matrix."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def focal(self) -> float:
        """Mean focal length in pixels (used to turn pixel thresholds into angles)."""
        return 0.5 * (self.fx + self.fy)

    @property
    def has_distortion(self) -> bool:
        return self.model != "none" and bool(np.any(self.dist))

    # ------------------------------------------------------------------ point maps
    def undistort_points(self, uv: np.ndarray) -> np.ndarray:
        """Map distorted pixel coordinates (N,2) to normalised, undistorted coordinates (N,2)."""
        uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
        if uv.shape[0] == 0:
            return np.zeros((0, 2))
        if not self.has_distortion:
            return np.stack([(uv[:, 0] - self.cx) / self.fx, (uv[:, 1] - self.cy) / self.fy], 1)
        pts = uv.reshape(-1, 1, 2)
        if self.model == "equidistant":
            out = cv2.fisheye.undistortPoints(pts, self.K, self.dist.reshape(4, 1))
        else:
            # Iterative solver with a convergence criterion tighter than OpenCV's default 5 steps.
            crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 30, 1e-9)
            out = undistort_points_iter(pts, self.K, self.dist, crit)
        return out.reshape(-1, 2)

    def undistort_pixels(self, uv: np.ndarray) -> np.ndarray:
        """Map distorted pixels (N,2) to the pixels an ideal pinhole camera with K would see."""
        xy = self.undistort_points(uv)
        return np.stack([xy[:, 0] * self.fx + self.cx, xy[:, 1] * self.fy + self.cy], 1)

    def project(self, xyz: np.ndarray) -> np.ndarray:
        """Project camera-frame points (N,3) with z > 0 to distorted pixels (N,2)."""
        xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
        if not self.has_distortion:
            x = xyz[:, :2] / xyz[:, 2:3]
            return np.stack([x[:, 0] * self.fx + self.cx, x[:, 1] * self.fy + self.cy], 1)
        rvec = tvec = np.zeros(3)
        if self.model == "equidistant":
            out, _ = cv2.fisheye.projectPoints(xyz.reshape(-1, 1, 3), rvec, tvec, self.K,
                                               self.dist.reshape(4, 1))
        else:
            out, _ = cv2.projectPoints(xyz, rvec, tvec, self.K, self.dist)
        return out.reshape(-1, 2)

    def scaled(self, sx: float, sy: float | None = None) -> "Camera":
        """The same camera for an image resized by ``sx`` (and ``sy``), pixel centres kept."""
        sy = sx if sy is None else sy
        return Camera(
            round(self.width * sx), round(self.height * sy), self.fx * sx, self.fy * sy,
            (self.cx + 0.5) * sx - 0.5, (self.cy + 0.5) * sy - 0.5, self.model, self.dist.copy(),
        )

    def to_dict(self) -> dict:
        return {"width": self.width, "height": self.height, "fx": self.fx, "fy": self.fy,
                "cx": self.cx, "cy": self.cy, "model": self.model, "dist": self.dist.tolist()}
