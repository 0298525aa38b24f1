"""Point lookup (MapIt style): which areas contain this point, and who is responsible."""

from __future__ import annotations

import datetime as dt
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query

from api.deps import AtDep, Lang, ReadSessionDep, SettingsDep
from api.schemas.locate import Located
from geogrid.access import scopes
from geogrid.areas import lookup
from geogrid.core.errors import GeogridError

router = APIRouter(prefix="/api", tags=["locate"])


@router.get("/locate", response_model=Located, response_model_exclude_unset=True,  # unpublished fields: absent
            summary="Every area and grid (all layers, all levels) containing a point")
def locate(
    session: ReadSessionDep,
    settings: SettingsDep,
    at: AtDep,
    lon: Annotated[float, Query(ge=-180, le=180, description="Longitude, WGS84 degrees")],
    lat: Annotated[float, Query(ge=-90, le=90, description="Latitude, WGS84 degrees")],
    lang: Lang = "zh",
) -> dict:
    """A point on a boundary shared by several grids is in all of them (``on_boundary``);
    per layer and level exactly one is ``primary``: the one whose interior holds the point,
    else the lowest code. Persons are those holding a post on the day of ``at``, public
    fields only. Anyone without a staff role sees the published generation (what the
    public saw at ``at``); staff see the current boundaries, drafts included."""
    x0, y0, x1, y1 = settings.extent
    if not (x0 <= lon <= x1 and y0 <= lat <= y1):
        hint = " (lat and lon look swapped)" if x0 <= lat <= x1 and y0 <= lon <= y1 else ""
        raise GeogridError(f"point {lon}, {lat} is outside the service extent {settings.extent}{hint}")
    day = (at or dt.datetime.now(ZoneInfo(settings.timezone))).astimezone(ZoneInfo(settings.timezone)).date()
    published = not scopes.is_staff(session)
    results = lookup.locate(session, lon, lat, at=at, day=day, lang=lang, published=published)
    return {"lon": lon, "lat": lat, "at": at, "day": day, "results": results}
