"""Coverage checks ("全覆盖、无盲区"), stored runs, repair proposals and exemption masks."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Query, Response, status
from pydantic import BaseModel, Field

from api.deps import PLANNER, STAFF, PageDep, SessionDep, SettingsDep
from geogrid import coverage_runs
from geogrid.areas import local_today
from geogrid.errors import GeogridError, Problem
from geogrid.geometry import parse_geojson_geometry

router = APIRouter(prefix="/api", tags=["coverage"])


@router.get("/coverage", dependencies=STAFF,
            summary="Check an area's children in a layer for gaps, overlaps, spill-over, invalid geometry, "
                    "responsibility gaps and size outliers; the run is stored")
def check(
    session: SessionDep,
    settings: SettingsDep,
    area: Annotated[str, Query(description="Code of the parent area")],
    layer: Annotated[str, Query(description="Layer whose children are checked")] = "comprehensive",
    subtree: Annotated[bool, Query(description="Check every parent in the area's subtree, worst first")] = False,
    sliver_width_m: Annotated[float | None, Query(gt=0, le=10_000)] = None,
    min_area_m2: Annotated[float | None, Query(ge=0, le=1e9)] = None,
) -> dict:
    options = coverage_runs.options_from(settings, sliver_width_m=sliver_width_m, min_area_m2=min_area_m2)
    out = coverage_runs.run(session, area, layer, options, subtree=subtree, today=local_today(settings))
    session.commit()
    return out


@router.get("/coverage/runs", dependencies=STAFF, summary="Stored runs of areas in your scope, newest first")
def runs(session: SessionDep, page: PageDep, area: str | None = None, layer: str | None = None) -> list[dict]:
    return coverage_runs.list_runs(session, area=area, layer=layer, limit=page.limit, offset=page.offset)


@router.get("/coverage/runs/{run_id}", dependencies=STAFF)
def get_run(session: SessionDep, run_id: int) -> dict:
    return coverage_runs.get_run(session, run_id)


@router.get("/coverage/runs/{run_id}/compare", dependencies=STAFF,
            summary="What appeared and what was resolved since an earlier run")
def compare(session: SessionDep, run_id: int, earlier: Annotated[int, Query(description="Id of the earlier run")]) -> dict:
    return coverage_runs.compare_runs(session, earlier, run_id)


class RepairIn(BaseModel):
    area: str
    layer: str = "comprehensive"
    gap_width_m: float = Field(default=5.0, ge=0, le=1000, description="Gaps narrower than this go to a neighbour")
    merge_strategy: Literal["longest_border", "max_area", "min_area", "min_index"] = "longest_border"
    snapping_distance_m: float = Field(default=-1, ge=-1, le=100, description="-1: chosen by GEOS")


@router.post("/coverage/repairs", dependencies=PLANNER, status_code=status.HTTP_201_CREATED,
             summary="Propose cleaned boundaries (GEOS coverage cleaning); nothing changes until applied")
def propose(session: SessionDep, body: RepairIn) -> dict:
    out = coverage_runs.propose_repair(session, body.area, body.layer, gap_width_m=body.gap_width_m,
                                       merge_strategy=body.merge_strategy,
                                       snapping_distance_m=body.snapping_distance_m)
    session.commit()
    return out


@router.get("/coverage/repairs/{proposal_id}", dependencies=STAFF)
def get_proposal(session: SessionDep, proposal_id: int) -> dict:
    return coverage_runs.get_proposal(session, proposal_id)


@router.post("/coverage/repairs/{proposal_id}/apply", dependencies=PLANNER,
             summary="Apply a proposal as new boundary versions (confirm=true), all or nothing")
def apply(session: SessionDep, settings: SettingsDep, proposal_id: int,
          confirm: Annotated[bool, Query(description="Must be true: this rewrites boundaries")] = False) -> dict:
    out = coverage_runs.apply_repair(session, proposal_id, settings, confirm=confirm)
    session.commit()
    return out


class ExemptionIn(BaseModel):
    area: str = Field(description="Code of the area the void lies in")
    kind: Literal["lake", "river", "reservoir", "military", "exclave", "other"]
    name: str | None = Field(default=None, max_length=200)
    note: str | None = Field(default=None, max_length=2000)
    geometry: dict


@router.get("/exemptions", dependencies=STAFF,
            summary="Legitimate voids registered in an area (GeoJSON; staff only: military land is among them)")
def exemptions(session: SessionDep, area: Annotated[str, Query()]) -> Response:
    from geogrid.areas import dumps

    return Response(dumps(coverage_runs.list_exemptions(session, area)), media_type="application/geo+json")


@router.post("/exemptions", dependencies=PLANNER, status_code=status.HTTP_201_CREATED,
             summary="Register a legitimate void (lake, military land, exclave): not a gap")
def add_exemption(session: SessionDep, settings: SettingsDep, body: Annotated[ExemptionIn, Body()]) -> dict:
    try:
        geom = parse_geojson_geometry(body.geometry)
    except ValueError as exc:
        raise GeogridError("exemption rejected", problems=[Problem(str(exc), field="geometry")]) from None
    out = coverage_runs.add_exemption(session, body.area, geom, settings, kind=body.kind, name=body.name, note=body.note)
    session.commit()
    return out


@router.delete("/exemptions/{exemption_id}", dependencies=PLANNER, status_code=status.HTTP_204_NO_CONTENT)
def delete_exemption(session: SessionDep, exemption_id: int) -> Response:
    coverage_runs.delete_exemption(session, exemption_id)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
