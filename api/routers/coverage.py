"""Coverage checks ("全覆盖、无盲区"), stored runs, repair proposals and exemption masks."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Response, status

from api.deps import PLANNER, STAFF, PageDep, SessionDep, SettingsDep
from api.schemas.common import GeoJSONResponse
from api.schemas.coverage import (
    CoverageCheck,
    CurrentCoverage,
    Exemption,
    ExemptionCollection,
    ExemptionIn,
    RepairApplied,
    RepairIn,
    RepairProposal,
    RepairProposed,
    Run,
    RunComparison,
    RunListed,
)
from geogrid.core.timeutil import local_today
from geogrid.coverage import checks, repairs
from geogrid.coverage import exemptions as coverage_exemptions
from geogrid.coverage import runs as coverage_runs
from geogrid.geo.geometry import request_geometry

router = APIRouter(prefix="/api", tags=["coverage"])


@router.get("/coverage", dependencies=STAFF, response_model=CoverageCheck,
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
    options = checks.options_from(settings, sliver_width_m=sliver_width_m, min_area_m2=min_area_m2)
    out = coverage_runs.run(session, area, layer, options, subtree=subtree, today=local_today(settings))
    session.commit()
    return out


@router.get("/coverage/current", dependencies=STAFF, response_model=CurrentCoverage,
            summary="The problems of the current boundaries of an area's subtree: the latest stored run if "
                    "nothing in the subtree changed since, else a fresh check (stored)")
def current(
    session: SessionDep,
    settings: SettingsDep,
    area: Annotated[str, Query(description="Code of the area whose subtree is checked")],
    layer: Annotated[str, Query(description="Layer whose grids are checked")] = "comprehensive",
) -> dict:
    out = coverage_runs.current(session, area, layer, settings)
    session.commit()
    return out


@router.get("/coverage/runs", dependencies=STAFF, response_model=list[RunListed], summary="Stored runs of areas in your scope, newest first")
def runs(session: SessionDep, page: PageDep, area: str | None = None, layer: str | None = None) -> list[dict]:
    return coverage_runs.list_runs(session, area=area, layer=layer, limit=page.limit, offset=page.offset)


@router.get("/coverage/runs/{run_id}", dependencies=STAFF, response_model=Run)
def get_run(session: SessionDep, run_id: int) -> dict:
    return coverage_runs.get_run(session, run_id)


@router.get("/coverage/runs/{run_id}/compare", dependencies=STAFF, response_model=RunComparison,
            summary="What appeared and what was resolved since an earlier run")
def compare(session: SessionDep, run_id: int, earlier: Annotated[int, Query(description="Id of the earlier run")]) -> dict:
    return coverage_runs.compare_runs(session, earlier, run_id)


@router.post("/coverage/repairs", dependencies=PLANNER, status_code=status.HTTP_201_CREATED, response_model=RepairProposed,
             summary="Propose cleaned boundaries (GEOS coverage cleaning); nothing changes until applied")
def propose(session: SessionDep, body: RepairIn) -> dict:
    out = repairs.propose_repair(session, body.area, body.layer, gap_width_m=body.gap_width_m,
                                       merge_strategy=body.merge_strategy,
                                       snapping_distance_m=body.snapping_distance_m)
    session.commit()
    return out


@router.get("/coverage/repairs/{proposal_id}", dependencies=STAFF, response_model=RepairProposal)
def get_proposal(session: SessionDep, proposal_id: int) -> dict:
    return repairs.get_proposal(session, proposal_id)


@router.post("/coverage/repairs/{proposal_id}/apply", dependencies=PLANNER, response_model=RepairApplied,
             summary="Apply a proposal as new boundary versions (confirm=true), all or nothing")
def apply(session: SessionDep, settings: SettingsDep, proposal_id: int,
          confirm: Annotated[bool, Query(description="Must be true: this rewrites boundaries")] = False) -> dict:
    out = repairs.apply_repair(session, proposal_id, settings, confirm=confirm)
    session.commit()
    return out


@router.get("/exemptions", dependencies=STAFF, response_model=ExemptionCollection, response_class=GeoJSONResponse,
            summary="Legitimate voids registered in an area (GeoJSON; staff only: military land is among them)")
def exemptions(session: SessionDep, area: Annotated[str, Query()]) -> Response:
    from geogrid.core.jsonenc import dumps

    return Response(dumps(coverage_exemptions.list_exemptions(session, area)), media_type="application/geo+json")


@router.post("/exemptions", dependencies=PLANNER, status_code=status.HTTP_201_CREATED, response_model=Exemption,
             summary="Register a legitimate void (lake, military land, exclave): not a gap")
def add_exemption(session: SessionDep, settings: SettingsDep, body: Annotated[ExemptionIn, Body()]) -> dict:
    geom = request_geometry(body.geometry, rejected="exemption rejected", max_vertices=settings.max_vertices_per_feature)
    out = coverage_exemptions.add_exemption(session, body.area, geom, settings, kind=body.kind, name=body.name, note=body.note)
    session.commit()
    return out


@router.delete("/exemptions/{exemption_id}", dependencies=PLANNER, status_code=status.HTTP_204_NO_CONTENT,
               response_class=Response)
def delete_exemption(session: SessionDep, exemption_id: int) -> Response:
    coverage_exemptions.delete_exemption(session, exemption_id)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
