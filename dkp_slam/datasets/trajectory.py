"""Trajectory files: TUM (read and write), KITTI ``poses.txt`` rows, EuRoC ground-truth csv,
:func:`load_trajectory` (format from the content) and :func:`interpolate_poses`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional
from typing import Sequence as Seq

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from .common import PathLike, _nan_poses, _pose_matrices, _read_float_lines, require


def _kitti_poses(rows: np.ndarray) -> np.ndarray:
    """(N,4,4) poses from KITTI rows of 12 values (row-major 3x4)."""
    poses = np.tile(np.eye(4), (len(rows), 1, 1))
    poses[:, :3, :4] = np.asarray(rows, dtype=np.float64).reshape(-1, 3, 4)
    return poses


def _read_euroc_csv(path: Path) -> tuple[np.ndarray, list[list[str]]]:
    """Integer ns stamps and the remaining string fields of an ASL csv file."""
    ns, rest = [], []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = [p.strip() for p in line.split(",")]
        try:
            ns.append(int(parts[0]))
        except ValueError as exc:
            raise ValueError(f"{path}:{lineno}: bad nanosecond timestamp {parts[0]!r}") from exc
        rest.append(parts[1:])
    return np.array(ns, dtype=np.int64), rest


def load_tum_trajectory(path: PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a TUM trajectory file (``t tx ty tz qx qy qz qw`` per line, ``#`` comments).

    Returns ``(stamps (N,), poses (N,4,4))`` with poses ``T_world_cam``.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: a line does not have 8 numbers.
    """
    path = Path(path)
    require(path, "trajectory file")
    rows = _read_float_lines(path)
    if rows.shape[0] == 0:
        return np.zeros(0), np.zeros((0, 4, 4))
    if rows.shape[1] != 8:
        raise ValueError(f"{path}: TUM trajectory lines need 8 values "
                         f"(t tx ty tz qx qy qz qw), got {rows.shape[1]}")
    return rows[:, 0].copy(), _pose_matrices(rows[:, 1:4], rows[:, 4:8])


def write_tum_trajectory(path: PathLike, stamps: Seq[float] | np.ndarray,
                         poses: np.ndarray, header: Optional[str] = None) -> int:
    """Write poses ``T_world_cam`` ((N,4,4) or (N,3,4)) in TUM format ``t tx ty tz qx qy qz qw``.

    Frames whose pose is not finite (lost tracking, NaN ground truth) are skipped. Quaternions
    are written with ``qw >= 0``. Parent folders are created. ``header`` is written as ``#``
    comment lines. Returns the number of poses written.
    """
    path = Path(path)
    stamps = np.asarray(stamps, dtype=np.float64).reshape(-1)
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 3 or poses.shape[1:] not in ((4, 4), (3, 4)) or len(poses) != len(stamps):
        raise ValueError(f"poses must be (N,4,4) or (N,3,4) with N = {len(stamps)} stamps, "
                         f"got {poses.shape}")
    ok = np.isfinite(stamps) & np.all(np.isfinite(poses), axis=(1, 2))
    lines = []
    if header:
        lines += ["# " + h for h in header.splitlines()]
    if np.any(ok):
        q = Rotation.from_matrix(poses[ok, :3, :3]).as_quat()
        q[q[:, 3] < 0] *= -1.0
        t = poses[ok, :3, 3]
        for s, ti, qi in zip(stamps[ok], t, q):
            lines.append(f"{s:.9f} " + " ".join(f"{v:.9g}" for v in (*ti, *qi)))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + ("\n" if lines else ""))
    return int(ok.sum())


def load_euroc_groundtruth(path: PathLike) -> tuple[np.ndarray, np.ndarray]:
    """An EuRoC / ASL state csv (``ns, px py pz, qw qx qy qz, ...``): ``(ns (N,) int64,
    T_world_body (N,4,4))``.

    Raises:
        ValueError: rows that cannot be parsed or have fewer than 8 columns.
    """
    path = Path(path)
    g_ns, g_rest = _read_euroc_csv(path)
    try:
        vals = np.array([[float(v) for v in r[:7]] for r in g_rest], dtype=np.float64)
    except ValueError as exc:
        raise ValueError(f"{path}: cannot parse pose values: {exc}") from exc
    if len(vals) and (vals.ndim != 2 or vals.shape[1] != 7):
        raise ValueError(f"{path}: rows need at least 8 columns (ns, p xyz, q wxyz)")
    vals = vals.reshape(-1, 7)
    return g_ns, _pose_matrices(vals[:, 0:3], vals[:, [4, 5, 6, 3]])


def interpolate_poses(query_ns: np.ndarray, ref_ns: np.ndarray, ref_poses: np.ndarray,
                      max_dt: float = 0.02) -> np.ndarray:
    """Poses at ``query_ns`` from a pose track (``ref_ns`` int ns, ``ref_poses`` (M,4,4)).

    An exact nanosecond match is used as is. Otherwise, when the stamp lies between two samples
    that are both within ``max_dt`` seconds of it, translation is interpolated linearly and
    rotation by slerp. Every other stamp gets a NaN pose.
    """
    query_ns = np.asarray(query_ns, dtype=np.int64).reshape(-1)
    order = np.argsort(ref_ns, kind="stable")
    ref_ns = np.asarray(ref_ns, dtype=np.int64)[order]
    ref_poses = np.asarray(ref_poses, dtype=np.float64)[order]
    out = _nan_poses(len(query_ns))
    if len(ref_ns) == 0:
        return out
    max_ns = max_dt * 1e9
    hi = np.searchsorted(ref_ns, query_ns, side="left")
    exact = (hi < len(ref_ns)) & (ref_ns[np.minimum(hi, len(ref_ns) - 1)] == query_ns)
    out[exact] = ref_poses[hi[exact]]
    inner = ~exact & (hi > 0) & (hi < len(ref_ns))
    for k in np.flatnonzero(inner):
        a, b = hi[k] - 1, hi[k]
        ta, tb, tq = ref_ns[a], ref_ns[b], query_ns[k]
        if tq - ta > max_ns or tb - tq > max_ns:
            continue
        w = float(tq - ta) / float(tb - ta)
        rots = Rotation.from_matrix(ref_poses[[a, b], :3, :3])
        T = np.eye(4)
        T[:3, :3] = Slerp([0.0, 1.0], rots)([w]).as_matrix()[0]
        T[:3, 3] = (1.0 - w) * ref_poses[a, :3, 3] + w * ref_poses[b, :3, 3]
        out[k] = T
    return out


def load_trajectory(path: PathLike) -> tuple[Optional[np.ndarray], np.ndarray, str]:
    """A ground-truth trajectory file, format detected from its content.

    - **TUM** (8 values per line: ``t tx ty tz qx qy qz qw``, seconds, ``T_world_cam``);
    - **KITTI** (12 values per line: row-major 3x4 ``T_world_cam``, one line per frame, no
      stamps: ``times.txt`` beside the file gives them when present);
    - **EuRoC / ASL** state csv (``ns, p xyz, q wxyz, ...``, comma-separated, body poses
      ``T_world_body``; see :func:`load_euroc_groundtruth`).

    Returns ``(stamps_ns (N,) int64 or None, poses (N,4,4), format)`` with format ``"tum"``,
    ``"kitti"`` or ``"euroc"``; stamps are None for KITTI without ``times.txt`` (then pose
    ``i`` belongs to frame ``i``).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: an unrecognised layout.
    """
    path = Path(path)
    require(path, "trajectory file")
    first = next((ln.strip() for ln in path.read_text().splitlines()
                  if ln.strip() and not ln.lstrip().startswith("#")), "")
    if "," in first:
        ns, poses = load_euroc_groundtruth(path)
        return ns, poses, "euroc"
    rows = _read_float_lines(path)
    if rows.shape[0] and rows.shape[1] == 8:
        stamps, poses = load_tum_trajectory(path)
        return np.round(stamps * 1e9).astype(np.int64), poses, "tum"
    if rows.shape[0] and rows.shape[1] == 12:
        poses = _kitti_poses(rows)
        times = path.parent / "times.txt"
        if times.is_file():
            t = _read_float_lines(times)
            if t.shape[0] == len(poses):
                return np.round(t[:, 0] * 1e9).astype(np.int64), poses, "kitti"
        return None, poses, "kitti"
    raise ValueError(f"{path}: unrecognised trajectory format (expected TUM lines of 8 values, "
                     f"KITTI lines of 12 values or an EuRoC csv)")
