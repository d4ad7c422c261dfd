"""Values JSON / YAML can write: the one conversion the summaries, the training logs, the
benchmark tables and the ``~/status`` messages share."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def jsonable(value: Any, non_finite_as_null: bool = False) -> Any:
    """``value`` with dict keys as strings, tuples and arrays as lists, numpy scalars as Python
    numbers; NaN / inf become None when ``non_finite_as_null`` (strict JSON, as ROS consumers
    parse it), and stay floats otherwise (Python's json writes them as NaN / Infinity)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v, non_finite_as_null) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, non_finite_as_null) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist(), non_finite_as_null)
    if isinstance(value, np.generic):
        value = value.item()
    if non_finite_as_null and isinstance(value, float) and not math.isfinite(value):
        return None
    return value


__all__ = ["jsonable"]
