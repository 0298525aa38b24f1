"""OGC API - Features under /ogc, on the incident world of tests/conftest.py with the admin
and comprehensive layers published (environment is not: it must not be a collection).

Expected answers come from PostGIS through this module's own SQL on ``published_area`` and
the tables (not from geogrid.publication.features), and a real client reads the API:
GDAL's OGR OAPIF driver (``ogrinfo``/``ogr2ogr`` from Debian's gdal-bin), whose GeoPackage
is read back with pyogrio and compared feature by feature.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import shutil
import subprocess

import pyogrio
import pytest
import shapely
from conftest import AREAS, COUNTY, E1, E2, ENV_W, MVILLAGE, TOWN, VE, VW, W1, W2, serve_in_thread
from sqlalchemy import text

from geogrid.core import timeutil
from geogrid.db import engine as db
from geogrid.publication import generations

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG4490 = "http://www.opengis.net/def/crs/EPSG/0/4490"
EPSG4326 = "http://www.opengis.net/def/crs/EPSG/0/4326"
EVIL_NAME = '东村二格<script>alert("x")</script>'
SECRETS = ("13900009999", "内部备注SECRET", "隐名者", "SECRET-DESC", "张三", "13912345678", "zhang@example.com",
           "隐秘工厂", "private-source-note", "纠纷SECRET", "西村环境网格", "13800001111")
LIMIT = {"limit": 10000}


def publish(engine, area: str, layer: str) -> dict:
    with db.transaction(engine) as session:
        return generations.publish(session, area, layer=layer)


@pytest.fixture
def pub(world, engine):
    """The world with persons in post on W1 (public, private phone, hidden name, one whose
    post ended), a public and a private case, a public and a non-public pollution source,
    and the admin and comprehensive layers published (environment not)."""
    client = world
    with engine.begin() as conn:  # a name that must come out escaped in every HTML view
        conn.execute(text("UPDATE area SET name = :n WHERE code = :c"), {"n": EVIL_NAME, "c": E2})

    def person(**body) -> int:
        r = client.post("/api/persons", json=body)
        assert r.status_code == 201, r.text
        return r.json()["id"]

    shown = person(name="王芳", phone="13800000001", phone_public=True, photo_url="https://example.com/wang.jpg",
                   photo_public=True)
    private_phone = person(name="李强", phone="13900009999", phone_public=False, notes="内部备注SECRET")
    hidden = person(name="隐名者", phone="13800001111", name_public=False, phone_public=False)
    former = person(name="前任", phone="13800000004", phone_public=True)
    r = client.post("/api/assignments", json=[
        {"person": shown, "area": W1, "role": "grid_leader", "start_date": "2020-01-01", "duties": "全面负责"},
        {"person": private_phone, "area": W1, "role": "grid_worker_fulltime", "start_date": "2020-01-01"},
        {"person": hidden, "area": W1, "role": "instructor", "start_date": "2020-01-01"},
        {"person": former, "area": W1, "role": "grid_worker_parttime", "start_date": "2020-01-01",
         "end_date": "2021-12-31"},
    ])
    assert r.status_code == 201, r.text
    public_case = client.post("/api/incidents", json={
        "category": "sanitation", "lon": 120.004, "lat": 30.006, "description": "垃圾 SECRET-DESC",
        "reporter": {"name": "张三", "phone": "13912345678", "email": "zhang@example.com"}})
    assert public_case.status_code == 201, public_case.text
    private_case = client.post("/api/incidents", json={"category": "dispute", "lon": 120.014, "lat": 30.026,
                                                       "description": "纠纷SECRET"})
    assert private_case.status_code == 201, private_case.text
    listed = client.post("/api/sources", json={"name": "公开化工厂", "kind": "enterprise", "lon": 120.005,
                                               "lat": 30.005, "key_supervision": True, "permit_no": "91330000X"})
    unlisted = client.post("/api/sources", json={"name": "隐秘工厂", "kind": "outfall", "lon": 120.025, "lat": 30.01,
                                                 "notes": "private-source-note"})
    assert listed.status_code == 201 and unlisted.status_code == 201, (listed.text, unlisted.text)
    with engine.begin() as conn:
        conn.execute(text("UPDATE pollution_source SET public = (id = :id)"), {"id": listed.json()["id"]})
    publish(engine, COUNTY, "admin")
    publish(engine, COUNTY, "comprehensive")
    return {"client": client, "case": public_case.json()["receipt"], "private_case": private_case.json()["receipt"],
            "source": listed.json()["id"], "hidden_source": unlisted.json()["id"]}


def published(engine, layer: str, where: str = "upper_inf(valid)", **params) -> dict[str, dict]:
    """code -> row of published_area, by our own SQL."""
    with engine.connect() as conn:
        rows = conn.execute(text(
            f"SELECT id, code, name, level_key, layer_key, parent_code, version, area_m2, lower(valid) AS since, "
            f"upper(valid) AS until, ST_AsBinary(geom) AS wkb FROM published_area WHERE layer_key = :layer AND {where}"),
            {"layer": layer, **params}).mappings().all()
    return {r["code"]: {**r, "geom": shapely.from_wkb(bytes(r["wkb"]))} for r in rows}


def swap(geom):
    """lon/lat <-> lat/lon."""
    return shapely.transform(geom, lambda c: c[:, ::-1])


def walk(client, url: str, params: dict | None = None) -> list[dict]:
    """Every feature, following next links."""
    out, pages = [], 0
    r = client.get(url, params=params)
    while True:
        assert r.status_code == 200, r.text
        body = r.json()
        out += body["features"]
        assert body["numberReturned"] == len(body["features"])
        nxt = [x["href"] for x in body["links"] if x["rel"] == "next"]
        pages += 1
        assert pages < 500
        if not nxt:
            return out
        r = client.get(nxt[0])


# --------------------------------------------------------------------------- landing, collections


def test_landing_conformance_and_collections(pub, engine):
    anon = pub["client"]
    anon.headers.pop("Authorization")
    land = anon.get("/ogc")
    assert land.status_code == 200 and land.headers["content-type"].startswith("application/json")
    rels = {x["rel"]: x for x in land.json()["links"]}
    assert {"self", "alternate", "service-desc", "service-doc", "conformance", "data"} <= set(rels)
    assert rels["service-desc"]["href"].endswith("/openapi.json") and rels["service-doc"]["href"].endswith("/docs")
    assert rels["data"]["href"].endswith("/ogc/collections")
    classes = anon.get("/ogc/conformance").json()["conformsTo"]
    for c in ("ogcapi-features-1/1.0/conf/core", "ogcapi-features-1/1.0/conf/geojson",
              "ogcapi-features-1/1.0/conf/html", "ogcapi-features-1/1.0/conf/oas30", "ogcapi-features-2/1.0/conf/crs",
              "ogcapi-tiles-1/1.0/conf/core", "ogcapi-tiles-1/1.0/conf/tileset", "ogcapi-tiles-1/1.0/conf/mvt",
              "ogcapi-tiles-1/1.0/conf/tilesets-list", "ogcapi-tiles-1/1.0/conf/geodata-tilesets"):
        assert f"http://www.opengis.net/spec/{c}" in classes

    cols = anon.get("/ogc/collections").json()["collections"]
    assert [c["id"] for c in cols] == ["admin", "comprehensive", "boards", "sources", "cases"]
    with engine.connect() as conn:
        names = dict(conn.execute(text("SELECT key, name_zh FROM layer")).all())
        names_en = dict(conn.execute(text("SELECT key, name_en FROM layer")).all())
        ext = conn.execute(text(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e), t FROM (SELECT ST_Extent(geom) e, min(lower(valid)) t "
            "FROM published_area WHERE upper_inf(valid) AND layer_key = 'comprehensive') x")).one()
    by_id = {c["id"]: c for c in cols}
    assert by_id["admin"]["title"] == names["admin"] and by_id["comprehensive"]["title"] == names["comprehensive"]
    en = {c["id"]: c for c in anon.get("/ogc/collections", params={"lang": "en"}).json()["collections"]}
    assert en["comprehensive"]["title"] == names_en["comprehensive"]
    comp = by_id["comprehensive"]
    assert comp["extent"]["spatial"]["bbox"][0] == pytest.approx(list(ext[:4]), abs=1e-9)
    start, end = comp["extent"]["temporal"]["interval"][0]
    assert dt.datetime.fromisoformat(start) == ext[4] and end is None
    assert comp["itemType"] == "feature" and EPSG4490 in comp["crs"] and CRS84 in comp["crs"] and comp["storageCrs"]
    for c in cols:
        tiles = [x for x in c["links"] if x["rel"] == "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector"]
        if c["id"] in ("admin", "comprehensive"):
            assert len(tiles) == 1 and tiles[0]["href"].endswith(f"/ogc/collections/{c['id']}/tiles")
        else:
            assert tiles == []
        assert anon.get(f"/ogc/collections/{c['id']}").json()["id"] == c["id"]
    # environment was never published: no collection, no items
    for path in ("/ogc/collections/environment", "/ogc/collections/environment/items",
                 f"/ogc/collections/environment/items/{ENV_W}", "/ogc/collections/nope/queryables"):
        r = anon.get(path)
        assert r.status_code == 404 and "not found" in r.json()["detail"], (path, r.text)
    q = anon.get("/ogc/collections/admin/queryables")
    assert q.status_code == 200 and q.headers["content-type"].startswith("application/schema+json")
    assert {"level", "parent", "code", "name"} <= set(q.json()["properties"])


def test_openapi_documents_every_route(pub):
    paths = pub["client"].get("/openapi.json").json()["paths"]
    for p in ("/ogc", "/ogc/conformance", "/ogc/collections", "/ogc/collections/{collection_id}",
              "/ogc/collections/{collection_id}/items", "/ogc/collections/{collection_id}/items/{feature_id}",
              "/ogc/collections/{collection_id}/queryables"):
        assert paths[p]["get"]["summary"], p
    names = {x["name"] for x in paths["/ogc/collections/{collection_id}/items"]["get"]["parameters"]}
    assert {"limit", "bbox", "bbox-crs", "datetime", "crs", "after", "f", "lang"} <= names


# --------------------------------------------------------------------------- items against PostGIS


def assert_matches(features: list[dict], expected: dict[str, dict]) -> None:
    got = {f["id"]: f for f in features}
    assert len(got) == len(features), "a feature twice"
    assert set(got) == set(expected)
    for code, row in expected.items():
        p = got[code]["properties"]
        assert (p["code"], p["name"], p["level"], p["layer"], p["parent"], p["boundary_version"]) == (
            code, row["name"], row["level_key"], row["layer_key"], row["parent_code"], row["version"]), code
        assert p["area_m2"] == pytest.approx(row["area_m2"], rel=1e-12)
        assert dt.datetime.fromisoformat(p["published_at"]) == row["since"]
        geom = shapely.geometry.shape(got[code]["geometry"])
        assert geom.equals_exact(row["geom"], tolerance=1e-9), code


def test_items_equal_postgis(pub, engine):
    client = pub["client"]
    for layer in ("admin", "comprehensive"):
        r = client.get(f"/ogc/collections/{layer}/items", params=LIMIT)
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/geo+json")
        assert r.headers["content-crs"] == f"<{CRS84}>"
        body = r.json()
        expected = published(engine, layer)
        assert body["numberMatched"] == body["numberReturned"] == len(expected) > 0
        assert body["timeStamp"].endswith("Z")
        assert_matches(body["features"], expected)
        assert not [x for x in body["links"] if x["rel"] == "next"]
    # the admin layer is the administrative areas only; the comprehensive its grids
    assert set(published(engine, "admin")) == {c for c, a in AREAS.items() if a[2] == "admin"}
    one = client.get(f"/ogc/collections/comprehensive/items/{W1}")
    assert one.status_code == 200 and one.json()["id"] == W1
    assert_matches([one.json()], {W1: published(engine, "comprehensive")[W1]})
    assert {x["rel"] for x in one.json()["links"]} >= {"self", "alternate", "collection"}
    assert client.get(f"/ogc/collections/comprehensive/items/{VW}").status_code == 404  # an admin area
    assert client.get("/ogc/collections/admin/items/999").status_code == 404


def test_paging_walks_every_feature_once(pub, engine):
    client = pub["client"]
    expected = published(engine, "comprehensive")
    first = client.get("/ogc/collections/comprehensive/items", params={"limit": 3}).json()
    assert first["numberReturned"] == 3 and first["numberMatched"] == len(expected)  # the cheap index count
    got = walk(client, "/ogc/collections/comprehensive/items", {"limit": 3})
    assert [f["id"] for f in got] == sorted(expected) or len(got) == len(expected)
    assert sorted(f["id"] for f in got) == sorted(expected) and len({f["id"] for f in got}) == len(got)
    # a later page: no count; its prev link gives back the page before
    second = client.get([x["href"] for x in first["links"] if x["rel"] == "next"][0]).json()
    assert "numberMatched" not in second and second["numberReturned"] == 3
    back = client.get([x["href"] for x in second["links"] if x["rel"] == "prev"][0]).json()
    assert [f["id"] for f in back["features"]] == [f["id"] for f in first["features"]]
    # paging with a filter: every village of the admin layer under the town, 1 per page
    villages = walk(client, "/ogc/collections/admin/items", {"limit": 1, "level": "village", "parent": TOWN})
    assert sorted(f["id"] for f in villages) == sorted(
        c for c, r in published(engine, "admin").items() if r["level_key"] == "village" and r["parent_code"] == TOWN)
    # boards and sources page too
    first_boards = client.get("/ogc/collections/boards/items", params={"limit": 7}).json()
    assert first_boards["numberMatched"] == len(expected) and first_boards["numberReturned"] == 7
    boards = walk(client, "/ogc/collections/boards/items", {"limit": 7})
    assert sorted(f["id"] for f in boards) == sorted(expected)


def test_bbox_and_filters_give_what_postgis_gives(pub, engine):
    client = pub["client"]
    box = (120.005, 30.005, 120.025, 30.015)
    with engine.connect() as conn:
        want = set(conn.execute(text(
            "SELECT code FROM published_area WHERE upper_inf(valid) AND layer_key = 'comprehensive' "
            "AND ST_Intersects(geom, ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326))"),
            dict(zip(("x0", "y0", "x1", "y1"), box, strict=True))).scalars())
    assert want and len(want) < len(published(engine, "comprehensive"))
    got = client.get("/ogc/collections/comprehensive/items", params={**LIMIT, "bbox": ",".join(map(str, box))}).json()
    assert {f["id"] for f in got["features"]} == want
    latlon = ",".join(map(str, (box[1], box[0], box[3], box[2])))
    for crs in (EPSG4326, "EPSG:4490"):
        alt = client.get("/ogc/collections/comprehensive/items", params={**LIMIT, "bbox": latlon, "bbox-crs": crs})
        assert {f["id"] for f in alt.json()["features"]} == want, crs
    rows = published(engine, "admin")
    r = client.get("/ogc/collections/admin/items", params={"level": "village", "parent": TOWN}).json()
    assert {f["id"] for f in r["features"]} == {VW, VE} == {
        c for c, x in rows.items() if x["level_key"] == "village" and x["parent_code"] == TOWN}
    r = client.get("/ogc/collections/comprehensive/items", params={**LIMIT, "parent": MVILLAGE}).json()
    assert r["numberReturned"] == 100
    r = client.get("/ogc/collections/boards/items", params={"code": E1}).json()
    assert [f["id"] for f in r["features"]] == [E1]


def test_crs_output_in_authority_axis_order(pub, engine):
    client = pub["client"]
    plain = client.get(f"/ogc/collections/comprehensive/items/{W1}").json()["geometry"]
    for crs in (EPSG4490, EPSG4326, "EPSG:4490"):
        r = client.get(f"/ogc/collections/comprehensive/items/{W1}", params={"crs": crs})
        assert r.status_code == 200
        assert r.headers["content-crs"] == f"<{EPSG4490 if '4490' in crs else EPSG4326}>"
        flipped = shapely.geometry.shape(r.json()["geometry"])
        assert flipped.equals_exact(swap(shapely.geometry.shape(plain)), 1e-12)
        lat, lon = flipped.geoms[0].exterior.coords[0] if flipped.geom_type == "MultiPolygon" else \
            flipped.exterior.coords[0]
        assert 29 < lat < 31 and 119 < lon < 121
    page = client.get("/ogc/collections/comprehensive/items", params={**LIMIT, "crs": EPSG4490})
    assert page.headers["content-crs"] == f"<{EPSG4490}>"
    expected = published(engine, "comprehensive")
    for f in page.json()["features"]:
        geom = swap(shapely.geometry.shape(f["geometry"]))
        assert geom.equals_exact(expected[f["id"]]["geom"], 1e-9)
    src = client.get("/ogc/collections/sources/items", params={"crs": EPSG4490}).json()["features"]
    assert src[0]["geometry"]["coordinates"] == pytest.approx([30.005, 120.005])


def test_datetime_selects_the_generation_published_then(pub, engine, settings):
    client = pub["client"]
    old = published(engine, "comprehensive")
    r = client.patch(f"/api/grids/{E2}", json={"geometry": shapely.geometry.mapping(
        shapely.box(120.03, 30.025, 120.04, 30.04))})
    assert r.status_code == 200, r.text
    # Edited, not yet published: the public still sees the old boundary.
    now = client.get(f"/ogc/collections/comprehensive/items/{E2}").json()
    assert shapely.geometry.shape(now["geometry"]).equals_exact(old[E2]["geom"], 1e-9)
    publish(engine, COUNTY, "comprehensive")
    new = published(engine, "comprehensive")
    second = new[E2]["since"]
    assert new[E2]["geom"].equals_exact(shapely.box(120.03, 30.025, 120.04, 30.04).normalize(), 1e-9) or \
        new[E2]["geom"].equals(shapely.box(120.03, 30.025, 120.04, 30.04))
    before = (second - dt.timedelta(milliseconds=1)).isoformat()

    def at(value: str, **extra) -> dict[str, dict]:
        r = client.get("/ogc/collections/comprehensive/items", params={**LIMIT, "datetime": value, **extra})
        assert r.status_code == 200, r.text
        return {f["id"]: f for f in r.json()["features"]}

    then = at(before)
    assert set(then) == set(old) and shapely.geometry.shape(then[E2]["geometry"]).equals_exact(old[E2]["geom"], 1e-9)
    later = at(second.isoformat())
    assert shapely.geometry.shape(later[E2]["geometry"]).equals(new[E2]["geom"])
    assert dt.datetime.fromisoformat(later[E2]["properties"]["published_at"]) == second
    # PostGIS's own answer for that instant
    assert set(later) == set(published(engine, "comprehensive", "valid @> CAST(:t AS timestamptz)", t=second))
    # before the first publication: nothing was public
    assert at("2019-01-01T00:00:00Z") == {}
    # an interval over both publications: E2 twice (one feature per generation), the others once
    both = at(f"{before}/..")
    gens = published(engine, "comprehensive", "valid && tstzrange(CAST(:t AS timestamptz), NULL)", t=before)
    e2 = sorted(k for k in both if k.startswith(E2 + "@"))
    assert len(e2) == 2 and len(both) == len(old) + 1
    assert {k.split("@")[0] for k in both} == set(gens)
    for k in e2:  # each generation by its id, too
        one = client.get(f"/ogc/collections/comprehensive/items/{k}").json()
        assert one["id"] == k and shapely.geometry.shape(one["geometry"]).equals(
            shapely.geometry.shape(both[k]["geometry"]))
    # keyset paging over generations: every one exactly once
    walked = walk(client, "/ogc/collections/comprehensive/items", {"limit": 4, "datetime": f"{before}/.."})
    assert sorted(f["id"] for f in walked) == sorted(both)
    # a date alone: that whole day
    # (the jurisdiction's day: from 16:00 UTC on, Shanghai is already on the next one)
    today = timeutil.local_today(settings).isoformat()
    assert E2 + "@" + str(new[E2]["id"]) in at(today)
    # the boards follow the same generations; cases filter on reported_at
    boards = client.get("/ogc/collections/boards/items", params={**LIMIT, "datetime": before}).json()["features"]
    assert {f["id"] for f in boards} == set(old)
    assert client.get("/ogc/collections/cases/items", params={"datetime": "2019-01-01/2019-12-31"}).json()[
        "features"] == []
    assert [f["id"] for f in client.get("/ogc/collections/cases/items", params={
        "datetime": f"{(dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat()}/.."}).json()["features"]] == [
        pub["case"]]


# --------------------------------------------------------------------------- boards, sources, cases, privacy


def test_boards_sources_and_cases_show_public_fields_only(pub, engine):
    client = pub["client"]
    board = client.get(f"/ogc/collections/boards/items/{W1}").json()
    with engine.connect() as conn:
        roles = dict(conn.execute(text("SELECT key, name_zh FROM role")).all())
        roles_en = dict(conn.execute(text("SELECT key, name_en FROM role")).all())
    assert board["properties"]["code"] == W1 and board["properties"]["layer"] == "comprehensive"
    persons = {p["role"]: p for p in board["properties"]["persons"]}
    assert set(persons) == {"grid_leader", "grid_worker_fulltime", "instructor"}  # the former's post ended
    assert persons["grid_leader"] == {"role": "grid_leader", "role_name": roles["grid_leader"], "name": "王芳",
                                      "phone": "13800000001", "photo_url": "https://example.com/wang.jpg",
                                      "duties": "全面负责"}
    assert persons["grid_worker_fulltime"] == {"role": "grid_worker_fulltime", "name": "李强",
                                               "role_name": roles["grid_worker_fulltime"]}
    assert persons["instructor"] == {"role": "instructor", "role_name": roles["instructor"]}
    en = client.get(f"/ogc/collections/boards/items/{W1}", params={"lang": "en"}).json()
    assert {p["role_name"] for p in en["properties"]["persons"]} == {
        roles_en[k] for k in ("grid_leader", "grid_worker_fulltime", "instructor")}
    assert client.get(f"/ogc/collections/boards/items/{VW}").status_code == 404  # admin areas have no board

    sources = client.get("/ogc/collections/sources/items").json()
    assert [f["id"] for f in sources["features"]] == [pub["source"]] and sources["numberMatched"] == 1
    p = sources["features"][0]["properties"]
    assert (p["name"], p["kind"], p["kind_name"], p["key_supervision"], p["permit_no"]) == (
        "公开化工厂", "enterprise", "排污企业", True, "91330000X")
    assert client.get(f"/ogc/collections/sources/items/{pub['hidden_source']}").status_code == 404
    assert client.get("/ogc/collections/sources/items", params={"key_supervision": "maybe"}).status_code == 400

    cases = client.get("/ogc/collections/cases/items").json()["features"]
    assert [f["id"] for f in cases] == [pub["case"]]
    p = cases[0]["properties"]
    assert (p["receipt"], p["category"], p["category_name"], p["state"], p["state_name"]) == (
        pub["case"], "sanitation", "环境卫生", "reported", "上报")
    assert set(p) == {"receipt", "category", "category_name", "state", "state_name", "reported_at", "closed_at",
                      "grid", "authority"}
    assert cases[0]["geometry"]["coordinates"] == pytest.approx([120.004, 30.006])
    assert client.get(f"/ogc/collections/cases/items/{pub['private_case']}").status_code == 404
    en = client.get("/ogc/collections/cases/items", params={"lang": "en"}).json()["features"][0]["properties"]
    assert (en["category_name"], en["state_name"]) == ("Sanitation", "Reported")


def test_no_private_value_in_any_collection(pub):
    client = pub["client"]
    client.headers.pop("Authorization")  # the public
    texts = [client.get(p).text for p in ("/ogc", "/ogc/collections", "/ogc/conformance")]
    for c in client.get("/ogc/collections").json()["collections"]:
        base = f"/ogc/collections/{c['id']}"
        texts += [client.get(base).text, client.get(base + "/queryables").text]
        for params in (LIMIT, {**LIMIT, "f": "html"}, {**LIMIT, "lang": "en"}, {**LIMIT, "datetime": "2020-01-01/.."}):
            r = client.get(base + "/items", params=params)
            assert r.status_code == 200, r.text
            texts.append(r.text)
        for f in client.get(base + "/items", params=LIMIT).json()["features"]:
            texts += [client.get(f"{base}/items/{f['id']}").text,
                      client.get(f"{base}/items/{f['id']}", params={"f": "html"}).text]
    blob = "\n".join(texts)
    for secret in SECRETS:
        assert secret not in blob, secret


def test_html_views_escape_every_value(pub):
    client = pub["client"]
    for path in ("/ogc", "/ogc/conformance", "/ogc/collections", "/ogc/collections/comprehensive",
                 "/ogc/collections/comprehensive/items", f"/ogc/collections/comprehensive/items/{E2}",
                 f"/ogc/collections/boards/items/{W1}", "/ogc/collections/comprehensive/queryables"):
        r = client.get(path, headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), path
        assert "<script" not in r.text, path
    items = client.get("/ogc/collections/comprehensive/items", params={**LIMIT, "f": "html"}).text
    assert "东村二格&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in items and W2 in items
    assert "下一页" not in items and "要素" in items
    en = client.get("/ogc/collections/comprehensive/items", params={"limit": 5, "f": "html", "lang": "en"}).text
    assert "Next page" in en and "lang=en" in en
    board = client.get(f"/ogc/collections/boards/items/{W1}", params={"f": "html"}).text
    assert "王芳" in board and "13800000001" in board and 'href="https://example.com/wang.jpg"' in board
    # JSON stays JSON for clients that ask for it
    r = client.get("/ogc/collections", headers={"Accept": "application/json"})
    assert r.headers["content-type"].startswith("application/json")


@pytest.mark.parametrize(("params", "named"), [
    ({"limit": "0"}, "limit"), ({"limit": "abc"}, "limit"), ({"limit": "10001"}, "limit"),
    ({"bbox": "1,2,3"}, "bbox"), ({"bbox": "200,30,201,31"}, "bbox"), ({"bbox": "120.1,30,120,31"}, "bbox"),
    ({"bbox": "120,30,121,31", "bbox-crs": "EPSG:3857"}, "bbox-crs"), ({"crs": "EPSG:3857"}, "crs"),
    ({"datetime": "yesterday"}, "datetime"), ({"datetime": "2026-01-02/2025-01-01"}, "datetime"),
    ({"datetime": "../.."}, "datetime"), ({"frobnicate": "1"}, "frobnicate"), ({"levle": "village"}, "levle"),
    ({"f": "xml"}, "f"), ({"lang": "fr"}, "lang"), ({"after": "a~b"}, "after"),
    ({"after": W1, "before": W2}, "before"), ({"boundary_version": "x"}, "boundary_version"),
])
def test_bad_items_input_is_a_400_naming_it(pub, params, named):
    r = pub["client"].get("/ogc/collections/comprehensive/items", params=params)
    assert r.status_code == 400, r.text
    body = r.json()
    assert named in body["detail"] and any(p["field"] == f"query.{named}" for p in body["problems"]), body


def test_other_bad_input(pub):
    client = pub["client"]
    assert client.get("/ogc/collections", params={"foo": "1"}).status_code == 400
    assert client.get(f"/ogc/collections/comprehensive/items/{W1}", params={"crs": "EPSG:2000"}).status_code == 400
    assert client.get("/ogc/collections/sources/items", params={"after": "x"}).status_code == 400
    r = client.get("/ogc/collections/sources/items/not-a-number")
    assert r.status_code == 404 and "not-a-number" in r.json()["detail"]


# --------------------------------------------------------------------------- GDAL's OAPIF driver

needs_gdal = pytest.mark.skipif(shutil.which("ogrinfo") is None, reason="GDAL's ogrinfo/ogr2ogr not installed")


def run(*args: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "GDAL_HTTP_TIMEOUT": "60", "CPL_DEBUG": "OFF"})
    assert done.returncode == 0, f"{' '.join(args)}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def compare_gpkg(path, expected: dict[str, dict]) -> None:
    df = pyogrio.read_dataframe(path)
    assert len(df) == len(expected)
    assert sorted(df["code"]) == sorted(expected)
    for _, row in df.iterrows():
        want = expected[row["code"]]
        assert row["id"] == row["code"]
        assert (row["name"], row["level"], row["layer"], row["parent"], row["boundary_version"]) == (
            want["name"], want["level_key"], want["layer_key"], want["parent_code"], want["version"]), row["code"]
        assert row["area_m2"] == pytest.approx(want["area_m2"], rel=1e-9)
        assert row["geometry"].equals_exact(want["geom"], tolerance=1e-9), row["code"]


@needs_gdal
def test_gdal_reads_the_collections(pub, engine, app, tmp_path):
    expected = published(engine, "comprehensive")
    with contextlib.ExitStack() as cleanup:
        url = "OAPIF:" + serve_in_thread(app, cleanup) + "/ogc"
        listing = run("ogrinfo", "-ro", "-so", "-q", url)
        for name in ("admin", "comprehensive", "boards", "sources", "cases"):
            assert f": {name}" in listing, listing
        assert "environment" not in listing
        summary = run("ogrinfo", "-ro", "-so", url, "comprehensive")
        assert f"Feature Count: {len(expected)}" in summary, summary

        out = tmp_path / "all.gpkg"
        run("ogr2ogr", "-f", "GPKG", str(out), url, "comprehensive")
        compare_gpkg(out, expected)

        paged = tmp_path / "paged.gpkg"  # 7 per page: 16 pages through the next links
        run("ogr2ogr", "-f", "GPKG", "-oo", "PAGE_SIZE=7", str(paged), url, "comprehensive")
        compare_gpkg(paged, expected)

        box = (120.005, 30.005, 120.025, 30.015)
        spat = tmp_path / "spat.gpkg"
        run("ogr2ogr", "-f", "GPKG", "-oo", "PAGE_SIZE=5", "-spat", *map(str, box), str(spat), url, "comprehensive")
        footprint = shapely.box(*box)
        compare_gpkg(spat, {c: r for c, r in expected.items() if r["geom"].intersects(footprint)})

        boards = tmp_path / "boards.gpkg"
        run("ogr2ogr", "-f", "GPKG", str(boards), url, "boards")
        df = pyogrio.read_dataframe(boards)
        assert sorted(df["code"]) == sorted(expected)
        w1 = df.loc[df["code"] == W1, "persons"].iloc[0]
        w1 = json.loads(w1) if isinstance(w1, str) else w1
        assert {p["role"] for p in w1} == {"grid_leader", "grid_worker_fulltime", "instructor"}
