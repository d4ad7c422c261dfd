"""Training pairs: image crops warped by random homographies, with photometric changes.

:class:`HomographyPairs` turns any collection of unlabeled images -- photo datasets, frames
extracted from a recorded bag, a folder of video frames, or a video file itself -- into an
endless stream of self-supervised training pairs:

1. an image is read as grey, shrunk so that its longer side is at most ``resize_max``
   (optionally rescaled by a random factor), and enlarged if needed so that the crop fits;
2. ``image0`` is a random ``crop`` (H, W) of it (low-texture crops are redrawn a few times);
3. a random homography ``H_0_1`` (rotation, scale, perspective, translation; rejected unless
   both images keep ``min_overlap`` of each other, see
   :func:`dkp_slam.warps.sample_homography`) gives ``image1``: the *source image* warped
   so that ``image1(H_0_1 p) = image0(p)``. Because the whole source image is warped (not just
   the crop), ``image1`` is filled with real content, not black borders;
4. photometric changes (contrast, brightness, gamma, blur, Gaussian noise, JPEG re-encoding:
   :func:`dkp_slam.warps.photometric_augment`) are applied to ``image1`` (and, with
   ``photometric_strength0`` > 0, more mildly to ``image0``).

Every item is a function of ``(seed, index)`` only, so a run is reproducible whatever the
number of DataLoader workers, and the trainer resumes on exactly the pairs it would have seen.
The dataset is "infinite": any index >= 0 is valid; ``index // n_images`` selects an epoch
whose image order is a seeded permutation, so every image is used once per epoch.

Pixel convention (as everywhere in the project): the centre of the top-left pixel is (0, 0).
"""

from __future__ import annotations

import dataclasses
import glob
import logging
import math
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, Union

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ..bags.reader import (BAG_SUFFIXES, COMPRESSED_IMAGE_TYPE, IMAGE_TYPES, BagError, BagReader,
                           MessageError)
from ..settings import RUNTIME, increasing_pair, setting
from ..warps import HomographyConfig, photometric_augment, sample_homography
from ..datasets import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, natural_sort_key

PathLike = Union[str, Path]
log = logging.getLogger(__name__)

#: Defaults of the homography sampler (:class:`dkp_slam.warps.HomographyConfig`) as a dict.
HOMOGRAPHY_DEFAULTS: dict[str, Any] = dataclasses.asdict(HomographyConfig())


class DataError(ValueError):
    """No usable images, an unreadable source, or bad dataset options."""


def _sources(value: Any) -> Optional[str]:
    if isinstance(value, (str, Path)) and str(value):
        return None
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, (str, Path))
                                                          for v in value):
        return None
    return "give image folders, patterns or video files (a non-empty list)"


def _crop(value: Any) -> Optional[str]:
    if (isinstance(value, (list, tuple)) and len(value) == 2
            and all(isinstance(c, int) and c >= 16 and c % 8 == 0 for c in value)):
        return None
    return "must be [H, W], multiples of 8 and >= 16"


@dataclass
class DataConfig:
    """The training pairs (the ``data:`` section of a training config; :class:`HomographyPairs`
    and the DataLoader)."""

    sources: list = setting(["../shared/data/train/bsds500/train",
                             "../shared/data/train/urban100"],
                            "image folders, glob patterns, image or video files",
                            check=_sources)
    recursive: bool = setting(False, "also take the images of sub-folders")
    video_step: int = setting(5, "every n-th frame of a video or of a bag's image topic",
                              range=(1, 1000000))
    bag_topic: str = setting("", "image topic of bag sources (sensor_msgs/Image or "
                             "CompressedImage; '' = the bag's only image topic)")
    crop: list = setting([240, 320], "[H, W] of the pairs (multiples of 8)", check=_crop)
    resize_max: int = setting(640, "shrink each image so that its longer side is at most this "
                              "(0 = never)", range=(0, 100000))
    scale_jitter: list = setting([1.0, 1.0], "[lo, hi] of a further log-uniform rescaling",
                                 check=increasing_pair)
    homography: HomographyConfig = field(default_factory=HomographyConfig)
    photometric_strength: float = setting(1.0, "strength of the photometric changes of image1 "
                                          "(0 = none)", range=(0.0, 10.0))
    photometric_strength0: float = setting(0.0, "the same for image0", range=(0.0, 10.0))
    min_std: float = setting(8.0, "crops with a lower grey-level standard deviation are redrawn",
                             range=(0.0, 255.0))
    cache_mb: int = setting(512, "decoded image files kept in memory per data-loading process, "
                            "in MiB (0 = decode every time; video frames are never kept)",
                            range=(0, 1000000), policy=RUNTIME)
    num_workers: int = setting(2, "DataLoader worker processes (0 = load in the main process)",
                               range=(0, 256), policy=RUNTIME)


# ====================================================================== sources
def _is_glob(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")


def collect_sources(sources: Union[PathLike, Iterable[PathLike]], recursive: bool = False,
                    video_step: int = 5, bag_topic: str = "") -> list[tuple[str, int]]:
    """Expand folders, glob patterns, image files, video files and bags into training frames.

    Args:
        sources: one entry or a list; each is a folder (its images; sub-folders too when
            ``recursive``), a glob pattern (``frames/**/*.png``; ``**`` recurses), an image
            file, a video file (see :data:`dkp_slam.datasets.VIDEO_EXTENSIONS`) or a recorded
            bag (a rosbag2 folder with ``metadata.yaml``, a ``.mcap`` / ``.db3`` file, or a
            ROS 1 ``.bag``; read with ``rosbags``, no ROS install needed).
        recursive: whether folders are searched recursively.
        video_step: use every ``video_step``-th frame of a video file or of a bag's topic.
        bag_topic: the image topic of bags (``sensor_msgs/Image``, raw, or
            ``CompressedImage`` JPEG/PNG); empty: the bag's only image topic.

    Returns:
        ``(path, frame)`` entries, ``frame = -1`` for image files, the frame number of a video
        and, for a bag, ``("<bag>::<topic>", receive time in ns)``; in a stable order (sources
        in the order given, files naturally sorted within each), duplicates removed.

    Raises:
        DataError: a source does not exist, a folder/pattern matches no image, or a bag cannot
            be read or has no (or several) image topics.
    """
    if isinstance(sources, (str, Path)):
        sources = [sources]
    entries: list[tuple[str, int]] = []
    for src in sources:
        src = str(src)
        path = Path(src).expanduser()
        if not _is_glob(src) and _is_bag(path):
            entries.extend(_bag_entries(path, bag_topic, max(video_step, 1)))
            continue
        if _is_glob(src):
            files = [Path(p) for p in glob.glob(str(path), recursive=True)]
            files = [p for p in files
                     if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS + VIDEO_EXTENSIONS]
            if not files:
                raise DataError(f"no image matches the pattern {src!r}")
        elif path.is_dir():
            it = path.rglob("*") if recursive else path.iterdir()
            files = [p for p in it if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
            if not files:
                raise DataError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in folder {src}"
                                + ("" if recursive else " (sub-folders are not searched; "
                                   "use data.recursive: true or a pattern like DIR/**/*.png)"))
        elif path.is_file():
            if path.suffix.lower() not in IMAGE_EXTENSIONS + VIDEO_EXTENSIONS:
                raise DataError(f"not an image or video file: {src}")
            files = [path]
        else:
            raise DataError(f"training data not found: {src}")
        for f in sorted(files, key=lambda p: natural_sort_key(str(p))):
            if f.suffix.lower() in VIDEO_EXTENSIONS:
                entries.extend((str(f), k) for k in range(0, _video_frames(f), max(video_step, 1)))
            else:
                entries.append((str(f), -1))
    seen: set[tuple[str, int]] = set()
    unique = [e for e in entries if not (e in seen or seen.add(e))]
    if not unique:
        raise DataError(f"no training images in {list(map(str, sources))}")
    return unique


def _video_frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise DataError(f"cannot open video {path}")
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        cap.release()
    if n <= 0:
        raise DataError(f"video {path} reports no frame count; extract its frames to a folder")
    return n


#: Separates a bag's path from its image topic in a training entry.
BAG_SEPARATOR = "::"
_open_bags: dict[tuple[int, str], Any] = {}


def _is_bag(path: Path) -> bool:
    if path.is_dir():
        return (path / "metadata.yaml").is_file()
    return path.is_file() and path.suffix.lower() in BAG_SUFFIXES


def _bag_entries(path: Path, topic: str, step: int) -> list[tuple[str, int]]:
    """Every ``step``-th message of the bag's image topic as ``("<bag>::<topic>", time_ns)``."""
    from ..bags.eval import detect_image_topic

    try:
        reader = BagReader(path)
    except ImportError as err:
        raise DataError(f"reading the bag {path} needs rosbags (pip install rosbags): "
                        f"{err}") from None
    except (BagError, FileNotFoundError) as err:
        raise DataError(str(err)) from None
    with reader:
        try:
            topic = topic or detect_image_topic(reader) or ""
            if topic:
                reader.require(topic, IMAGE_TYPES)
        except BagError as err:
            raise DataError(f"{err} (for training: data.bag_topic names the topic)") from None
        if not topic:
            raise DataError(f"bag {path} has no image topic (sensor_msgs/Image or "
                            f"CompressedImage)")
        stamps = [raw.time_ns for raw in reader.messages([topic])]
        if reader.read_errors:
            log.warning("bag %s ends early (%s); using the %d messages before",
                        path, reader.read_errors[0], len(stamps))
    if not stamps:
        raise DataError(f"bag {path}: topic {topic} has no messages")
    key = f"{path}{BAG_SEPARATOR}{topic}"
    return [(key, t) for t in stamps[::step]]


def _read_bag_frame(entry: str, time_ns: int) -> np.ndarray:
    """Grey uint8 image of the message at ``time_ns`` of ``"<bag>::<topic>"`` (one reader per
    bag and process; DataLoader workers open their own)."""
    from ..image import ImageError, to_gray_uint8
    from ..messages.decode import compressed_to_array, image_to_array

    bag, topic = entry.rsplit(BAG_SEPARATOR, 1)
    key = (os.getpid(), bag)
    reader = _open_bags.get(key)
    if reader is None:
        try:
            reader = _open_bags[key] = BagReader(bag)
        except (OSError, ValueError) as err:
            raise IOError(f"cannot open bag {bag}: {err}") from None
    for raw in reader.messages([topic], start_ns=time_ns):
        try:
            msg = reader.deserialize(raw)
            decode = compressed_to_array if raw.msgtype == COMPRESSED_IMAGE_TYPE \
                else image_to_array
            return to_gray_uint8(*decode(msg))
        except (MessageError, ImageError) as err:
            raise IOError(f"bag {bag}, {topic} at {time_ns} ns: {err}") from None
    raise IOError(f"bag {bag}: no {topic} message at {time_ns} ns"
                  + (f" ({reader.read_errors[-1]})" if reader.read_errors else ""))


def read_gray_frame(path: str, frame: int = -1) -> np.ndarray:
    """Grey uint8 image from an image file (``frame = -1``), one frame of a video file, or one
    message of a bag's image topic (``path = "<bag>::<topic>"``, ``frame`` its time in ns).

    16-bit images are scaled to 8 bits by their maximum (bag images: as the front-end converts
    them, :func:`dkp_slam.image.to_gray_uint8`); colour is converted with OpenCV's BGR
    weights. Raises ``IOError`` naming the file when it cannot be read.
    """
    if BAG_SEPARATOR in path and frame >= 0:
        return _read_bag_frame(path, frame)
    if frame < 0:
        img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        if img is None:
            raise IOError(f"cannot read training image {path}")
    else:
        cap = cv2.VideoCapture(path)
        try:
            if frame > 0:
                cap.set(cv2.CAP_PROP_POS_FRAMES, frame)
            ok, img = cap.read()
        finally:
            cap.release()
        if not ok or img is None:
            raise IOError(f"cannot read frame {frame} of video {path}")
    if img.ndim == 3:
        code = cv2.COLOR_BGRA2GRAY if img.shape[2] == 4 else cv2.COLOR_BGR2GRAY
        img = cv2.cvtColor(img, code) if img.shape[2] in (3, 4) else img[:, :, 0]
    if img.dtype != np.uint8:
        img = img.astype(np.float32)
        img = np.clip(img * (255.0 / max(float(img.max()), 1.0)), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(img)


# ====================================================================== geometry helpers
def translation(tx: float, ty: float) -> np.ndarray:
    return np.array([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]])


def homography_valid_mask(H_0_1: np.ndarray, shape0: tuple[int, int],
                          shape1: tuple[int, int]) -> np.ndarray:
    """(H1, W1) bool: pixels of image1 whose preimage ``H_0_1^-1 q`` lies inside image0
    (``-0.5 <= u < W0 - 0.5``, same for v), i.e. that show content of image0."""
    h1, w1 = shape1
    h0, w0 = shape0
    v, u = np.mgrid[0:h1, 0:w1].astype(np.float64)
    Hi = np.linalg.inv(H_0_1)
    x = Hi[0, 0] * u + Hi[0, 1] * v + Hi[0, 2]
    y = Hi[1, 0] * u + Hi[1, 1] * v + Hi[1, 2]
    z = Hi[2, 0] * u + Hi[2, 1] * v + Hi[2, 2]
    ok = z > 1e-12
    z = np.where(ok, z, 1.0)
    x, y = x / z, y / z
    return ok & (x >= -0.5) & (x < w0 - 0.5) & (y >= -0.5) & (y < h0 - 0.5)


# ====================================================================== dataset
class HomographyPairs(Dataset):
    """Self-supervised training pairs from unlabeled images (see the module docstring).

    Args:
        sources: folders, glob patterns, image files or video files (:func:`collect_sources`).
        crop: ``(H, W)`` of both images of a pair.
        seed: base seed; item ``i`` depends on ``(seed, i)`` only.
        length: value of ``len()`` (default: the number of images). Any index >= 0 works.
        resize_max: shrink each image so that its longer side is at most this (0 = never);
            large camera frames (e.g. 1280x720) otherwise give crops with little context.
        scale_jitter: ``(lo, hi)``: the (shrunk) image is further rescaled by a log-uniform
            factor in this range, but never below the size the crop needs.
        homography: options of :func:`~dkp_slam.warps.sample_homography`
            (:data:`HOMOGRAPHY_DEFAULTS`).
        photometric_strength: strength of the photometric changes of ``image1`` (0 = none).
        photometric_strength0: the same for ``image0`` (default 0: the clean crop).
        min_std: crops whose grey-level standard deviation is below this are redrawn (up to
            ``crop_tries`` times; the most textured draw is kept).
        recursive, video_step, bag_topic: see :func:`collect_sources`.
        cache_mb: decoded grey image files are kept in memory (per process: each DataLoader
            worker has its own) up to this many MiB, so that an image used again in a later
            epoch is not decoded again; it changes no pixel of any item.

    Items are dicts: ``image0``, ``image1``: (1, H, W) float32 in [0, 1]; ``H_0_1``: (3, 3)
    float32, maps pixel (u, v) of image0 to image1 (pixel-centre convention, ``H[2,2] = 1``);
    ``valid``: (1, H, W) float32, 1 where the image1 pixel shows content of image0;
    ``index``: the item index.
    """

    def __init__(self, sources: Union[PathLike, Sequence[PathLike]],
                 crop: Sequence[int] = (240, 320), seed: int = 0, length: Optional[int] = None,
                 resize_max: int = 640, scale_jitter: Sequence[float] = (1.0, 1.0),
                 homography: Optional[dict] = None, photometric_strength: float = 1.0,
                 photometric_strength0: float = 0.0, min_std: float = 8.0, crop_tries: int = 4,
                 recursive: bool = False, video_step: int = 5, cache_mb: int = 0,
                 bag_topic: str = ""):
        self.entries = collect_sources(sources, recursive=recursive, video_step=video_step,
                                       bag_topic=bag_topic)
        if len(crop) != 2 or min(int(c) for c in crop) < 16:
            raise DataError(f"crop must be (H, W) of at least 16 pixels, got {crop}")
        self.crop = (int(crop[0]), int(crop[1]))
        self.seed = int(seed)
        self.length = int(length) if length else len(self.entries)
        self.resize_max = int(resize_max or 0)
        lo, hi = (float(s) for s in scale_jitter)
        if not 0 < lo <= hi:
            raise DataError(f"scale_jitter must be 0 < lo <= hi, got {scale_jitter}")
        self.scale_jitter = (lo, hi)
        unknown = set(homography or {}) - set(HOMOGRAPHY_DEFAULTS)
        if unknown:
            raise DataError(f"unknown homography option(s) {sorted(unknown)}; "
                            f"known: {sorted(HOMOGRAPHY_DEFAULTS)}")
        self.homography = {**HOMOGRAPHY_DEFAULTS, **(homography or {})}
        self.homography["scale_range"] = tuple(float(s) for s in self.homography["scale_range"])
        self.photometric_strength = float(photometric_strength)
        self.photometric_strength0 = float(photometric_strength0)
        self.min_std = float(min_std)
        self.crop_tries = max(int(crop_tries), 1)
        self._bad: set[tuple[str, int]] = set()
        self.cache_bytes = int(cache_mb) * 2**20
        self._cache: dict[str, np.ndarray] = {}
        self._cached_bytes = 0

    def __len__(self) -> int:
        return self.length

    @property
    def num_images(self) -> int:
        return len(self.entries)

    def entry(self, index: int) -> tuple[str, int]:
        """The ``(path, frame)`` used by item ``index``."""
        n = len(self.entries)
        return self.entries[int(_epoch_order(self.seed, int(index) // n, n)[int(index) % n])]

    # ------------------------------------------------------------------ one item
    def _prepare(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Shrink to ``resize_max``, apply the scale jitter, make sure the crop fits."""
        h, w = img.shape
        ch, cw = self.crop
        f = 1.0
        if self.resize_max and max(h, w) > self.resize_max:
            f = self.resize_max / max(h, w)
        lo, hi = self.scale_jitter
        if hi > lo:
            f *= float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
        elif lo != 1.0:
            f *= lo
        f = max(f, ch / h, cw / w)
        if abs(f - 1.0) > 1e-9:
            nw, nh = max(int(math.ceil(w * f)), cw), max(int(math.ceil(h * f)), ch)
            interp = cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR
            img = cv2.resize(img, (nw, nh), interpolation=interp)
        return img

    def _read(self, index: int) -> np.ndarray:
        """The image of item ``index``; an unreadable file is reported once and replaced by
        the next images of the epoch order, so one bad frame does not stop a long run."""
        n = len(self.entries)
        for k in range(min(n, 16)):
            path, frame = self.entry(index + k)
            hit = self._cache.get(path) if frame < 0 else None
            if hit is not None:
                return hit.copy()
            try:
                img = read_gray_frame(path, frame)
                if frame < 0 and self._cached_bytes + img.nbytes <= self.cache_bytes:
                    self._cache[path] = img.copy()
                    self._cached_bytes += img.nbytes
                return img
            except IOError as exc:
                if (path, frame) not in self._bad:
                    self._bad.add((path, frame))
                    log.warning("%s; using another image", exc)
        raise IOError(f"{min(n, 16)} unreadable training images in a row (last: {path})")

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = int(index)
        if index < 0:
            raise IndexError(f"negative index {index}")
        rng = np.random.default_rng([self.seed, index])
        src = self._prepare(self._read(index), rng)
        ch, cw = self.crop
        hs, ws = src.shape
        best = None
        for _ in range(self.crop_tries):
            x0 = int(rng.integers(0, ws - cw + 1))
            y0 = int(rng.integers(0, hs - ch + 1))
            std = float(src[y0:y0 + ch, x0:x0 + cw].std())
            if best is None or std > best[0]:
                best = (std, x0, y0)
            if std >= self.min_std:
                break
        _, x0, y0 = best
        image0 = np.ascontiguousarray(src[y0:y0 + ch, x0:x0 + cw])
        H = sample_homography(rng, (ch, cw), **self.homography)
        # image1 = the source warped by H o T (T: source pixels -> crop pixels), so that it is
        # filled with real image content where the crop itself does not reach.
        M = H @ translation(-x0, -y0)
        image1 = cv2.warpPerspective(src, M, (cw, ch), flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_REFLECT_101)
        if self.photometric_strength > 0:
            image1 = photometric_augment(image1, rng, self.photometric_strength)
        if self.photometric_strength0 > 0:
            image0 = photometric_augment(image0, rng, self.photometric_strength0)
        valid = homography_valid_mask(H, (ch, cw), (ch, cw))
        return {
            "image0": torch.from_numpy(image0).float().div_(255.0)[None],
            "image1": torch.from_numpy(np.ascontiguousarray(image1)).float().div_(255.0)[None],
            "H_0_1": torch.from_numpy(H.astype(np.float32)),
            "valid": torch.from_numpy(valid.astype(np.float32))[None],
            "index": index,
        }


@lru_cache(maxsize=8)
def _epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """Seeded permutation of the ``n`` images for one epoch."""
    return np.random.default_rng([seed, epoch, 0x5EED]).permutation(n)


def worker_init(_worker_id: int) -> None:
    """DataLoader worker set-up: one OpenCV/torch thread each, and SIGINT/SIGTERM (Ctrl-C in
    a terminal, ``kill`` of the process group) left to the main process, which finishes the
    iteration and saves a checkpoint; it then shuts the workers down itself."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    cv2.setNumThreads(1)
    torch.set_num_threads(1)


__all__ = ["DataConfig", "HomographyPairs", "collect_sources", "read_gray_frame",
           "homography_valid_mask", "worker_init", "DataError", "HOMOGRAPHY_DEFAULTS"]
