"""Area codes: GB/T 2260 administrative codes extended by 3-digit segments.

The Beijing unit-grid standard gives a grid a 15-digit code: a 6-digit administrative
division code (GB/T 2260), 3 digits of town/street, 3 of community/village and a 3-digit
sequence. Each level's code length is configurable (table ``level``). A child's code
starts with its parent's code; between two 6-digit levels (province, city, county) it
starts with the parent's significant digits (``330100`` -> ``3301``).

>>> significant_prefix("330000"), significant_prefix("330100"), significant_prefix("330106")
('33', '3301', '330106')
>>> code_problem("330106001001007", 15, "330106001001")
>>> code_problem("330106001002007", 15, "330106001001")
'code 330106001002007 does not start with its parent code 330106001001'
>>> next_codes("330106001001", 15, ["330106001001003", "330106001001001"], 2)
['330106001001004', '330106001001005']
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def significant_prefix(code: str) -> str:
    """The digits of an administrative code that its children share (trailing 00 pairs cut)."""
    while len(code) > 2 and code.endswith("00") and len(code) % 2 == 0:
        code = code[:-2]
    return code


def code_problem(code: str, length: int, parent_code: str | None) -> str | None:
    """Why ``code`` is not a valid code of ``length`` digits under ``parent_code``; None if fine."""
    if not code.isascii() or not code.isdigit():
        return f"code {code!r} must contain digits only"
    if len(code) != length:
        return f"code {code} has {len(code)} digits, this level needs {length}"
    if parent_code:
        prefix = parent_code if len(parent_code) < length else significant_prefix(parent_code)
        if not code.startswith(prefix) or code == parent_code:
            return f"code {code} does not start with its parent code {parent_code}"
    return None


def next_codes(parent_code: str, length: int, taken: Sequence[str], count: int) -> list[str]:
    """``count`` new codes under ``parent_code``, after the highest sequence ever used.

    Sequences are never reused, so a code stays stable across re-divisions: a retired
    grid keeps its number. Raises ValueError when the level leaves no digits for a
    sequence or the sequence space is full.
    """
    width = length - len(parent_code)
    if width <= 0:
        raise ValueError(f"codes of {length} digits cannot be generated under {parent_code}; give them explicitly")
    used = [int(c[len(parent_code):]) for c in taken if len(c) == length and c.startswith(parent_code)]
    start = max(used, default=0) + 1
    if start + count - 1 >= 10**width:
        raise ValueError(f"no free {width}-digit sequence left under {parent_code}")
    return [f"{parent_code}{seq:0{width}d}" for seq in range(start, start + count)]


def reading_order(x: np.ndarray, y: np.ndarray, row_height: float) -> np.ndarray:
    """Indices that sort points in rows north to south, west to east within a row.

    This is how unit-grid standards number grids inside a community. ``row_height`` is
    the band height in the same units as ``y`` (a typical grid's height works well).

    >>> reading_order(np.array([1.0, 0.0, 0.0, 1.0]), np.array([0.0, 0.0, 1.0, 1.0]), 0.5).tolist()
    [2, 3, 1, 0]
    """
    if len(x) == 0:
        return np.zeros(0, dtype=int)
    row_height = row_height if row_height > 0 else 1.0
    # Rows are centred on the northernmost point; rounding (not flooring) keeps points of
    # one row together despite floating-point noise.
    row = np.rint((y.max() - y) / row_height)
    return np.lexsort((x, row))
