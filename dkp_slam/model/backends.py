"""Inference backends for DKPNet behind one interface, chosen by ``detector.dkp.backend``.

A backend maps a (1,1,H,W) float32 image in [0, 1] (H, W multiples of 8) to the network's
``score_logits`` (1,1,H,W) and ``descriptor_map`` (1,D,H/8,W/8) as float32 torch tensors on
:attr:`Backend.device`, where the detector's keypoint extraction then runs (on the GPU for
CUDA backends).

- ``torch``: the PyTorch module (CPU or CUDA; on CUDA optional fp16 autocast, which keeps
  ``grid_sample`` and so the deformable sampling in fp32, and optional CUDA graphs).
- ``onnxruntime``: an ONNX export (:mod:`dkp_slam.model.export`) in onnxruntime; CPU, or the
  TensorRT / CUDA execution providers first when the device is CUDA and they are installed.
- ``tensorrt``: a TensorRT engine built from the ONNX export, FP16 with the deformable layers
  kept FP32, plugins loaded first, engines cached by model hash + TensorRT version + GPU +
  input size, a timing cache, asynchronous execution on a CUDA stream with pinned host input.
  **Written against the documented TensorRT 8.6 / 10.x Python API and not run here** (no
  TensorRT on the development machines); see docs/DEPLOY.md.

:func:`create_backend` tries the requested backend and falls back (tensorrt -> onnxruntime ->
torch) when it cannot start, logging one line that says which backend runs and why.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Optional

import torch

from ..registry import BACKENDS
from .dkpnet import DKPNet
from .weights import WeightsError

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "fp16")
#: What each backend falls back to when it cannot start.
FALLBACK = {"tensorrt": "onnxruntime", "onnxruntime": "torch", "torch": None}


class BackendError(RuntimeError):
    """A backend cannot run here (missing package, device or file)."""


class ModelFileError(WeightsError, BackendError):
    """The ONNX file the user named (``detector.dkp.onnx``) is missing, unreadable, from other
    weights or of a fixed size for a pyramid: a configuration error, never a fallback. A
    :class:`~dkp_slam.model.weights.WeightsError`, so the CLI and the node stop at start-up
    with one line naming the file (exit 2)."""


def default_cache_dir() -> Path:
    """``$DKP_SLAM_CACHE``, else ``$XDG_CACHE_HOME/dkp_slam``, else ``~/.cache/dkp_slam``."""
    if os.environ.get("DKP_SLAM_CACHE"):
        return Path(os.environ["DKP_SLAM_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dkp_slam"


class Backend:
    """Base class: ``backend(x) -> {"score_logits", "descriptor_map"}`` (module docstring).

    Attributes:
        name: ``torch``, ``onnxruntime`` or ``tensorrt``.
        device: torch device of the outputs (and of the input the detector should pass).
        description: one line for the log (provider, precision, ...).
    """

    name = "base"

    def __init__(self, device: torch.device):
        self.device = device
        self.description = self.name

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError


# ---------------------------------------------------------------------- torch
class TorchBackend(Backend):
    """The PyTorch module on ``device``; ``fp16`` (CUDA only) runs under autocast, and
    ``cuda_graphs`` (CUDA only) replays one captured graph per input size."""

    name = "torch"

    def __init__(self, net: DKPNet, device: torch.device, fp16: bool = False,
                 cuda_graphs: bool = False):
        super().__init__(device)
        cuda = device.type == "cuda"
        if (fp16 or cuda_graphs) and not cuda:
            log.info("fp16 and CUDA graphs apply to CUDA only; running fp32 on %s",
                     device)
        self.net = net.eval().to(device)
        self.fp16, self.cuda_graphs = fp16 and cuda, cuda_graphs and cuda
        self._graphs: dict[tuple[int, ...], tuple[Any, torch.Tensor, dict]] = {}
        self.description = (f"torch ({device}, {'fp16 autocast' if self.fp16 else 'fp32'}"
                            f"{', CUDA graphs' if self.cuda_graphs else ''})")

    def _forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.autocast("cuda", dtype=torch.float16, enabled=self.fp16):
            out = self.net(x)
        return {"score_logits": out["score_logits"].float(),
                "descriptor_map": out["descriptor_map"].float()}

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if not self.cuda_graphs:
            return self._forward(x)
        key = tuple(x.shape)
        if key not in self._graphs:
            static_in = x.clone()
            stream = torch.cuda.Stream(self.device)
            stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(stream):
                for _ in range(2):  # warm-up outside the graph (cuDNN autotuning, allocations)
                    self._forward(static_in)
            torch.cuda.current_stream(self.device).wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_out = self._forward(static_in)
            self._graphs[key] = (graph, static_in, static_out)
        graph, static_in, static_out = self._graphs[key]
        static_in.copy_(x)
        graph.replay()
        return {k: v.clone() for k, v in static_out.items()}


# ---------------------------------------------------------------------- onnx file
def onnx_for(net: DKPNet, onnx_path: str, variant: str, cache_dir: Optional[str],
             any_size: bool = False) -> Path:
    """The ONNX file a backend runs: ``onnx_path`` when given (its ``dkp_slam.model_hash``
    must be the loaded weights', and with ``any_size`` it must be a dynamic-size export),
    else a dynamic-size export of ``net`` cached as
    ``<cache>/onnx/dkp_<hash>_<variant>_dynamic.onnx`` (exported on first use).

    ``any_size``: the network will run on several input sizes (the detector's pyramid levels).

    Raises:
        ModelFileError: a given file is missing, unreadable, from other weights or (with
            ``any_size``) of a fixed size.
        BackendError: the export cannot run (no ``onnx`` extra).
    """
    from .export import ExportError, export_onnx, model_hash, read_metadata

    want = model_hash(net)
    if onnx_path:
        try:
            meta = read_metadata(onnx_path)
        except ImportError as exc:
            raise BackendError(str(exc)) from exc
        except ExportError as exc:
            raise ModelFileError(f"detector.dkp.onnx: {exc}") from exc
        have = meta.get("dkp_slam.model_hash")
        if have != want:
            raise ModelFileError(f"{onnx_path} holds model {have} but the weights are model "
                               f"{want}: export it again (dkp-slam export) or set "
                               f"detector.dkp.onnx to ''")
        size = meta.get("dkp_slam.input", "")
        if any_size and "dynamic" not in size:
            raise ModelFileError(f"{onnx_path} is a fixed-size export ({size}) but the pyramid "
                               f"levels (detector.dkp.n_levels > 1) run the network on several "
                               f"sizes: export with --dynamic, or set detector.dkp.n_levels to 1")
        return Path(onnx_path)
    path = Path(cache_dir or default_cache_dir()) / "onnx" / f"dkp_{want}_{variant}_dynamic.onnx"
    if not path.is_file():
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        try:
            export_onnx(net, tmp, variant=variant, dynamic=True)
            tmp.replace(path)  # atomic: concurrent processes never read a half-written file
        except (ExportError, ImportError) as exc:
            raise BackendError(f"cannot export DKPNet to ONNX: {exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)
        log.info("exported DKPNet %s (%s) to %s", want, variant, path)
    return path


# ---------------------------------------------------------------------- onnxruntime
class OnnxRuntimeBackend(Backend):
    """onnxruntime session on an ONNX export. On a CUDA device the TensorRT and CUDA
    execution providers are used first when this onnxruntime build has them; outputs are
    moved to ``device``."""

    name = "onnxruntime"

    def __init__(self, onnx_path: Path, device: torch.device, threads: int = 0):
        super().__init__(device)
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise BackendError("onnxruntime is not installed (pip install "
                               "'dkp_slam[onnx]')") from exc
        available = ort.get_available_providers()
        wanted = (["TensorrtExecutionProvider", "CUDAExecutionProvider"]
                  if device.type == "cuda" else []) + ["CPUExecutionProvider"]
        providers = [p for p in wanted if p in available]
        if device.type == "cuda" and providers == ["CPUExecutionProvider"]:
            log.warning("onnxruntime has no CUDA/TensorRT provider here; running on its CPU")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = threads or torch.get_num_threads()
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(onnx_path), opts, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise BackendError(f"onnxruntime cannot load {onnx_path}: {exc}") from exc
        self.description = f"onnxruntime {ort.__version__} ({self.session.get_providers()[0]})"

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        logits, desc = self.session.run(["score_logits", "descriptor_map"],
                                        {"image": x.detach().cpu().numpy()})
        return {"score_logits": torch.from_numpy(logits).to(self.device),
                "descriptor_map": torch.from_numpy(desc).to(self.device)}


# ---------------------------------------------------------------------- tensorrt
class TensorRTBackend(Backend):
    """TensorRT engine from an ONNX export (see the module docstring; not run here).

    One engine per input size, built on first use or read from ``cache_dir/engines``:
    ``dkp_<hash>_<variant>_trt<version>_<gpu>_<H>x<W>_<fp16|fp32>.engine``. FP16 builds keep
    every deformable-convolution layer (the ``DeformConv`` plugin layer, or the
    ``GridSample`` sampling of the decomposed variant) in FP32: FP16 rounding of sampling
    coordinates costs accuracy. The builder's timing cache persists in the same folder.
    """

    name = "tensorrt"

    def __init__(self, onnx_path: Path, model_id: str, variant: str, descriptor_dim: int,
                 device: torch.device, fp16: bool = True, cache_dir: Optional[str] = None,
                 plugin_library: str = "", workspace_mb: int = 1024):
        super().__init__(device)
        if device.type != "cuda" or not torch.cuda.is_available():
            raise BackendError("the tensorrt backend needs a CUDA device (matcher.device: cuda)")
        try:
            import tensorrt as trt
        except ImportError as exc:
            raise BackendError("TensorRT (python package `tensorrt`) is not installed") from exc
        self.trt = trt
        self.logger = trt.Logger(trt.Logger.WARNING)
        if plugin_library:  # e.g. a custom plugin .so; the standard plugins come next
            import ctypes

            ctypes.CDLL(plugin_library, mode=ctypes.RTLD_GLOBAL)
        trt.init_libnvinfer_plugins(self.logger, "")  # ModulatedDeformConv2d and friends
        self.onnx_path, self.model_id, self.variant = Path(onnx_path), model_id, variant
        self.fp16, self.workspace_mb, self.descriptor_dim = fp16, workspace_mb, descriptor_dim
        gpu = torch.cuda.get_device_name(device).replace(" ", "-")
        self.tag = f"trt{trt.__version__}_{gpu}"
        self.cache = Path(cache_dir or default_cache_dir()) / "engines"
        self.cache.mkdir(parents=True, exist_ok=True)
        self.runtime = trt.Runtime(self.logger)
        self.stream = torch.cuda.Stream(device)
        self._engines: dict[tuple[int, int], tuple[Any, Any, dict[str, torch.Tensor]]] = {}
        # Parse now, build per input size later: an op this TensorRT cannot import (DeformConv
        # before 10.1) then falls back at start-up, with the parser's reason, not at frame 1.
        self._parse()
        self.description = f"tensorrt {trt.__version__} ({'fp16, DCN fp32' if fp16 else 'fp32'})"

    def engine_path(self, height: int, width: int) -> Path:
        prec = "fp16" if self.fp16 else "fp32"
        return self.cache / (f"dkp_{self.model_id}_{self.variant}_{self.tag}_{height}x{width}_"
                             f"{prec}.engine")

    def _parse(self) -> tuple[Any, Any, Any]:
        """``(builder, network, parser)`` with the ONNX file parsed.

        Raises:
            BackendError: the parser's errors (e.g. an op without importer or plugin)."""
        trt = self.trt
        builder = trt.Builder(self.logger)
        flags = 0
        if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):  # implicit in 10.x
            flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, self.logger)
        if not parser.parse(self.onnx_path.read_bytes()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise BackendError(f"TensorRT cannot parse {self.onnx_path}: {errors} (TensorRT "
                               f"< 10.1: set detector.dkp.onnx_variant to decomposed)")
        return builder, network, parser

    def _build(self, height: int, width: int) -> bytes:
        trt = self.trt
        builder, network, _parser = self._parse()  # the parser must outlive the build
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, self.workspace_mb << 20)
        profile = builder.create_optimization_profile()
        shape = (1, 1, height, width)
        profile.set_shape("image", shape, shape, shape)
        config.add_optimization_profile(profile)
        if self.fp16:
            config.set_flag(trt.BuilderFlag.FP16)
            config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
            for i in range(network.num_layers):
                layer = network.get_layer(i)
                # the DeformConv plugin, GridSample, and every layer of the deformable block
                # (export.py names those nodes "dcn/..."; the legacy exporter ".../deform/...")
                if ("PLUGIN" in str(layer.type) or "GRID_SAMPLE" in str(layer.type)
                        or "dcn/" in layer.name or "deform" in layer.name.lower()):
                    layer.precision = trt.float32
                    for j in range(layer.num_outputs):
                        layer.set_output_type(j, trt.float32)
        timing_file = self.cache / f"timing_{self.tag}.cache"
        cache = config.create_timing_cache(timing_file.read_bytes() if timing_file.is_file()
                                           else b"")
        config.set_timing_cache(cache, ignore_mismatch=False)
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise BackendError(f"TensorRT failed to build an engine from {self.onnx_path}")
        timing_file.write_bytes(memoryview(config.get_timing_cache().serialize()))
        return bytes(memoryview(plan))

    def _engine(self, height: int, width: int) -> tuple[Any, dict[str, torch.Tensor]]:
        """The execution context for this input size and its buffers: a pinned host input,
        the device input and both outputs, allocated once and bound to the context."""
        key = (height, width)
        if key not in self._engines:
            path = self.engine_path(height, width)
            engine, problem = None, ""
            if path.is_file():  # a cache: a file this TensorRT / GPU cannot use is rebuilt
                engine = self.runtime.deserialize_cuda_engine(path.read_bytes())
                problem = ("it cannot be deserialised (truncated, or built by another TensorRT"
                           " or GPU)" if engine is None else self._io_mismatch(engine, height,
                                                                               width))
                if problem:
                    log.warning("cached TensorRT engine %s unusable: %s; rebuilding", path,
                                problem)
                    engine = None
            if engine is None:
                log.info("building TensorRT engine %s (minutes on a Jetson)", path.name)
                plan = self._build(height, width)
                engine = self.runtime.deserialize_cuda_engine(plan)
                problem = ("TensorRT cannot deserialise the engine it just built"
                           if engine is None else self._io_mismatch(engine, height, width))
                if problem:
                    raise BackendError(f"TensorRT engine from {self.onnx_path}: {problem}")
                path.write_bytes(plan)
            context = engine.create_execution_context()
            context.set_input_shape("image", (1, 1, height, width))
            dev, f32 = self.device, torch.float32
            buffers = {
                "host": torch.empty((1, 1, height, width), dtype=f32, pin_memory=True),
                "image": torch.empty((1, 1, height, width), dtype=f32, device=dev),
                "score_logits": torch.empty((1, 1, height, width), dtype=f32, device=dev),
                "descriptor_map": torch.empty((1, self.descriptor_dim, height // 8, width // 8),
                                              dtype=f32, device=dev),
            }
            for name in ("image", "score_logits", "descriptor_map"):
                context.set_tensor_address(name, buffers[name].data_ptr())
            self._engines[key] = (engine, context, buffers)
        return self._engines[key][1:]

    def _io_mismatch(self, engine: Any, height: int, width: int) -> str:
        """Why ``engine``'s input / output tensors do not fit this model at this size ("" when
        they do): names, and the shapes the buffers of :meth:`_engine` are allocated with."""
        expected = {"image": (1, 1, height, width), "score_logits": (1, 1, height, width),
                    "descriptor_map": (1, self.descriptor_dim, height // 8, width // 8)}
        names = {engine.get_tensor_name(i) for i in range(engine.num_io_tensors)}
        if names != set(expected):
            return f"tensors {sorted(names)}, expected {sorted(expected)}"
        for name, shape in expected.items():
            have = tuple(engine.get_tensor_shape(name))
            if have != shape and not (name == "image" and -1 in have):  # a dynamic input
                return f"{name} has shape {have}, expected {shape}"
        return ""

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        _, _, h, w = x.shape
        context, buf = self._engine(h, w)
        with torch.cuda.stream(self.stream):
            if x.device.type == "cpu":  # through the pinned buffer: an asynchronous copy
                buf["host"].copy_(x)
                buf["image"].copy_(buf["host"], non_blocking=True)
            else:
                buf["image"].copy_(x)
            if not context.execute_async_v3(self.stream.cuda_stream):
                raise BackendError("TensorRT execution failed")
        torch.cuda.current_stream(self.device).wait_stream(self.stream)
        # copies on the caller's stream: the bound buffers are reused by the next frame
        return {"score_logits": buf["score_logits"].clone(),
                "descriptor_map": buf["descriptor_map"].clone()}


# ---------------------------------------------------------------------- factory
def create_backend(name: str, net: DKPNet, device: torch.device, *, precision: str = "auto",
                   cuda_graphs: bool = False, onnx_path: str = "",
                   onnx_variant: str = "deformconv", cache_dir: str = "",
                   plugin_library: str = "", any_size: bool = False) -> Backend:
    """The requested backend, or the first that starts in its fallback chain
    (:data:`FALLBACK`); logs one line saying which backend runs and, after a fallback, why.

    ``any_size``: the backend must run any input size (pyramid levels): a given fixed-size
    ONNX file is then refused (see :func:`onnx_for`).

    ``precision``: ``fp32``, ``fp16`` (torch: CUDA autocast; tensorrt: FP16 with the
    deformable layers in FP32) or ``auto`` (fp16 for tensorrt, fp32 otherwise); CPU backends
    always run fp32.

    Raises:
        ValueError: an unknown backend name or precision.
        ModelFileError: ``onnx_path`` names a file that cannot be used (no fallback).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {PRECISIONS}")
    BACKENDS.get(name)  # ValueError with the registered names
    reasons = []
    current: Optional[str] = name
    while current is not None:
        try:
            fp16 = precision == "fp16" or (precision == "auto" and current == "tensorrt")
            backend = BACKENDS.get(current)(net, device, fp16, cuda_graphs, onnx_path,
                                            onnx_variant, cache_dir, plugin_library, any_size)
        except ModelFileError:
            raise  # the user's file is wrong: no backend can help
        except BackendError as exc:
            reasons.append(f"{current}: {exc}")
            current = FALLBACK.get(current)
            continue
        if reasons:
            log.warning("DKPNet backend: %s (requested %s; %s)", backend.description, name,
                        "; ".join(reasons))
        else:
            log.info("DKPNet backend: %s", backend.description)
        return backend
    raise BackendError("; ".join(reasons))  # torch always starts; kept for completeness


# Each backend's start-up from the options of create_backend, registered under its name
# (a backend added elsewhere registers a function with the same arguments).
def _start_torch(net, device, fp16, cuda_graphs, onnx_path, onnx_variant, cache_dir,
                 plugin_library, any_size) -> Backend:
    return TorchBackend(net, device, fp16=fp16, cuda_graphs=cuda_graphs)


def _start_onnxruntime(net, device, fp16, cuda_graphs, onnx_path, onnx_variant, cache_dir,
                       plugin_library, any_size) -> Backend:
    return OnnxRuntimeBackend(onnx_for(net, onnx_path, onnx_variant, cache_dir, any_size), device)


def _start_tensorrt(net, device, fp16, cuda_graphs, onnx_path, onnx_variant, cache_dir,
                    plugin_library, any_size) -> Backend:
    from .export import model_hash

    path = onnx_for(net, onnx_path, onnx_variant, cache_dir, any_size)
    return TensorRTBackend(path, model_hash(net), onnx_variant, int(net.conf["descriptor_dim"]),
                           device, fp16=fp16, cache_dir=cache_dir, plugin_library=plugin_library)


BACKENDS.register("torch", _start_torch)
BACKENDS.register("onnxruntime", _start_onnxruntime)
BACKENDS.register("tensorrt", _start_tensorrt)


__all__ = ["BACKENDS", "PRECISIONS", "FALLBACK", "Backend", "BackendError", "TorchBackend",
           "OnnxRuntimeBackend", "TensorRTBackend", "create_backend", "onnx_for",
           "default_cache_dir"]
