"""The one JSON encoding of geogrid: stored JSON (audit rows, incident events and
receipts, coverage runs and proposals) and JSON response bodies.

Text stays readable (no ``\\uXXXX`` escapes); numpy scalars become numbers, tuples lists,
and anything else JSON has no type for (dates, decimals) its ``str``.

>>> dumps({"名": (1, 2), "at": __import__("datetime").date(2026, 1, 2)})
'{"名": [1, 2], "at": "2026-01-02"}'
>>> dumps_or_none(None) is None
True
"""

from __future__ import annotations

import json

import numpy as np


def default(value):
    """What ``json.dumps`` writes for a value it has no type for."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    return str(value)


def dumps(obj, *, indent: int | None = None) -> str:
    """``obj`` as JSON text, the way geogrid stores and serves it (``indent`` for people to read)."""
    return json.dumps(obj, ensure_ascii=False, default=default, indent=indent)


def dumps_or_none(value) -> str | None:
    """JSON text for a nullable jsonb column: ``None`` stays SQL NULL."""
    return None if value is None else dumps(value)
