"""ONNX export of DKPNet (``dkp-slam export``) and the numerical check against PyTorch.

Two variants of the same network:

- ``deformconv``: every deformable convolution is the standard ONNX ``DeformConv`` op
  (opset 19). onnxruntime >= 1.31 runs it on CPU; TensorRT >= 10.1 imports it through its
  ``ModulatedDeformConv2d`` plugin.
- ``decomposed``: every deformable convolution is bilinear sampling (``GridSample``) followed
  by a grouped 1x1 ``Conv`` (:func:`~dkp_slam.model.dkpnet.deform_conv3x3_grid_sample`,
  numerically the same operation), for runtimes without ``DeformConv`` such as TensorRT 8.5 /
  8.6 (JetPack 5 / 6.0). Opset 19 by default; ``opset`` 16-17 uses PyTorch's TorchScript
  exporter (the dynamo exporter cannot go below 18), for parsers that stop at opset 17.

The graph: input ``image`` (1,1,H,W) float32, grey values in [0, 1] (uint8 / 255; the network
normalises internally), H and W multiples of 8, fixed or dynamic; outputs ``score_logits``
(1,1,H,W) and ``descriptor_map`` (1,D,H/8,W/8), L2-normalised. Keypoint extraction (cell NMS,
top-k, sub-pixel refinement) and descriptor sampling stay outside the graph, in
:class:`~dkp_slam.features.dkp.DKPDetector`, on the backend's device.

Metadata (``metadata_props``, all strings): ``dkp_slam.model_hash`` (of the weights),
``dkp_slam.variant``, ``dkp_slam.input`` (``1x1xHxW`` or ``1x1xHxW (dynamic)``),
``dkp_slam.normalisation``, ``dkp_slam.conf`` (JSON), ``dkp_slam.version``.
"""

from __future__ import annotations

import hashlib
import io
import contextlib
import json
import logging
import math
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from .dkpnet import DKPNet, extract_keypoints

VARIANTS = ("deformconv", "decomposed")
INPUT_NAME = "image"
OUTPUT_NAMES = ("score_logits", "descriptor_map")
NORMALISATION = "grey uint8 / 255 -> [0, 1], shape (1,1,H,W), H and W multiples of 8"


#: Loggers of the exporter's passes, which log every rewrite at INFO.
_EXPORTER_LOGGERS = ("onnx_ir", "onnxscript", "torch.onnx", "torch.export")


@contextlib.contextmanager
def _quiet_exporter():
    """The exporter's INFO chatter off (WARNING and above stay) for the duration."""
    loggers = [logging.getLogger(n) for n in _EXPORTER_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(max(lg.level, logging.WARNING))
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


class ExportError(RuntimeError):
    """The export or its numerical check failed."""


class _Outputs(nn.Module):
    """DKPNet with tuple outputs (ONNX graphs have positional outputs)."""

    def __init__(self, net: DKPNet):
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net(image)
        return out["score_logits"], out["descriptor_map"]


def model_hash(net: DKPNet) -> str:
    """SHA-256 (first 16 hex digits) of the network's configuration and parameters: the
    identity of a model across weight files, exports and engine caches."""
    h = hashlib.sha256(json.dumps(
        {k: v for k, v in net.conf.items() if k != "dcn_impl"}, sort_keys=True,
        default=list).encode())
    for name, tensor in sorted(net.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def variant_net(net: DKPNet, variant: str) -> DKPNet:
    """A CPU copy of ``net`` in eval mode whose deformable convolutions use the op of
    ``variant`` (``deformconv``: ``torchvision.ops.deform_conv2d``; ``decomposed``:
    ``grid_sample`` + 1x1 conv). Parameters are shared in value, not in memory."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown ONNX variant {variant!r}; choose from {VARIANTS}")
    conf = dict(net.conf, dcn_impl="torchvision" if variant == "deformconv" else "grid_sample")
    copy = DKPNet(conf)
    copy.load_state_dict({k: v.detach().cpu() for k, v in net.state_dict().items()})
    return copy.eval()


def _deform_conv2d_to_onnx(input, weight, offset, mask, bias, stride_h, stride_w, pad_h, pad_w,
                           dil_h, dil_w, n_weight_grps, n_offset_grps, use_mask):
    """``torchvision::deform_conv2d`` -> ONNX ``DeformConv`` (opset 19; same offset layout:
    ``(dy, dx)`` per kernel tap, taps row-major)."""
    from onnxscript import opset19 as op

    return op.DeformConv(input, weight, offset, bias, mask if use_mask else None,
                         dilations=[dil_h, dil_w], group=n_weight_grps,
                         offset_group=n_offset_grps, pads=[pad_h, pad_w, pad_h, pad_w],
                         strides=[stride_h, stride_w])


def _export_proto(model: nn.Module, example: torch.Tensor, variant: str, opset: int,
                  dynamic: bool):
    """The ONNX ModelProto of ``model``: the dynamo exporter for opset >= 18 (with the
    DeformConv translation), PyTorch's TorchScript exporter for opset 16-17."""
    import onnx

    if opset >= 18:
        try:
            import onnxscript  # noqa: F401
        except ImportError as exc:
            raise ExportError("the dynamo ONNX exporter needs `onnxscript` (the `onnx` "
                              "extra): pip install 'dkp_slam[onnx]'") from exc
        dims = None
        if dynamic:
            dims = {"image": {2: 8 * torch.export.Dim("h8", min=2, max=512),
                              3: 8 * torch.export.Dim("w8", min=2, max=512)}}
        program = torch.onnx.export(
            model, (example,), dynamo=True, opset_version=opset,
            input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
            dynamic_shapes=dims, verbose=False,
            custom_translation_table={
                torch.ops.torchvision.deform_conv2d.default: _deform_conv2d_to_onnx})
        return program.model_proto
    buf = io.BytesIO()
    axes = ({INPUT_NAME: {2: "height", 3: "width"},
             "score_logits": {2: "height", 3: "width"},
             "descriptor_map": {2: "height8", 3: "width8"}} if dynamic else None)
    torch.onnx.export(model, (example,), buf, dynamo=False, opset_version=opset,
                      input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
                      dynamic_axes=axes, do_constant_folding=True)
    return onnx.load_from_string(buf.getvalue())


def export_onnx(net: DKPNet, path: str | Path, variant: str = "deformconv",
                height: int = 480, width: int = 640, dynamic: bool = False,
                opset: Optional[int] = None) -> dict[str, str]:
    """Write ``net`` as an ONNX file; returns the metadata written into it.

    Args:
        net: the network (any device; exported from a CPU copy).
        path: output ``.onnx`` file (parent folders are created).
        variant: ``deformconv`` or ``decomposed`` (module docstring).
        height, width: input size traced (and fixed unless ``dynamic``), multiples of 8.
        dynamic: H and W free (multiples of 8 from 16 to 4096).
        opset: ONNX opset; default 19. ``deformconv`` needs 19+; ``decomposed`` takes 16-19.

    Raises:
        ExportError: bad size or opset, missing ``onnx`` / ``onnxscript``, or an exporter
            failure (with its message).
    """
    import torchvision  # noqa: F401  (registers torch.ops.torchvision.deform_conv2d)

    opset = int(opset or 19)
    if height % 8 or width % 8 or height < 16 or width < 16:
        raise ExportError(f"input size {width}x{height}: width and height must be multiples "
                          f"of 8 and at least 16")
    if variant == "deformconv" and opset < 19:
        raise ExportError(f"ONNX DeformConv needs opset >= 19 (asked: {opset})")
    if variant == "decomposed" and not 16 <= opset <= 19:
        raise ExportError(f"the decomposed variant takes opset 16-19 (GridSample 'bilinear'; "
                          f"opset 20 renamed it 'linear', which TensorRT misreads); asked: {opset}")
    try:
        import onnx
    except ImportError as exc:
        raise ExportError("ONNX export needs the `onnx` extra: pip install 'dkp_slam[onnx]'"
                          ) from exc
    model = _Outputs(variant_net(net, variant)).eval()
    example = torch.rand(1, 1, height, width, generator=torch.Generator().manual_seed(0))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with _quiet_exporter():
            proto = _export_proto(model, example, variant, opset, dynamic)
    except ExportError:
        raise
    except Exception as exc:  # exporter errors are many types; report the first line
        raise ExportError(f"ONNX export ({variant}, opset {opset}) failed: "
                          f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r}"
                          ) from exc
    from .. import __version__

    meta = {
        "dkp_slam.model_hash": model_hash(net),
        "dkp_slam.variant": variant,
        "dkp_slam.input": f"1x1x{height}x{width}" + (" (dynamic)" if dynamic else ""),
        "dkp_slam.normalisation": NORMALISATION,
        "dkp_slam.conf": json.dumps({k: v for k, v in net.conf.items() if k != "dcn_impl"},
                                    default=list),
        "dkp_slam.version": __version__,
        "dkp_slam.opset": str(opset),
    }
    # Node names of the deformable block start with "dcn/" (the legacy exporter already puts
    # "/net/deform/" in them): TensorRT names its layers after them and keeps those in FP32.
    for node in proto.graph.node:
        scope = next((e.value for e in node.metadata_props if e.key == "namespace"), "")
        if "DeformBlock" in scope and not node.name.startswith("dcn/"):
            node.name = "dcn/" + node.name
    del proto.metadata_props[:]
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    return meta


def read_metadata(path: str | Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file (without loading its weights into memory twice).

    Raises:
        ExportError: missing or unreadable file.
    """
    import onnx

    p = Path(path)
    if not p.is_file():
        raise ExportError(f"ONNX file not found: {p}")
    try:
        proto = onnx.load(str(p), load_external_data=False)
    except Exception as exc:
        raise ExportError(f"cannot read ONNX file {p}: {exc}") from exc
    return {e.key: e.value for e in proto.metadata_props}


def onnx_ops(path: str | Path) -> list[str]:
    """Sorted op types used in an ONNX file."""
    import onnx

    return sorted({n.op_type for n in onnx.load(str(path)).graph.node})


def compare_outputs(reference: dict[str, torch.Tensor], other: dict[str, torch.Tensor],
                    top_k: int = 1000) -> dict[str, Any]:
    """How far two sets of network outputs (``score_logits``, ``descriptor_map``) are apart.

    Returns ``max_abs_scores`` (of the sigmoid scores), ``max_abs_logits``,
    ``max_abs_descriptors``, and for the reference's ``topk`` best keypoints
    (:func:`~dkp_slam.model.dkpnet.extract_keypoints` on the logits, as the detector ranks
    them):

    - ``topk_identical``: the share that the other outputs detect too, at a refined position
      within 0.5 px. Where two neighbouring pixels tie to within float rounding, the peak pixel
      can flip between them, which moves the 3x3 sub-pixel centroid by up to 0.25 px: the same
      keypoint, not a different one.
    - ``topk_exact``: the share at the same refined position within 0.01 px.
    """
    ref_l = reference["score_logits"].float().cpu()
    oth_l = other["score_logits"].float().cpu()
    kp_r, _ = extract_keypoints(ref_l, top_k, -math.inf)
    kp_o, _ = extract_keypoints(oth_l, top_k, -math.inf)
    same = exact = 0.0
    if len(kp_r) and len(kp_o):
        d = torch.cdist(kp_r.double(), kp_o.double()).min(1).values
        same, exact = float((d <= 0.5).double().mean()), float((d <= 0.01).double().mean())
    return {
        "max_abs_logits": float((ref_l - oth_l).abs().max()),
        "max_abs_scores": float((torch.sigmoid(ref_l) - torch.sigmoid(oth_l)).abs().max()),
        "max_abs_descriptors": float((reference["descriptor_map"].float().cpu()
                                      - other["descriptor_map"].float().cpu()).abs().max()),
        "topk_identical": same,
        "topk_exact": exact,
        "topk": int(len(kp_r)),
    }


@torch.inference_mode()
def check_onnx(net: DKPNet, path: str | Path, image: np.ndarray, top_k: int = 1000
               ) -> dict[str, Any]:
    """Run the ONNX file with onnxruntime (CPU) and PyTorch on one grey uint8 image (cropped
    to a multiple of 8; for a fixed-size export it must already have the exported size) and
    return :func:`compare_outputs`."""
    import onnxruntime as ort

    h, w = image.shape[0] // 8 * 8, image.shape[1] // 8 * 8
    x = torch.from_numpy(np.ascontiguousarray(image[:h, :w])).float().div_(255.0)[None, None]
    ref = net.eval().cpu()(x)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits, desc = session.run(list(OUTPUT_NAMES), {INPUT_NAME: x.numpy()})
    return compare_outputs(ref, {"score_logits": torch.from_numpy(logits),
                                 "descriptor_map": torch.from_numpy(desc)}, top_k)


__all__ = ["VARIANTS", "INPUT_NAME", "OUTPUT_NAMES", "ExportError", "model_hash", "variant_net",
           "export_onnx", "read_metadata", "onnx_ops", "compare_outputs", "check_onnx"]
