"""Mutual-nearest-neighbour descriptor matching in PyTorch (CPU or CUDA).

Float descriptors are compared by L2 distance (they are L2-normalised, so
``d^2 = 2 - 2 cos``); packed binary descriptors by Hamming distance, computed exactly as
``(bits - <a, b>) / 2`` on +-1 unpacked bits so that the same matrix product serves both.
"""

from __future__ import annotations

import numpy as np
import torch

from .config import MatcherConfig


class Matcher:
    """Mutual nearest neighbours with optional distance and ratio tests.

    Use :meth:`prepare` once per frame to turn its descriptors into a device tensor, then
    :meth:`match` any two prepared sets. Reusing the prepared reference descriptors saves the
    conversion on every frame.
    """

    def __init__(self, conf: MatcherConfig | None = None):
        self.conf = conf or MatcherConfig()
        self.device = torch.device(self.conf.device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"matcher.device={self.conf.device!r} but CUDA is not available")

    def prepare(self, descriptors: np.ndarray) -> torch.Tensor:
        """(N,D) float or (N,B) packed uint8 descriptors -> (N,D') float32 tensor on device.

        Binary descriptors become +-1 vectors of 8B entries.
        """
        desc = np.asarray(descriptors)
        if desc.ndim != 2:
            raise ValueError(f"descriptors must be (N,D), got shape {desc.shape}")
        if desc.dtype == np.uint8:
            bits = np.unpackbits(desc, axis=1).astype(np.float32)
            t = torch.from_numpy(bits * 2.0 - 1.0)
        else:
            t = torch.from_numpy(np.ascontiguousarray(desc, dtype=np.float32))
        return t.to(self.device)

    @torch.inference_mode()
    def match(self, desc0: torch.Tensor, desc1: torch.Tensor, binary: bool
              ) -> tuple[np.ndarray, np.ndarray]:
        """Mutual nearest neighbours between two prepared descriptor sets.

        Args:
            desc0, desc1: tensors from :meth:`prepare` (same dimension).
            binary: True for Hamming distance (prepared from packed uint8).

        Returns:
            matches: (M,2) int64 index pairs ``(i0, i1)``, sorted by ``i0``.
            distances: (M,) float32: L2 distance, or Hamming distance in bits when binary.
        """
        n0, n1 = desc0.shape[0], desc1.shape[0]
        if n0 == 0 or n1 == 0:
            return np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.float32)
        if desc0.shape[1] != desc1.shape[1]:
            raise ValueError(f"descriptor sizes differ: {desc0.shape[1]} vs {desc1.shape[1]}")
        sim = desc0 @ desc1.T  # larger is closer in both cases
        use_ratio = self.conf.ratio < 1.0 and n1 >= 2
        if use_ratio:
            top, nn01 = sim.topk(2, dim=1)
            best = top[:, 0]
        else:
            best, nn01 = sim.max(dim=1)
            nn01 = nn01[:, None]
        nn10 = sim.argmax(dim=0)
        i0 = torch.arange(n0, device=sim.device)
        mutual = nn10[nn01[:, 0]] == i0
        dist = self._distance(best, desc0.shape[1], binary)
        if binary and self.conf.max_hamming > 0:
            mutual &= dist <= self.conf.max_hamming
        if not binary and self.conf.max_distance > 0:
            mutual &= dist <= self.conf.max_distance
        if use_ratio:
            second = self._distance(top[:, 1], desc0.shape[1], binary)
            mutual &= dist < self.conf.ratio * second
        keep = torch.nonzero(mutual).squeeze(1)
        matches = torch.stack([keep, nn01[keep, 0]], 1)
        return matches.cpu().numpy().astype(np.int64), dist[keep].cpu().numpy().astype(np.float32)

    @staticmethod
    def _distance(sim: torch.Tensor, dim: int, binary: bool) -> torch.Tensor:
        if binary:
            return (dim - sim) * 0.5
        return torch.sqrt(torch.clamp(2.0 - 2.0 * sim, min=0.0))
