"""Training on several processes with PyTorch's DistributedDataParallel (``torchrun``), so that
N processes compute what one process computes with the same global batch.

``torchrun --nproc-per-node N -m dkp_slam.cli train ...`` starts N ranks (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` / ``MASTER_PORT`` in the environment); gloo on
CPU, NCCL on CUDA. Each rank takes its slice of every global batch (``batch_size / N`` pairs:
rank r the pairs ``r * b ... (r + 1) * b - 1`` of the iteration's batch, which the sampler
draws by index, so the data are those of a single process). Three things keep the arithmetic
that of one process:

- **batch norm over the global batch**: :class:`GlobalBatchNorm2d` all-reduces each layer's
  sums and sums of squares (autograd passes through the reduction); PyTorch's
  ``SyncBatchNorm`` would do the same but runs on GPUs only;
- **the loss on the global batch**: every rank gathers all ranks' outputs (an all-gather that
  passes gradients back to their owners) and computes the same loss on the whole batch, with
  the same point-sampler state, as one process would;
- **gradients**: the all-gather's backward sums each slice's gradient over the N ranks, so
  each rank holds N times its slice's share; DDP's average over the ranks gives the one-process
  gradient exactly (up to the order of float additions).

Rank 0 alone writes the log, the checkpoints and the weights; a checkpoint does not depend on
the number of processes that wrote it and resumes with any number that divides the batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.distributed.nn import functional as dist_fn


@dataclass
class Distributed:
    """This process's place in a multi-process run (a single process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    group: Any = None  # the process group of the batch-norm and loss collectives

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_environment(device_type: str) -> Distributed:
    """Join the process group ``torchrun`` describes in the environment (``WORLD_SIZE`` > 1),
    with gloo on CPU and NCCL on CUDA; a plain single process otherwise. The collectives of
    the batch norm and of the loss use a group of their own, apart from DDP's gradient
    reduction."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size(),
                       int(os.environ.get("LOCAL_RANK", "0")), dist.new_group())


def local_slice(batch_size: int, dd: Distributed) -> tuple[int, int]:
    """``(offset, size)`` of this rank's part of each global batch.

    Raises:
        ValueError: the batch does not divide evenly over the processes.
    """
    if batch_size % dd.world_size:
        raise ValueError(f"batch_size {batch_size} does not divide over {dd.world_size} "
                         f"processes")
    size = batch_size // dd.world_size
    return dd.rank * size, size


def rank_indices(start: int, total: int, batch_size: int, dd: Distributed) -> list[int]:
    """The sample indices this rank reads for iterations ``start`` .. ``total - 1``: its slice
    of the indices one process reads (``it * batch_size ... (it + 1) * batch_size - 1``)."""
    offset, size = local_slice(batch_size, dd)
    return [it * batch_size + offset + k for it in range(start, total) for k in range(size)]


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """``BatchNorm2d`` whose training statistics are those of the batch over all ranks of
    ``group`` (CPU and GPU); in eval mode, or alone, it is ``BatchNorm2d``. Running statistics
    are updated with the global mean and unbiased variance, as one process would."""

    group: Any = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.group is None:
            return super().forward(x)
        c = x.shape[1]
        xf = x.float()
        count = torch.tensor([x.numel() / c], dtype=torch.float32, device=x.device)
        stats = torch.cat([xf.sum(dim=(0, 2, 3)), (xf * xf).sum(dim=(0, 2, 3)), count])
        stats = dist_fn.all_reduce(stats, group=self.group)
        n = stats[-1]
        mean = stats[:c] / n
        var = (stats[c:2 * c] / n - mean * mean).clamp_min(0.0)
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else (
                    1.0 / float(self.num_batches_tracked))
                self.running_mean.mul_(1 - m).add_(mean.detach() * m)
                self.running_var.mul_(1 - m).add_(var.detach() * (n / (n - 1)) * m)
        y = (xf - mean[None, :, None, None]) * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y.to(x.dtype)


def global_batch_norm(module: nn.Module, group: Any) -> nn.Module:
    """Every ``BatchNorm2d`` of ``module`` becomes a :class:`GlobalBatchNorm2d` over ``group``
    (same parameters and buffers, same state-dict keys; on the CPU, as the trainer calls it
    before it moves the network to its device)."""
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            gbn = GlobalBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine,
                                    child.track_running_stats)
            gbn.load_state_dict(child.state_dict())
            gbn.group = group
            setattr(module, name, gbn)
        else:
            global_batch_norm(child, group)
    return module


def gather(t: torch.Tensor, dd: Distributed) -> torch.Tensor:
    """All ranks' ``t`` concatenated along dim 0 in rank order; gradients flow back to each
    rank's own part (summed over the ranks that used it)."""
    if not dd.active:
        return t
    return torch.cat(dist_fn.all_gather(t.contiguous(), group=dd.group), 0)


def gather_outputs(out: dict[str, torch.Tensor], dd: Distributed) -> dict[str, torch.Tensor]:
    """:func:`gather` of every tensor of a network output dict."""
    return {k: gather(v, dd) if torch.is_tensor(v) else v for k, v in out.items()}


def gather_batch(batch: dict[str, Any], dd: Distributed) -> dict[str, Any]:
    """The global batch from the ranks' slices (tensors only; no gradients)."""
    if not dd.active:
        return batch
    out = {}
    for k, v in batch.items():
        if torch.is_tensor(v):
            parts = [torch.empty_like(v) for _ in range(dd.world_size)]
            dist.all_gather(parts, v.contiguous(), group=dd.group)
            out[k] = torch.cat(parts, 0)
        else:
            out[k] = v
    return out


def wrap(net: nn.Module, dd: Distributed, device: torch.device) -> nn.Module:
    """``net`` (its batch norms already :func:`global_batch_norm`) inside
    DistributedDataParallel, or ``net`` itself alone."""
    if not dd.active:
        return net
    return nn.parallel.DistributedDataParallel(
        net, device_ids=[device.index] if device.type == "cuda" else None)


def unwrap(net: nn.Module) -> nn.Module:
    """The network inside a DDP wrapper."""
    return net.module if isinstance(net, nn.parallel.DistributedDataParallel) else net


def decision(reason: Optional[str], dd: Distributed) -> Optional[str]:
    """Rank 0's ``reason`` to stop (a signal name, ``time_budget``) or None, on every rank:
    all ranks stop after the same iteration."""
    if not dd.active:
        return reason
    box = [reason]
    dist.broadcast_object_list(box, src=0, group=dd.group)
    return box[0]


def shutdown(dd: Optional[Distributed]) -> None:
    """Leave the process group (at the end of a run)."""
    if dd is not None and dd.active and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


__all__ = ["Distributed", "from_environment", "local_slice", "rank_indices",
           "GlobalBatchNorm2d", "global_batch_norm", "gather", "gather_outputs",
           "gather_batch", "wrap", "unwrap", "decision", "shutdown"]
