"""Input image checks, compressed image decoding that notices damaged data, and conversion to
the grey uint8 image detectors work on."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
from typing import Iterator

import cv2
import numpy as np

#: Smallest and largest accepted image sides (pixels).
MIN_SIDE = 16
MAX_SIDE = 16384


class ImageError(ValueError):
    """Raised for images the front-end cannot process; the message says why."""


#: libjpeg's warnings for damaged data (its ``JWRN_*`` messages, written to stderr while it
#: decodes on): ``Corrupt JPEG data: premature end of data segment``, ``... N extraneous bytes
#: before marker``, ``Premature end of JPEG file``, bad Huffman codes, ...
LIBJPEG_DAMAGE = ("Corrupt JPEG data", "Premature end of JPEG file", "Invalid SOS parameters",
                  "Huffman", "Inconsistent progression", "Bogus")
_STDERR_LOCK = threading.Lock()


@contextlib.contextmanager
def _stderr_captured() -> Iterator[list[str]]:
    """Collect what is written to file descriptor 2 (C libraries included) into the list
    yielded, for the duration of the block. One capture at a time; other threads' output in
    that window is written out again afterwards, in order."""
    lines: list[str] = []
    with _STDERR_LOCK, tempfile.TemporaryFile() as sink:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):  # no stderr at all: nothing to capture
            yield lines
            return
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            with contextlib.suppress(OSError, ValueError, AttributeError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines.extend(sink.read().decode("utf-8", "replace").splitlines())


def decode_compressed(data: np.ndarray | bytes, flags: int = cv2.IMREAD_UNCHANGED
                      ) -> np.ndarray:
    """``cv2.imdecode`` that refuses damaged data.

    OpenCV decodes a JPEG with damaged entropy-coded data into an image (grey blocks from the
    damage on) and libjpeg only prints a warning; here that warning is caught and the frame
    rejected. Other output written to stderr meanwhile is passed through.

    Raises:
        ImageError: the data cannot be decoded, or libjpeg reported damage (with its words).
    """
    buf = np.frombuffer(data, dtype=np.uint8) if isinstance(data, (bytes, bytearray,
                                                                  memoryview)) else data
    if buf.size < 2 or buf[0] != 0xFF or buf[1] != 0xD8:  # not JPEG: OpenCV's answer is it
        image = cv2.imdecode(buf, flags)
        if image is None or image.size == 0:
            raise ImageError(f"corrupt compressed image: OpenCV could not decode its {buf.size} "
                             f"bytes")
        return image
    with _stderr_captured() as output:
        image = cv2.imdecode(buf, flags)
    damage = [line for line in output if any(w in line for w in LIBJPEG_DAMAGE)]
    other = [line for line in output if line not in damage]
    if other:
        with contextlib.suppress(OSError):
            os.write(2, ("\n".join(other) + "\n").encode())
    if image is None or image.size == 0:
        raise ImageError(f"corrupt JPEG ({buf.size} bytes)" +
                         (f": {'; '.join(damage)}" if damage else ""))
    if damage:
        raise ImageError(f"corrupt JPEG ({buf.size} bytes): libjpeg: {'; '.join(damage)}")
    return image


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
