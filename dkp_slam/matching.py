"""Mutual-nearest-neighbour descriptor matching in PyTorch (CPU or CUDA).

Float descriptors are compared by L2 distance (they are L2-normalised, so
``d^2 = 2 - 2 cos``); packed binary descriptors by Hamming distance, computed exactly as
``(bits - <a, b>) / 2`` on +-1 unpacked bits so that the same matrix product serves both. On
CPU the binary product runs in int8 with int32 accumulation (``torch._int_mm``: exact, and
several times faster than float32 where the CPU has VNNI); float descriptors stay float32.
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
        # Reused similarity buffer: a fresh multi-MB allocation per frame costs page faults
        # that, on CPU, take as long as the product itself.
        self._sim = torch.empty(0, device=self.device)
        self._sim_int = torch.empty(0, dtype=torch.int32)
        self._int8 = hasattr(torch, "_int_mm")  # int8 x int8 -> int32 matrix product (CPU)

    def prepare(self, descriptors: np.ndarray) -> torch.Tensor:
        """(N,D) float or (N,B) packed uint8 descriptors -> (N,D') tensor on device.

        Float descriptors become float32; binary descriptors +-1 vectors of 8B entries, int8
        on CPU (exact int32 products), float32 on CUDA.
        """
        desc = np.asarray(descriptors)
        if desc.ndim != 2:
            raise ValueError(f"descriptors must be (N,D), got shape {desc.shape}")
        if desc.dtype == np.uint8:
            bits = np.unpackbits(desc, axis=1)
            if self.device.type == "cpu" and self._int8:
                return torch.from_numpy((bits.view(np.int8) * 2 - 1).astype(np.int8))
            t = torch.from_numpy(bits.astype(np.float32) * 2.0 - 1.0)
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
        sim = self._similarity(desc0, desc1)  # larger is closer in both cases
        if sim.device.type == "cpu":
            # Zero-copy view: numpy's row/column reductions are several times faster than
            # torch's on CPU; the product itself stays on the configured device.
            s = sim.numpy()
            nn01 = s.argmax(axis=1)
            best = s[np.arange(n0), nn01]
            col_best = s.max(axis=0)
            second = (np.partition(s, n1 - 2, axis=1)[:, n1 - 2]
                      if self.conf.ratio < 1.0 and n1 >= 2 else None)
        else:
            best_t, nn01_t = sim.max(dim=1)
            best, nn01 = best_t.cpu().numpy(), nn01_t.cpu().numpy()
            col_best = sim.amax(dim=0).cpu().numpy()
            second = (sim.topk(2, dim=1)[0][:, 1].cpu().numpy()
                      if self.conf.ratio < 1.0 and n1 >= 2 else None)
        # Mutual: row i's best column j has no better row. Ties keep the first row, exactly as
        # comparing against the column argmax would.
        rows = np.flatnonzero(best >= col_best[nn01])
        _, first = np.unique(nn01[rows], return_index=True)
        rows = np.sort(rows[first])
        dim = desc0.shape[1]
        dist = self._distance(best[rows], dim, binary)
        keep = np.ones(len(rows), dtype=bool)
        if binary and self.conf.max_hamming > 0:
            keep &= dist <= self.conf.max_hamming
        if not binary and self.conf.max_distance > 0:
            keep &= dist <= self.conf.max_distance
        if second is not None:
            keep &= dist < self.conf.ratio * self._distance(second[rows], dim, binary)
        rows = rows[keep]
        return (np.stack([rows, nn01[rows]], 1).astype(np.int64),
                dist[keep].astype(np.float32))

    def _similarity(self, desc0: torch.Tensor, desc1: torch.Tensor) -> torch.Tensor:
        """(N0,N1) ``desc0 @ desc1.T`` into a reused buffer: int32 for int8 (binary, CPU)
        descriptors, float32 otherwise."""
        n0, n1 = desc0.shape[0], desc1.shape[0]
        if desc0.dtype == torch.int8:
            if self._sim_int.numel() < n0 * n1:
                self._sim_int = torch.empty(n0 * n1, dtype=torch.int32)
            sim = self._sim_int[: n0 * n1].view(n0, n1)
            try:
                return torch._int_mm(desc0, desc1.T, out=sim)
            except RuntimeError:  # a build without the CPU int8 kernel: exact in float too
                self._int8 = False
                desc0, desc1 = desc0.float(), desc1.float()
        if self._sim.numel() < n0 * n1:
            self._sim = torch.empty(n0 * n1, device=self.device)
        sim = self._sim[: n0 * n1].view(n0, n1)
        return torch.mm(desc0, desc1.T, out=sim)

    @torch.inference_mode()
    def distance_matrix(self, desc0: torch.Tensor, desc1: torch.Tensor, binary: bool
                        ) -> np.ndarray:
        """(N0,N1) float32 distances between prepared sets: Hamming bits or L2."""
        sim = self._similarity(desc0, desc1).cpu().numpy().astype(np.float64)
        return self._distance(sim, desc0.shape[1], binary).astype(np.float32)

    @staticmethod
    def _distance(sim: np.ndarray, dim: int, binary: bool) -> np.ndarray:
        """Similarity -> Hamming bits (binary) or L2 distance (unit float descriptors)."""
        if binary:
            return (dim - sim) * 0.5
        return np.sqrt(np.clip(2.0 - 2.0 * sim, 0.0, None))


def descriptor_distances(desc0: np.ndarray, desc1: np.ndarray) -> np.ndarray:
    """(N0,N1) float32 distances between raw descriptor sets, as :meth:`Matcher.match` reports
    them: Hamming bits for packed uint8 descriptors, L2 for float ones."""
    d0, d1 = np.asarray(desc0), np.asarray(desc1)
    if len(d0) == 0 or len(d1) == 0:
        return np.zeros((len(d0), len(d1)), dtype=np.float32)
    m = Matcher()
    return m.distance_matrix(m.prepare(d0), m.prepare(d1), d0.dtype == np.uint8)
