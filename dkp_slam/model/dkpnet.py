"""DKPNet: a small deformable, multi-scale keypoint detector and descriptor.

Architecture (input: grey image in [0, 1], H and W multiples of 8)::

    1/2  conv3x3 s2  1 -> c1                          (L2-Net style: strided early)
    1/4  conv3x3 s2  c1 -> c2, conv3x3 c2 -> c2       --> score map A
    1/8  conv3x3 s2  c2 -> c3
         multi-scale block: 3x3 convs with dilation 1, 2, 3 (receptive fields 3, 5, 7) in
         parallel, concatenated, fused by 1x1          --> score map B
         DCNv2 block (depthwise deformable 3x3 with learned offsets bounded by
         max_offset * tanh and a sigmoid modulation mask, between 1x1 convs)
         CBAM (channel + spatial attention), coordinate attention
                                                       --> score map C
    descriptor: [2x2-pooled 1/4 features, both 1/8 stages] -> 1x1 -> D, L2-normalised (1/8)

Each score map is a ``head_channels``-channel 1x1 projection at its own depth; A, B and C are
bilinearly upsampled to the 1/4 grid and fused with softmax weights (they sum to 1), upsampled
to 1/2 where the projected stem features add fine detail, upsampled to full resolution, and a
3x3 conv there gives the logit map. Every step is translation-equivariant: no pixel-shuffled
heads, whose per-sub-pixel biases let a network put keypoints on a fixed grid regardless of the
image (seen in training: peaky and similarity losses are both satisfied by such a grid). An
optional peakiness confidence ``max_c softplus(y - local mean) * softplus(y - channel mean)`` of
the last 1/8 features multiplies the sigmoid scores.

Ablation switches (``default_conf``): ``multiscale`` (multi-scale block *and* the three-depth
score fusion; off: a plain 3x3 conv and only score map C), ``dcn`` (off: a plain 3x3 conv),
``attention`` (off: no CBAM / coordinate attention), ``peakiness``.

Pixel convention: the centre of the top-left pixel is (0, 0). Score map pixel (v, u) is image
pixel (v, u). Descriptor-map cell (i, j) covers pixels 8j..8j+7 horizontally, so its centre is
at u = 8j + 3.5 (see :func:`sample_descriptors`).
"""

from __future__ import annotations

import math
from copy import deepcopy
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

default_conf: dict[str, Any] = {
    "channels": (16, 32, 64),  # widths at 1/2, 1/4, 1/8
    "descriptor_dim": 64,
    "multiscale": True,
    "dcn": True,
    "attention": True,
    "peakiness": False,
    "head_channels": 4,  # channels of each depth's score projection
    "max_offset": 4.0,  # DCN offsets bounded to +-max_offset pixels (of the 1/8 grid)
    "dcn_impl": "grid_sample",  # or "torchvision" (deform_conv2d): same result, slower on CPU
}


def merge_conf(conf: Optional[dict]) -> dict:
    """``default_conf`` updated with ``conf``; unknown keys are errors."""
    out = deepcopy(default_conf)
    for key, value in (conf or {}).items():
        if key not in out:
            raise KeyError(f"unknown DKPNet option {key!r}; known: {sorted(out)}")
        out[key] = value
    out["channels"] = tuple(int(c) for c in out["channels"])
    if out["dcn_impl"] not in ("torchvision", "grid_sample"):
        raise ValueError(f"dcn_impl must be 'torchvision' or 'grid_sample', got {out['dcn_impl']!r}")
    return out


def conv_bn_relu(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class MultiScaleBlock(nn.Module):
    """Parallel 3x3 convolutions with dilation 1, 2, 3 (3x3, 5x5, 7x7 receptive fields),
    concatenated and fused by a 1x1 convolution, with a residual connection."""

    def __init__(self, channels: int, branch: Optional[int] = None):
        super().__init__()
        branch = branch or channels // 2
        self.branches = nn.ModuleList(conv_bn_relu(channels, branch, dilation=d) for d in (1, 2, 3))
        self.fuse = nn.Sequential(nn.Conv2d(3 * branch, channels, 1, bias=False),
                                  nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fuse(torch.cat([b(x) for b in self.branches], 1))
        return F.relu(x + y)


def deform_conv3x3_grid_sample(x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor,
                               weight: torch.Tensor, bias: Optional[torch.Tensor] = None
                               ) -> torch.Tensor:
    """Modulated deformable 3x3 convolution (stride 1, padding 1) by bilinear sampling.

    Exactly :func:`torchvision.ops.deform_conv2d` with ``padding=1`` and weight groups
    ``C_in / weight.shape[1]`` (offsets laid out as ``(dy, dx)`` per kernel tap, taps row-major,
    one offset group; samples outside the image are zero), written as one ``grid_sample``
    followed by a grouped 1x1 convolution. Its backward pass is several times faster on CPU, its
    forward too, and it exports to ONNX ``GridSample`` for runtimes without ``DeformConv``.
    """
    b, c, h, w = x.shape
    k = 9
    groups = c // weight.shape[1]
    dev, dt = x.device, x.dtype
    ky, kx = torch.meshgrid(torch.arange(-1, 2, device=dev, dtype=dt),
                            torch.arange(-1, 2, device=dev, dtype=dt), indexing="ij")
    ys = torch.arange(h, device=dev, dtype=dt).view(1, 1, h, 1)
    xs = torch.arange(w, device=dev, dtype=dt).view(1, 1, 1, w)
    off = offset.view(b, k, 2, h, w)
    py = ys + ky.reshape(1, k, 1, 1) + off[:, :, 0]  # (B,9,H,W) sampling rows
    px = xs + kx.reshape(1, k, 1, 1) + off[:, :, 1]
    gx = px * (2.0 / max(w - 1, 1)) - 1.0
    gy = py * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack([gx, gy], -1).view(b, k * h, w, 2)
    samples = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    samples = samples.view(b, c, k, h, w) * mask.view(b, 1, k, h, w)
    cout = weight.shape[0]
    out = F.conv2d(samples.view(b, c * k, h, w), weight.reshape(cout, -1, 1, 1), groups=groups)
    return out if bias is None else out + bias.view(1, -1, 1, 1)


class DeformBlock(nn.Module):
    """DCNv2 block at 1/8: a 3x3 conv predicts 9 offsets ``(dy, dx)``, bounded to
    ``+-max_offset`` by ``tanh``, and 9 sigmoid modulation weights; a depthwise deformable 3x3
    conv samples there, on channels reduced by a 1x1 conv, and a 1x1 conv mixes channels back
    (deformable depthwise-separable convolution), with a residual connection."""

    def __init__(self, channels: int, inner: int, max_offset: float, impl: str):
        super().__init__()
        self.max_offset, self.impl = float(max_offset), impl
        self.reduce = nn.Sequential(nn.Conv2d(channels, inner, 1, bias=False),
                                    nn.BatchNorm2d(inner), nn.ReLU(inplace=True))
        self.offset_mask = nn.Conv2d(channels, 27, 3, padding=1)
        nn.init.zeros_(self.offset_mask.weight)  # start as a plain conv: zero offsets,
        nn.init.zeros_(self.offset_mask.bias)    # mask 0.5 everywhere
        self.weight = nn.Parameter(torch.empty(inner, 1, 3, 3))  # depthwise
        nn.init.kaiming_normal_(self.weight, nonlinearity="relu")
        self.bn = nn.BatchNorm2d(inner)
        self.expand = nn.Sequential(nn.Conv2d(inner, channels, 1, bias=False),
                                    nn.BatchNorm2d(channels))

    def offsets_and_mask(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        om = self.offset_mask(x)
        return torch.tanh(om[:, :18]) * self.max_offset, torch.sigmoid(om[:, 18:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        offset, mask = self.offsets_and_mask(x)
        y = self.reduce(x)
        if self.impl == "grid_sample":
            y = deform_conv3x3_grid_sample(y, offset, mask, self.weight)
        else:
            from torchvision.ops import deform_conv2d

            y = deform_conv2d(y, offset, self.weight, padding=(1, 1), mask=mask)
        y = self.expand(F.relu(self.bn(y)))
        return F.relu(x + y)


class CBAM(nn.Module):
    """Convolutional block attention: channel attention (shared MLP on average- and max-pooled
    features), then spatial attention (7x7 conv on channel mean and max)."""

    def __init__(self, channels: int, reduction: int = 8):
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.mlp = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True),
                                 nn.Conv2d(hidden, channels, 1))
        self.spatial = nn.Conv2d(2, 1, 7, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ca = torch.sigmoid(self.mlp(x.mean((2, 3), keepdim=True))
                           + self.mlp(x.amax((2, 3), keepdim=True)))
        x = x * ca
        sa = torch.sigmoid(self.spatial(torch.cat([x.mean(1, keepdim=True),
                                                   x.amax(1, keepdim=True)], 1)))
        return x * sa


class CoordinateAttention(nn.Module):
    """Coordinate attention (Hou et al., 2021): direction-aware pooling along rows and columns,
    a shared 1x1 transform, and per-row / per-column gates."""

    def __init__(self, channels: int, reduction: int = 8):
        super().__init__()
        hidden = max(channels // reduction, 8)
        self.shared = nn.Sequential(nn.Conv2d(channels, hidden, 1, bias=False),
                                    nn.BatchNorm2d(hidden), nn.ReLU(inplace=True))
        self.gate_h = nn.Conv2d(hidden, channels, 1)
        self.gate_w = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2:]
        ph = x.mean(3, keepdim=True)                   # (B,C,H,1)
        pw = x.mean(2, keepdim=True).transpose(2, 3)   # (B,C,W,1)
        y = self.shared(torch.cat([ph, pw], 2))
        yh, yw = torch.split(y, [h, w], 2)
        return x * torch.sigmoid(self.gate_h(yh)) * torch.sigmoid(self.gate_w(yw.transpose(2, 3)))


def peakiness(y: torch.Tensor) -> torch.Tensor:
    """Keypoint confidence ``max_c softplus(y - 3x3 mean) * softplus(y - channel mean)``,
    (B,1,H,W)."""
    spatial = F.softplus(y - F.avg_pool2d(y, 3, 1, 1, count_include_pad=False))
    channel = F.softplus(y - y.mean(1, keepdim=True))
    return (spatial * channel).amax(1, keepdim=True)


class DKPNet(nn.Module):
    """Deformable multi-scale keypoint network; see the module docstring.

    ``forward(images)`` takes (B,1,H,W) float images in [0, 1] (H, W multiples of 8) and returns
    a dict with ``score_logits`` (B,1,H,W), ``scores`` (B,1,H,W) in [0, 1] and
    ``descriptor_map`` (B,D,H/8,W/8), L2-normalised over D.
    """

    default_conf = default_conf

    def __init__(self, conf: Optional[dict] = None):
        super().__init__()
        self.conf = conf = merge_conf(conf)
        c1, c2, c3 = conf["channels"]
        self.stem = conv_bn_relu(1, c1, stride=2)
        self.stage4 = nn.Sequential(conv_bn_relu(c1, c2, stride=2), conv_bn_relu(c2, c2))
        self.down8 = conv_bn_relu(c2, c3, stride=2)
        self.stage8 = MultiScaleBlock(c3) if conf["multiscale"] else conv_bn_relu(c3, c3)
        self.deform = (DeformBlock(c3, c3 // 2, conf["max_offset"], conf["dcn_impl"])
                       if conf["dcn"] else conv_bn_relu(c3, c3))
        self.attention = (nn.Sequential(CBAM(c3), CoordinateAttention(c3))
                          if conf["attention"] else nn.Identity())
        hc = conf["head_channels"]
        self.score_last = nn.Conv2d(c3, hc, 1)
        if conf["multiscale"]:
            self.score4 = nn.Conv2d(c2, hc, 1)
            self.score8 = nn.Conv2d(c3, hc, 1)
            self.fusion_logits = nn.Parameter(torch.zeros(3))
        self.score2 = nn.Conv2d(c1, hc, 1)
        self.score_out = nn.Conv2d(hc, 1, 3, padding=1)
        self.desc = nn.Sequential(nn.Conv2d(c2 + 2 * c3, c3, 1, bias=False), nn.BatchNorm2d(c3),
                                  nn.ReLU(inplace=True), nn.Conv2d(c3, conf["descriptor_dim"], 1))

    def fusion_weights(self) -> torch.Tensor:
        """Weights of the (1/4, multi-scale 1/8, DCN 1/8) score heads; they sum to 1."""
        if not self.conf["multiscale"]:
            return torch.tensor([0.0, 0.0, 1.0])
        return torch.softmax(self.fusion_logits, 0)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if images.dim() != 4 or images.shape[1] != 1:
            raise ValueError(f"expected (B,1,H,W) images, got {tuple(images.shape)}")
        if images.shape[2] % 8 or images.shape[3] % 8:
            raise ValueError(f"image size must be a multiple of 8, got {tuple(images.shape[2:])}")
        x = (images - 0.5) * 4.0
        f2 = self.stem(x)
        f4 = self.stage4(f2)
        f8a = self.stage8(self.down8(f4))
        f8 = self.attention(self.deform(f8a))

        def up(t: torch.Tensor, like: torch.Tensor | torch.Size) -> torch.Tensor:
            size = like if isinstance(like, torch.Size) else like.shape[2:]
            return F.interpolate(t, size=size, mode="bilinear", align_corners=False)

        # Depth maps fused on the 1/4 grid, refined with the stem's 1/2 features, then one
        # upsampling to full resolution (bilinear everywhere: translation-equivariant).
        fused = up(self.score_last(f8), f4)
        if self.conf["multiscale"]:
            w = torch.softmax(self.fusion_logits, 0)
            fused = w[0] * self.score4(f4) + w[1] * up(self.score8(f8a), f4) + w[2] * fused
        fused = up(fused, f2) + self.score2(f2)
        logits = self.score_out(F.relu(up(fused, images.shape[2:])))
        scores = torch.sigmoid(logits)
        if self.conf["peakiness"]:
            conf = F.interpolate(peakiness(f8), size=logits.shape[2:], mode="bilinear",
                                 align_corners=False)
            scores = scores * conf / (conf.amax((2, 3), keepdim=True) + 1e-6)
        desc = self.desc(torch.cat([F.avg_pool2d(f4, 2), f8a, f8], 1))
        desc = F.normalize(desc, dim=1)
        return {"score_logits": logits, "scores": scores, "descriptor_map": desc}


def sample_descriptors(descriptor_map: torch.Tensor, keypoints: torch.Tensor,
                       image_hw: tuple[int, int]) -> torch.Tensor:
    """Bilinearly sample an L2-normalised (B,D,h,w) descriptor map at pixel keypoints.

    Args:
        descriptor_map: network output ``descriptor_map``, at stride ``s = W / w``.
        keypoints: (B,N,2) pixel coordinates (u, v), pixel-centre convention.
        image_hw: (H, W) of the network input.

    Returns:
        (B,N,D) L2-normalised descriptors. Cell (i, j) covers pixels ``s j .. s j + s - 1`` and
        has its centre at pixel ``(s j + (s - 1) / 2, s i + (s - 1) / 2)``; points beyond the
        outer cell centres take the border cell's value.
    """
    _, _, h, w = descriptor_map.shape
    sy, sx = image_hw[0] / h, image_hw[1] / w
    cx = (keypoints[..., 0] - (sx - 1) / 2) / sx
    cy = (keypoints[..., 1] - (sy - 1) / 2) / sy
    grid = torch.stack([cx * (2.0 / max(w - 1, 1)) - 1.0, cy * (2.0 / max(h - 1, 1)) - 1.0], -1)
    d = F.grid_sample(descriptor_map, grid[:, None].clamp(-1, 1), mode="bilinear",
                      align_corners=True)  # (B,D,1,N)
    return F.normalize(d[:, :, 0].transpose(1, 2), dim=2)


@torch.no_grad()
def box_max(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Maximum over the ``(2 radius + 1)^2`` window around each element of a 2-D map (outside
    the map counts as -inf): ``F.max_pool2d(x, 2 r + 1, 1, r)``, computed as separable maxima
    of shifted slices, which is several times faster on CPU for one-channel maps."""
    h, w = x.shape
    p = F.pad(x[None], (radius, radius, radius, radius), value=-math.inf)[0]
    rows = p[:, 0:w]
    for d in range(1, 2 * radius + 1):
        rows = torch.maximum(rows, p[:, d:d + w])
    out = rows[0:h]
    for d in range(1, 2 * radius + 1):
        out = torch.maximum(out, rows[d:d + h])
    return out


def extract_keypoints(scores: torch.Tensor, max_candidates: int, threshold: float = 0.0,
                      nms_cells: int = 1, refine_temperature: float = 0.1, cell: int = 4,
                      min_contrast: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor]:
    """Keypoints from a full-resolution score map without full-resolution NMS.

    Each ``cell`` x ``cell`` cell keeps its best pixel; cells that are not the maximum of their
    ``(2 nms_cells + 1)^2`` cell neighbourhood are suppressed (NMS radius ``cell`` to
    ``2 cell`` px: 4-8 px for the default 4x4 cells, 2-4 px for 2x2), then the
    ``max_candidates`` best above ``threshold`` are refined to sub-pixel positions by a softmax
    (temperature ``refine_temperature``) centroid of the 3x3 scores around the pixel. A cell
    must also exceed the weakest cell of its neighbourhood by ``min_contrast`` (map units):
    flat regions have no peaks.

    Args:
        scores: (1,1,H,W) scores or logits (any map where higher is better; ``threshold`` in
            the same units), H and W multiples of ``cell``.

    Returns:
        keypoints (N,2) float32 pixels (u, v), pixel-centre convention; their map values (N,).
    """
    _, _, hh, ww = scores.shape
    cells = F.pixel_unshuffle(scores, cell)[0]  # (cell^2,h,w)
    best, arg = cells.max(0)
    if nms_cells > 0:
        local = box_max(best, nms_cells)
        # A keypoint is a peak: the maximum of its neighbourhood and above its minimum, so a
        # flat map (a constant or saturated image) gives no keypoints rather than a grid.
        lowest = -box_max(-best, nms_cells)
        peak = (best >= local) & (best > lowest + min_contrast)
        best = torch.where(peak, best, torch.full_like(best, -math.inf))
    flat = best.flatten()
    n = min(max_candidates, int((flat > threshold).sum()), flat.numel())
    if n == 0:
        return torch.zeros(0, 2), torch.zeros(0)
    top_scores, idx = flat.topk(n)
    w4 = best.shape[1]
    ci, cj = idx // w4, idx % w4
    sub = arg.flatten()[idx]
    v = (ci * cell + sub // cell).long()
    u = (cj * cell + sub % cell).long()
    # 3x3 neighbourhoods (clamped at the border) for the sub-pixel centroid.
    pad = F.pad(scores[0], (1, 1, 1, 1), mode="replicate")[0]
    dv, du = torch.meshgrid(torch.arange(3), torch.arange(3), indexing="ij")
    patch = pad[v[:, None] + dv.flatten(), u[:, None] + du.flatten()]  # (N,9)
    wgt = torch.softmax((patch - patch.amax(1, keepdim=True)) / refine_temperature, 1)
    off_v = (wgt * (dv.flatten() - 1).to(wgt)).sum(1)
    off_u = (wgt * (du.flatten() - 1).to(wgt)).sum(1)
    kp = torch.stack([u.to(wgt) + off_u, v.to(wgt) + off_v], 1)
    kp[:, 0].clamp_(0, ww - 1)
    kp[:, 1].clamp_(0, hh - 1)
    return kp, top_scores


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
