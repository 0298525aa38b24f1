"""The household register: import, households, residents (resident_data only, every read
audited), special groups and tags, grid derivation history, register counts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, File, Query, Request, Response, UploadFile, status

from api.deps import ADMIN, STAFF, IfMatchDep, Lang, PageDep, SessionDep, SettingsDep, require
from api.schemas.common import Page, paged
from api.schemas.households import (
    GridSize,
    HistoryRow,
    Household,
    ImportReport,
    MoveIn,
    Resident,
    SpecialGroup,
    SpecialGroupIn,
    Tag,
    TagIn,
    TagPatch,
)
from geogrid.access import scopes
from geogrid.io import files
from geogrid.people import households, register_import

router = APIRouter(prefix="/api", tags=["households"])
REGISTER = [require(*households.HOUSEHOLD_ROLES)]
RESIDENT_DATA = [require(*scopes.RESIDENT_DATA)]


@router.post("/households/import", dependencies=REGISTER, status_code=status.HTTP_201_CREATED,
             response_model=ImportReport,
             summary="Import the household register (one row per resident, .xlsx or .csv), all or nothing; "
                     "a household ref already registered is replaced")
def import_register(
    session: SessionDep, settings: SettingsDep,
    file: Annotated[UploadFile, File(description="The register: .xlsx or .csv, Chinese or English headers")],
    buildings: Annotated[UploadFile | None, File(description="Buildings first (楼栋编码, lon, lat): .csv or .xlsx")] = None,
    format: Annotated[Literal["csv", "xlsx"] | None, Query(description="Declared format (default: the file name's extension)")] = None,
    buildings_format: Annotated[Literal["csv", "xlsx"] | None, Query()] = None,
) -> dict:
    name = files.upload_name(file.filename, "register." + (format or "xlsx"))
    path = files.save_upload(file.file, Path(name).suffix.lower(), settings.max_body_bytes)
    bpath = bname = None
    try:
        if buildings is not None:
            bname = files.upload_name(buildings.filename, "buildings." + (buildings_format or "csv"))
            bpath = files.save_upload(buildings.file, Path(bname).suffix.lower(), settings.max_body_bytes)
        out = register_import.import_register(session, path, settings, name=name, fmt=format, buildings=bpath,
                                              buildings_name=bname, buildings_fmt=buildings_format)
    finally:
        files.remove(path)
        if bpath is not None:
            files.remove(bpath)
    session.commit()
    return out


@router.get("/households", dependencies=REGISTER, response_model=Page[Household],
            summary="Households in your scope (planner, grid worker); phones only with resident_data")
def list_households(request: Request, session: SessionDep, page: PageDep,
                    area: Annotated[str | None, Query(description="Area code: its whole subtree")] = None,
                    q: Annotated[str | None, Query(max_length=100, description="Ref, head or address contains")] = None) -> dict:
    items, matched = households.list_households(session, area=area, q=q, limit=page.limit, offset=page.offset)
    return paged(request, page, items, matched)


@router.get("/households/{household_id}", dependencies=REGISTER, response_model=Household)
def read_household(session: SessionDep, household_id: int, response: Response) -> dict:
    out = households.get_household(session, household_id)
    response.headers["ETag"] = f'"{out["version"]}"'
    return out


@router.get("/households/{household_id}/residents", dependencies=RESIDENT_DATA, response_model=list[Resident],
            summary="Members of a household (resident_data on its place); every read is audited")
def household_residents(session: SessionDep, household_id: int, lang: Lang = "zh") -> list[dict]:
    out = households.household_residents(session, household_id, lang=lang)
    session.commit()  # the audit rows of the reads
    return out


@router.get("/households/{household_id}/history", dependencies=REGISTER, response_model=list[HistoryRow],
            summary="The grids the household lay in over time (derivation history)")
def household_history(session: SessionDep, household_id: int) -> list[dict]:
    return households.household_history(session, household_id)


@router.post("/households/{household_id}/move", dependencies=REGISTER, response_model=Household,
             summary="A new point (or building) for a household; its grid is derived again")
def move_household(session: SessionDep, household_id: int, body: MoveIn, expected: IfMatchDep) -> dict:
    out = households.move_household(session, household_id, lon=body.lon, lat=body.lat, building=body.building,
                                    expected_version=expected if expected is not None else body.version)
    session.commit()
    return out


@router.get("/residents", dependencies=RESIDENT_DATA, response_model=Page[Resident],
            summary="Residents in your resident_data scope, by area and current special-group tag; every read is audited")
def list_residents(request: Request, session: SessionDep, settings: SettingsDep, page: PageDep,
                   area: Annotated[str | None, Query(description="Area code: its whole subtree")] = None,
                   tag: Annotated[str | None, Query(max_length=32, description="Special group key, e.g. dibao")] = None,
                   lang: Lang = "zh") -> dict:
    items, matched = households.list_residents(session, settings, area=area, tag=tag, lang=lang, limit=page.limit,
                                               offset=page.offset)
    session.commit()  # the audit rows of the reads
    return paged(request, page, items, matched)


@router.post("/residents/{resident_id}/tags", dependencies=RESIDENT_DATA, status_code=status.HTTP_201_CREATED,
             response_model=Tag, summary="Tag a resident with a special group (resident_data and planner or grid worker)")
def add_tag(session: SessionDep, resident_id: int, body: TagIn) -> dict:
    out = households.add_tag(session, resident_id, body.model_dump())
    session.commit()
    return out


@router.patch("/resident-tags/{tag_id}", dependencies=RESIDENT_DATA, response_model=Tag,
              summary="End or correct a tag (resident_data and planner or grid worker)")
def edit_tag(session: SessionDep, tag_id: int, body: TagPatch) -> dict:
    out = households.update_tag(session, tag_id, body.model_dump(exclude_unset=True))
    session.commit()
    return out


@router.get("/special-groups", dependencies=STAFF, response_model=list[SpecialGroup],
            summary="The special groups residents may be tagged with, and their visit frequency")
def list_special_groups(session: SessionDep) -> list[dict]:
    return households.special_groups(session)


@router.post("/special-groups", dependencies=ADMIN, status_code=status.HTTP_201_CREATED, response_model=SpecialGroup)
def add_special_group(session: SessionDep, body: SpecialGroupIn) -> dict:
    out = households.add_special_group(session, body.model_dump())
    session.commit()
    return out


@router.get("/register/counts", dependencies=REGISTER, response_model=list[GridSize],
            summary="Households and residents per comprehensive grid under an area: from the register where it "
                    "covers the grid's village, else the typed numbers")
def register_counts(session: SessionDep, area: Annotated[str, Query(description="Area code")]) -> list[dict]:
    return households.grid_sizes(session, area)
