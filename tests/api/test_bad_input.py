"""Bad input is refused with a 4xx that says what is wrong and where, and nothing is stored.

Every write below is checked three ways: the status code, the message (which problem,
and where: feature index, field, location) and the number of stored areas afterwards
(all or nothing). The ``town`` fixture holds 4 areas: a county, town 339901100 and its
two villages, west 339901100001 (120.00-120.02 E) and east 339901100002 (120.02-120.04 E),
both 30.00-30.04 N.
"""

from __future__ import annotations

import json

import pytest
import shapely
from conftest import collection, feature, square
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, event, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

WEST = "339901100001"  # the west village: parent of the grids below
WEST_BOX = (120.0, 30.0, 120.02, 30.04)

# A bow tie: its two edges cross at (120.006, 30.006).
BOW_TIE = {"type": "Polygon", "coordinates": [[
    [120.001, 30.001], [120.011, 30.011], [120.011, 30.001], [120.001, 30.011], [120.001, 30.001]]]}


# --------------------------------------------------------------------------- helpers


def stored(client) -> int:
    """How many areas the service holds now (current boundaries, every layer)."""
    r = client.get("/api/areas", params={"limit": 1})
    assert r.status_code == 200, r.text
    return r.json()["numberMatched"]


def rejected(client, response, before: int, status: int = 422) -> dict:
    """Assert the status and that nothing was stored; return the JSON body."""
    assert response.status_code == status, response.text
    assert stored(client) == before, "a rejected request stored something"
    return response.json()


def only_problem(body: dict) -> dict:
    assert len(body["problems"]) == 1, body
    return body["problems"][0]


def grid(geometry: dict, **properties) -> dict:
    """A comprehensive-net grid feature under the west village unless told otherwise."""
    return feature(geometry, **{"name": "网格", "parent": WEST, **properties})


def inside(k: int) -> dict:
    """The k-th of several small, disjoint squares well inside the west village."""
    return square(120.001 + 0.0035 * k, 30.001, 0.003)


# --------------------------------------------------------------------------- invalid polygons


def test_self_intersecting_polygon_is_rejected_with_reason_and_location(client, town):
    before = stored(client)
    body = rejected(client, client.post("/api/grids", json=grid(BOW_TIE)), before)
    problem = only_problem(body)
    assert "Self-intersection" in problem["message"]
    assert problem["field"] == "geometry" and problem["index"] == 0
    assert problem["location"] == pytest.approx([120.006, 30.006], abs=1e-6)
    assert "nothing was imported" in body["detail"]


def test_self_intersecting_polygon_is_repaired_on_request(client, town):
    before = stored(client)
    r = client.post("/api/grids", params={"repair": "true"}, json=grid(BOW_TIE))
    assert r.status_code == 201, r.text
    report = r.json()
    code = report["codes"][0]
    assert report["repaired"] == [{"index": 0, "code": code}]
    assert stored(client) == before + 1
    geometry = shapely.geometry.shape(client.get(f"/api/grids/{code}").json()["geometry"])
    assert geometry.is_valid and geometry.geom_type == "MultiPolygon" and len(geometry.geoms) == 2


@pytest.mark.parametrize("lon, lat", [
    (30.0, 120.0),  # latitude out of range; lon/lat swapped would be in China
    (30.0, 80.0),   # both in range, outside the service extent; swapped would be in China
], ids=["lat-out-of-range", "outside-extent"])
def test_swapped_lat_lon_is_named(client, town, lon, lat):
    before = stored(client)
    body = rejected(client, client.post("/api/grids", json=grid(square(lon, lat))), before)
    problem = only_problem(body)
    assert "swapped" in problem["message"]
    assert problem["field"] == "geometry" and problem["index"] == 0
    assert problem["location"] == pytest.approx([lon, lat])


def test_coordinates_out_of_lon_lat_range_are_rejected(client, town):
    before = stored(client)
    body = rejected(client, client.post("/api/grids", json=grid(square(200.0, 30.0))), before)
    problem = only_problem(body)
    assert "out of range" in problem["message"] and "swapped" not in problem["message"]
    assert problem["location"] == pytest.approx([200.0, 30.0])


def test_coordinates_outside_the_service_extent_are_rejected(client, town):
    before = stored(client)
    body = rejected(client, client.post("/api/grids", json=grid(square(10.0, 10.0))), before)
    problem = only_problem(body)
    assert "outside the service extent" in problem["message"]
    assert problem["field"] == "geometry" and problem["index"] == 0
    assert problem["location"] == pytest.approx([10.0, 10.0])


@pytest.mark.parametrize("geometry, named", [
    ({"type": "Polygon", "coordinates": []}, "empty"),
    (None, "missing"),
    ({"type": "LineString", "coordinates": [[120.001, 30.001], [120.002, 30.002]]}, "LineString"),
    ({"type": "Point", "coordinates": [120.001, 30.001]}, "Point"),
    ({"type": "MultiPoint", "coordinates": [[120.001, 30.001], [120.002, 30.002]]}, "MultiPoint"),
], ids=["empty-polygon", "null", "linestring", "point", "multipoint"])
def test_geometry_that_is_not_a_polygon_is_named(client, town, geometry, named):
    before = stored(client)
    body = rejected(client, client.post("/api/grids", json=grid(geometry)), before)
    problem = only_problem(body)
    assert named in problem["message"]
    assert problem["field"] == "geometry" and problem["index"] == 0


@pytest.mark.parametrize("geometry, named", [
    ({"type": "Polygon", "coordinates": [[[120.001, 30.001], [120.002, 30.002]]]}, "malformed Polygon"),
    ({"type": "Polygon", "coordinates": [[["a", "b"], ["c", "d"], ["e", "f"], ["a", "b"]]]}, "malformed Polygon"),
    ({"type": "Polygon", "coordinates": "120.001 30.001"}, "malformed Polygon"),
    ({"type": "Polygon"}, "malformed Polygon"),
    ({"type": "Polygon", "coordinates": [[[120.001, 30.001, 1, 2]] * 4]}, "malformed Polygon"),
    ({"type": "Circle", "coordinates": [120.001, 30.001]}, "Circle"),
    ({"coordinates": [[[120.001, 30.001]]]}, "type"),
], ids=["ring-of-2", "string-coordinates", "coordinates-a-string", "no-coordinates", "4d-positions",
        "unknown-type", "no-type"])
def test_malformed_geometry_is_a_422_not_a_500(client, town, geometry, named):
    before = stored(client)
    body = rejected(client, client.post("/api/grids", json=grid(geometry)), before)
    problem = only_problem(body)
    assert named in problem["message"]
    assert problem["field"] == "geometry" and problem["index"] == 0


def test_numeric_strings_as_coordinates_are_rejected(client, town):
    ring = [[str(x), str(y)] for x, y in inside(0)["coordinates"][0]]
    before = stored(client)
    body = rejected(client, client.post("/api/grids", json=grid({"type": "Polygon", "coordinates": [ring]})), before)
    problem = only_problem(body)
    assert "malformed Polygon" in problem["message"]
    assert problem["field"] == "geometry" and problem["index"] == 0


def test_polygon_with_altitude_is_accepted_as_2d(client, town):
    ring = [[x, y, 12.5] for x, y in inside(0)["coordinates"][0]]
    r = client.post("/api/grids", json=grid({"type": "Polygon", "coordinates": [ring]}))
    assert r.status_code == 201, r.text
    stored_geometry = shapely.geometry.shape(client.get(f"/api/grids/{r.json()['codes'][0]}").json()["geometry"])
    assert not stored_geometry.has_z
    assert shapely.hausdorff_distance(stored_geometry, shapely.geometry.shape(inside(0))) < 1e-7


# --------------------------------------------------------------------------- parents and codes


def test_unknown_parent_is_named(client, town):
    before = stored(client)
    body = rejected(client, client.post("/api/grids", json=grid(inside(0), parent="339901100009")), before)
    problem = only_problem(body)
    assert "unknown parent 339901100009" in problem["message"]
    assert problem["field"] == "parent" and problem["index"] == 0


def test_code_already_in_the_database_is_a_duplicate(client, town):
    before = stored(client)
    r = client.post("/api/areas", json=feature(square(120.0, 30.0, 0.02), code=WEST, name="又一个西村",
                                                level="village", parent="339901100"))
    problem = only_problem(rejected(client, r, before))
    assert "duplicate code" in problem["message"] and WEST in problem["message"]
    assert problem["field"] == "code" and problem["index"] == 0


def test_code_twice_in_one_collection_is_a_duplicate(client, town):
    before = stored(client)
    code = WEST + "001"
    r = client.post("/api/grids", json=collection(grid(inside(0), code=code), grid(inside(1), code=code)))
    problem = only_problem(rejected(client, r, before))
    assert "duplicate code" in problem["message"] and "also feature 0" in problem["message"]
    assert problem["field"] == "code" and problem["index"] == 1


@pytest.mark.parametrize("code, named", [
    (WEST + "01", "has 14 digits, this level needs 15"),
    (WEST + "0001", "has 16 digits, this level needs 15"),
    ("339901100002001", "does not start with its parent code " + WEST),
], ids=["too-short", "too-long", "not-under-parent"])
def test_code_of_wrong_length_or_outside_parent_is_rejected(client, town, code, named):
    before = stored(client)
    problem = only_problem(rejected(client, client.post("/api/grids", json=grid(inside(0), code=code)), before))
    assert named in problem["message"]
    assert problem["field"] == "code" and problem["index"] == 0 and problem["code"] == code


@pytest.mark.parametrize("x, share", [(121.001, "100.00%"), (120.0102, "2.00%")],
                         ids=["entirely-outside", "sticking-out-2pct"])
def test_grid_outside_its_parent_is_rejected(client, town, x, share):
    before = stored(client)
    r = client.post("/api/grids", json=grid(square(x, 30.001)))
    problem = only_problem(rejected(client, r, before))
    assert f"outside parent {WEST}" in problem["message"] and share in problem["message"]
    assert problem["field"] == "geometry" and problem["index"] == 0
    lon, lat = problem["location"]
    assert lon > WEST_BOX[2] and 30.001 < lat < 30.011  # the part outside, east of the village


def test_tiny_spill_over_is_accepted_with_a_warning(client, town):
    before = stored(client)
    r = client.post("/api/grids", json=grid(square(120.01005, 30.001)))  # 0.5 % east of the village
    assert r.status_code == 201, r.text
    [warning] = r.json()["warnings"]
    assert f"outside parent {WEST}" in warning["message"] and "0.50%" in warning["message"]
    assert warning["code"] == r.json()["codes"][0] and warning["location"][0] > WEST_BOX[2]
    assert stored(client) == before + 1


def test_shrinking_a_parent_away_from_its_grids_is_refused(client, town):
    r = client.post("/api/grids", json=grid(square(120.001, 30.021)))
    assert r.status_code == 201, r.text
    child = r.json()["codes"][0]
    r = client.patch(f"/api/areas/{WEST}", json={"geometry": square(120.0, 30.0, 0.015)})
    assert r.status_code == 422, r.text
    problem = only_problem(r.json())
    assert problem["code"] == child and f"outside parent {WEST}" in problem["message"]
    assert len(client.get(f"/api/areas/{WEST}/history").json()["features"]) == 1


# --------------------------------------------------------------------------- all or nothing


@pytest.mark.parametrize("bad", [
    pytest.param(lambda k: grid(BOW_TIE), id="self-intersecting"),
    pytest.param(lambda k: grid(square(120.015, 30.001)), id="outside-parent"),
    pytest.param(lambda k: grid(inside(k), parent="339901100009"), id="unknown-parent"),
    pytest.param(lambda k: grid(inside(k), level="hamlet"), id="unknown-level"),
])
def test_one_bad_feature_of_five_rejects_all_five(client, town, bad):
    features = [grid(inside(k)) for k in range(5)]
    features[3] = bad(3)
    before = stored(client)
    body = rejected(client, client.post("/api/grids", json=collection(*features)), before)
    assert body["detail"].startswith("1 of 5 features rejected; nothing was imported")
    if "outside parent" in body["problems"][0]["message"]:  # spill-over: how to proceed
        assert "max_spill=" in body["detail"] and "--max-spill" in body["detail"]
    else:
        assert body["detail"] == "1 of 5 features rejected; nothing was imported"
    assert {p["index"] for p in body["problems"]} == {3}


def test_one_invalid_property_of_five_rejects_all_five(client, town):
    features = [grid(inside(k), households=10) for k in range(5)]
    features[3]["properties"]["households"] = -1
    before = stored(client)
    body = rejected(client, client.post("/api/grids", json=collection(*features)), before)
    problem = only_problem(body)
    assert problem["field"].endswith("features.3.properties.households")
    assert "greater than or equal to 0" in problem["message"]


# --------------------------------------------------------------------------- counts


@pytest.mark.parametrize("households, named", [
    (-1, "greater than or equal to 0"),
    (2.5, "integer"),
    ("many", "integer"),
], ids=["negative", "fraction", "word"])
def test_households_must_be_a_whole_number_at_least_zero(client, town, households, named):
    before = stored(client)
    problem = only_problem(rejected(client, client.post("/api/grids", json=grid(inside(0), households=households)), before))
    assert problem["field"].endswith("properties.households")
    assert named in problem["message"]


@pytest.mark.parametrize("households", [True, "12"], ids=["boolean", "numeric-string"])
def test_households_that_are_not_json_numbers_are_rejected(client, town, households):
    before = stored(client)
    problem = only_problem(rejected(client, client.post("/api/grids", json=grid(inside(0), households=households)), before))
    assert problem["field"].endswith("properties.households")
    assert "integer" in problem["message"]


def test_negative_households_in_an_edit_change_nothing(client, town):
    r = client.patch(f"/api/areas/{WEST}", json={"properties": {"households": -3, "name": "改名"}})
    assert r.status_code == 422, r.text
    assert only_problem(r.json())["field"] == "body.properties.households"
    area = client.get(f"/api/areas/{WEST}").json()["properties"]
    assert area["name"] == "西村" and area["households"] is None and area["version"] == 1


@pytest.mark.parametrize("body, named", [
    ({"name": "改名"}, "body.name"),  # a property at the top level instead of under properties
    ({"properties": {"name": "改名", "colour": "red"}}, "body.properties.colour"),
    ({"geometry": None, "moves": [{"from": [120.0, 30.0], "to": [120.0, 30.0], "by": 1}]}, "body.moves.0.by"),
])
def test_unknown_members_of_an_edit_are_named_and_change_nothing(client, town, body, named):
    r = client.patch(f"/api/areas/{WEST}", json=body)
    assert r.status_code == 422, r.text
    assert named in [p["field"] for p in r.json()["problems"]] and named in r.json()["detail"]
    area = client.get(f"/api/areas/{WEST}").json()["properties"]
    assert area["name"] == "西村" and area["version"] == 1


def test_geojson_members_of_a_collection_are_accepted_but_not_a_foreign_crs(client, town):
    before = stored(client)
    doc = collection(grid(inside(0)))
    doc["features"][0].update(id=7, bbox=[120.001, 30.001, 120.004, 30.004])
    doc["features"][0]["properties"]["adcode_extra"] = "open: a file's other columns are ignored"
    projected = {**doc, "name": "grids", "crs": {"type": "name", "properties": {"name": "EPSG:4549"}}}
    body = rejected(client, client.post("/api/grids", json=projected), before)
    assert "EPSG:4549" in body["detail"] and "/api/import" in body["detail"]
    doc.update(name="grids", crs={"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}})
    assert client.post("/api/grids", json=doc).status_code == 201
    assert stored(client) == before + 1
    r = client.post("/api/persons", json={"name": "张三", "nmae": "typo"})
    assert r.status_code == 422 and "body.nmae" in r.json()["detail"]


def test_unknown_query_parameters_of_a_write_are_named_and_nothing_is_written(client, town):
    r = client.patch(f"/api/areas/{WEST}", params={"dryrun": "true"}, json={"properties": {"name": "改名"}})
    assert r.status_code == 422, r.text
    assert "dryrun" in r.json()["detail"] and "dry_run" in r.json()["detail"]  # what the route does take
    assert r.json()["problems"] == [{"field": "query.dryrun", "message": "unknown query parameter 'dryrun'"}]
    assert client.get(f"/api/areas/{WEST}").json()["properties"]["name"] == "西村"
    before = stored(client)
    r = client.post("/api/grids", params={"parent": WEST, "repiar": "true"}, json=collection(grid(inside(1))))
    assert r.status_code == 422 and "repiar" in r.json()["detail"] and stored(client) == before
    # Declared ones, dependencies' included, pass; reads ignore unknown parameters.
    assert client.patch(f"/api/areas/{WEST}", params={"lang": "en", "dry_run": "true"},
                        json={"properties": {"name": "改名"}}).status_code == 200
    assert client.get("/api/areas", params={"_": "cache-buster"}).status_code == 200


# --------------------------------------------------------------------------- body size


def authorization(client) -> dict:
    """The ``client`` fixture's credentials, for the extra clients built here."""
    return {k: v for k, v in client.headers.items() if k.lower() == "authorization"}


@pytest.fixture
def small_app(settings, client):
    """The service with a 10 kB body limit, same database and credentials as ``client``."""
    from api.app import create_app
    from geogrid.core.settings import Settings

    with TestClient(create_app(Settings(database_url=settings.database_url, max_body_bytes=10_000)),
                    raise_server_exceptions=False, headers=authorization(client)) as c:
        yield c


def big_grid_body() -> bytes:
    return json.dumps(grid(inside(0), notes="x" * 20_000)).encode()


def multipart(name: str, data: bytes, boundary: str = "geogrid-test") -> tuple[bytes, dict]:
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: application/geo+json\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, {"content-type": f"multipart/form-data; boundary={boundary}"}


def chunks(data: bytes, size: int = 1000):
    for i in range(0, len(data), size):
        yield data[i:i + size]


@pytest.mark.parametrize("endpoint", ["/api/grids", "/api/import"])
def test_body_above_the_limit_with_content_length_is_413(small_app, client, town, endpoint):
    before = stored(client)
    if endpoint == "/api/import":
        body, headers = multipart("big.geojson", json.dumps(collection(json.loads(big_grid_body()))).encode())
    else:
        body, headers = big_grid_body(), {"content-type": "application/json"}
    r = small_app.post(endpoint, content=body, headers=headers)
    assert "content-length" in {k.lower() for k in r.request.headers}
    body = rejected(client, r, before, status=413)
    assert "10,000 byte limit" in body["detail"]


@pytest.mark.parametrize("endpoint", ["/api/grids", "/api/import"])
def test_chunked_body_above_the_limit_is_413(small_app, client, town, endpoint):
    before = stored(client)
    if endpoint == "/api/import":
        body, headers = multipart("big.geojson", json.dumps(collection(json.loads(big_grid_body()))).encode())
    else:
        body, headers = big_grid_body(), {"content-type": "application/json"}
    r = small_app.post(endpoint, content=chunks(body), headers=headers)
    assert "content-length" not in {k.lower() for k in r.request.headers}
    body = rejected(client, r, before, status=413)
    assert "10,000 byte limit" in body["detail"]


def test_chunked_body_below_the_limit_is_accepted(small_app, client, town):
    before = stored(client)
    r = small_app.post("/api/grids", content=chunks(json.dumps(grid(inside(0))).encode(), 100),
                       headers={"content-type": "application/json"})
    assert r.status_code == 201, r.text
    assert stored(client) == before + 1


# --------------------------------------------------------------------------- edits


def test_stale_edit_is_412_and_keeps_the_first_edit(client, town):
    first = client.patch(f"/api/areas/{WEST}", json={"properties": {"name": "第一次"}}, headers={"If-Match": '"1"'})
    assert first.status_code == 200, first.text
    assert first.headers["ETag"] == '"2"'
    second = client.patch(f"/api/areas/{WEST}", json={"properties": {"name": "第二次"}}, headers={"If-Match": '"1"'})
    assert second.status_code == 412, second.text
    assert "at version 2, not 1" in second.json()["detail"] and second.json()["current_version"] == 2
    area = client.get(f"/api/areas/{WEST}").json()["properties"]
    assert area["name"] == "第一次" and area["version"] == 2


def test_stale_version_in_the_body_is_412(client, town):
    assert client.patch(f"/api/areas/{WEST}", json={"properties": {"name": "第一次"}}).status_code == 200
    r = client.patch(f"/api/areas/{WEST}", json={"properties": {"name": "第二次"}, "version": 1})
    assert r.status_code == 412, r.text
    assert client.get(f"/api/areas/{WEST}").json()["properties"]["name"] == "第一次"


def test_stale_retire_is_412_and_the_area_stays(client, town):
    grid_code = client.post("/api/grids", json=grid(inside(0))).json()["codes"][0]
    assert client.patch(f"/api/grids/{grid_code}", json={"properties": {"households": 5}}).status_code == 200
    r = client.delete(f"/api/grids/{grid_code}", headers={"If-Match": '"1"'})
    assert r.status_code == 412, r.text
    assert client.get(f"/api/grids/{grid_code}").json()["properties"]["retired_at"] is None


@pytest.mark.parametrize("etag", ["abc", '"one"', '"1", "2"'])
def test_unreadable_if_match_is_400_and_changes_nothing(client, town, etag):
    r = client.patch(f"/api/areas/{WEST}", json={"properties": {"name": "改名"}}, headers={"If-Match": etag})
    assert r.status_code == 400, r.text
    assert "If-Match" in r.json()["detail"] and repr(etag) in r.json()["detail"]
    area = client.get(f"/api/areas/{WEST}").json()["properties"]
    assert area["name"] == "西村" and area["version"] == 1


@pytest.mark.parametrize("geometry, named", [
    (BOW_TIE, "Self-intersection"),
    (square(120.015, 30.001), "outside parent 339901100"),
    ({"type": "LineString", "coordinates": [[120.001, 30.001], [120.002, 30.002]]}, "LineString"),
    ({"type": "Polygon", "coordinates": [[[120.001, 30.001], [120.002, 30.002]]]}, "malformed Polygon"),
], ids=["self-intersecting", "outside-parent", "linestring", "ring-of-2"])
def test_edit_with_a_bad_boundary_keeps_the_old_one(client, town, geometry, named):
    grid_code = client.post("/api/grids", json=grid(inside(0))).json()["codes"][0]
    r = client.patch(f"/api/grids/{grid_code}", json={"geometry": geometry, "properties": {"name": "改名"}})
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == f"area {grid_code} was not changed"
    problem = only_problem(r.json())
    assert named in problem["message"] and problem["field"] == "geometry" and problem["code"] == grid_code
    history = client.get(f"/api/grids/{grid_code}/history").json()["features"]
    assert [f["properties"]["boundary_version"] for f in history] == [1]
    props = client.get(f"/api/grids/{grid_code}").json()["properties"]
    assert props["name"] == "网格" and props["version"] == 1


def test_edit_with_a_bow_tie_names_the_crossing(client, town):
    grid_code = client.post("/api/grids", json=grid(inside(0))).json()["codes"][0]
    r = client.patch(f"/api/grids/{grid_code}", json={"geometry": BOW_TIE})
    assert r.status_code == 422, r.text
    problem = only_problem(r.json())
    assert "Self-intersection" in problem["message"]
    assert problem["location"] == pytest.approx([120.006, 30.006], abs=1e-6)


# --------------------------------------------------------------------------- reference lists and queries


def test_unknown_level_lists_the_known_ones(client, town):
    before = stored(client)
    problem = only_problem(rejected(client, client.post("/api/grids", json=grid(inside(0), level="hamlet")), before))
    assert "unknown level 'hamlet'" in problem["message"]
    assert "known: province, city, county, town, village, grid, microgrid" in problem["message"]
    assert problem["field"] == "level" and problem["index"] == 0


def test_unknown_layer_lists_the_known_ones(client, town):
    before = stored(client)
    problem = only_problem(rejected(client, client.post("/api/grids", json=grid(inside(0), layer="water")), before))
    assert "unknown layer 'water'" in problem["message"]
    for known in ("admin", "comprehensive", "environment", "safety", "fire", "enterprise"):
        assert known in problem["message"]
    assert problem["field"] == "layer" and problem["index"] == 0


def test_unknown_level_as_query_default_is_rejected_for_every_feature(client, town):
    before = stored(client)
    r = client.post("/api/areas", params={"level": "hamlet"},
                    json=collection(grid(inside(0), layer="comprehensive"), grid(inside(1), layer="comprehensive")))
    body = rejected(client, r, before)
    assert [p["index"] for p in body["problems"]] == [0, 1]
    assert all("unknown level 'hamlet'" in p["message"] for p in body["problems"])


@pytest.mark.parametrize("query", [{"level": "hamlet"}, {"layer": "water"}])
def test_unknown_level_or_layer_filter_is_rejected(client, town, query):
    r = client.get("/api/areas", params=query)
    assert r.status_code == 422, r.text
    [(key, value)] = query.items()
    assert repr(value) in r.json()["detail"] and "known" in r.json()["detail"]
    assert ("village" if key == "level" else "comprehensive") in r.json()["detail"]


@pytest.mark.parametrize("bbox", ["1,2,3", "a,b,c,d", "120,30,119,31", "30,120,31,121"],
                         ids=["three-numbers", "words", "min-above-max", "lat-first"])
def test_malformed_bbox_is_rejected(client, town, bbox):
    r = client.get("/api/areas", params={"bbox": bbox})
    assert r.status_code == 422, r.text
    assert "bbox" in r.json()["detail"] and bbox in r.json()["detail"]


def test_limit_above_the_maximum_page_size_is_rejected(client, town):
    r = client.get("/api/areas", params={"limit": 1001})
    assert r.status_code == 422, r.text
    assert "limit 1001 is above the maximum page size 1000" in r.json()["detail"]


def test_limit_below_one_is_rejected(client, town):
    r = client.get("/api/areas", params={"limit": 0})
    assert r.status_code == 422, r.text
    assert r.json()["problems"][0]["field"] == "query.limit"


@pytest.mark.parametrize("path, query", [
    ("/api/areas", {}), (f"/api/areas/{WEST}", {}), ("/api/locate", {"lon": 120.01, "lat": 30.01}),
], ids=["list", "one", "locate"])
@pytest.mark.parametrize("at", ["yesterday", "2024-13-01", "2024-02-30"])
def test_at_that_is_not_a_date_is_rejected(client, town, path, query, at):
    r = client.get(path, params={**query, "at": at})
    assert r.status_code == 422, r.text
    assert all(p["field"].startswith("query.at") for p in r.json()["problems"])


def test_locate_with_swapped_coordinates_says_so(client, town):
    r = client.get("/api/locate", params={"lon": 30.01, "lat": 80.01})
    assert r.status_code == 422, r.text
    assert "swapped" in r.json()["detail"]


# --------------------------------------------------------------------------- junk never gives a 5xx

# Junk: any JSON value. Feature-shaped junk: mostly right in form, so that it gets past the
# schema into the geometry, code and parent checks (and sometimes into the database).
json_leaf = (st.none() | st.booleans() | st.integers(-(2**70), 2**70)
             | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12))
junk = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=16)
lon, lat = st.floats(119.99, 120.05), st.floats(29.99, 30.05)
ring = st.lists(st.tuples(lon, lat).map(list), max_size=6).map(lambda pts: pts + pts[:1])
box = st.builds(square, lon, lat, st.floats(1e-5, 0.03))
box_in_west = st.builds(square, st.floats(120.0, 120.015), st.floats(30.0, 30.035), st.floats(1e-4, 0.005))
geometry = st.one_of(
    box_in_west,
    box,
    st.fixed_dictionaries({"type": st.just("Polygon"), "coordinates": st.lists(ring, min_size=1, max_size=2)}),
    st.fixed_dictionaries({"type": st.sampled_from(["Polygon", "MultiPolygon", "Point", "LineString",
                                                    "GeometryCollection", "Circle"]),
                           "coordinates": st.one_of(junk, st.lists(ring, max_size=2),
                                                    st.lists(st.lists(ring, max_size=2), max_size=2))}),
    junk,
)
properties = st.fixed_dictionaries(
    {"name": st.text(min_size=1, max_size=10)},
    optional={"code": st.from_regex(r"\A3399011000\d{1,6}\Z"),
              "parent": st.sampled_from([WEST, WEST, WEST, "339901", "339901100", "339901100009", "x", ""]),
              "level": st.sampled_from(["county", "town", "village", "grid", "microgrid", "hamlet"]),
              "layer": st.sampled_from(["admin", "comprehensive", "water"]),
              "households": st.one_of(st.integers(-5, 10**8), junk), "population": st.integers(0, 1000),
              "land_use": st.text(max_size=70), "notes": st.text(max_size=20)},
)
plausible_grid = st.fixed_dictionaries(
    {"type": st.just("Feature"), "geometry": st.one_of(box_in_west, geometry),
     "properties": st.fixed_dictionaries({"name": st.text(min_size=1, max_size=10), "parent": st.just(WEST)},
                                         optional={"households": st.integers(0, 500), "notes": st.text(max_size=20)})})
feature_like = st.one_of(
    plausible_grid,
    st.fixed_dictionaries({"type": st.just("Feature"), "geometry": geometry, "properties": properties}),
    st.fixed_dictionaries({"type": st.sampled_from(["Feature", "feature", "Polygon"]),
                           "geometry": geometry, "properties": junk}),
)
body = st.one_of(junk, feature_like,
                 st.fixed_dictionaries({"type": st.just("FeatureCollection"),
                                        "features": st.one_of(st.lists(feature_like, max_size=4), junk)}))


@pytest.fixture
def fuzz_client(settings, client, town):
    """Like ``client``, but a server error comes back as a 500 instead of raising."""
    from api.app import create_app

    with TestClient(create_app(settings), raise_server_exceptions=False, headers=authorization(client)) as c:
        yield c


@pytest.mark.parametrize("endpoint", ["/api/areas", "/api/grids"])
@hyp_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=body, repair=st.booleans())
def test_junk_bodies_never_give_a_server_error(fuzz_client, endpoint, payload, repair):
    r = fuzz_client.post(endpoint, params={"repair": repair}, json=payload)
    event(f"status {r.status_code}: " + (r.json()["detail"][:20] if r.status_code >= 400 else ""))
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        assert r.json()["detail"]
