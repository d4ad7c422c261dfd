"""Training loop: ``train(config, output_dir)``, resumable, CPU or CUDA.

Output folder::

    config.yaml    the full resolved configuration of the run
    log.csv        iteration, loss, each loss term, descriptor diagnostics, lr, seconds, it_s
                   (means over ``log_every`` iterations; appended across sessions)
    summary.json   status, iterations, speed, last losses, model conf, paths
    last.pt        full training state: model, optimizer, scheduler, loss state (point-sampler
                   generator, distillation projection), RNG states, iteration, config
    model.pt       {"conf": net.conf, "state_dict": ...}: the shippable weights
                   (:func:`dkp_slam.model.weights.load_model` reads it)

A run stops when it reaches ``iterations``, when ``max_minutes`` of this session are spent, or on
SIGINT/SIGTERM (Ctrl-C once: finish the current iteration, save, exit; twice: abort without
saving). Calling ``train`` again on the same folder resumes from ``last.pt`` exactly: the same
model, optimizer and scheduler state, RNG states, and the same data (pairs are a function of the
seed and the global pair index). Every file is read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import os
import random
import signal
import sys
import threading
import time
from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader

from ..config import ConfigError
from ..jsonable import jsonable
from ..settings import (READ_ONLY, REBUILD, RUNTIME, markdown_table, setting, specs,
                        why_invalid_mapping)
from . import distributed
from .data import DataConfig, HomographyPairs, worker_init
from .losses import LossConfig, SelfSupervisedLoss, merge_loss_conf

log = logging.getLogger(__name__)

CHECKPOINT_VERSION = 1

def _device_name(value: Any) -> Optional[str]:
    name = str(value)
    if name in ("auto", "cpu", "cuda") or (name.startswith("cuda:") and name[5:].isdigit()):
        return None
    return "must be auto, cpu, cuda or cuda:N"


def _optional_path(value: Any) -> Optional[str]:
    return None if value is None or isinstance(value, str) else "must be a path or null"


def _positive(value: Any) -> Optional[str]:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
    return None if ok else "must be > 0"


def _betas(value: Any) -> Optional[str]:
    ok = (isinstance(value, (list, tuple)) and len(value) == 2
          and all(isinstance(b, (int, float)) and 0 <= b < 1 for b in value))
    return None if ok else "must be [beta1, beta2] in [0, 1)"


def _optional_count(value: Any) -> Optional[str]:
    ok = value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 1)
    return None if ok else "must be a positive integer or null"


_COUNT = (1, 10**9)


@dataclass
class OptimizerConfig:
    """AdamW (the ``optimizer:`` section)."""

    lr: float = setting(1e-3, "learning rate", check=_positive)
    weight_decay: float = setting(1e-4, "AdamW weight decay", range=(0.0, 10.0))
    betas: list = setting([0.9, 0.999], "AdamW betas", check=_betas)
    grad_clip: float = setting(1.0, "gradient-norm clipping (0 = off)", range=(0.0, 1e9))


@dataclass
class SchedulerConfig:
    """Learning-rate schedule (the ``scheduler:`` section)."""

    name: str = setting("cosine", "cosine (to min_lr_ratio x lr) or constant, after the warmup",
                        choices=("cosine", "constant"))
    warmup: int = setting(200, "iterations of linear warmup", range=(0, 10**9))
    min_lr_ratio: float = setting(0.05, "cosine floor, relative to lr", range=(0.0, 1.0))
    iterations: Optional[int] = setting(None, "cosine horizon; null = iterations when the run "
                                        "starts (kept on resume)", check=_optional_count)


@dataclass
class TrainConfig:
    """Every training option and its default; a config file overrides any subset.

    A resumed run takes the options of policy ``RUNTIME`` from the new configuration and the
    command line, every other one from its checkpoint, so that it continues exactly.
    """

    seed: int = setting(0, "seed of the model initialisation, the pairs and the point sampling",
                        range=(0, 2**32 - 1))
    device: str = setting("auto", "auto (CUDA when available), cpu, cuda or cuda:N",
                          check=_device_name, policy=RUNTIME)
    threads: int = setting(0, "torch CPU threads (0 = torch's default)", range=(0, 4096),
                           policy=RUNTIME)
    iterations: int = setting(20000, "total optimiser steps of the run, across sessions",
                              range=_COUNT, policy=RUNTIME)
    max_minutes: float = setting(0.0, "stop and save after this many minutes of a session "
                                 "(0 = no limit)", range=(0.0, 1e9), policy=RUNTIME)
    batch_size: int = setting(8, "pairs per step (the network sees 2 x batch images)",
                              range=(1, 100000))
    checkpoint_every: int = setting(250, "iterations between checkpoints", range=_COUNT,
                                    policy=RUNTIME)
    log_every: int = setting(10, "iterations per log.csv row", range=_COUNT, policy=RUNTIME)
    print_every: int = setting(100, "iterations per printed line", range=_COUNT,
                               policy=RUNTIME)
    progress: bool = setting(True, "tqdm progress bar", policy=RUNTIME)
    amp: bool = setting(False, "CUDA only: bfloat16 autocast of the network")
    init_weights: Optional[str] = setting(
        None, "fine-tuning: start from these weights (model.pt / last.pt; a bare name is a "
        "file in dkp_slam/weights)", check=_optional_path)
    model: dict = setting({}, "DKPNet options (dkp_slam.model.dkpnet.default_conf: channels, "
                          "descriptor_dim, multiscale, dcn, attention, peakiness, max_offset, "
                          "dcn_impl), checked by the model")
    data: DataConfig = field(default_factory=DataConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    loss: LossConfig = field(default_factory=LossConfig)


#: :class:`TrainConfig`'s defaults as the nested dict the trainer reads and saves.
TRAIN_DEFAULTS: dict[str, Any] = dataclasses.asdict(TrainConfig())

#: Options a resumed run takes from the *new* config/command line (policy ``RUNTIME``); all
#: others come from the checkpoint so that the run continues exactly.
RUNTIME_KEYS = tuple(name for name, spec in specs(TrainConfig).items()
                     if spec.policy == RUNTIME)

#: Sections whose keys are not checked here (the model validates its own).
_OPEN_SECTIONS = ("model",)

#: What the "changeable" column of the option table (:func:`options_table`) says.
_POLICY_WORDS = {RUNTIME: "on resume", REBUILD: "fixed by the checkpoint",
                 READ_ONLY: "fixed by the checkpoint"}


def options_table() -> str:
    """The option table of docs/TRAINING.md, made from :class:`TrainConfig`."""
    return markdown_table(specs(TrainConfig), _POLICY_WORDS)


# ====================================================================== config
def _merge(base: dict, update: dict, path: str = "") -> dict:
    """``base`` updated by ``update``, recursively; unknown keys raise ConfigError. ``model``
    and ``loss`` are taken as given (DKPNet and the loss validate their own options)."""
    out = deepcopy(base)
    for key, value in (update or {}).items():
        full = f"{path}{key}"
        if key not in out:
            raise ConfigError(f"unknown training option {full!r}; known: "
                              f"{', '.join(sorted(path + k for k in out))}")
        if isinstance(out[key], dict):
            if value is None:
                continue
            if not isinstance(value, dict):
                raise ConfigError(f"training option {full!r} must be a mapping, got {value!r}")
            if path == "" and key in _OPEN_SECTIONS:
                out[key] = {**out[key], **deepcopy(value)}
            elif path == "" and key == "loss":
                out[key] = deepcopy(value)  # completed by merge_loss_conf
            else:
                out[key] = _merge(out[key], value, f"{full}.")
        else:
            out[key] = deepcopy(value)
    return out


def apply_overrides(config: dict, sets: dict) -> dict:
    """Apply dotted ``{"optimizer.lr": 3e-4, "model.dcn": False}`` overrides to a nested dict."""
    out = deepcopy(config or {})
    for dotted, value in sets.items():
        keys = [k for k in dotted.split(".") if k]
        if not keys:
            raise ConfigError(f"bad override key {dotted!r}")
        node = out
        for k in keys[:-1]:
            if node.get(k) is None:
                node[k] = {}
            if not isinstance(node[k], dict):
                raise ConfigError(f"cannot set {dotted!r}: {k!r} is not a mapping")
            node = node[k]
        node[keys[-1]] = value
    return out


def load_train_config(path: Optional[str | Path], overrides: Optional[dict] = None) -> dict:
    """Read a training YAML (or nothing: the defaults), apply dotted overrides, validate.

    Raises:
        FileNotFoundError: the file does not exist.
        ConfigError: bad YAML, unknown keys, bad values.
    """
    raw: dict = {}
    if path:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"training config not found: {p}")
        try:
            raw = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: not valid YAML: {exc}") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"{p}: expected a mapping at the top level")
    return resolve_config(apply_overrides(raw, overrides or {}))


def resolve_config(config: Optional[dict]) -> dict:
    """Defaults updated with ``config``, validated; raises :class:`ConfigError`."""
    cfg = _merge(TRAIN_DEFAULTS, config or {})
    cfg["model"] = dict(cfg["model"] or {})
    try:
        cfg["loss"] = merge_loss_conf(cfg["loss"])
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    reason = why_invalid_mapping(TrainConfig, cfg)
    if reason:
        raise ConfigError(reason)
    if isinstance(cfg["data"]["sources"], (str, Path)):
        cfg["data"]["sources"] = [str(cfg["data"]["sources"])]
    _device(cfg["device"])  # validate early
    return cfg


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _resume_config(saved: dict, new: dict) -> tuple[dict, list[str]]:
    """The checkpoint's config with the runtime keys of ``new``; also the ignored changes."""
    cfg = deepcopy(saved)
    flat_new, flat_saved = _flat(jsonable(new)), _flat(jsonable(saved))
    for key in RUNTIME_KEYS:
        node, parts = cfg, key.split(".")
        for p in parts[:-1]:
            node = node[p]
        src = new
        for p in parts:
            src = src[p]
        node[parts[-1]] = deepcopy(src)
    ignored = sorted(k for k in set(flat_new) | set(flat_saved)
                     if k not in RUNTIME_KEYS and k != "init_weights"
                     and not k.startswith("model.")
                     and not (k == "scheduler.iterations" and flat_new.get(k) is None)
                     and flat_new.get(k) != flat_saved.get(k))
    return cfg, ignored


def _device(name: str) -> torch.device:
    name = str(name or "auto")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"bad device {name!r}: {exc}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available")
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"device must be auto, cpu or cuda[:N], got {name!r}")
    return dev


# ====================================================================== model / weights
def _default_factory(conf: dict) -> nn.Module:
    from ..model import DKPNet

    return DKPNet(conf)


def _read_weights(path: str) -> tuple[dict, dict]:
    """(conf, state_dict) from a ``model.pt`` or a trainer ``last.pt``."""
    from ..model.weights import WeightsError, read_weights

    try:
        return read_weights(path)
    except WeightsError as exc:
        if "not found" in str(exc):
            raise FileNotFoundError(f"init_weights not found: {path}") from exc
        raise ConfigError(f"init_weights: {exc}") from exc


def _build_model(cfg: dict, factory: Callable[[dict], nn.Module],
                 saved_conf: Optional[dict] = None) -> tuple[nn.Module, Optional[str]]:
    """The network: from ``saved_conf`` (resume), from ``init_weights`` updated by ``model``
    (fine-tuning), or from ``model`` (scratch). Returns it and a note on where it came from."""
    state, note = None, None
    if saved_conf is not None:
        conf = dict(saved_conf)
    elif cfg.get("init_weights"):
        conf, state = _read_weights(str(cfg["init_weights"]))
        conf.update(cfg["model"])
        note = f"initialised from {cfg['init_weights']}"
    else:
        conf = dict(cfg["model"])
    try:
        net = factory(conf)
    except (KeyError, ValueError, TypeError) as exc:
        raise ConfigError(f"bad model options {conf}: {exc}") from exc
    if state is not None:
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            raise ConfigError(f"init_weights {cfg['init_weights']} do not fit the model "
                              f"{conf}: {str(exc).splitlines()[0]}") from exc
    return net, note


# ====================================================================== RNG / checkpoints
def _rng_state() -> dict:
    np_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": (np_state[0], [int(x) for x in np_state[1]], int(np_state[2]),
                  int(np_state[3]), float(np_state[4])),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _set_rng_state(state: dict) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"][:torch.cuda.device_count()])


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _cpu_state(module: nn.Module) -> dict:
    return {k: v.detach().cpu() if torch.is_tensor(v) else v
            for k, v in module.state_dict().items()}


def load_checkpoint(path: str | Path) -> dict:
    """Read a trainer ``last.pt`` (``weights_only=True``); raises ConfigError if unusable."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ConfigError(f"cannot read checkpoint {path}: {exc}; delete it or train with "
                          "--no-resume") from exc
    need = {"iteration", "config", "model", "model_conf", "optimizer", "scheduler", "rng"}
    if not isinstance(ckpt, dict) or not need <= set(ckpt):
        raise ConfigError(f"{path} is not a training checkpoint (missing "
                          f"{sorted(need - set(ckpt or {}))})")
    return ckpt


# ====================================================================== logs
class _CsvLog:
    """log.csv, appended across sessions; rows beyond the resumed iteration are dropped."""

    def __init__(self, path: Optional[Path], columns: list[str],
                 resume_iteration: Optional[int]):
        """``path`` None: nothing is written (the ranks other than 0 of a multi-process
        run)."""
        self.path, self.columns = path, ["iteration", *columns, "lr", "seconds", "it_s"]
        if path is None:
            return
        rows: list[list[str]] = []
        if resume_iteration is not None and path.is_file():
            with path.open(newline="") as f:
                reader = csv.reader(f)
                header = next(reader, None)
                if header == self.columns:
                    rows = [r for r in reader if r and int(r[0]) <= resume_iteration]
                elif header is not None:
                    path.replace(path.with_name("log.previous.csv"))
        with path.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(self.columns)
            w.writerows(rows)

    def write(self, row: dict) -> None:
        if self.path is None:
            return
        with self.path.open("a", newline="") as f:
            csv.writer(f).writerow([_fmt(row.get(c, "")) for c in self.columns])


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return "nan" if math.isnan(x) else f"{x:.6g}"
    return str(x)


class _StopFlag:
    """SIGINT/SIGTERM -> stop after the current iteration (a second SIGINT aborts)."""

    def __init__(self) -> None:
        self.reason: Optional[str] = None
        self._old: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, _frame) -> None:
        if self.reason is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.reason = signal.Signals(signum).name
        print(f"\n{self.reason}: stopping after this iteration and saving a checkpoint "
              "(Ctrl-C again aborts without saving)", file=sys.stderr, flush=True)

    def restore(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()


# ====================================================================== training
def _lr_lambda(cfg: dict) -> Callable[[int], float]:
    sc = cfg["scheduler"]
    warmup = int(sc.get("warmup") or 0)
    total = int(sc["iterations"])
    floor = float(sc.get("min_lr_ratio", 0.0))

    def factor(it: int) -> float:
        if warmup and it < warmup:
            return (it + 1) / warmup
        if sc["name"] == "constant":
            return 1.0
        t = min(max(it - warmup, 0) / max(total - warmup, 1), 1.0)
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t))

    return factor


def train(config: Optional[dict], output_dir: str | Path, resume: bool = True, *,
          model_factory: Optional[Callable[[dict], nn.Module]] = None,
          callback: Optional[Callable[[int, dict], None]] = None) -> dict:
    """Train (or resume training) a keypoint network; returns the run summary.

    Args:
        config: training options (see :data:`TRAIN_DEFAULTS`); validated here.
        output_dir: run folder (created); holds the checkpoints and logs.
        resume: continue from ``output_dir/last.pt`` when it exists (with the checkpoint's
            config, except the :data:`RUNTIME_KEYS`); False starts over.
        model_factory: ``conf -> nn.Module`` (default: ``DKPNet``). The module must have a
            ``conf`` dict and return DKPNet's outputs.
        callback: called as ``callback(iteration, logs)`` after every iteration.

    Returns:
        the summary written to ``summary.json``; ``status`` is ``completed``,
        ``time_budget``, or the signal name (``SIGINT``/``SIGTERM``).
    """
    cfg = resolve_config(config)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path, model_path = out / "last.pt", out / "model.pt"
    requested_model = dict(cfg["model"])
    cfg, ckpt = _resume_or_start(cfg, out, ckpt_path, resume)
    device = _device(cfg["device"])
    dd = distributed.from_environment(device.type)  # torchrun: this process's rank
    try:
        if dd.active and device.type == "cuda":
            device = torch.device("cuda", dd.local_rank)
        distributed.local_slice(int(cfg["batch_size"]), dd)  # the batch must divide
        return _train(cfg, out, ckpt, ckpt_path, model_path, requested_model, device, dd,
                      model_factory, callback)
    finally:
        distributed.shutdown(dd)


def _train(cfg: dict, out: Path, ckpt: Optional[dict], ckpt_path: Path, model_path: Path,
           requested_model: dict, device: torch.device, dd: distributed.Distributed,
           model_factory: Optional[Callable[[dict], nn.Module]],
           callback: Optional[Callable[[int, dict], None]]) -> dict:
    """:func:`train` once the configuration, checkpoint, device and rank are known; only rank
    0 writes files and prints."""
    seed = _seed_everything(cfg)
    dataset = _dataset(cfg["data"], seed)  # a missing folder fails before anything is built
    run = _TrainingRun.build(cfg, model_factory or _default_factory, ckpt, requested_model,
                             device, seed, dd)
    start, elapsed_before = run.restore(ckpt)
    run.net = distributed.wrap(run.net, dd, device)
    total = int(cfg["iterations"])
    say = print if dd.is_main else (lambda *a, **k: None)
    if dd.is_main:
        (out / "config.yaml").write_text(yaml.safe_dump(jsonable(cfg), sort_keys=False))
    interval = _IntervalLog(_CsvLog(out / "log.csv" if dd.is_main else None,
                                    run.criterion.log_keys, start if ckpt is not None else None),
                            run.criterion.log_keys, run.optimizer, elapsed_before)
    net = distributed.unwrap(run.net)
    n_params = sum(p.numel() for p in net.parameters())
    h, w = cfg["data"]["crop"]
    say(f"training {type(net).__name__} ({n_params / 1e6:.3f} M parameters) on {device}: "
        f"batch {cfg['batch_size']} x {h}x{w}, {dataset.num_images} images, "
        f"iterations {start} -> {total}"
        + (f", {dd.world_size} processes of {cfg['batch_size'] // dd.world_size} pairs"
           if dd.active else "")
        + (f", resumed from {ckpt_path}" if ckpt is not None else "")
        + (f", {run.note}" if run.note else ""))
    for key, wgt in run.criterion.weights.items():
        log.debug("loss term %s weight %g", key, wgt)

    def save(iteration: int) -> None:
        if dd.is_main:
            run.save(iteration, interval.elapsed(), ckpt_path, model_path)

    cfg = {**cfg, "progress": cfg["progress"] and dd.is_main}
    status, it, skipped = _train_loop(run, dataset, cfg, device, start, total, interval, save,
                                      callback, ckpt_path, dd)
    interval.flush(it)
    save(it)
    summary = _summary(status, it, start, total, skipped, interval, device, n_params, dataset,
                       net, out, ckpt_path, model_path)
    summary["processes"] = dd.world_size
    if dd.is_main:
        (out / "summary.json").write_text(json.dumps(jsonable(summary), indent=2))
    session_iters, session_seconds = it - start, interval.session_seconds()
    speed = f", {session_seconds / session_iters:.3f} s/it" if session_iters else ""
    say(f"{status}: iteration {it}/{total} ({session_iters} this session{speed}); "
        f"checkpoint {ckpt_path}, weights {model_path}")
    if status != "completed":
        say(f"resume with the same command (same --output {out})")
    return summary


def _resume_or_start(cfg: dict, out: Path, ckpt_path: Path, resume: bool
                     ) -> tuple[dict, Optional[dict]]:
    """The configuration to run with and the checkpoint to continue from (or None)."""
    if resume and ckpt_path.is_file():
        ckpt = load_checkpoint(ckpt_path)
        cfg, ignored = _resume_config(resolve_config(ckpt["config"]), cfg)
        if ignored:
            print(f"note: resuming {out}: using the checkpoint's values of "
                  f"{', '.join(ignored)} (only {', '.join(RUNTIME_KEYS)} can change on resume)")
        return cfg, ckpt
    if ckpt_path.is_file():
        print(f"note: --no-resume: starting over in {out} (the old last.pt is replaced)")
    return cfg, None


def _seed_everything(cfg: dict) -> int:
    """Thread count and the seeds of random, numpy and torch; returns the seed."""
    if cfg["threads"]:
        torch.set_num_threads(int(cfg["threads"]))
    seed = int(cfg["seed"])
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return seed


def _dataset(d: dict, seed: int) -> HomographyPairs:
    """The homographic pairs of the ``data`` section."""
    return HomographyPairs(d["sources"], crop=d["crop"], seed=seed,
                           resize_max=d["resize_max"], scale_jitter=d["scale_jitter"],
                           homography=d["homography"],
                           photometric_strength=d["photometric_strength"],
                           photometric_strength0=d["photometric_strength0"],
                           min_std=d["min_std"], recursive=d["recursive"],
                           video_step=d["video_step"], cache_mb=d.get("cache_mb", 0),
                           bag_topic=d.get("bag_topic", ""))


class _TrainingRun:
    """The network, loss, optimiser and schedule of one run, and their checkpoint."""

    def __init__(self, cfg: dict, net: nn.Module, criterion: nn.Module, params: list,
                 optimizer: torch.optim.Optimizer, scheduler: Any, note: str,
                 dd: distributed.Distributed = distributed.Distributed()) -> None:
        self.cfg, self.net, self.criterion, self.params = cfg, net, criterion, params
        self.optimizer, self.scheduler, self.note, self.dd = optimizer, scheduler, note, dd

    @classmethod
    def build(cls, cfg: dict, factory: Callable[[dict], nn.Module], ckpt: Optional[dict],
              requested_model: dict, device: torch.device, seed: int,
              dd: distributed.Distributed = distributed.Distributed()) -> "_TrainingRun":
        """Build everything; a resumed run keeps the checkpoint's architecture (only the DCN
        kernel may change to the ``requested_model``'s). Fills in ``cfg["model"]`` and the
        schedule's length. On several processes the batch norms become global ones
        (:mod:`~dkp_slam.training.distributed`) before the optimiser takes the parameters."""
        saved_conf = None
        if ckpt is not None:
            saved_conf = dict(ckpt["model_conf"])
            if "dcn_impl" in requested_model and "dcn_impl" in saved_conf:
                saved_conf["dcn_impl"] = requested_model["dcn_impl"]
        net, note = _build_model(cfg, factory, saved_conf)
        if dd.active:
            distributed.global_batch_norm(net, dd.group)
        net.to(device).train()
        cfg["model"] = jsonable(dict(net.conf))
        desc_dim = int(net.conf.get("descriptor_dim", 64))
        try:
            criterion = SelfSupervisedLoss(cfg["loss"], descriptor_dim=desc_dim, seed=seed,
                                           device=device).to(device)
        except ImportError as exc:
            raise ConfigError(f"distillation needs the teacher: {exc}") from exc
        if cfg["scheduler"]["iterations"] is None:
            cfg["scheduler"]["iterations"] = int(cfg["iterations"])
        params = [p for p in list(net.parameters()) + list(criterion.parameters())
                  if p.requires_grad]
        oc = cfg["optimizer"]
        optimizer = torch.optim.AdamW(params, lr=float(oc["lr"]),
                                      weight_decay=float(oc["weight_decay"]),
                                      betas=tuple(float(b) for b in oc["betas"]))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(cfg))
        return cls(cfg, net, criterion, params, optimizer, scheduler, note, dd)

    def restore(self, ckpt: Optional[dict]) -> tuple[int, float]:
        """Load a checkpoint's states; returns ``(iteration, elapsed seconds)`` it had."""
        if ckpt is None:
            return 0, 0.0
        self.net.load_state_dict(ckpt["model"])
        self.criterion.load_state_dict(ckpt.get("loss", {}), strict=False)
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        _set_rng_state(ckpt["rng"])
        return int(ckpt["iteration"]), float(ckpt.get("elapsed_seconds", 0.0))

    def save(self, iteration: int, elapsed: float, ckpt_path: Path, model_path: Path) -> None:
        """``last.pt`` (everything to resume) and ``model.pt`` (the weights), atomically."""
        net = distributed.unwrap(self.net)
        _atomic_save({
            "version": CHECKPOINT_VERSION,
            "iteration": iteration,
            "config": jsonable(self.cfg),
            "model": _cpu_state(net),
            "model_conf": dict(net.conf),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "loss": self.criterion.state_dict(),
            "rng": _rng_state(),
            "elapsed_seconds": elapsed,
        }, ckpt_path)
        _atomic_save({"conf": dict(net.conf), "state_dict": _cpu_state(net)}, model_path)

    def step(self, batch: dict, device: torch.device, amp: bool) -> tuple[bool, dict]:
        """One optimisation step on a batch; returns ``(loss was finite, logs)``. A step with a
        non-finite loss is skipped (no update), the schedule advances either way."""
        batch = {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v
                 for k, v in batch.items()}
        b = batch["image0"].shape[0]
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            pred = self.net(torch.cat([batch["image0"], batch["image1"]]))
        out0 = {k: v[:b] for k, v in pred.items()}
        out1 = {k: v[b:] for k, v in pred.items()}
        if self.dd.active:  # every rank computes the loss of the global batch
            out0 = distributed.gather_outputs(out0, self.dd)
            out1 = distributed.gather_outputs(out1, self.dd)
            batch = distributed.gather_batch(batch, self.dd)
        loss, logs = self.criterion(out0, out1, batch)
        self.optimizer.zero_grad(set_to_none=True)
        finite = bool(torch.isfinite(loss))
        if finite:
            loss.backward()
            clip = float(self.cfg["optimizer"]["grad_clip"] or 0)
            if clip > 0:
                torch.nn.utils.clip_grad_norm_(self.params, clip)
            self.optimizer.step()
        self.scheduler.step()
        return finite, logs


class _IntervalLog:
    """Means of the loss terms over the iterations since the last ``log.csv`` row, and the
    clock of the session."""

    def __init__(self, csv_log: "_CsvLog", columns: list, optimizer: torch.optim.Optimizer,
                 elapsed_before: float) -> None:
        self.csv_log, self.columns, self.optimizer = csv_log, columns, optimizer
        self.elapsed_before = elapsed_before
        self.session_start = self.interval_start = time.perf_counter()
        self.iterations = 0
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.last: dict[str, float] = {}

    def add(self, logs: dict) -> None:
        self.iterations += 1
        for k, v in logs.items():
            v = float(v)
            if math.isfinite(v):
                self.sums[k] = self.sums.get(k, 0.0) + v
                self.counts[k] = self.counts.get(k, 0) + 1

    def flush(self, iteration: int) -> None:
        """Write the row of the interval (nothing when it is empty)."""
        if self.iterations == 0:
            return
        now = time.perf_counter()
        means = {k: self.sums[k] / self.counts[k] if self.counts.get(k) else float("nan")
                 for k in self.columns}
        row = {"iteration": iteration, **means, "lr": self.optimizer.param_groups[0]["lr"],
               "seconds": round(self.elapsed_before + now - self.session_start, 3),
               "it_s": self.iterations / max(now - self.interval_start, 1e-9)}
        self.csv_log.write(row)
        self.last = {**means, "it_s": row["it_s"]}
        self.sums, self.counts = {}, {}
        self.iterations, self.interval_start = 0, now

    def session_seconds(self) -> float:
        return time.perf_counter() - self.session_start

    def elapsed(self) -> float:
        """Training seconds over all sessions of the run."""
        return self.elapsed_before + self.session_seconds()


def _train_loop(run: _TrainingRun, dataset: HomographyPairs, cfg: dict, device: torch.device,
                start: int, total: int, interval: _IntervalLog, save: Callable[[int], None],
                callback: Optional[Callable[[int, dict], None]], ckpt_path: Path,
                dd: distributed.Distributed = distributed.Distributed()
                ) -> tuple[str, int, int]:
    """Iterations ``start`` -> ``total`` until done, the time budget, or SIGINT / SIGTERM;
    returns ``(status, iteration reached, skipped steps)``. Several processes read their
    slices of each batch and stop together (rank 0's clock and signals decide)."""
    d = cfg["data"]
    batch_size = int(cfg["batch_size"])
    amp = bool(cfg["amp"]) and device.type == "cuda"
    status, it, skipped = "completed", start, 0
    stop = _StopFlag()
    loader = pbar = None
    stop.install()
    try:
        if it < total:
            loader = DataLoader(dataset, batch_size=batch_size // dd.world_size,
                                sampler=distributed.rank_indices(start, total, batch_size, dd),
                                num_workers=int(d["num_workers"]),
                                worker_init_fn=worker_init if d["num_workers"] else None,
                                pin_memory=device.type == "cuda", drop_last=False)
            from tqdm.auto import tqdm

            pbar = tqdm(total=total, initial=start, disable=not cfg["progress"],
                        dynamic_ncols=True, unit="it", desc="train")
            batches = iter(loader)
        while it < total:
            reason = stop.reason or ("time_budget" if cfg["max_minutes"] and
                                     interval.session_seconds() >= 60 * float(cfg["max_minutes"])
                                     else None)
            reason = distributed.decision(reason, dd)
            if reason:
                status = reason
                break
            finite, logs = run.step(next(batches), device, amp)
            if not finite:
                skipped += 1
                log.warning("iteration %d: non-finite loss, step skipped", it + 1)
                if skipped >= 20 and skipped == it + 1 - start:
                    raise RuntimeError("the loss is not finite; lower optimizer.lr")
            it += 1
            interval.add(logs)
            if pbar is not None:
                pbar.update(1)
                if it % 10 == 0 or it == total:
                    pbar.set_postfix(loss=f"{float(logs['loss']):.3f}", refresh=False)
            if it % int(cfg["log_every"]) == 0:
                interval.flush(it)
                if it % int(cfg["print_every"]) == 0 or it == int(cfg["log_every"]):
                    _print_line(it, total, interval.last,
                                run.optimizer.param_groups[0]["lr"], pbar)
            if it % int(cfg["checkpoint_every"]) == 0 and it < total:
                save(it)
            if callback is not None:
                callback(it, logs)
        if stop.reason and status == "completed" and it < total:
            status = stop.reason
    except KeyboardInterrupt:
        print(f"aborted at iteration {it} without saving; {ckpt_path} holds the last "
              "checkpoint", file=sys.stderr)
        raise
    finally:
        stop.restore()
        if pbar is not None:
            pbar.close()
        del loader
    return status, it, skipped


def _summary(status: str, it: int, start: int, total: int, skipped: int,
             interval: _IntervalLog, device: torch.device, n_params: int,
             dataset: HomographyPairs, net: nn.Module, out: Path, ckpt_path: Path,
             model_path: Path) -> dict:
    """The run summary of ``summary.json``."""
    session_iters, session_seconds = it - start, interval.session_seconds()
    return {
        "status": status,
        "iteration": it,
        "iterations": total,
        "session_iterations": session_iters,
        "session_seconds": round(session_seconds, 3),
        "it_per_s": session_iters / session_seconds if session_iters else None,
        "s_per_it": session_seconds / session_iters if session_iters else None,
        "elapsed_seconds": round(interval.elapsed(), 3),
        "skipped_steps": skipped,
        "last": interval.last,
        "device": str(device) + (f" ({torch.cuda.get_device_name(device)})"
                                 if device.type == "cuda" else ""),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "parameters": n_params,
        "num_images": dataset.num_images,
        "model_conf": jsonable(dict(net.conf)),
        "checkpoint": str(ckpt_path),
        "model": str(model_path),
        "log": str(out / "log.csv"),
        "finished_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def _print_line(it: int, total: int, logs: dict, lr: float, pbar) -> None:
    terms = "  ".join(f"{k} {v:.4f}" for k, v in logs.items()
                      if k not in ("loss", "it_s") and math.isfinite(v))
    it_s = logs.get("it_s", float("nan"))
    line = (f"it {it}/{total}  loss {logs.get('loss', float('nan')):.4f}  {terms}  "
            f"lr {lr:.2e}  {1.0 / it_s if it_s else float('nan'):.3f} s/it")
    if pbar is not None and not pbar.disable:
        pbar.write(line)
    else:
        print(line, flush=True)


if __name__ == "__main__":
    print(options_table(), end="")

__all__ = ["train", "TrainConfig", "OptimizerConfig", "SchedulerConfig", "TRAIN_DEFAULTS",
           "RUNTIME_KEYS", "options_table", "load_train_config", "resolve_config",
           "apply_overrides", "load_checkpoint"]
