"""Optimistic concurrency: every editable row carries a ``version``; a write that names a
stale one (``If-Match`` or a ``version`` in the body) gets 412 with the current version,
never a lost update.

>>> check_version("person", 7, current=3, expected=None)  # no expectation: no check
>>> check_version("person", 7, current=3, expected=2)
Traceback (most recent call last):
...
geogrid.core.errors.GeogridError: person 7 is at version 3, not 2: reload it and apply your change again
"""

from __future__ import annotations

from geogrid.core.errors import GeogridError


def check_version(kind: str, key, *, current: int, expected: int | None) -> None:
    """Refuse (412, ``current_version`` in the body) when ``expected`` is given and is not ``current``."""
    if expected is not None and expected != current:
        raise GeogridError(f"{kind} {key} is at version {current}, not {expected}: reload it and apply your change again",
                           status=412, extra={"current_version": current})
