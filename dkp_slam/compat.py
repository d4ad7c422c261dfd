"""The few calls whose API differs between the numpy / OpenCV versions dkp_slam supports.

Supported: numpy >= 1.21 (Ubuntu 22.04, JetPack 6) to 2.x (PyPI), OpenCV >= 4.5.4 (Ubuntu 22.04)
to 5.x (PyPI). Each function here hides one difference and is tested on both stacks
(``test/test_compat.py``, run by CI in the pip and in the distribution environment).
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["trapezoid", "undistort_points_iter"]


def trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    """Trapezoidal integral of ``y`` over ``x``.

    ``numpy.trapezoid`` exists from numpy 2.0 on, ``numpy.trapz`` until numpy 2.4.
    """
    integrate = getattr(np, "trapezoid", None) or getattr(np, "trapz")
    return float(integrate(y, x=x))


def undistort_points_iter(points: np.ndarray, K: np.ndarray, dist: np.ndarray,
                          criteria: tuple[int, int, float]) -> np.ndarray:
    """``cv2.undistortPoints`` with an explicit termination criterion (R = P = identity).

    ``points`` is ``(N, 1, 2)`` float64 distorted pixels; returns ``(N, 1, 2)`` normalised,
    undistorted coordinates. OpenCV 4 takes the criterion only in ``cv2.undistortPointsIter``
    (``undistortPoints`` has no such argument there); OpenCV 5 dropped ``undistortPointsIter``
    and added ``criteria`` to ``undistortPoints``. Both run the same iterative solver.
    """
    if hasattr(cv2, "undistortPointsIter"):
        return cv2.undistortPointsIter(points, K, dist, None, None, criteria)
    return cv2.undistortPoints(points, K, dist, None, None, None, criteria)
