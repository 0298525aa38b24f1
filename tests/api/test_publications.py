"""Publication (公示发布): planners publish a layer under an area, or one grid; the public
(place search, /api/locate, /api/areas and /api/grids, exports) sees the published
generation until the next publication, staff see the current areas; what the public saw
at an instant stays answerable; who may publish where; publications of one layer run one
at a time; the tile copies of each generation are one coverage per level."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import shapely
from conftest import COUNTY, E1, E2, MTOWN, TOWN, VE, VW, W1, W2, W3, W4, feature, publish
from sqlalchemy import text

from geogrid.db import engine as db
from geogrid.db.schema import TILE_BANDS
from geogrid.publication import generations

# A point well inside W1 (the north-west quarter of the west village).
IN_W1 = {"lon": 120.005, "lat": 30.035}


def codes_at(client, point=IN_W1, **params) -> set[str]:
    r = client.get("/api/locate", params={**point, **params})
    assert r.status_code == 200, r.text
    return {a["code"] for a in r.json()["results"]}


def grid_codes(client, parent: str) -> set[str]:
    r = client.get("/api/grids", params={"parent": parent, "limit": 100})
    assert r.status_code == 200, r.text
    return {f["properties"]["code"] for f in r.json()["features"]}


def test_nothing_is_public_until_published(world, anon, client):
    assert codes_at(anon) == set()
    assert grid_codes(anon, VW) == set()
    assert anon.get(f"/api/grids/{W1}").status_code == 404
    assert anon.get("/api/public/places", params={"q": "西村", "area": TOWN}).status_code == 404
    # Staff see the current areas.
    assert codes_at(client) == {COUNTY, TOWN, VW, W1, "339901100101"}
    r = client.post("/api/publications", json={"area": COUNTY, "layer": "admin", "note": "首次公示"})
    assert r.status_code == 201, r.text
    assert r.json()["added"] == 6 and r.json()["changed"] == r.json()["withdrawn"] == 0  # county, 2 towns, 3 villages
    assert codes_at(anon) == {COUNTY, TOWN, VW}
    r = client.post("/api/publications", json={"area": TOWN, "layer": "comprehensive"})
    assert r.status_code == 201, r.text
    assert r.json()["added"] == 6  # W1-W4, E1, E2; not the micro town's grids
    assert codes_at(anon) == {COUNTY, TOWN, VW, W1}
    assert grid_codes(anon, VW) == {W1, W2, W3, W4}
    assert grid_codes(anon, "339901101001") == set()


def test_the_public_sees_the_published_version_until_the_next_publication(world, anon, client, engine):
    publish(engine, COUNTY, ["admin", "comprehensive"])
    before = anon.get(f"/api/grids/{W1}").json()
    # A planner moves W1's southern edge north (W3 takes the strip) and renames it: a draft.
    shrunk = shapely.box(120.0, 30.03, 120.01, 30.04)
    grown = shapely.box(120.0, 30.0, 120.01, 30.03)
    for code, geom, name in ((W1, shrunk, "西村一格（新）"), (W3, grown, None)):
        props = {"name": name} if name else {}
        r = client.patch(f"/api/grids/{code}", json={"properties": props, "geometry": shapely.geometry.mapping(geom)})
        assert r.status_code == 200, r.text
    point = {"lon": 120.005, "lat": 30.025}  # in the strip that moved from W1 to W3
    assert W1 in codes_at(anon, point) and W3 not in codes_at(anon, point)
    assert W3 in codes_at(client, point) and W1 not in codes_at(client, point)
    assert anon.get(f"/api/grids/{W1}").json() == before
    assert client.get(f"/api/grids/{W1}").json()["properties"]["name"] == "西村一格（新）"
    # What a publication would change, for the planner to review first.
    pending = client.get("/api/publications/pending", params={"area": VW, "layer": "comprehensive"}).json()
    assert pending["changed"] == [W1, W3] and pending["added"] == pending["withdrawn"] == []
    assert pending["unchanged"] == 2
    r = client.post("/api/publications", json={"area": VW, "layer": "comprehensive", "note": "调整一格"})
    assert r.status_code == 201, r.text
    published = r.json()
    assert (published["changed"], published["unchanged"], published["withdrawn"]) == (2, 2, 0)
    assert W3 in codes_at(anon, point) and W1 not in codes_at(anon, point)
    after = anon.get(f"/api/grids/{W1}").json()
    assert after["properties"]["name"] == "西村一格（新）"
    assert shapely.geometry.shape(after["geometry"]).symmetric_difference(shrunk).area < 1e-12
    # What the public saw just before the publication stays answerable.
    at = (dt.datetime.fromisoformat(published["published_at"]) - dt.timedelta(microseconds=1)).isoformat()
    assert W1 in codes_at(anon, point, at=at)
    history = anon.get(f"/api/grids/{W1}/history").json()["features"]
    assert [f["properties"]["valid_to"] is None for f in history] == [True, False]
    # The generations agree with the database: one current row per area, old ones closed.
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT code, upper_inf(valid) FROM published_area WHERE code IN (:a, :b) "
                                 "ORDER BY code, lower(valid)"), {"a": W1, "b": W3}).all()
    assert [tuple(r) for r in rows] == [(W1, False), (W1, True), (W3, False), (W3, True)]


def test_a_retired_grid_is_withdrawn_by_the_next_publication(world, anon, client, engine):
    publish(engine, COUNTY, ["admin", "comprehensive"])
    assert client.delete(f"/api/grids/{E2}").status_code == 204
    assert E2 in grid_codes(anon, VE)
    r = client.post("/api/publications", json={"area": E2})  # one grid: its own layer
    assert r.status_code == 201, r.text
    assert (r.json()["layer"], r.json()["withdrawn"]) == ("comprehensive", 1)
    assert grid_codes(anon, VE) == {E1}
    assert anon.get(f"/api/grids/{E2}").status_code == 404


def test_one_grid_is_published_alone(world, anon, client, engine):
    publish(engine, COUNTY, ["admin", "comprehensive"])
    for code in (W1, W2):
        r = client.patch(f"/api/grids/{code}", json={"properties": {"name": f"{code}改"}})
        assert r.status_code == 200, r.text
    r = client.post("/api/publications", json={"area": W1})
    assert r.status_code == 201 and r.json()["changed"] == 1 and r.json()["unchanged"] == 0, r.text
    names = {f["properties"]["code"]: f["properties"]["name"]
             for f in anon.get("/api/grids", params={"parent": VW}).json()["features"]}
    assert names[W1] == f"{W1}改" and names[W2] == "西村二格"


def test_who_may_publish_where(world, anon, make_user, client):
    planner_a = make_user("planner-town", ("planner", TOWN))
    inspector = make_user("inspector-town", ("inspector", TOWN))
    body = {"area": TOWN, "layer": "comprehensive"}
    assert anon.post("/api/publications", json=body).status_code == 401
    assert anon.post("/api/publications", json=body, headers=inspector).status_code == 403
    r = anon.post("/api/publications", json={"area": MTOWN, "layer": "comprehensive"}, headers=planner_a)
    assert r.status_code == 403 and MTOWN in r.json()["detail"]
    assert anon.post("/api/publications", json=body, headers=planner_a).status_code == 201
    # Who published is for staff; the list is public.
    listed = anon.get("/api/publications").json()["items"]
    assert len(listed) == 1 and listed[0]["published_by"] is None and listed[0]["area"] == TOWN
    assert client.get("/api/publications").json()["items"][0]["published_by"] == "planner-town"
    assert anon.get(f"/api/publications/{listed[0]['id']}").json()["published_by"] is None
    assert client.get("/api/publications", params={"area": VW}).json()["numberMatched"] == 1  # above it
    assert client.get("/api/publications", params={"area": MTOWN}).json()["numberMatched"] == 0


@pytest.mark.parametrize("body, status, words", [
    ({"area": TOWN}, 422, "name the layer"),
    ({"area": TOWN, "layer": "nope"}, 422, "unknown layer"),
    ({"area": W1, "layer": "environment"}, 422, "is a grid of layer comprehensive"),
    ({"area": "339901999"}, 404, "339901999"),
    ({"area": "12a"}, 422, "area"),
    ({"area": TOWN, "layer": "admin", "extra": 1}, 422, "extra"),
])
def test_bad_publications_are_clear_4xx(world, client, body, status, words):
    r = client.post("/api/publications", json=body)
    assert r.status_code == status, r.text
    assert words in r.text
    assert client.get("/api/publications").json()["numberMatched"] == 0


def test_publications_of_a_layer_run_one_at_a_time(world, engine):
    """Two planners publishing the same layer at once: both succeed, one after the other,
    and each area has exactly one current generation."""
    results, errors = [], []
    barrier = threading.Barrier(2)

    def go(root):
        try:
            with db.transaction(engine) as session:
                barrier.wait(timeout=10)
                results.append(generations.publish(session, root, layer="comprehensive"))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=go, args=(root,)) for root in (COUNTY, TOWN)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == [] and len(results) == 2
    with engine.connect() as conn:
        per_area = conn.execute(text("SELECT max(n) FROM (SELECT count(*) AS n FROM published_area "
                                     "WHERE upper_inf(valid) GROUP BY area_id) c")).scalar_one()
        current = conn.execute(text("SELECT count(*) FROM published_area WHERE upper_inf(valid)")).scalar_one()
        expected = conn.execute(text("SELECT count(*) FROM area WHERE layer_key = 'comprehensive'")).scalar_one()
    assert per_area == 1 and current == expected
    # The second found what the first had published: nothing is added twice.
    assert sum(r["added"] for r in results) == expected and sorted(r["added"] for r in results) in ([0, expected],
                                                                                                 [6, expected - 6])


def test_tile_copies_are_one_coverage_per_level(world, client, engine):
    """Each band's simplified copies of a level's published grids still tile the plane as
    the grids do: no overlaps (the areas add up to their union's) and no gaps (the union
    has the grids' union's area), while a wiggly shared edge loses most of its vertices."""
    # A wiggly edge between W1 and W2 (ending where it did), so that simplification has work.
    ys = np.linspace(30.02, 30.04, 200)
    xs = 120.01 + 0.0004 * np.sin((ys - 30.02) / 0.02 * 9 * np.pi)
    edge = [(120.01, 30.02), *zip(xs[1:-1], ys[1:-1]), (120.01, 30.04)]
    w1 = shapely.Polygon([(120.0, 30.02), *edge, (120.0, 30.04)])
    w2 = shapely.Polygon([*edge, (120.02, 30.04), (120.02, 30.02)])
    for code, geom in ((W1, w1), (W2, w2)):
        r = client.patch(f"/api/grids/{code}", json={"geometry": shapely.geometry.mapping(geom)})
        assert r.status_code == 200, r.text
    publish(engine, COUNTY, ["comprehensive"])
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT ST_AsBinary(geom) AS g, " + ", ".join(f"ST_AsBinary(geom_z{b}) AS z{b}" for b in TILE_BANDS)
            + " FROM published_area WHERE upper_inf(valid) AND layer_key = 'comprehensive' AND code LIKE :t"),
            {"t": TOWN + "%"}).all()
    full = shapely.from_wkb([bytes(r.g) for r in rows])
    whole = shapely.union_all(full).area
    for b in TILE_BANDS:
        simple = shapely.from_wkb([bytes(getattr(r, f"z{b}")) for r in rows])
        union = shapely.union_all(simple).area
        assert shapely.area(simple).sum() - union < 1e-9 * whole, f"overlaps at zoom {b}"
        assert abs(union - whole) < 1e-9 * whole, f"gaps at zoom {b}"
    coarse = shapely.from_wkb([bytes(r.z8) for r in rows])
    assert shapely.get_num_coordinates(coarse).sum() < shapely.get_num_coordinates(full).sum() - 300


def test_cli_publishes_and_lists(world, engine, settings):
    def cli(*args):
        env = {**os.environ, "GEOGRID_DATABASE_URL": settings.database_url}
        done = subprocess.run([str(Path(sys.executable).with_name("geogrid")), *args], capture_output=True, text=True,
                              env=env, timeout=120)
        assert "Traceback" not in done.stdout + done.stderr
        return done

    dry = cli("publish", TOWN, "--layer", "comprehensive", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "added: 6" in dry.stdout and "nothing was published" in dry.stdout
    done = cli("publish", TOWN, "--layer", "comprehensive", "--note", "首次")
    assert done.returncode == 0 and "6 added" in done.stdout, done.stderr
    listed = cli("publications")
    assert listed.returncode == 0 and "首次" in listed.stdout
    bad = cli("publish", TOWN)
    assert bad.returncode == 1 and "name the layer" in bad.stderr
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM publication")).scalar_one() == 1


def test_export_for_the_public_is_the_published_generation(world, anon, client, engine):
    publish(engine, COUNTY, ["admin", "comprehensive"])
    r = client.post("/api/grids", json=feature(shapely.geometry.mapping(shapely.box(120.035, 30.0, 120.04, 30.01)),
                                               name="未公示新格", parent=VE))
    assert r.status_code == 201, r.text
    public = anon.get("/api/export", params={"layer": "comprehensive", "format": "geojson"})
    staff = client.get("/api/export", params={"layer": "comprehensive", "format": "geojson"})
    assert public.status_code == staff.status_code == 200
    assert "未公示新格" not in public.text and "未公示新格" in staff.text


def test_a_publication_cuts_the_low_zoom_tiles_it_changed(world, client, engine):
    """The tiles up to zoom 10 around what a publication changed are in the cache when it
    ends (the slowest to cut: no visitor waits for them); deeper ones are cut on demand."""
    from geogrid.publication import tiles

    publish(engine, COUNTY, ["comprehensive"])
    with engine.connect() as conn:
        seeded = set(conn.execute(text("SELECT z, x, y FROM tile_cache WHERE layer_key = 'comprehensive'")).all())
        first = conn.execute(text("SELECT min_zoom FROM published_layer WHERE layer_key = 'comprehensive'")).scalar_one()
    assert first == 8  # a small layer: grids from zoom 8
    # Every tile from zoom 8 to 10 over the published grids, and none deeper.
    expected = set()
    for z in range(8, 11):
        (xa, ya), (xb, yb) = tiles.tile_at(120.0, 30.04, z), tiles.tile_at(120.13, 30.0, z)
        expected |= {(z, x, y) for x in range(xa, xb + 1) for y in range(ya, yb + 1)}
    assert seeded == expected
    r = client.get("/tiles/comprehensive/{}/{}/{}.mvt".format(*sorted(expected)[0]))
    assert r.status_code == 200 and r.headers["x-tile-cache"] == "hit"


def test_a_big_layer_starts_at_a_deeper_zoom():
    """A province's 50,000 grids would be thousands a tile at zoom 8: they start where a
    tile holds 500 or fewer on average; a town's from zoom 8, administrative areas at 0."""
    province = (118.5, 27.3, 122.7, 31.0)
    assert generations.min_zoom("comprehensive", 50_000, province) == 10
    assert generations.min_zoom("comprehensive", 4_000, province) == 8
    assert generations.min_zoom("comprehensive", 5_000, province) == 9
    assert generations.min_zoom("comprehensive", 200_000, province) == 11
    assert generations.min_zoom("admin", 200_000, province) == 0
