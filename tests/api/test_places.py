"""Place search for "find my grid" (GET /api/public/places): names, code prefixes and the
register's door-plate addresses, within a town or county, current areas only, ranked, with
clear 4xx answers; an address answers with the grid /api/locate gives for its point and
never with anything else of a household (head, unit, room, phone, point)."""

from __future__ import annotations

import json

import pytest
from conftest import COUNTY, E1, E2, MTOWN, MVILLAGE, TOWN, VE, VW, W1, W2, micro_code, publish
from sqlalchemy import text

from geogrid.areas import places

# Two buildings and three households of their own point. Head names, units, rooms and phones
# are unique markers: none may appear in any answer.
BUILDING_W1 = (120.00437, 30.03121)  # in 西村一格
OWN_E1 = (120.02563, 30.01187)  # in 东村一格
OWN_GAP = (120.03541, 30.01173)  # in the east village's blind spot: no grid holds it
PRIVATE = ["头名甲QX1", "头名乙QX2", "头名丙QX3", "头名丁QX4", "7单元", "909室", "13911112222", "13933334444"]


@pytest.fixture
def register(world, engine):
    with engine.begin() as conn:
        def building(ref, point, village, street, number, name):
            return conn.execute(text("""
                INSERT INTO building (ref, geom, town, village, street, number, name)
                VALUES (:ref, ST_SetSRID(ST_MakePoint(:x, :y), 4326), '青禾镇', :village, :street, :number, :name)
                RETURNING id"""), {"ref": ref, "x": point[0], "y": point[1], "village": village, "street": street,
                                   "number": number, "name": name}).scalar_one()

        def household(ref, point, head, village, street, number, *, building_id=None, unit=None, room=None,
                      phone=None, retired=False):
            conn.execute(text("""
                INSERT INTO household (ref, geom, located_by, head_name, kind, building_id, village, street, number,
                                       unit, room, phone, retired_at)
                VALUES (:ref, ST_SetSRID(ST_MakePoint(:x, :y), 4326), :by, :head, 'registered', :b, :village, :street,
                        :number, :unit, :room, :phone, CASE WHEN :retired THEN now() END)"""),
                {"ref": ref, "x": point[0], "y": point[1], "by": "building" if building_id else "own", "head": head,
                 "b": building_id, "village": village, "street": street, "number": number, "unit": unit, "room": room,
                 "phone": phone, "retired": retired})

        b1 = building("B-1", BUILDING_W1, "西村", "幸福路", "8号", "阳光小区3幢")
        household("H-1", BUILDING_W1, PRIVATE[0], "西村", "幸福路", "8号", building_id=b1, unit="7", room="909",
                  phone=PRIVATE[6])
        household("H-2", OWN_E1, PRIVATE[1], "东村", "东村5组", "18号", phone=PRIVATE[7])
        household("H-3", OWN_GAP, PRIVATE[2], "东村", "东村5组", "19号")
        household("H-4", OWN_E1, PRIVATE[3], "东村", "东村6组", "20号", retired=True)
    publish(engine)
    return world


def search(client, q, area=TOWN, **params):
    r = client.get("/api/public/places", params={"q": q, "area": area, **params})
    assert r.status_code == 200, r.text
    return r.json()["results"]


def extent(engine, code) -> list[float]:
    with engine.connect() as conn:
        row = conn.execute(text("""SELECT ST_XMin(b.geom), ST_YMin(b.geom), ST_XMax(b.geom), ST_YMax(b.geom)
                                   FROM boundary b JOIN area a ON a.id = b.area_id
                                   WHERE a.code = :c AND upper_inf(b.valid)"""), {"c": code}).one()
    return [round(v, 7) for v in row]


def test_names_match_as_substrings_ranked_exact_then_prefix(register, anon, engine):
    found = search(anon, "西村")  # the public: no token
    assert found[0] == {"kind": "village", "label": "西村 · 青禾镇", "code": VW, "name": "西村", "grid_code": None,
                        "grid_name": None, "bbox": extent(engine, VW)}
    grids = [r["code"] for r in found if r["kind"] == "grid"]
    assert grids == [W1, W2, VW + "003", VW + "004"]  # prefix matches of one length: by code
    # Villages before grids before addresses; the grids' label names their village.
    kinds = [r["kind"] for r in found]
    assert kinds == sorted(kinds, key=places.KINDS.index)
    assert {r["label"] for r in found if r["kind"] == "grid"} >= {"西村一格 · 西村", "西村二格 · 西村"}
    # Addresses from the third character on (two would match most of a county's).
    assert "address" not in kinds
    assert [r["name"] for r in search(anon, "西村幸") if r["kind"] == "address"] == ["西村幸福路8号 阳光小区3幢"]
    one = search(anon, "一格")
    assert [r["code"] for r in one] == [W1, E1]
    assert all(r["kind"] == "grid" and r["bbox"] == extent(engine, r["code"]) for r in one)
    # Exact before prefix before substring.
    assert search(anon, "东村一格")[0]["code"] == E1
    assert [r["code"] for r in search(anon, "东村")][:1] == [VE]


def test_code_prefixes_and_labels_start_with_the_code(register, anon):
    found = search(anon, VW, limit=20)
    assert found[0]["code"] == VW and found[0]["kind"] == "village"  # exact first
    assert {r["code"] for r in found} == {VW, W1, W2, VW + "003", VW + "004"}
    assert all(r["label"].startswith(r["code"] + " ") for r in found)
    assert [r["code"] for r in search(anon, E2)] == [E2]


def test_addresses_answer_with_the_grid_that_locate_gives(register, anon, engine):
    for q, point, expected in (("幸福路8号", BUILDING_W1, W1), ("阳光小区", BUILDING_W1, W1),
                               ("东村5组18号", OWN_E1, E1), ("东村5组 18号", OWN_E1, E1)):
        found = [r for r in search(anon, q) if r["kind"] == "address"]
        located = anon.get("/api/locate", params={"lon": point[0], "lat": point[1]}).json()["results"]
        primary = [r["code"] for r in located if r["layer"] == "comprehensive" and r["primary"]]
        assert primary == [expected]
        assert [(r["code"], r["grid_code"]) for r in found] == [(expected, expected)], (q, found)
        assert found[0]["bbox"] == extent(engine, expected)
    building = [r for r in search(anon, "幸福路") if r["kind"] == "address"][0]
    assert building["name"] == "西村幸福路8号 阳光小区3幢" and building["label"] == "西村幸福路8号 阳光小区3幢 · 西村一格"
    # In no grid (a blind spot), or a household that moved away: not found.
    assert [r for r in search(anon, "19号") if r["kind"] == "address"] == []
    assert [r for r in search(anon, "东村6组") if r["kind"] == "address"] == []


def test_answers_never_carry_a_household(register, anon, engine):
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT head_name, unit, room, phone, ST_X(geom), ST_Y(geom) FROM household")).all()
    assert len(rows) == 4
    secrets = [v for head, unit, room, phone, _, _ in rows for v in (head, phone, unit and f"{unit}单元",
                                                                     room and f"{room}室") if v]
    secrets += [f"{v:.5f}" for _, _, _, _, x, y in rows for v in (x, y)]  # the points (bboxes are grids')
    assert len(secrets) == 4 + 2 + 2 + 8
    for q in ("西村", "东村", "幸福路", "8号", "18号", "QX", "头名", "909", "7单元", "1391", "阳光", "村"):
        r = anon.get("/api/public/places", params={"q": q, "area": COUNTY, "limit": 20})
        assert r.status_code == 200
        answer = json.dumps(r.json()["results"], ensure_ascii=False)  # (the query is echoed as given)
        assert [v for v in secrets if v in answer] == [], q
    for q in ("头名甲", "909", "13911112222", "QX1"):
        assert search(anon, q, area=COUNTY) == []


def test_within_the_area_and_current_only(register, anon, client, engine):
    assert search(anon, "微格村") == []  # another town
    assert [r["code"] for r in search(anon, "微格村", area=COUNTY)] == [MVILLAGE]
    assert [r["code"] for r in search(anon, "微格0-0", area=MTOWN)] == [micro_code(0, 0)]
    assert [r["code"] for r in search(anon, "西村", area=VE)] == []
    # The area itself is not an answer; its children are.
    assert TOWN not in [r["code"] for r in search(anon, "青禾", area=TOWN)]
    assert [r["code"] for r in search(anon, "青禾", area=COUNTY)] == [TOWN]
    # Another net's grids are not shown on this one's map.
    assert search(anon, "环境网格") == []
    assert [r["code"] for r in search(anon, "环境网格", layer="environment")] == ["339901100101", "339901100102"]
    # A retired grid is shown until the next publication, then it is gone.
    retired = micro_code(9, 9)
    assert client.delete(f"/api/areas/{retired}").status_code == 204
    assert [r["code"] for r in search(anon, "微格9-9", area=MTOWN)] == [retired]
    publish(engine, MTOWN, ["comprehensive"])
    assert search(anon, "微格9-9", area=MTOWN) == []
    assert search(anon, retired, area=MTOWN) == []


def test_like_wildcards_are_literal(register, anon):
    for q in ("%", "_", "\\", "西%", "西_", "%村"):
        assert search(anon, q) == [], q


@pytest.mark.parametrize(("params", "status", "words"), [
    ({"q": "", "area": TOWN}, 422, "q is empty"),
    ({"q": "   ", "area": TOWN}, 422, "q is empty"),
    ({"q": "村" * 51, "area": TOWN}, 422, "at most 50"),
    ({"q": "村", "area": "abc"}, 422, "not a code"),
    ({"q": "村", "area": "999999"}, 404, "area 999999 not found"),
    ({"q": "村", "area": W1}, 422, "is a grid"),
    ({"q": "村", "area": TOWN, "layer": "nope"}, 422, "unknown layer"),
    ({"q": "村", "area": TOWN, "layer": "admin"}, 422, "not grids"),
    ({"q": "村", "area": TOWN, "limit": 0}, 422, "limit 0"),
    ({"q": "村", "area": TOWN, "limit": 21}, 422, "limit 21"),
    ({"area": TOWN}, 422, "q"),
    ({"q": "村"}, 422, "area"),
])
def test_bad_input_is_a_clear_4xx(world, anon, engine, params, status, words):
    publish(engine)
    r = anon.get("/api/public/places", params=params)
    assert r.status_code == status, r.text
    assert words in r.text
