"""Loading and saving DKPNet weight files.

A weight file is ``torch.save({"conf": net.conf, "state_dict": net.state_dict(), ...})``; extra
keys (training metadata) are ignored. Files are read with ``torch.load(weights_only=True)``, so
a weight file can never execute code. The shipped weights live next to this module in
``dkp_slam/weights/`` (package data); nothing is ever downloaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from .dkpnet import DKPNet

#: Directory of the weights shipped inside the package.
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
#: File name of the default shipped model.
DEFAULT_WEIGHTS = "dkp_v2.pt"


class WeightsError(RuntimeError):
    """A weight file is missing, unreadable or does not fit the network."""


def resolve_weights(path: Optional[str | Path]) -> Path:
    """``None``/empty -> the shipped default; a bare file name -> one of the shipped files;
    anything else is taken as a path."""
    if not path:
        return WEIGHTS_DIR / DEFAULT_WEIGHTS
    p = Path(path).expanduser()
    if not p.is_absolute() and p.parent == Path(".") and (WEIGHTS_DIR / p).exists():
        return WEIGHTS_DIR / p
    return p


def read_weights(path: Optional[str | Path] = None) -> tuple[dict, dict]:
    """``(conf, state_dict)`` from a weight file or a trainer checkpoint (``last.pt``).

    Raises:
        WeightsError: the file is missing, unreadable or holds neither format.
    """
    p = resolve_weights(path)
    if not p.is_file():
        raise WeightsError(f"DKPNet weight file not found: {p}")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and torch errors all mean "unreadable"
        # torch's own message may advise weights_only=False, which is wrong for a corrupt file
        raise WeightsError(f"cannot read DKPNet weights {p}: corrupt or not a PyTorch weight "
                           f"file ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
                           ) from exc
    if isinstance(ckpt, dict) and "state_dict" in ckpt and "conf" in ckpt:
        return dict(ckpt["conf"]), ckpt["state_dict"]
    if isinstance(ckpt, dict) and "model" in ckpt and "model_conf" in ckpt:
        return dict(ckpt["model_conf"]), ckpt["model"]
    raise WeightsError(f"{p} is not a DKPNet weight file (needs 'conf' and 'state_dict') "
                       "or training checkpoint")


def load_model(path: Optional[str | Path] = None, device: str | torch.device = "cpu",
               conf_overrides: Optional[dict] = None) -> DKPNet:
    """Build a DKPNet from a weight file, in eval mode on ``device``.

    Args:
        path: weight file (see :func:`resolve_weights`) or trainer checkpoint.
        conf_overrides: options that do not change the parameters, e.g.
            ``{"dcn_impl": "torchvision"}``.

    Raises:
        WeightsError: the file is missing, corrupt, or its tensors do not fit.
    """
    conf, state = read_weights(path)
    conf.update(conf_overrides or {})
    try:
        net = DKPNet(conf)
        net.load_state_dict(state)
    except (KeyError, ValueError, RuntimeError, TypeError) as exc:
        raise WeightsError(f"{resolve_weights(path)} does not fit DKPNet: {exc}") from exc
    return net.eval().to(device)


def save_model(net: DKPNet, path: str | Path, **metadata) -> None:
    """Write ``{"conf", "state_dict", **metadata}`` (tensors on CPU)."""
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"conf": dict(net.conf), "state_dict": state, **metadata}, path)
