"""Input image checks and conversion to the grey uint8 image detectors work on."""

from __future__ import annotations

import cv2
import numpy as np

#: Smallest and largest accepted image sides (pixels).
MIN_SIDE = 16
MAX_SIDE = 16384


class ImageError(ValueError):
    """Raised for images the front-end cannot process; the message says why."""


def to_gray_uint8(image: np.ndarray, channel_order: str = "bgr") -> np.ndarray:
    """Validate ``image`` and return a C-contiguous HxW uint8 grey image.

    Accepted: HxW, HxWx1, HxWx3 or HxWx4 arrays of uint8 (0..255), uint16 (0..65535, scaled
    down by 257) or float32/float64 (0..1, must be finite). ``channel_order`` is ``bgr`` or
    ``rgb`` for 3- and 4-channel images (alpha is ignored). Non-contiguous views are copied.

    Raises:
        ImageError: not an array, empty, too small or too large, wrong dtype or channel count,
            NaN/inf values.
    """
    if not isinstance(image, np.ndarray):
        raise ImageError(f"image must be a numpy array, got {type(image).__name__}")
    if image.size == 0:
        raise ImageError(f"image is empty (shape {image.shape})")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise ImageError(f"image must be HxW, HxWx3 or HxWx4, got shape {image.shape}")
    h, w = image.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise ImageError(f"image {w}x{h} is smaller than {MIN_SIDE}x{MIN_SIDE} pixels")
    if max(h, w) > MAX_SIDE:
        raise ImageError(f"image {w}x{h} is larger than {MAX_SIDE} pixels on a side")
    if image.dtype == np.uint8:
        pass
    elif image.dtype == np.uint16:
        image = (image.astype(np.float32) * (255.0 / 65535.0) + 0.5).astype(np.uint8)
    elif image.dtype in (np.float32, np.float64):
        if not np.all(np.isfinite(image)):
            raise ImageError("image contains NaN or inf values")
        image = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    else:
        raise ImageError(f"unsupported image dtype {image.dtype}; use uint8, uint16 or float")
    if image.ndim == 3:
        if channel_order not in ("bgr", "rgb"):
            raise ImageError(f"channel_order must be 'bgr' or 'rgb', got {channel_order!r}")
        code = {("bgr", 3): cv2.COLOR_BGR2GRAY, ("rgb", 3): cv2.COLOR_RGB2GRAY,
                ("bgr", 4): cv2.COLOR_BGRA2GRAY, ("rgb", 4): cv2.COLOR_RGBA2GRAY}
        image = cv2.cvtColor(np.ascontiguousarray(image), code[(channel_order, image.shape[2])])
    return np.ascontiguousarray(image)
