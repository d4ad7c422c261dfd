"""Multi-process training (dkp_slam.training.distributed): ``torchrun`` with 2 CPU processes
(gloo) follows the loss curve of one process with the same global batch, writes the same
weights, and its checkpoints resume with another number of processes. Real DKPNet, real
trainer, real process group; small images and few iterations."""

from __future__ import annotations

import csv
import socket
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ddp_photos")
    rng = np.random.default_rng(0)
    for i in range(6):
        base = rng.uniform(0, 255, (40, 50)).astype(np.float32)
        img = cv2.resize(base, (150, 120), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(folder / f"p{i}.png"), np.clip(img, 0, 255).astype(np.uint8))
    return folder


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(out: Path, photos: Path, iterations: int, processes: int) -> None:
    """``dkp-slam train`` in 1 process, or under torchrun with ``processes`` ranks."""
    args = ["-m", "dkp_slam.cli", "train", "--output", str(out), "--no-progress",
            "--iterations", str(iterations), "--device", "cpu",
            "--set", f"data.sources=[{photos}]", "--set", "data.crop=[64, 64]",
            "--set", "batch_size=4", "--set", "data.num_workers=0", "--set", "threads=1",
            "--set", "log_every=1", "--set", "checkpoint_every=1",
            "--set", "loss.num_points=64", "--set", "scheduler.warmup=1",
            "--set", "scheduler.iterations=3"]  # one schedule, also for a run stopped at 2
    if processes > 1:
        args = ["-m", "torch.distributed.run", f"--nproc-per-node={processes}",
                "--master-addr=127.0.0.1", f"--master-port={_free_port()}", *args]
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    if processes > 1:
        assert f"{processes} processes of {4 // processes} pairs" in proc.stdout


def _losses(out: Path) -> np.ndarray:
    with (out / "log.csv").open() as f:
        rows = list(csv.DictReader(f))
    keys = [k for k in rows[0] if k not in ("iteration", "lr", "seconds", "it_s")]
    return np.array([[float(r[k]) for k in keys] for r in rows])


def _weights(out: Path) -> dict:
    return torch.load(out / "model.pt", map_location="cpu", weights_only=True)["state_dict"]


def _assert_same_training(a: Path, b: Path) -> None:
    """The same loss curve (every term, every iteration) and the same weights, up to float
    rounding. The weights are compared by their RMS difference per tensor, under a tenth of
    one step (lr 1e-3): AdamW turns the float noise of a gradient that is zero or tiny in
    exact arithmetic (a conv bias before batch norm) into a step of up to lr for that one
    element; the gradients themselves agree to 1e-5 (the test below)."""
    la, lb = _losses(a), _losses(b)
    assert la.shape == lb.shape and len(la) == 3
    np.testing.assert_allclose(la, lb, rtol=2e-4, atol=1e-5)
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        if wa[k].is_floating_point():
            assert float((wa[k] - wb[k]).pow(2).mean().sqrt()) < 1e-4, k
        else:
            assert torch.equal(wa[k], wb[k]), k


def test_two_processes_follow_one_process_and_resume_with_one(tmp_path, photos):
    single, ddp, mixed = tmp_path / "single", tmp_path / "ddp", tmp_path / "mixed"
    _train(single, photos, 3, 1)
    _train(ddp, photos, 3, 2)
    _assert_same_training(single, ddp)
    # a checkpoint of 2 processes goes on in 1 process (and the log continues)
    _train(mixed, photos, 2, 2)
    _train(mixed, photos, 3, 1)
    _assert_same_training(single, mixed)
    # the training did something: the weights moved away from the initial ones
    first = _weights(single)
    _train(tmp_path / "one_step", photos, 1, 1)
    assert any(not torch.equal(first[k], v) for k, v in _weights(tmp_path / "one_step").items()
               if v.is_floating_point())


def _ddp_gradients(rank: int, world: int, port: int, x: torch.Tensor, folder: str) -> None:
    """One rank: global batch norm + all-gathered loss inside DDP; saves its gradients."""
    import os

    import torch.distributed as dist

    from dkp_slam.training import distributed as dd_mod

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world),
                      RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dd = dd_mod.from_environment("cpu")
    net = _tiny_net()
    dd_mod.global_batch_norm(net, dd.group)
    ddp = dd_mod.wrap(net, dd, torch.device("cpu"))
    b = x.shape[0] // world
    out = dd_mod.gather(ddp(x[rank * b:(rank + 1) * b]), dd)
    _tiny_loss(out).backward()
    torch.save({k: p.grad for k, p in net.named_parameters()}, f"{folder}/grad{rank}.pt")
    dist.barrier()
    dd_mod.shutdown(dd)


def _tiny_net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4),
                               torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 3))


def _tiny_loss(out: torch.Tensor) -> torch.Tensor:
    # couples the samples of the batch (like the descriptor and similarity terms)
    return (out.flatten(1) @ out.flatten(1).t()).logsumexp(1).mean() + out.pow(2).mean()


def test_global_batch_norm_and_gathered_loss_give_the_one_process_gradient(tmp_path):
    import torch.multiprocessing as mp

    x = torch.randn(4, 1, 10, 10, generator=torch.Generator().manual_seed(1))
    net = _tiny_net()
    _tiny_loss(net(x)).backward()
    mp.spawn(_ddp_gradients, args=(2, _free_port(), x, str(tmp_path)), nprocs=2)
    for rank in range(2):
        grads = torch.load(tmp_path / f"grad{rank}.pt", weights_only=True)
        for k, p in net.named_parameters():
            # atol: a conv bias before batch norm has a zero gradient, up to float noise
            torch.testing.assert_close(grads[k], p.grad, rtol=1e-5, atol=1e-5, msg=k)
