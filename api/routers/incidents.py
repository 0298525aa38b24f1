"""Incidents (事件) for staff: intake, reading, the case workflow, moving, escalation,
bulk import. Categories are in :mod:`api.routers.categories`, pollution sources and
patrols in :mod:`api.routers.environment`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Query, Request, Response, UploadFile, status

from api.deps import (
    ADMIN,
    STAFF,
    STAFF_ASYNC,
    AsyncSessionDep,
    IfMatchDep,
    Lang,
    PageDep,
    SessionDep,
    SettingsDep,
    require,
)
from api.schemas.common import Page, paged
from api.schemas.incidents import (
    CallbackIn,
    CommentIn,
    Escalated,
    Incident,
    IncidentCase,
    IncidentDetail,
    IncidentImportReport,
    IncidentIn,
    MoveIn,
    NoteIn,
    OwnerIn,
    State,
    TransitionIn,
)
from geogrid.incidents import bulk, intake, records, states, workflow
from geogrid.io import files

router = APIRouter(prefix="/api", tags=["incidents"])
CENTRE = [require(*states.CENTRE)]


@router.post("/incidents", dependencies=STAFF_ASYNC, status_code=status.HTTP_201_CREATED, response_model=IncidentCase,
             summary="Take in an incident or a request: by a point (converted to WGS84), a household or an area "
                     "code; routed to grid or office and persons, all or nothing; 即办 closed in this call")
async def create_incident(session: AsyncSessionDep, settings: SettingsDep, body: IncidentIn,
                          lang: Lang = "zh") -> dict:
    # The hot path: the whole intake and its commit in a greenlet on the event loop, no thread.
    return await session.run_sync(_take_in, body.intake_data(), settings, lang)


def _take_in(session, data: dict, settings, lang: str) -> dict:
    out = intake.intake(session, data, settings, lang=lang)
    session.commit()
    return out


@router.get("/incidents", dependencies=STAFF, response_model=Page[Incident], summary="Incidents, newest first (grid workers: their own)")
def list_incidents(request: Request, session: SessionDep, page: PageDep,
                   state: Annotated[State | None, Query()] = None,
                   category: str | None = None,
                   area: Annotated[str | None, Query(pattern=r"^\d+$", description="Grid or authority code prefix")] = None,
                   overdue: bool | None = None, blind_spot: bool | None = None,
                   since: dt.datetime | None = None, until: dt.datetime | None = None) -> dict:
    items, matched = records.list_incidents(session, state=state, category=category, area=area, overdue=overdue,
                                              blind_spot=blind_spot, since=since, until=until,
                                              limit=page.limit, offset=page.offset)
    return paged(request, page, items, matched)


@router.get("/incidents/overdue", dependencies=STAFF, response_model=Page[Incident], summary="Open cases past their time limit")
def overdue(request: Request, session: SessionDep, page: PageDep) -> dict:
    items, matched = records.list_incidents(session, overdue=True, limit=page.limit, offset=page.offset)
    return paged(request, page, items, matched)


@router.post("/incidents/escalate-overdue", dependencies=ADMIN, response_model=Escalated,
             summary="Escalate every overdue case whose category escalates automatically")
def escalate_overdue(session: SessionDep, settings: SettingsDep) -> dict:
    done = workflow.escalate_overdue(session, settings)
    session.commit()
    return {"escalated": done}


@router.get("/incidents/{incident_id}", dependencies=STAFF, response_model=IncidentDetail, summary="One case with its history")
def read_incident(session: SessionDep, incident_id: int, response: Response) -> dict:
    out = records.get_incident(session, incident_id, history=True)
    response.headers["ETag"] = f'"{out["version"]}"'
    return out


@router.post("/incidents/{incident_id}/transitions", dependencies=STAFF, response_model=IncidentDetail,
             summary="Move the case (上报→受理→立案→派遣→处置→反馈→核查→结案, 作废, 挂账); 409 lists the allowed moves")
def transition(session: SessionDep, settings: SettingsDep, incident_id: int, body: TransitionIn,
               expected: IfMatchDep) -> dict:
    out = workflow.transition(session, incident_id, body.to, settings, note=body.note, satisfaction=body.satisfaction,
                               expected_version=expected)
    session.commit()
    return out


@router.post("/incidents/{incident_id}/callback", dependencies=STAFF, response_model=IncidentDetail,
             summary="Record the call-back (回访) of a closed case: the resident's satisfaction")
def callback(session: SessionDep, settings: SettingsDep, incident_id: int, body: CallbackIn,
             expected: IfMatchDep) -> dict:
    out = workflow.callback(session, incident_id, body.satisfaction, settings, note=body.note,
                            expected_version=expected)
    session.commit()
    return out


@router.post("/incidents/{incident_id}/owner", dependencies=CENTRE, response_model=IncidentDetail,
             summary="Name the leader who owns the case (包案), or nobody")
def set_owner(session: SessionDep, settings: SettingsDep, incident_id: int, body: OwnerIn, expected: IfMatchDep) -> dict:
    out = workflow.set_owner(session, incident_id, body.person_id, settings, note=body.note, expected_version=expected)
    session.commit()
    return out


@router.post("/incidents/{incident_id}/notes", dependencies=STAFF, response_model=IncidentDetail,
             summary="Comment on a case (readers of the case, co-handling departments of a joint case included)")
def add_note(session: SessionDep, settings: SettingsDep, incident_id: int, body: CommentIn) -> dict:
    out = workflow.add_note(session, incident_id, body.note, settings)
    session.commit()
    return out


@router.post("/incidents/{incident_id}/escalate", dependencies=STAFF, response_model=IncidentDetail, summary="Hand the case one level up")
def escalate(session: SessionDep, settings: SettingsDep, incident_id: int, body: NoteIn, expected: IfMatchDep) -> dict:
    out = workflow.escalate(session, incident_id, settings, note=body.note, expected_version=expected)
    session.commit()
    return out


@router.post("/incidents/{incident_id}/location", dependencies=STAFF, response_model=IncidentDetail,
             summary="Correct the location: routed again, the old route kept in the history")
def move(session: SessionDep, settings: SettingsDep, incident_id: int, body: MoveIn, expected: IfMatchDep) -> dict:
    out = workflow.move(session, incident_id, body.lon, body.lat, body.crs, settings, note=body.note,
                         expected_version=expected)
    session.commit()
    return out


@router.post("/incidents/import", dependencies=CENTRE, status_code=status.HTTP_201_CREATED,
             response_model=IncidentImportReport,
             summary="Import historical incidents from CSV (lon, lat columns) or GeoJSON points, all or nothing")
def import_incidents(session: SessionDep, settings: SettingsDep,
                     file: Annotated[UploadFile, File(description=".csv with lon,lat or .geojson of points")]) -> dict:
    name = files.upload_name(file.filename, "upload.csv")
    path = files.save_upload(file.file, Path(name).suffix.lower(), settings.max_body_bytes)
    try:
        records = files.read_incident_rows(path, name=name)
    finally:
        files.remove(path)
    out = bulk.import_incidents(session, records, settings)
    session.commit()
    return out


# --------------------------------------------------------------------------- sources and patrols
