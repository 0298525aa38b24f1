"""Publications (公示发布): a planner's action that makes a layer's current areas public."""

from __future__ import annotations

import datetime as dt

from pydantic import Field

from api.schemas.common import In, Out


class PublicationIn(In):
    area: str = Field(description="Code of the area whose subtree is published, or of one grid", pattern=r"^[0-9]+$",
                      max_length=32)
    layer: str | None = Field(default=None, max_length=32,
                              description="The layer (net) to publish; for a grid's code, its own layer by default")
    note: str | None = Field(default=None, max_length=2000, description="Why, e.g. 2026年11月网格调整")


class Publication(Out):
    id: int
    layer: str
    area: str | None = Field(description="The root of the published subtree (None: the whole layer)")
    area_name: str | None
    published_at: dt.datetime
    published_by: str | None = Field(default=None, description="Shown to staff only")
    note: str | None
    added: int
    changed: int
    withdrawn: int = Field(description="Retired or moved away since the last publication: no longer public")
    unchanged: int


class Pending(Out):
    """What a publication of the layer under the area would change now (drafts not yet public)."""

    area: str
    layer: str
    added: list[str]
    changed: list[str]
    withdrawn: list[str]
    unchanged: int
