"""The data contract between sequence sources (datasets, the synthetic generator, bags) and the
front-end: a :class:`Sequence` of timestamped images, optional intrinsics and optional ground
truth."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional

import numpy as np

from .camera import Camera


@dataclass
class Sequence:
    """An ordered, lazily loaded image sequence.

    Attributes:
        name: short name used in output file names.
        stamps: (N,) float64 timestamps in seconds, non-decreasing.
        load_image: ``load_image(i) -> np.ndarray`` returns frame ``i`` (uint8, HxW grey or
            HxWx3 BGR). Frames are loaded on demand, so long sequences never sit in memory.
        camera: intrinsics, or None when unknown (the front-end then runs homography-only).
        gt_poses: optional (N,4,4) float64 ground-truth camera-to-world poses ``T_world_cam``
            aligned with ``stamps``; rows of NaN where no ground truth exists for a frame.
        meta: free-form information about the source (path, format, ...).
    """

    name: str
    stamps: np.ndarray
    load_image: Callable[[int], np.ndarray]
    camera: Optional[Camera] = None
    gt_poses: Optional[np.ndarray] = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.stamps = np.asarray(self.stamps, dtype=np.float64).reshape(-1)
        if self.gt_poses is not None:
            self.gt_poses = np.asarray(self.gt_poses, dtype=np.float64)
            if self.gt_poses.shape != (len(self.stamps), 4, 4):
                raise ValueError(f"gt_poses must be ({len(self.stamps)},4,4), "
                                 f"got {self.gt_poses.shape}")

    def __len__(self) -> int:
        return len(self.stamps)

    def __iter__(self) -> Iterator[tuple[float, np.ndarray]]:
        """Yield ``(stamp, image)`` in order."""
        for i in range(len(self)):
            yield float(self.stamps[i]), self.load_image(i)

    def subset(self, start: int = 0, stop: Optional[int] = None, step: int = 1) -> "Sequence":
        """A view on frames ``start:stop:step`` (images still loaded lazily)."""
        idx = np.arange(len(self))[start:stop:step]
        return Sequence(
            name=self.name,
            stamps=self.stamps[idx],
            load_image=lambda i: self.load_image(int(idx[i])),
            camera=self.camera,
            gt_poses=None if self.gt_poses is None else self.gt_poses[idx],
            meta=dict(self.meta),
        )
