"""Deployment (issue 7): ONNX export of the shipped DKPNet in both variants, numerics against
PyTorch in onnxruntime, the backends behind the detector interface, their fallback, the
``dkp-slam export`` command and ``bench speed --backends``.

Everything here runs for real: the dynamo / TorchScript exporters, onnxruntime on CPU, the
front-end on KITTI07 frames. TensorRT is not installed on these machines: its backend is
only checked to fall back, with one log line saying why (docs/DEPLOY.md)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from dkp_slam.config import FrontEndConfig  # noqa: E402
from dkp_slam.features import create_detector  # noqa: E402
from dkp_slam.frontend import FrontEnd  # noqa: E402
from dkp_slam.model.backends import (BackendError, ModelFileError, create_backend,  # noqa: E402
                                     onnx_for)
from dkp_slam.model.export import (ExportError, check_onnx, export_onnx, model_hash,  # noqa: E402
                                   onnx_ops, read_metadata)
from dkp_slam.model.weights import WeightsError, load_model  # noqa: E402

KITTI = Path(__file__).resolve().parents[1].parent / "shared/data/sequences/kitti07_0000-0159"


def _frame(i: int = 0, size: tuple[int, int] = (640, 480)) -> np.ndarray:
    """A KITTI07 frame resized to ``size`` when the data is there, else a generated one."""
    if KITTI.is_dir():
        image = cv2.imread(str(KITTI / "image_0" / f"{i:06d}.png"), cv2.IMREAD_GRAYSCALE)
    else:
        from dkp_slam.synthetic import make_synthetic_sequence

        image = make_synthetic_sequence(n_frames=i + 1).load_image(i)
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def net():
    return load_model()  # the shipped weights


@pytest.fixture(scope="module")
def exports(net, tmp_path_factory):
    """Both variants, fixed 640x480, and the dynamic deformconv export."""
    d = tmp_path_factory.mktemp("onnx")
    out = {}
    for variant in ("deformconv", "decomposed"):
        out[variant] = d / f"{variant}.onnx"
        export_onnx(net, out[variant], variant=variant, height=480, width=640)
    out["dynamic"] = d / "dynamic.onnx"
    export_onnx(net, out["dynamic"], variant="deformconv", dynamic=True)
    return out


@pytest.mark.parametrize("variant", ["deformconv", "decomposed"])
def test_onnx_variant_matches_pytorch(net, exports, variant) -> None:
    """The issue's bar: max |difference| of scores and descriptors <= 1e-4 and >= 99 % of the
    top-1000 keypoint candidates identical, on a real 640x480 frame, for both variants."""
    ops = onnx_ops(exports[variant])
    if variant == "deformconv":
        assert "DeformConv" in ops and "GridSample" not in ops
    else:
        assert "GridSample" in ops and "DeformConv" not in ops
    r = check_onnx(net, exports[variant], _frame(0))
    assert r["max_abs_scores"] <= 1e-4, r
    assert r["max_abs_descriptors"] <= 1e-4, r
    # 640x480 has fewer cell maxima than 1000 (4x4 cells, 3x3-cell NMS): all of them compared
    assert r["topk"] >= 500 and r["topk_identical"] >= 0.99, r


def test_onnx_metadata_identifies_the_model(net, exports) -> None:
    meta = read_metadata(exports["deformconv"])
    assert meta["dkp_slam.model_hash"] == model_hash(net)
    assert meta["dkp_slam.variant"] == "deformconv"
    assert meta["dkp_slam.input"] == "1x1x480x640"
    assert meta["dkp_slam.opset"] == "19"
    assert "255" in meta["dkp_slam.normalisation"]
    assert json.loads(meta["dkp_slam.conf"])["descriptor_dim"] == net.conf["descriptor_dim"]
    assert read_metadata(exports["dynamic"])["dkp_slam.input"].endswith("(dynamic)")


def test_dynamic_export_runs_at_other_sizes(net, exports) -> None:
    for size in ((1232, 376), (320, 240)):  # KITTI padded to a multiple of 8, QVGA
        r = check_onnx(net, exports["dynamic"], _frame(3, size))
        assert r["max_abs_scores"] <= 1e-4 and r["max_abs_descriptors"] <= 1e-4, r
        assert r["topk_identical"] >= 0.99, r


def test_decomposed_at_opset_17_uses_the_torchscript_exporter(net, tmp_path) -> None:
    path = tmp_path / "dec17.onnx"
    meta = export_onnx(net, path, variant="decomposed", height=240, width=320, opset=17)
    assert meta["dkp_slam.opset"] == "17"
    import onnx

    assert onnx.load(str(path)).opset_import[0].version == 17
    r = check_onnx(net, path, _frame(5, (320, 240)))
    assert r["max_abs_scores"] <= 1e-4 and r["topk_identical"] >= 0.99, r


def test_export_rejects_what_cannot_work(net, tmp_path) -> None:
    with pytest.raises(ExportError, match="opset >= 19"):
        export_onnx(net, tmp_path / "a.onnx", variant="deformconv", opset=18)
    with pytest.raises(ExportError, match="16-19"):
        export_onnx(net, tmp_path / "b.onnx", variant="decomposed", opset=20)
    with pytest.raises(ExportError, match="multiples of 8"):
        export_onnx(net, tmp_path / "c.onnx", height=100, width=640)
    with pytest.raises(ValueError, match="unknown ONNX variant"):
        export_onnx(net, tmp_path / "d.onnx", variant="gather")
    with pytest.raises(ExportError, match="not found"):
        read_metadata(tmp_path / "missing.onnx")


def _detector(backend: str, **extra):
    conf = FrontEndConfig.from_dict({"detector.name": "dkp", "detector.dkp.backend": backend,
                                     **extra})
    return conf, create_detector(conf.detector)


def test_onnxruntime_backend_gives_the_torch_keypoints(tmp_path) -> None:
    """Same keypoints (within 0.5 px: near-tied peak pixels may flip) and descriptors through
    the detector interface, at KITTI's native size (padded inside the detector)."""
    _, det_t = _detector("torch")
    _, det_o = _detector("onnxruntime", **{"detector.dkp.cache_dir": str(tmp_path)})
    assert det_o.backend.name == "onnxruntime"
    assert "CPUExecutionProvider" in det_o.backend.description
    image = _frame(7, (1226, 370))
    a, b = det_t(image), det_o(image)
    assert len(a["keypoints"]) == len(b["keypoints"]) == 1000
    d = np.linalg.norm(a["keypoints"][:, None] - b["keypoints"][None], axis=2)
    nearest = d.argmin(1)
    same = d[np.arange(len(d)), nearest] <= 0.5
    assert same.mean() >= 0.99
    assert np.abs(a["descriptors"][same] - b["descriptors"][nearest[same]]).max() < 0.05
    # the export was cached by model hash: a second detector reuses it
    cached = list((tmp_path / "onnx").glob("dkp_*_deformconv_dynamic.onnx"))
    assert len(cached) == 1 and model_hash(det_t.net) in cached[0].name


def test_frontend_on_onnxruntime_tracks_like_torch(tmp_path) -> None:
    if not KITTI.is_dir():
        pytest.skip(f"needs KITTI07 at {KITTI}")
    from dkp_slam.datasets import load_kitti

    seq = load_kitti(KITTI).subset(0, 6)
    out = {}
    for backend in ("torch", "onnxruntime"):
        conf = FrontEndConfig.from_dict({"detector.name": "dkp", "detector.dkp.backend": backend,
                                         "detector.dkp.cache_dir": str(tmp_path)})
        fe = FrontEnd(conf, seq.camera)
        out[backend] = [fe.process(seq.load_image(i), float(seq.stamps[i])) for i in range(6)]
    same = []
    for rt, ro in zip(out["torch"][1:], out["onnxruntime"][1:]):
        assert rt.status == ro.status and rt.status.tracked
        angle = np.degrees(np.arccos(np.clip((np.trace(rt.R.T @ ro.R) - 1) / 2, -1, 1)))
        same.append(angle < 0.01 and rt.num_inliers == ro.num_inliers)
    # Identical inputs give identical poses (OpenCV's USAC is seeded); where a keypoint moved
    # by float rounding, RANSAC may draw other samples, so not every frame has to agree.
    assert sum(same) >= 3, same


def test_tensorrt_without_tensorrt_falls_back_with_one_line(net, tmp_path, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="dkp_slam.model.backends"):
        backend = create_backend("tensorrt", net, torch.device("cpu"), cache_dir=str(tmp_path))
    assert backend.name == "onnxruntime"
    lines = [r for r in caplog.records if "DKPNet backend:" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.WARNING
    assert "requested tensorrt" in lines[0].getMessage()
    assert "CUDA" in lines[0].getMessage() or "TensorRT" in lines[0].getMessage()
    out = backend(torch.rand(1, 1, 64, 96))
    assert out["score_logits"].shape == (1, 1, 64, 96)
    assert out["descriptor_map"].shape == (1, net.conf["descriptor_dim"], 8, 12)


def test_onnx_file_of_other_weights_is_refused(net, tmp_path) -> None:
    other = load_model()
    with torch.no_grad():
        other.score_out.bias += 1.0
    path = tmp_path / "other.onnx"
    export_onnx(other, path, height=64, width=96)
    with pytest.raises(BackendError, match="holds model"):
        onnx_for(net, str(path), "deformconv", str(tmp_path))
    with pytest.raises(BackendError, match="not found"):
        onnx_for(net, str(tmp_path / "missing.onnx"), "deformconv", str(tmp_path))
    # a file the user named is a configuration error: no fallback, a start-up error (#15)
    with pytest.raises(ModelFileError, match="holds model"):
        create_backend("onnxruntime", net, torch.device("cpu"), onnx_path=str(path))
    assert issubclass(ModelFileError, WeightsError)
    if KITTI.is_dir():  # the CLI and the node: one line naming the file, exit 2
        proc = _cli("run", str(KITTI), "--max-frames", "2", "--no-progress", "--output",
                    str(tmp_path / "o"), "--set", "detector.dkp.backend=onnxruntime", "--set",
                    f"detector.dkp.onnx={path}")
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip().splitlines()[-1].startswith("dkp-slam: error: ")
        assert str(path) in proc.stderr and "Traceback" not in proc.stderr
        node = subprocess.run([sys.executable, "-m", "dkp_slam.ros.node", "--ros-args", "-p",
                               "detector.dkp.backend:=onnxruntime", "-p",
                               f"detector.dkp.onnx:={path}"], capture_output=True, text=True,
                              timeout=120)
        assert node.returncode == 2, node.stderr
        assert f"frontend_node: error: detector.dkp.onnx: {path}" in node.stderr or \
            f"frontend_node: error: {path} holds model" in node.stderr, node.stderr
    with pytest.raises(ValueError, match="unknown DKPNet backend"):
        create_backend("openvino", net, torch.device("cpu"))


def test_fixed_size_onnx_file_is_refused_for_the_pyramid(exports, tmp_path) -> None:
    """Pyramid levels run the network on several sizes: a fixed-size file cannot serve them.
    It is refused with the reason (a start-up error), works with one level, and a dynamic
    export serves every level."""
    fixed, dynamic = str(exports["deformconv"]), str(exports["dynamic"])
    image = _frame(3, (640, 480))
    with pytest.raises(ModelFileError, match="fixed-size export"):
        _detector("onnxruntime", **{"detector.dkp.onnx": fixed, "detector.dkp.n_levels": 2})
    for onnx, levels, expected in ((fixed, 1, "onnxruntime"), (dynamic, 2, "onnxruntime")):
        _, det = _detector("onnxruntime", **{"detector.dkp.onnx": onnx,
                                             "detector.dkp.n_levels": levels})
        assert det.backend.name == expected, (onnx, levels)
        assert len(det(image)["keypoints"]) == 1000
    with pytest.raises(BackendError, match="fixed-size export"):
        onnx_for(load_model(), fixed, "deformconv", str(tmp_path), any_size=True)


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dkp_slam.cli", *args], capture_output=True,
                          text=True, cwd=cwd)


def test_export_command(tmp_path) -> None:
    out = tmp_path / "dkp_decomposed.onnx"
    proc = _cli("export", "--output", str(out), "--variant", "decomposed", "--height", "240",
                "--width", "320")
    assert proc.returncode == 0, proc.stderr
    assert "GridSample" in proc.stdout and "OK" in proc.stdout
    assert read_metadata(out)["dkp_slam.input"] == "1x1x240x320"
    proc = _cli("export", "--output", str(tmp_path / "x.onnx"), "--weights",
                str(tmp_path / "missing.pt"))
    assert proc.returncode == 2 and "not found" in proc.stderr


def test_bench_speed_backends_json(tmp_path) -> None:
    js = tmp_path / "speed.json"
    proc = _cli("bench", "speed", "--backends", "torch,onnxruntime,tensorrt", "--sizes",
                "320x240", "--frames", "3", "--output", str(tmp_path / "bench"), "--json",
                str(js), "--set", f"detector.dkp.cache_dir={tmp_path / 'cache'}")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(js.read_text())
    assert set(result) == {"torch", "onnxruntime"}  # tensorrt fell back: not reported as such
    for r in result.values():
        assert r["detector_ms"] > 0 and r["frontend_fps"] > 0
    assert "tensorrt: not measured" in proc.stdout
    # several DKPNet methods (weights or settings) per backend in one run; others are left out
    proc = _cli("bench", "speed", "--backends", "torch", "--methods", "orb,dkp,dkp:n_levels=1",
                "--sizes", "320x240", "--frames", "2", "--output", str(tmp_path / "bench"),
                "--json", str(js))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(js.read_text())
    assert set(result) == {"dkp / torch", "dkp:n_levels=1 / torch"}
    assert [r["method"] for r in result.values()] == ["dkp", "dkp:n_levels=1"]
    assert all(r["frames"] == 2 and r["detector_ms"] > 0 for r in result.values())
