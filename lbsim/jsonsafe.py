"""Plain, JSON-safe Python data from whatever a run, a report or a DataFrame row holds.

The one place that turns numpy scalars and arrays, pandas' NA, tuples and non-string keys
into plain ``dict`` / ``list`` / ``str`` / ``int`` / ``float`` / ``bool`` / ``None``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["plain", "strict"]


def plain(obj: Any, *, finite: bool = False) -> Any:
    """``obj`` as plain data: mappings (keys as ``str``), lists and tuples (as lists) recursed,
    numpy scalars and arrays converted, pandas NA as None, anything else unknown as ``str``.

    NaN and infinities are kept (Python's json writes them as ``NaN`` / ``Infinity``) unless
    ``finite`` is true: then they become None, for strict JSON.
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return None if finite and not math.isfinite(obj) else float(obj)
    if isinstance(obj, Mapping):
        return {str(k): plain(v, finite=finite) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v, finite=finite) for v in obj]
    if type(obj).__name__ == "NAType":  # pandas.NA, without importing pandas
        return None
    if hasattr(obj, "tolist"):  # numpy scalars (np.int64, np.bool_, ...) and arrays
        return plain(obj.tolist(), finite=finite)
    if hasattr(obj, "item"):
        return plain(obj.item(), finite=finite)
    return str(obj)


def strict(obj: Any) -> Any:
    """``plain(obj, finite=True)``: for strict JSON (reports read by other tools)."""
    return plain(obj, finite=True)
