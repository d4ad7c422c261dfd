"""Loaders that turn datasets on disk into :class:`~dkp_slam.sequence.Sequence` objects.

Supported sources (all images are read lazily, one frame per ``load_image(i)`` call):

* a plain **image folder** (:func:`load_image_folder`),
* a **video file** (:func:`load_video`),
* a **KITTI odometry** sequence folder (:func:`load_kitti`),
* a **TUM RGB-D** sequence folder (:func:`load_tum`),
* an **EuRoC / ASL** sequence folder (:func:`load_euroc`),

plus :func:`open_sequence`, which detects the format of a path, and the TUM trajectory helpers
:func:`load_tum_trajectory` / :func:`write_tum_trajectory`.

Conventions: stamps are float64 seconds; ground-truth poses are ``T_world_cam`` (camera-to-world,
4x4) with NaN rows where no ground truth exists for a frame; images are returned as
``cv2.imread(..., IMREAD_UNCHANGED)`` gives them (HxW grey or HxWx3 BGR, uint8, or uint16 for
16-bit files); 4-channel images lose their alpha channel. Intrinsics use the pixel-centre
convention of :mod:`dkp_slam.camera`.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Callable, Optional, Sequence as Seq, Union

import cv2
import numpy as np
import yaml
from scipy.spatial.transform import Rotation, Slerp

from .camera import Camera
from .sequence import Sequence

PathLike = Union[str, Path]

#: Image file extensions picked up by :func:`load_image_folder` (compared case-insensitively).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".tif", ".tiff")
#: Video file extensions recognised by :func:`open_sequence`.
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov")

#: Published TUM RGB-D calibrations of the RGB camera (fx, fy, cx, cy, d0..d4 = k1 k2 p1 p2 k3).
TUM_CALIBRATIONS: dict[int, tuple[float, float, float, float, tuple[float, ...]]] = {
    1: (517.3, 516.5, 318.6, 255.3, (0.2624, -0.9531, -0.0054, 0.0026, 1.1633)),
    2: (520.9, 521.0, 325.1, 249.7, (0.2312, -0.7849, -0.0033, -0.0001, 0.9172)),
    3: (535.4, 539.2, 320.1, 247.6, ()),
}

_KITTI_CAMERAS = ("image_0", "image_2")
_CAMERA_YAML_NAMES = ("calib.yaml", "camera_info.yaml")
_TIMES_NAMES = ("times.txt", "timestamps.txt")


# ====================================================================== small helpers
def natural_sort_key(name: str) -> list:
    """Sort key that orders ``img2.png`` before ``img10.png`` (digit runs compare as numbers)."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def read_image(path: PathLike) -> np.ndarray:
    """Read one image file as ``cv2.imread(path, IMREAD_UNCHANGED)`` would.

    Returns HxW grey or HxWx3 BGR (uint8, or uint16 for 16-bit files); an alpha channel is
    dropped. Raises :class:`IOError` naming the file when it is missing or cannot be decoded.
    """
    path = Path(path)
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        why = "file does not exist" if not path.exists() else "OpenCV could not decode it"
        raise IOError(f"cannot read image {path}: {why}")
    if img.ndim == 3:
        if img.shape[2] == 4:
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
        elif img.shape[2] == 1:
            img = img[:, :, 0]
        elif img.shape[2] == 2:  # grey + alpha
            img = np.ascontiguousarray(img[:, :, 0])
    return img


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file (reads that one frame)."""
    img = read_image(path)
    return int(img.shape[1]), int(img.shape[0])


def _file_loader(files: list[Path]) -> Callable[[int], np.ndarray]:
    """A ``load_image(i)`` reading ``files[i]`` on demand."""
    files = list(files)

    def load_image(i: int) -> np.ndarray:
        i = int(i)
        if not 0 <= i < len(files):
            raise IndexError(f"frame index {i} out of range [0, {len(files)})")
        return read_image(files[i])

    return load_image


def _read_float_lines(path: Path) -> np.ndarray:
    """Rows of floats from a whitespace-separated text file, ``#`` comments and blanks skipped."""
    rows = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            rows.append([float(v) for v in line.replace(",", " ").split()])
        except ValueError as exc:
            raise ValueError(f"{path}:{lineno}: cannot parse numbers from {line!r}") from exc
    if rows and any(len(r) != len(rows[0]) for r in rows):
        raise ValueError(f"{path}: rows have different numbers of values")
    return np.array(rows, dtype=np.float64).reshape(len(rows), -1) if rows else np.zeros((0, 0))


def _load_yaml(path: Path) -> dict:
    """Parse YAML, tolerating OpenCV's ``%YAML:1.0`` header and ``!!opencv-matrix`` tags."""
    text = path.read_text()
    text = "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("%YAML"))
    text = re.sub(r"!!opencv-[A-Za-z-]+", "", text)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"cannot parse YAML file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a YAML mapping at the top level")
    return data


def _yaml_matrix(value, name: str, path: Path) -> np.ndarray:
    """A ``{rows, cols, data}`` mapping or a plain list as a float array."""
    if isinstance(value, dict):
        data = np.asarray(value.get("data", []), dtype=np.float64)
        rows, cols = value.get("rows"), value.get("cols")
        if rows is not None and cols is not None and data.size == int(rows) * int(cols):
            return data.reshape(int(rows), int(cols))
        return data
    if value is None:
        raise ValueError(f"{path}: missing {name!r}")
    return np.asarray(value, dtype=np.float64)


def _pose_matrices(t: np.ndarray, q_xyzw: np.ndarray) -> np.ndarray:
    """(N,4,4) poses from translations (N,3) and quaternions (N,4, x y z w)."""
    n = len(t)
    T = np.tile(np.eye(4), (n, 1, 1))
    if n:
        T[:, :3, :3] = Rotation.from_quat(q_xyzw).as_matrix()
        T[:, :3, 3] = t
    return T


def _nan_poses(n: int) -> np.ndarray:
    return np.full((n, 4, 4), np.nan)


def associate_nearest(query: np.ndarray, ref: np.ndarray, max_dt: float) -> np.ndarray:
    """For each ``query`` stamp, the index of the nearest ``ref`` stamp within ``max_dt``.

    Returns an int array of length ``len(query)`` with ``-1`` where no reference stamp is within
    ``max_dt`` seconds. ``ref`` need not be sorted.
    """
    query = np.asarray(query, dtype=np.float64).reshape(-1)
    ref = np.asarray(ref, dtype=np.float64).reshape(-1)
    out = np.full(len(query), -1, dtype=np.int64)
    if len(ref) == 0 or len(query) == 0:
        return out
    order = np.argsort(ref, kind="stable")
    rs = ref[order]
    pos = np.clip(np.searchsorted(rs, query), 1, len(rs) - 1) if len(rs) > 1 else np.zeros(
        len(query), dtype=np.int64)
    lo = np.maximum(pos - 1, 0)
    hi = pos
    pick = np.where(np.abs(rs[lo] - query) <= np.abs(rs[hi] - query), lo, hi)
    ok = np.abs(rs[pick] - query) <= max_dt
    out[ok] = order[pick[ok]]
    return out


# ====================================================================== camera files
def load_camera_yaml(path: PathLike) -> Camera:
    """Read intrinsics from a YAML file.

    Understands the ROS ``camera_info`` layout (``image_width``, ``image_height``,
    ``camera_matrix.data``, ``distortion_model``, ``distortion_coefficients.data``), OpenCV's
    calibration output (``%YAML:1.0``, ``camera_matrix``/``distortion_coefficients`` as
    ``!!opencv-matrix``) and :meth:`Camera.to_dict` (``width height fx fy cx cy model dist``).
    """
    path = Path(path)
    d = _load_yaml(path)
    try:
        if "fx" in d:
            dist = np.asarray(d.get("dist", []) or [], dtype=np.float64)
            model = d.get("model", "radtan" if dist.size else "none")
            return Camera(int(d["width"]), int(d["height"]), float(d["fx"]), float(d["fy"]),
                          float(d["cx"]), float(d["cy"]), model, dist)
        K = _yaml_matrix(d.get("camera_matrix"), "camera_matrix", path)
        width = d.get("image_width", d.get("width"))
        height = d.get("image_height", d.get("height"))
        if width is None or height is None:
            raise ValueError("missing image_width / image_height")
        dist_raw = d.get("distortion_coefficients", d.get("D"))
        dist = (np.zeros(0) if dist_raw is None
                else _yaml_matrix(dist_raw, "distortion_coefficients", path).reshape(-1))
        model = str(d.get("distortion_model", "plumb_bob" if dist.size else "none"))
        if dist.size == 0 or not np.any(dist):
            model, dist = "none", np.zeros(0)
        return Camera.from_K(K, int(width), int(height), dist, model)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not a usable camera calibration: {exc}") from exc


# ====================================================================== image folder
def list_images(folder: PathLike) -> list[Path]:
    """Image files directly inside ``folder`` (see :data:`IMAGE_EXTENSIONS`), naturally sorted."""
    folder = Path(folder)
    files = [p for p in folder.iterdir()
             if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(files, key=lambda p: natural_sort_key(p.name))


def load_image_folder(path: PathLike, fps: float = 10.0, name: Optional[str] = None) -> Sequence:
    """A folder of image files as a sequence.

    Frames are the image files in natural sort order. Stamps come from ``times.txt`` or
    ``timestamps.txt`` (one float in seconds per line, first column used) when present, else
    ``i / fps``. Intrinsics come from ``calib.yaml`` or ``camera_info.yaml`` (see
    :func:`load_camera_yaml`) when present, else the camera is None.

    Raises:
        FileNotFoundError: ``path`` does not exist or is not a folder.
        ValueError: no image files, or a timestamp file whose length does not match.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    files = list_images(folder)
    if not files:
        raise ValueError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in {folder}")
    n = len(files)
    stamps_src = "fps"
    stamps = np.arange(n, dtype=np.float64) / float(fps)
    for tname in _TIMES_NAMES:
        tpath = folder / tname
        if tpath.is_file():
            vals = _read_float_lines(tpath)
            if vals.shape[0] != n:
                raise ValueError(f"{tpath} has {vals.shape[0]} stamps but {folder} holds "
                                 f"{n} images")
            stamps, stamps_src = vals[:, 0].copy(), str(tpath)
            break
    else:
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
    camera = None
    for cname in _CAMERA_YAML_NAMES:
        if (folder / cname).is_file():
            camera = load_camera_yaml(folder / cname)
            break
    return Sequence(
        name=name or folder.resolve().name,
        stamps=stamps,
        load_image=_file_loader(files),
        camera=camera,
        gt_poses=None,
        meta={"format": "images", "path": str(folder), "stamps_from": stamps_src,
              "files": [p.name for p in files]},
    )


# ====================================================================== video
class _VideoReader:
    """Lazy frame access to a video file with one cached ``cv2.VideoCapture``.

    Sequential reads just decode the next frame; a backwards jump or a long forward jump seeks
    with ``CAP_PROP_POS_FRAMES`` (slower, and only as exact as the container allows).
    """

    #: forward gaps up to this many frames are skipped with grab() rather than a seek
    MAX_GRAB_SKIP = 32

    def __init__(self, path: Path, n_frames: int) -> None:
        self.path = path
        self.n_frames = n_frames
        self._cap: Optional[cv2.VideoCapture] = None
        self._next = 0  # index of the frame the next read() returns
        self._lock = threading.Lock()

    def _open(self) -> cv2.VideoCapture:
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            raise IOError(f"cannot open video {self.path}")
        self._next = 0
        return cap

    def __call__(self, i: int) -> np.ndarray:
        i = int(i)
        if not 0 <= i < self.n_frames:
            raise IndexError(f"frame index {i} out of range [0, {self.n_frames})")
        with self._lock:
            if self._cap is None:
                self._cap = self._open()
            cap = self._cap
            if i != self._next:
                if self._next < i <= self._next + self.MAX_GRAB_SKIP:
                    while self._next < i:
                        if not cap.grab():
                            break
                        self._next += 1
                elif i == 0:
                    cap.release()
                    self._cap = cap = self._open()
                else:
                    cap.set(cv2.CAP_PROP_POS_FRAMES, i)
                    self._next = i
            ok, frame = cap.read() if self._next == i else (False, None)
            if not ok or frame is None:
                # leave the capture in a known state for the next call
                cap.release()
                self._cap = None
                raise IOError(f"cannot read frame {i} of video {self.path}")
            self._next = i + 1
            return frame

    def close(self) -> None:
        with self._lock:
            if self._cap is not None:
                self._cap.release()
                self._cap = None


def load_video(path: PathLike, fps: float = 10.0, exact_stamps: bool = False,
               name: Optional[str] = None) -> Sequence:
    """A video file as a sequence, decoded lazily through one cached ``cv2.VideoCapture``.

    By default the frame count and frame rate come from the container (``CAP_PROP_FRAME_COUNT``,
    ``CAP_PROP_FPS``; ``fps`` is the fallback when the container has none) and stamps are
    ``i / fps``. With ``exact_stamps=True``, or when the container reports no frame count, the
    file is scanned once with ``grab()`` (no frames kept) and stamps are the
    ``CAP_PROP_POS_MSEC`` of each frame, which handles variable frame rates. Images are BGR
    uint8 HxWx3 as OpenCV decodes them. Reading frames in order is fast; random access seeks.

    Raises:
        FileNotFoundError: the file does not exist.
        IOError: OpenCV cannot open the file.
        ValueError: the video has no frames.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video file not found: {path}")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise IOError(f"cannot open video {path} with OpenCV (codec or backend missing?)")
    try:
        c_fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        c_count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        use_fps = c_fps if np.isfinite(c_fps) and 0 < c_fps < 1000 else float(fps)
        if not use_fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if exact_stamps or c_count <= 0:
            ms = []
            while cap.grab():
                ms.append(float(cap.get(cv2.CAP_PROP_POS_MSEC)))
            n = len(ms)
            stamps = np.asarray(ms, dtype=np.float64) / 1000.0
            # Some backends report 0 (or garbage) throughout: fall back to frame / fps.
            if n > 1 and (not np.all(np.isfinite(stamps)) or np.any(np.diff(stamps) <= 0)):
                stamps = np.arange(n, dtype=np.float64) / use_fps
                stamps_src = "frame/fps"
            else:
                stamps_src = "CAP_PROP_POS_MSEC"
        else:
            n = c_count
            stamps = np.arange(n, dtype=np.float64) / use_fps
            stamps_src = "frame/fps"
    finally:
        cap.release()
    if n == 0:
        raise ValueError(f"video {path} contains no frames")
    reader = _VideoReader(path, n)
    return Sequence(
        name=name or path.stem,
        stamps=stamps,
        load_image=reader,
        camera=None,
        gt_poses=None,
        meta={"format": "video", "path": str(path), "fps": use_fps, "width": width,
              "height": height, "stamps_from": stamps_src, "reader": reader},
    )


# ====================================================================== KITTI
def _read_kitti_calib(path: Path) -> dict[str, np.ndarray]:
    calib: dict[str, np.ndarray] = {}
    for line in path.read_text().splitlines():
        if ":" not in line:
            continue
        key, _, vals = line.partition(":")
        try:
            calib[key.strip()] = np.array([float(v) for v in vals.split()], dtype=np.float64)
        except ValueError:
            continue
    return calib


def _index_rows(rows: np.ndarray, frame_ids: np.ndarray, what: str, path: Path) -> np.ndarray:
    """Pick the rows of a per-frame KITTI file for the frames present.

    When the file has one row per image, rows are taken in order; otherwise the frame number in
    the image file name (``000123.png`` -> row 123) selects the row.
    """
    n = len(frame_ids)
    if rows.shape[0] == n:
        return rows
    if n and frame_ids.min() >= 0 and frame_ids.max() < rows.shape[0]:
        return rows[frame_ids]
    raise ValueError(f"{path} has {rows.shape[0]} {what} rows, which does not fit the {n} "
                     f"images (frame numbers {frame_ids.min()}..{frame_ids.max()})")


def _kitti_poses(rows: np.ndarray) -> np.ndarray:
    """(N,4,4) poses from KITTI rows of 12 values (row-major 3x4)."""
    poses = np.tile(np.eye(4), (len(rows), 1, 1))
    poses[:, :3, :4] = np.asarray(rows, dtype=np.float64).reshape(-1, 3, 4)
    return poses


def load_kitti(path: PathLike, camera: str = "image_0",
               poses_path: Optional[PathLike] = None) -> Sequence:
    """A KITTI odometry sequence folder (``image_0/`` or ``image_2/``, ``times.txt``,
    ``calib.txt``, optional ``poses.txt``).

    Intrinsics come from the ``P0:`` line of ``calib.txt`` (``P2:`` for ``image_2``):
    ``fx = P[0]``, ``cx = P[2]``, ``fy = P[5]``, ``cy = P[6]``; the images are rectified, so the
    model is ``"none"``. Ground truth is read from ``poses_path`` or ``poses.txt`` in the folder
    (12 values per line, row-major 3x4 ``T_world_cam0``). For ``image_2`` the poses are moved
    to camera 2 with the baseline encoded in ``P2``. When a per-frame file has more rows than
    there are images, the number in each image name selects its row.

    Raises:
        FileNotFoundError: the folder, the image folder, ``times.txt`` or ``calib.txt`` is missing.
        ValueError: files that do not fit each other.
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"KITTI sequence folder not found: {root}")
    if camera not in _KITTI_CAMERAS:
        raise ValueError(f"camera must be one of {_KITTI_CAMERAS}, got {camera!r}")
    img_dir = root / camera
    if not img_dir.is_dir():
        raise FileNotFoundError(f"KITTI image folder not found: {img_dir}")
    files = [p for p in list_images(img_dir) if p.suffix.lower() == ".png"]
    if not files:
        raise ValueError(f"no PNG images in {img_dir}")
    n = len(files)
    try:
        frame_ids = np.array([int(p.stem) for p in files], dtype=np.int64)
    except ValueError:
        frame_ids = np.arange(n, dtype=np.int64)

    times_path = root / "times.txt"
    if not times_path.is_file():
        raise FileNotFoundError(f"KITTI times file not found: {times_path}")
    times = _read_float_lines(times_path)
    stamps = _index_rows(times, frame_ids, "timestamp", times_path)[:, 0].copy()

    calib_path = root / "calib.txt"
    if not calib_path.is_file():
        raise FileNotFoundError(f"KITTI calibration file not found: {calib_path}")
    pkey = "P" + camera[-1]
    calib = _read_kitti_calib(calib_path)
    if pkey not in calib or calib[pkey].size != 12:
        raise ValueError(f"{calib_path}: no 12-value {pkey}: line")
    P = calib[pkey].reshape(3, 4)
    width, height = _image_size(files[0])
    cam = Camera(width, height, float(P[0, 0]), float(P[1, 1]), float(P[0, 2]), float(P[1, 2]),
                 "none")

    gt = None
    ppath = Path(poses_path) if poses_path is not None else root / "poses.txt"
    if poses_path is not None and not ppath.is_file():
        raise FileNotFoundError(f"KITTI poses file not found: {ppath}")
    if ppath.is_file():
        rows = _read_float_lines(ppath)
        if rows.shape[1] != 12:
            raise ValueError(f"{ppath}: expected 12 values per line, got {rows.shape[1]}")
        gt = _kitti_poses(_index_rows(rows, frame_ids, "pose", ppath))
        if camera != "image_0":
            # P_k = K [I | t_k]: x_camk = x_cam0 + t_k, so T_cam0_camk = [I | -t_k].
            t_k = np.linalg.solve(P[:, :3], P[:, 3])
            T_c0_ck = np.eye(4)
            T_c0_ck[:3, 3] = -t_k
            gt = gt @ T_c0_ck
    return Sequence(
        name=root.resolve().name,
        stamps=stamps,
        load_image=_file_loader(files),
        camera=cam,
        gt_poses=gt,
        meta={"format": "kitti", "path": str(root), "camera": camera,
              "frame_ids": frame_ids, "poses_file": str(ppath) if gt is not None else None},
    )


# ====================================================================== TUM RGB-D
def tum_camera_from_name(name: str, width: int = 640, height: int = 480) -> Optional[Camera]:
    """The published TUM RGB-D RGB calibration for a sequence name containing ``freiburg1``,
    ``freiburg2`` or ``freiburg3`` (or ``fr1``/``fr2``/``fr3``); None when none matches."""
    m = re.search(r"(?:freiburg|(?<![a-z])fr)_?([123])(?!\d)", name.lower())
    if not m:
        return None
    fx, fy, cx, cy, d = TUM_CALIBRATIONS[int(m.group(1))]
    return Camera(width, height, fx, fy, cx, cy, "radtan" if d else "none", np.array(d))


def _read_tum_list(path: Path) -> tuple[np.ndarray, list[str]]:
    """``timestamp filename`` rows of a TUM list file (``rgb.txt``, ``depth.txt``)."""
    stamps, names = [], []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) < 2:
            raise ValueError(f"{path}:{lineno}: expected 'timestamp filename', got {line!r}")
        try:
            stamps.append(float(parts[0]))
        except ValueError as exc:
            raise ValueError(f"{path}:{lineno}: bad timestamp {parts[0]!r}") from exc
        names.append(parts[1])
    return np.array(stamps, dtype=np.float64), names


def load_tum(path: PathLike, max_dt: float = 0.02) -> Sequence:
    """A TUM RGB-D sequence folder (``rgb.txt``, ``rgb/*.png``, optional ``groundtruth.txt``).

    Frames are the RGB images listed in ``rgb.txt``, in file order. Each frame gets the
    ground-truth pose whose stamp is nearest to its own if within ``max_dt`` seconds, else NaN
    (``gt_poses`` is None without ``groundtruth.txt``). TUM ground truth is already the pose of
    the RGB camera's optical centre, ``T_world_cam``. Intrinsics are the published calibration
    picked from the folder name (``freiburg1/2/3``), else None. Depth images are ignored.

    Raises:
        FileNotFoundError: the folder or ``rgb.txt`` is missing.
        ValueError: ``rgb.txt`` lists no images or cannot be parsed.
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"TUM sequence folder not found: {root}")
    list_path = root / "rgb.txt"
    if not list_path.is_file():
        raise FileNotFoundError(f"TUM image list not found: {list_path}")
    stamps, names = _read_tum_list(list_path)
    if not names:
        raise ValueError(f"{list_path} lists no images")
    files = [root / nm for nm in names]
    gt = None
    gt_path = root / "groundtruth.txt"
    if gt_path.is_file():
        gt_stamps, gt_poses = load_tum_trajectory(gt_path)
        idx = associate_nearest(stamps, gt_stamps, max_dt)
        gt = _nan_poses(len(stamps))
        gt[idx >= 0] = gt_poses[idx[idx >= 0]]
    name = root.resolve().name
    camera = None
    if tum_camera_from_name(name) is not None:
        width, height = _image_size(files[0])
        camera = tum_camera_from_name(name, width, height)
    return Sequence(
        name=name,
        stamps=stamps,
        load_image=_file_loader(files),
        camera=camera,
        gt_poses=gt,
        meta={"format": "tum", "path": str(root), "max_dt": max_dt,
              "gt_file": str(gt_path) if gt is not None else None},
    )


def load_tum_trajectory(path: PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a TUM trajectory file (``t tx ty tz qx qy qz qw`` per line, ``#`` comments).

    Returns ``(stamps (N,), poses (N,4,4))`` with poses ``T_world_cam``.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: a line does not have 8 numbers.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"trajectory file not found: {path}")
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


# ====================================================================== EuRoC / ASL
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


def load_euroc_camera(sensor_yaml: PathLike) -> tuple[Camera, np.ndarray]:
    """Intrinsics and ``T_BS`` (sensor pose in the body frame, 4x4) from an ASL ``sensor.yaml``."""
    path = Path(sensor_yaml)
    d = _load_yaml(path)
    try:
        fu, fv, cu, cv = (float(v) for v in d["intrinsics"])
        width, height = (int(v) for v in d["resolution"])
        dist = np.asarray(d.get("distortion_coefficients", []) or [], dtype=np.float64)
        model = str(d.get("distortion_model", "radial-tangential" if dist.size else "none"))
        if dist.size == 0 or not np.any(dist):
            model, dist = "none", np.zeros(0)
        T_BS = (_yaml_matrix(d["T_BS"], "T_BS", path).reshape(4, 4) if "T_BS" in d
                else np.eye(4))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not a usable ASL camera description: {exc}") from exc
    return Camera(width, height, fu, fv, cu, cv, model, dist), T_BS


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


def load_euroc(path: PathLike, cam: str = "cam0", max_dt: float = 0.02) -> Sequence:
    """An EuRoC / ASL sequence folder (the one containing ``mav0/``, or ``mav0`` itself).

    Frames are the rows of ``mav0/<cam>/data.csv`` (ns stamp, file name under
    ``mav0/<cam>/data/``); stamps are seconds (ns * 1e-9, float64). Intrinsics, distortion
    (``radial-tangential`` -> ``"radtan"``, ``equidistant``) and ``T_BS`` come from
    ``mav0/<cam>/sensor.yaml``. Ground truth is read from ``groundtruth.csv`` at the sequence
    root, else ``mav0/state_groundtruth_estimate0/data.csv`` (``ns, px py pz, qw qx qy qz,
    ...``, body pose ``T_world_body``). The body track is associated with the image stamps by
    :func:`interpolate_poses` (exact ns match, else interpolation between the bracketing
    samples when both are within ``max_dt``, else NaN) and becomes the camera pose
    ``T_world_cam = T_world_body @ T_BS``.
    ``gt_poses`` is None when there is no ground-truth file.

    Raises:
        FileNotFoundError: the folder, ``data.csv`` or ``sensor.yaml`` is missing.
        ValueError: malformed files.
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"EuRoC sequence folder not found: {root}")
    mav0 = root if root.name == "mav0" and not (root / "mav0").is_dir() else root / "mav0"
    seq_root = mav0.parent
    cam_dir = mav0 / cam
    csv_path = cam_dir / "data.csv"
    if not csv_path.is_file():
        raise FileNotFoundError(f"EuRoC image list not found: {csv_path}")
    yaml_path = cam_dir / "sensor.yaml"
    if not yaml_path.is_file():
        raise FileNotFoundError(f"EuRoC camera description not found: {yaml_path}")
    ns, rest = _read_euroc_csv(csv_path)
    if len(ns) == 0:
        raise ValueError(f"{csv_path} lists no images")
    files = [cam_dir / "data" / (r[0] if r and r[0] else f"{t}.png") for t, r in zip(ns, rest)]
    camera, T_BS = load_euroc_camera(yaml_path)

    gt = None
    gt_file = None
    for cand in (seq_root / "groundtruth.csv",
                 mav0 / "state_groundtruth_estimate0" / "data.csv"):
        if cand.is_file():
            gt_file = cand
            break
    if gt_file is not None:
        g_ns, T_wb = load_euroc_groundtruth(gt_file)
        # interpolate the body track (what was measured), then move to the camera
        gt = interpolate_poses(ns, g_ns, T_wb, max_dt) @ T_BS
    return Sequence(
        name=seq_root.resolve().name,
        stamps=ns.astype(np.float64) * 1e-9,
        load_image=_file_loader(files),
        camera=camera,
        gt_poses=gt,
        meta={"format": "euroc", "path": str(seq_root), "cam": cam, "stamps_ns": ns,
              "T_BS": T_BS, "gt_file": str(gt_file) if gt_file else None, "max_dt": max_dt},
    )


# ====================================================================== calibration, trajectory
def load_kalibr_camchain(path: PathLike, cam: Optional[str] = None
                         ) -> tuple[Camera, Optional[np.ndarray], Optional[str]]:
    """One camera of a Kalibr ``camchain.yaml`` (``cam0: {camera_model: pinhole, intrinsics:
    [fu fv pu pv], distortion_model: radtan|equidistant, distortion_coeffs, resolution: [w h],
    T_cam_imu, rostopic}``).

    Returns ``(camera, T_imu_cam or None, rostopic or None)``; ``T_imu_cam`` is the inverse
    of ``T_cam_imu`` (the camera pose in the IMU/body frame, like EuRoC's ``T_BS``).
    ``cam`` picks the camera (default: the first ``camN`` key).

    Raises:
        ValueError: not a camchain, an unknown camera, or an unsupported camera model.
    """
    path = Path(path)
    d = _load_yaml(path)
    cams = sorted(k for k, v in d.items() if isinstance(v, dict) and "intrinsics" in v)
    if not cams:
        raise ValueError(f"{path}: no camN entries with intrinsics (not a Kalibr camchain)")
    key = cam or cams[0]
    if key not in d:
        raise ValueError(f"{path}: no camera {key!r}; cameras: {', '.join(cams)}")
    c = d[key]
    try:
        if str(c.get("camera_model", "pinhole")) != "pinhole":
            raise ValueError(f"camera_model {c.get('camera_model')!r} is not supported "
                             f"(pinhole only)")
        fu, fv, pu, pv = (float(v) for v in c["intrinsics"][:4])
        width, height = (int(v) for v in c["resolution"])
        dist = np.asarray(c.get("distortion_coeffs", []) or [], dtype=np.float64)
        model = str(c.get("distortion_model", "radtan" if dist.size else "none"))
        if dist.size == 0 or not np.any(dist):
            model, dist = "none", np.zeros(0)
        camera = Camera(width, height, fu, fv, pu, pv, model, dist)
        T_cam_imu = c.get("T_cam_imu")
        T_imu_cam = (np.linalg.inv(np.asarray(T_cam_imu, dtype=np.float64).reshape(4, 4))
                     if T_cam_imu is not None else None)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not a usable Kalibr camera {key!r}: {exc}") from exc
    topic = c.get("rostopic")
    return camera, T_imu_cam, str(topic) if topic else None


def load_calibration(path: PathLike, cam: Optional[str] = None
                     ) -> tuple[Camera, Optional[np.ndarray], Optional[str]]:
    """Intrinsics from any supported calibration file, detected from its content.

    Formats: a Kalibr camchain (:func:`load_kalibr_camchain`, ``cam`` picks the camera), an
    EuRoC / ASL ``sensor.yaml`` (:func:`load_euroc_camera`), or a ROS ``camera_info`` YAML /
    OpenCV calibration / :meth:`Camera.to_dict` file (:func:`load_camera_yaml`).

    Returns ``(camera, T_body_cam or None, image topic or None)``: the camera pose in the body
    (IMU) frame when the file gives it, and Kalibr's ``rostopic``.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: no known layout, or unusable values.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"calibration file not found: {path}")
    d = _load_yaml(path)
    if any(isinstance(v, dict) and "intrinsics" in v for v in d.values()):
        return load_kalibr_camchain(path, cam)
    if "intrinsics" in d and "resolution" in d:
        camera, T_BS = load_euroc_camera(path)
        return camera, T_BS, None
    return load_camera_yaml(path), None, None


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
    if not path.is_file():
        raise FileNotFoundError(f"trajectory file not found: {path}")
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


# ====================================================================== autodetection
def detect_format(path: PathLike) -> str:
    """The format :func:`open_sequence` would use for ``path``: ``"video"``, ``"kitti"``,
    ``"tum"``, ``"euroc"`` or ``"images"``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: an empty folder, a file that is not a video, or a folder with no recognised
            layout and no images.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"sequence path does not exist: {p}")
    if p.is_file():
        if p.suffix.lower() in VIDEO_EXTENSIONS:
            return "video"
        raise ValueError(f"{p} is a file but not a video ({', '.join(VIDEO_EXTENSIONS)}); "
                         f"pass a video or a sequence folder")
    if not any(p.iterdir()):
        raise ValueError(f"sequence folder is empty: {p}")
    if (p / "calib.txt").is_file() and any((p / c).is_dir() for c in _KITTI_CAMERAS):
        return "kitti"
    if (p / "rgb.txt").is_file():
        return "tum"
    if (p / "mav0").is_dir() or (p.name == "mav0" and (p / "cam0").is_dir()):
        return "euroc"
    if list_images(p):
        return "images"
    raise ValueError(
        f"unrecognised sequence layout in {p}: expected a video file "
        f"({', '.join(VIDEO_EXTENSIONS)}), a KITTI folder (calib.txt + image_0/ or image_2/), "
        f"a TUM RGB-D folder (rgb.txt), an EuRoC folder (mav0/) or a folder of images "
        f"({', '.join(IMAGE_EXTENSIONS)})"
    )


def open_sequence(path: PathLike, fps: float = 10.0) -> Sequence:
    """Open ``path`` as a :class:`Sequence`, detecting its format (see :func:`detect_format`).

    ``fps`` sets the stamps of image folders without a timestamp file and is the fallback frame
    rate of videos whose container has none.
    """
    fmt = detect_format(path)
    if fmt == "video":
        return load_video(path, fps=fps)
    if fmt == "kitti":
        p = Path(path)
        return load_kitti(p, "image_0" if (p / "image_0").is_dir() else "image_2")
    if fmt == "tum":
        return load_tum(path)
    if fmt == "euroc":
        return load_euroc(path)
    return load_image_folder(path, fps=fps)


__all__ = [
    "IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS", "TUM_CALIBRATIONS",
    "natural_sort_key", "read_image", "list_images", "associate_nearest", "interpolate_poses",
    "load_camera_yaml", "load_euroc_camera", "load_euroc_groundtruth", "load_kalibr_camchain",
    "load_calibration", "load_trajectory", "tum_camera_from_name",
    "load_image_folder", "load_video", "load_kitti", "load_tum", "load_euroc",
    "load_tum_trajectory", "write_tum_trajectory", "detect_format", "open_sequence",
]
