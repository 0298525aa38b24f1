"""Live coverage (issue 10): ``GET /api/coverage/current`` answers with the stored run of
the subtree while nothing it read has changed, and checks afresh (and stores) once a
boundary, a grid, an assignment or an exemption in the subtree changed. Real PostgreSQL
and PostGIS, the real app: nothing is mocked."""

from __future__ import annotations

import datetime as dt

import shapely
from conftest import E1, E2, MTOWN, TOWN, VE, VW, W1, W2, W4, micro_code
from sqlalchemy import text

from geogrid.core.settings import Settings
from geogrid.core.timeutil import local_today


def current(client, headers: dict, area: str = TOWN) -> dict:
    r = client.get("/api/coverage/current", params={"area": area}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def problems(out: dict, kind: str) -> dict[tuple, dict]:
    """The problems of one kind, by the grids they name."""
    return {tuple(f["properties"]["codes"]): f for f in out["problems"]["features"] if f["properties"]["kind"] == kind}


def postgis_m2(engine, geom: shapely.Geometry) -> float:
    with engine.connect() as conn:
        return conn.execute(text("SELECT ST_Area(ST_GeomFromText(:w, 4326)::geography)"), {"w": geom.wkt}).scalar()


def runs_stored(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM coverage_run")).scalar()


def fresh_then_stored(client, headers: dict) -> dict:
    """A check that must run afresh now, and be the stored answer of the next call."""
    out = current(client, headers)
    assert out["fresh"] is True, out["at"]
    again = current(client, headers)
    assert again["fresh"] is False and (again["id"], again["at"]) == (out["id"], out["at"])
    assert again["problems"] == out["problems"] and again["summary"] == out["summary"]
    return out


def gap_next_to(out: dict, code: str) -> dict:
    found = [f for codes, f in problems(out, "gap").items() if code in codes]
    assert len(found) == 1, problems(out, "gap").keys()
    return found[0]


def test_current_coverage_is_stored_until_something_in_the_subtree_changes(world, make_user, engine):
    client = world
    planner = make_user("town-planner", ("planner", TOWN))

    first = current(client, planner)
    assert first["fresh"] is True and first["summary"]["area"] == TOWN and first["summary"]["subtree"] is True
    assert dt.datetime.fromisoformat(first["at"]).tzinfo is not None
    # The east village is only partly gridded: its blind spot is there from the start.
    blind_spot = gap_next_to(first, E1)
    stored = current(client, planner)
    assert stored["fresh"] is False and stored["id"] == first["id"] and stored["at"] == first["at"]
    assert stored["problems"] == first["problems"]
    run = client.get(f"/api/coverage/runs/{first['id']}").json()  # what GET /api/coverage stored, as is
    assert run["subtree"] is True and run["problems"] == first["problems"]

    # Changes outside the subtree (another town) leave the stored run current.
    micro = micro_code(0, 0)
    assert client.patch(f"/api/grids/{micro}", json={"properties": {"households": 321}}).status_code == 200
    assert current(client, planner)["fresh"] is False

    # A boundary edit: the west grid W1 gives up its eastern fifth, a gap next to W1 and W2.
    piece = shapely.box(120.008, 30.02, 120.01, 30.04)
    r = client.patch(f"/api/grids/{W1}", json={"geometry": shapely.geometry.mapping(shapely.box(120.0, 30.02, 120.008, 30.04))})
    assert r.status_code == 200, r.text
    edited = fresh_then_stored(client, planner)
    gap = gap_next_to(edited, W1)
    assert W2 in gap["properties"]["codes"]
    assert abs(gap["properties"]["area_m2"] - postgis_m2(engine, piece)) < 0.01 * postgis_m2(engine, piece)

    # Assignments: W2 gets a leader and a worker (no longer without responsible persons),
    # then the worker's post ends yesterday (an update) and the leader's is deleted.
    assert (W2,) in problems(edited, "no_responsible")
    person = client.post("/api/persons", json={"name": "王网格员"}).json()["id"]
    today = local_today(Settings())
    made = client.post("/api/assignments", json=[
        {"person": person, "area": W2, "role": role, "start_date": (today - dt.timedelta(days=30)).isoformat()}
        for role in ("grid_leader", "grid_worker_fulltime")])
    assert made.status_code == 201, made.text
    leader, worker = (a["id"] for a in made.json())
    appointed = fresh_then_stored(client, planner)
    assert (W2,) not in problems(appointed, "no_responsible")
    r = client.patch(f"/api/assignments/{worker}", json={"end_date": (today - dt.timedelta(days=1)).isoformat()})
    assert r.status_code == 200, r.text
    ended = fresh_then_stored(client, planner)
    assert problems(ended, "no_responsible")[(W2,)]["properties"]["missing"] == ["grid_worker"]
    assert client.delete(f"/api/assignments/{leader}").status_code == 204
    deleted = fresh_then_stored(client, planner)
    assert problems(deleted, "no_responsible")[(W2,)]["properties"]["missing"] == ["grid_leader", "grid_worker"]

    # An exemption over the east village's blind spot masks it; deleting it brings it back.
    void = shapely.box(120.03, 30.0, 120.04, 30.03)
    assert abs(blind_spot["properties"]["area_m2"] - postgis_m2(engine, void)) < 0.01 * postgis_m2(engine, void)
    r = client.post("/api/exemptions", json={"area": VE, "kind": "lake", "name": "东湖",
                                             "geometry": shapely.geometry.mapping(void)})
    assert r.status_code == 201, r.text
    masked = fresh_then_stored(client, planner)
    assert not [codes for codes in problems(masked, "gap") if E1 in codes or E2 in codes]
    assert client.delete(f"/api/exemptions/{r.json()['id']}").status_code == 204
    unmasked = fresh_then_stored(client, planner)
    assert gap_next_to(unmasked, E2)["properties"]["area_m2"] == blind_spot["properties"]["area_m2"]

    # A retired grid leaves its land uncovered.
    assert client.delete(f"/api/grids/{W4}").status_code == 204
    retired = fresh_then_stored(client, planner)
    assert retired["summary"]["grids"] == unmasked["summary"]["grids"] - 1
    uncovered = sum(f["properties"]["area_m2"] for f in retired["problems"]["features"]
                    if f["properties"]["kind"] == "gap" and f["properties"]["parent"] == VW)
    expected = postgis_m2(engine, shapely.union(piece, shapely.box(120.01, 30.0, 120.02, 30.02)))
    assert abs(uncovered - expected) < 0.01 * expected

    # Who is on duty depends on the day: a run of an earlier day is not current.
    with engine.begin() as conn:
        conn.execute(text("UPDATE coverage_run SET at = at - interval '1 day' WHERE id = :id"), {"id": retired["id"]})
    assert current(client, planner)["fresh"] is True


def test_current_coverage_checks_the_scope_first(world, make_user, anon, engine):
    client = world
    planner = make_user("town-planner", ("planner", TOWN))
    before = runs_stored(engine)
    r = client.get("/api/coverage/current", params={"area": MTOWN}, headers=planner)
    assert r.status_code == 403, r.text
    assert anon.get("/api/coverage/current", params={"area": TOWN}).status_code == 401
    r = client.get("/api/coverage/current", params={"area": "339901999"}, headers=planner)
    assert r.status_code == 404, r.text  # as GET /api/coverage: areas are public, their existence no secret
    assert runs_stored(engine) == before  # nothing checked, nothing stored
    r = client.get("/api/coverage/current", params={"area": TOWN, "layer": "nonsense"}, headers=planner)
    assert r.status_code == 422 and "nonsense" in r.text
    # A stored run of the other town, made by its own staff, is not revealed either.
    assert current(client, {}, MTOWN)["fresh"] is True  # the admin
    assert client.get("/api/coverage/current", params={"area": MTOWN}, headers=planner).status_code == 403
