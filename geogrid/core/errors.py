"""Errors that carry what went wrong and where, for the API (4xx) and the CLI alike."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Problem:
    """One thing wrong with one input feature or field."""

    message: str
    field: str | None = None
    index: int | None = None  # position of the feature in the input, from 0
    code: str | None = None
    location: tuple[float, float] | None = None  # lon, lat of the problem, where known
    unit: str = "feature"  # what index counts: features of a file, rows of a CSV

    def __post_init__(self) -> None:
        # Indices often come from numpy; keep them plain for JSON.
        if self.index is not None:
            self.index = int(self.index)
        if self.location is not None:
            self.location = (float(self.location[0]), float(self.location[1]))

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None and k != "unit"}

    def __str__(self) -> str:
        where = []
        if self.index is not None:
            where.append(f"{self.unit} {self.index}")
        if self.code:
            where.append(f"code {self.code}")
        if self.field:
            where.append(self.field)
        if self.location:
            where.append(f"at {self.location[0]:.7f} {self.location[1]:.7f}")
        return f"{', '.join(where)}: {self.message}" if where else self.message


@dataclass
class GeogridError(Exception):
    """A request that cannot be done as asked; ``status`` is the HTTP status to answer."""

    message: str
    status: int = 422
    problems: list[Problem] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    def __str__(self) -> str:
        lines = [self.message, *(f"  - {p}" for p in self.problems[:50])]
        if len(self.problems) > 50:
            lines.append(f"  ... and {len(self.problems) - 50} more")
        return "\n".join(lines)

    def as_dict(self) -> dict:
        body = {"detail": self.message, **self.extra}
        if self.problems:
            body["problems"] = [p.as_dict() for p in self.problems]
        return body


def not_found(what: str) -> GeogridError:
    """The 404 error for ``what`` (e.g. ``area 330106``)."""
    return GeogridError(f"{what} not found", status=404)


def conflict(message: str, **extra) -> GeogridError:
    """A 409 error; ``extra`` goes into the response body next to the message."""
    return GeogridError(message, status=409, extra=extra)
