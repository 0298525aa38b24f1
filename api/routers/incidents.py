"""Incidents (事件) for staff: intake, reading, the case workflow, moving, escalation,
bulk import; categories; pollution sources and patrols."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, File, Query, Request, Response, UploadFile, status
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ADMIN, STAFF, IfMatchDep, Lang, PageDep, SessionDep, SettingsDep, links, require
from geogrid import access, files, incidents, sources
from geogrid.errors import GeogridError

router = APIRouter(prefix="/api", tags=["incidents"])
CENTRE = [require(*incidents.CENTRE)]


class Reporter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=100)
    phone: str | None = Field(default=None, pattern=r"^[0-9+\-() ]{3,32}$")
    email: str | None = Field(default=None, max_length=200)


class IncidentIn(BaseModel):
    category: str = Field(description="Category key, see /api/categories")
    lon: float = Field(description="Longitude in `crs`")
    lat: float = Field(description="Latitude in `crs`")
    crs: str = Field(default="wgs84", description="wgs84, cgcs2000, gcj02 (Amap, Tencent) or bd09 (Baidu)")
    description: str = Field(max_length=20_000, description=f"At most {incidents.MAX_DESCRIPTION} characters")
    channel: Literal[tuple(incidents.CHANNELS)] = "patrol"  # type: ignore[valid-type]
    occurred_at: dt.datetime | None = Field(default=None, description="Default: now")
    media_urls: list[str] = Field(default_factory=list, max_length=50)
    reporter: Reporter | None = Field(default=None, description="Private: never published")
    idempotency_key: str | None = Field(default=None, max_length=100,
                                        description="A second submission with the same key on the same channel "
                                                    "from the same account is refused (409)")


def _incident_body(body: IncidentIn) -> dict:
    data = body.model_dump()
    data["reporter"] = body.reporter.model_dump(exclude_none=True) if body.reporter else None
    return data


@router.get("/categories", tags=["incidents"], summary="Incident categories: net, department, time limits")
def list_categories(session: SessionDep) -> list[dict]:
    return list(incidents.categories(session).values())


class TimeLimitsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    time_limits: dict[Literal["accept", "dispatch", "handle", "verify"],
                      tuple[float, Literal["working_hours", "working_days", "hours", "days"]]] | None = None
    department: str | None = Field(default=None, max_length=100)
    public: bool | None = None
    auto_escalate: bool | None = None


@router.patch("/categories/{key}", dependencies=ADMIN, summary="Set a category's time limits, department, publicity")
def edit_category(session: SessionDep, key: str, body: TimeLimitsIn) -> dict:
    from sqlalchemy import text

    before = incidents.categories(session).get(key)
    if before is None:
        raise GeogridError(f"category {key} not found", status=404)
    changes = body.model_dump(exclude_unset=True)
    if "time_limits" in changes:
        limits = {**before["time_limits"], **{k: list(v) for k, v in (changes["time_limits"] or {}).items()}}
        if any(v[0] < 0 for v in limits.values()):
            raise GeogridError("time limits must not be negative")
        changes["time_limits"] = json.dumps(limits)
    for column, value in changes.items():
        cast = "CAST(:v AS jsonb)" if column == "time_limits" else ":v"
        session.execute(text(f"UPDATE category SET {column} = {cast} WHERE key = :k"), {"v": value, "k": key})
    access.record(session, "update", "category", key, before, incidents.categories(session)[key])
    session.commit()
    return incidents.categories(session)[key]


@router.post("/incidents", dependencies=STAFF, status_code=status.HTTP_201_CREATED,
             summary="Take in an incident: converted to WGS84, routed to grid and persons, all or nothing")
def create_incident(session: SessionDep, settings: SettingsDep, body: IncidentIn, lang: Lang = "zh") -> dict:
    out = incidents.intake(session, _incident_body(body), settings, lang=lang)
    session.commit()
    return out


@router.get("/incidents", dependencies=STAFF, summary="Incidents, newest first (grid workers: their own)")
def list_incidents(request: Request, session: SessionDep, page: PageDep,
                   state: Annotated[Literal[tuple(incidents.STATES)] | None, Query()] = None,  # type: ignore[valid-type]
                   category: str | None = None,
                   area: Annotated[str | None, Query(pattern=r"^\d+$", description="Grid or authority code prefix")] = None,
                   overdue: bool | None = None, blind_spot: bool | None = None,
                   since: dt.datetime | None = None, until: dt.datetime | None = None) -> dict:
    items, matched = incidents.list_incidents(session, state=state, category=category, area=area, overdue=overdue,
                                              blind_spot=blind_spot, since=since, until=until,
                                              limit=page.limit, offset=page.offset)
    return {"items": items, "numberMatched": matched, "numberReturned": len(items),
            "links": links(request, page, len(items), matched)}


@router.get("/incidents/overdue", dependencies=STAFF, summary="Open cases past their time limit")
def overdue(session: SessionDep, page: PageDep) -> dict:
    items, matched = incidents.list_incidents(session, overdue=True, limit=page.limit, offset=page.offset)
    return {"items": items, "numberMatched": matched, "numberReturned": len(items)}


@router.post("/incidents/escalate-overdue", dependencies=ADMIN,
             summary="Escalate every overdue case whose category escalates automatically")
def escalate_overdue(session: SessionDep, settings: SettingsDep) -> dict:
    done = incidents.escalate_overdue(session, settings)
    session.commit()
    return {"escalated": done}


@router.get("/incidents/{incident_id}", dependencies=STAFF, summary="One case with its history")
def read_incident(session: SessionDep, incident_id: int, response: Response) -> dict:
    out = incidents.get_incident(session, incident_id, history=True)
    response.headers["ETag"] = f'"{out["version"]}"'
    return out


class TransitionIn(BaseModel):
    to: Literal[tuple(incidents.STATES)]  # type: ignore[valid-type]
    note: str | None = Field(default=None, max_length=2000)
    satisfaction: int | None = Field(default=None, ge=0, le=10, description="Resident satisfaction 0-10, on closing")


@router.post("/incidents/{incident_id}/transitions", dependencies=STAFF,
             summary="Move the case (上报→受理→立案→派遣→处置→反馈→核查→结案, 作废, 挂账); 409 lists the allowed moves")
def transition(session: SessionDep, settings: SettingsDep, incident_id: int, body: TransitionIn,
               expected: IfMatchDep) -> dict:
    out = incidents.transition(session, incident_id, body.to, settings, note=body.note, satisfaction=body.satisfaction,
                               expected_version=expected)
    session.commit()
    return out


class NoteIn(BaseModel):
    note: str | None = Field(default=None, max_length=2000)


@router.post("/incidents/{incident_id}/escalate", dependencies=STAFF, summary="Hand the case one level up")
def escalate(session: SessionDep, settings: SettingsDep, incident_id: int, body: NoteIn, expected: IfMatchDep) -> dict:
    out = incidents.escalate(session, incident_id, settings, note=body.note, expected_version=expected)
    session.commit()
    return out


class MoveIn(BaseModel):
    lon: float
    lat: float
    crs: str = "wgs84"
    note: str | None = Field(default=None, max_length=2000)


@router.post("/incidents/{incident_id}/location", dependencies=STAFF,
             summary="Correct the location: routed again, the old route kept in the history")
def move(session: SessionDep, settings: SettingsDep, incident_id: int, body: MoveIn, expected: IfMatchDep) -> dict:
    out = incidents.move(session, incident_id, body.lon, body.lat, body.crs, settings, note=body.note,
                         expected_version=expected)
    session.commit()
    return out


@router.post("/incidents/import", dependencies=CENTRE, status_code=status.HTTP_201_CREATED,
             summary="Import historical incidents from CSV (lon, lat columns) or GeoJSON points, all or nothing")
def import_incidents(session: SessionDep, settings: SettingsDep,
                     file: Annotated[UploadFile, File(description=".csv with lon,lat or .geojson of points")]) -> dict:
    name = files.upload_name(file.filename, "upload.csv")
    path = files.save_upload(file.file, Path(name).suffix.lower(), settings.max_body_bytes)
    try:
        records = files.read_incident_rows(path, name=name)
    finally:
        files.remove(path)
    out = incidents.import_incidents(session, records, settings)
    session.commit()
    return out


# --------------------------------------------------------------------------- sources and patrols


class SourceIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    kind: Literal[tuple(sources.KINDS)]  # type: ignore[valid-type]
    lon: float
    lat: float
    pollutants: list[str] = Field(default_factory=list, max_length=50)
    permit_no: str | None = Field(default=None, max_length=64)
    key_supervision: bool = False
    risk_level: Literal["low", "medium", "high"] = "low"
    address: str | None = Field(default=None, max_length=300)
    notes: str | None = Field(default=None, max_length=5000)


class SourcePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    kind: Literal[tuple(sources.KINDS)] | None = None  # type: ignore[valid-type]
    lon: float | None = None
    lat: float | None = None
    pollutants: list[str] | None = Field(default=None, max_length=50)
    permit_no: str | None = Field(default=None, max_length=64)
    key_supervision: bool | None = None
    risk_level: Literal["low", "medium", "high"] | None = None
    address: str | None = Field(default=None, max_length=300)
    notes: str | None = Field(default=None, max_length=5000)


@router.get("/sources", dependencies=STAFF, tags=["environment"], summary="Pollution sources in your scope (环境监管档案)")
def list_sources(session: SessionDep, page: PageDep, area: str | None = None, key_only: bool = False,
                 kind: str | None = None) -> dict:
    items, matched = sources.list_sources(session, area=area, key_only=key_only, kind=kind,
                                          limit=page.limit, offset=page.offset)
    return {"items": items, "numberMatched": matched, "numberReturned": len(items)}


@router.post("/sources", dependencies=STAFF, tags=["environment"], status_code=status.HTTP_201_CREATED)
def create_source(session: SessionDep, settings: SettingsDep, body: SourceIn) -> dict:
    out = sources.create_source(session, body.model_dump(), settings)
    session.commit()
    return out


@router.get("/sources/{source_id}", dependencies=STAFF, tags=["environment"])
def read_source(session: SessionDep, source_id: int) -> dict:
    return sources.get_source(session, source_id)


@router.patch("/sources/{source_id}", dependencies=STAFF, tags=["environment"])
def edit_source(session: SessionDep, settings: SettingsDep, source_id: int, body: SourcePatch,
                expected: IfMatchDep) -> dict:
    out = sources.update_source(session, source_id, body.model_dump(exclude_unset=True), settings, expected)
    session.commit()
    return out


@router.delete("/sources/{source_id}", dependencies=STAFF, tags=["environment"], status_code=status.HTTP_204_NO_CONTENT)
def delete_source(session: SessionDep, source_id: int) -> Response:
    sources.delete_source(session, source_id)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


class PatrolIn(BaseModel):
    grid: str = Field(description="Code of the environment grid patrolled")
    at: dt.datetime | None = Field(default=None, description="Default: now")
    lon: float | None = None
    lat: float | None = None
    sources: list[int] = Field(default_factory=list, max_length=500, description="Ids of sources visited")
    notes: str | None = Field(default=None, max_length=5000)


@router.post("/patrols", dependencies=STAFF, tags=["environment"], status_code=status.HTTP_201_CREATED,
             summary="A patrol check-in on an environment grid")
def record_patrol(session: SessionDep, settings: SettingsDep, body: PatrolIn) -> dict:
    out = sources.record_patrol(session, body.model_dump(), settings)
    session.commit()
    return out


@router.get("/patrols/behind", dependencies=STAFF, tags=["environment"],
            summary="Environment grids and key sources of your scope behind their patrol frequency")
def patrols_behind(session: SessionDep, settings: SettingsDep, area: str | None = None) -> dict:
    return sources.patrols_behind(session, settings, area=area)
