"""The data contract between sequence sources (datasets, the synthetic generator, bags) and the
front-end: a :class:`Sequence` of timestamped images, optional intrinsics and optional ground
truth, and the more general :class:`FrameSource` stream that the runner consumes (a
:class:`Sequence` is one; a rosbag read message by message is another, see
:mod:`dkp_slam.bags.eval`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional, Protocol

import numpy as np

from .camera import Camera
from .records import FrameRecord


@dataclass
class Frame:
    """One frame of a :class:`FrameSource`.

    Attributes:
        index: position of the frame in its source (0-based; frames the source itself rejects
            still take a position, so indices may have gaps in the processed output).
        stamp: image time in seconds.
        load: ``load() -> (image, channel_order)`` returns the pixels (``"bgr"`` or ``"rgb"``
            order for colour images); raises :class:`~dkp_slam.image.ImageError` or
            :class:`OSError` with the reason when the frame is unusable (the runner then counts
            it as skipped).
        restart: why the tracker must restart before this frame (a jump back in time, see
            :mod:`dkp_slam.timeline`); empty for a frame that continues the sequence.
    """

    index: int
    stamp: float
    load: Callable[[], tuple[np.ndarray, str]]
    restart: str = ""


class FrameSource(Protocol):
    """A stream of frames for :func:`dkp_slam.runner.run_sequence`.

    Attributes:
        name: short name used in output file names.
        camera: intrinsics, or None (homography-only).
    """

    name: str
    camera: Optional[Camera]

    def __len__(self) -> int:
        """The number of frames :meth:`frames` is expected to yield (progress, annotation)."""

    def frames(self) -> Iterator[Frame]:
        """Yield the frames in order; never holds more than the current frame in memory."""

    def ground_truth(self, records: list[FrameRecord]) -> Optional[np.ndarray]:
        """(len(records),4,4) ``T_world_cam`` for the processed frames (records carry
        ``sequence_index`` = :attr:`Frame.index` and ``stamp``), NaN rows where unknown; None
        without ground truth."""

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable facts about the input (``format``, ``path``, counters), read after
        :meth:`frames` is exhausted; written to the summary as ``input``."""


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

    def frames(self) -> Iterator[Frame]:
        """:class:`FrameSource` view: every frame, loaded when the runner asks for it."""
        for i in range(len(self)):
            yield Frame(i, float(self.stamps[i]), lambda i=i: (self.load_image(i), "bgr"))

    def ground_truth(self, records: list[FrameRecord]) -> Optional[np.ndarray]:
        """:class:`FrameSource` view: the rows of :attr:`gt_poses` of the processed frames."""
        if self.gt_poses is None or not records:
            return None
        return self.gt_poses[[r.sequence_index for r in records]]

    def describe(self) -> dict[str, Any]:
        """:class:`FrameSource` view: ``format``, ``path`` and the number of frames."""
        return {"format": str(self.meta.get("format", "")), "path": str(self.meta.get("path", "")),
                "frames": len(self)}

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

    def select(self, start: int = 0, step: int = 1, max_frames: int = 0) -> "Sequence":
        """The frames a command line asks for: every ``step``-th from ``start``, at most
        ``max_frames`` of them (0: all). A view that starts later or skips frames is named
        ``<name>_from<start>_step<step>`` so that its outputs never pass for the whole
        sequence's (the frame count is for the caller to add)."""
        if start < 0 or step < 1 or max_frames < 0:
            raise ValueError(f"frame selection needs start >= 0, step >= 1 and max_frames >= 0;"
                             f" got start {start}, step {step}, max_frames {max_frames}")
        view = self.subset(start, start + max_frames * step if max_frames else None, step)
        if start or step != 1:
            view.name = f"{self.name}_from{start}_step{step}"
        return view
