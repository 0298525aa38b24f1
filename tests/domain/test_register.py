"""The household register (issue 12): import with a per-row report (all or nothing),
grid derivation and re-derivation with history, counts from the register, ID numbers
never stored whole. Real database; the incident world of conftest (village W: grids
W1..W4 in quarters; village E: E1 its west half, E2 its north-east corner, the rest a
blind spot)."""

from __future__ import annotations

import csv
import datetime as dt

import pytest
import shapely
from conftest import E1, VE, VW, W1, W2, W3
from sqlalchemy import text

from geogrid.areas import versions
from geogrid.core import timeutil
from geogrid.core.errors import GeogridError
from geogrid.db import engine as db
from geogrid.people import households as hh
from geogrid.people import register_import

HEADER = ["户编号", "户主", "乡镇", "村社区", "街路巷", "门牌号", "楼栋编码", "经度", "纬度", "户类型", "出租",
          "姓名", "与户主关系", "性别", "出生日期", "身份证号", "电话", "特殊人群"]
# Synthetic ID numbers (not real people): 18 characters, the last may be X.
IDS = [f"33990119{50 + i:02d}0101{i:03d}{'X' if i % 5 == 0 else i % 10}" for i in range(40)]


def row(ref, head, lon, lat, kind, name, relation, idno, *, building="", rental="否", tags="", birth="1960-05-01",
        gender="男", village="西村"):
    return [ref, head, "青禾镇", village, "和平路", "1号", building, lon, lat, kind, rental, name, relation, gender,
            birth, idno, "13800000000", tags]


def write_csv(path, rows, header=HEADER):
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def buildings_csv(path, rows):
    return write_csv(path, rows, header=["楼栋编码", "名称", "乡镇", "村社区", "经度", "纬度"])


def counts(engine) -> dict:
    with engine.connect() as conn:
        return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
                for t in ("building", "household", "household_grid", "resident", "resident_tag")}


def area_id(session, code) -> int:
    return session.execute(text("SELECT id FROM area WHERE code = :c"), {"c": code}).scalar_one()


# Households: H1 and H3 in W1, H2 in building B1 (in W2), H4 in the east village's blind spot.
GOOD = [
    row("H1", "张三", 120.005, 30.03, "户籍", "张三", "户主", IDS[0], tags="低保@2024-01-01,独居老人"),
    row("H1", "张三", 120.005, 30.03, "户籍", "李四", "配偶", IDS[1], gender="女"),
    row("H1", "张三", 120.005, 30.03, "户籍", "张小", "子女", IDS[2], tags="留守儿童"),
    row("H2", "王五", "", "", "流动", "王五", "户主", IDS[3], building="B1", rental="是"),
    row("H2", "王五", "", "", "流动", "赵六", "配偶", IDS[4], gender="女", building="B1", rental="是"),
    row("H3", "钱七", 120.006, 30.035, "registered", "钱七", "户主", IDS[5]),
    row("H4", "孙八", 120.035, 30.01, "人户分离", "孙八", "户主", IDS[6], village="东村"),
    row("H4", "孙八", 120.035, 30.01, "人户分离", "周九", "子女", IDS[7], birth="2010/3/4", village="东村"),
]


def load(engine, settings, tmp_path, rows=GOOD, **kw) -> dict:
    path = write_csv(tmp_path / "register.csv", rows)
    b = buildings_csv(tmp_path / "buildings.csv", [["B1", "一号楼", "青禾镇", "西村", 120.015, 30.03]])
    with db.transaction(engine) as session:
        return register_import.import_register(session, path, settings, buildings=b, **kw)


def test_import_derives_grids_and_counts_equal_the_register(world, engine, settings, tmp_path):
    seen = []
    report = load(engine, settings, tmp_path, progress=lambda done, total: seen.append((done, total)))
    assert report == {"households": 4, "residents": 8, "tags": 3, "buildings": 1, "replaced": 0,
                      "grids_assigned": 3, "outside_grids": 1, "rows": 8}
    assert seen[-1][0] == seen[-1][1] and all(d <= t for d, t in seen)
    with db.transaction(engine) as session:
        grid = dict(session.execute(text("SELECT h.ref, a.code FROM household h LEFT JOIN area a ON a.id = h.grid_id")).all())
        assert grid == {"H1": W1, "H2": W2, "H3": W1, "H4": None}
        located = dict(session.execute(text("SELECT ref, located_by FROM household")).all())
        assert located == {"H1": "own", "H2": "building", "H3": "own", "H4": "own"}
        w1, w2, w3 = (area_id(session, c) for c in (W1, W2, W3))
        # Hand-counted: W1 holds H1 (3 members) and H3 (1); W2 holds H2 (2); W3 nobody.
        assert hh.register_counts(session, [w1, w2, w3]) == {w1: {"households": 2, "residents": 4},
                                                             w2: {"households": 1, "residents": 2}}
        sizes = {g["code"]: g for g in hh.grid_sizes(session, VW)}
        assert (sizes[W1]["households"], sizes[W1]["population"], sizes[W1]["source"]) == (2, 4, "register")
        assert (sizes[W3]["households"], sizes[W3]["source"]) == (0, "register")
        assert {g["source"] for g in hh.grid_sizes(session, VE)} == {"typed"}  # the east village has no register grid
        # One open history row per household, reason register.
        assert session.execute(text("SELECT count(*), bool_and(reason = 'register' AND upper_inf(valid)) "
                                    "FROM household_grid")).one() == (4, True)
        tags = session.execute(text("SELECT group_key, start_date FROM resident_tag ORDER BY group_key")).all()
        assert [t.group_key for t in tags] == ["dibao", "left_behind_child", "living_alone"]
        assert tags[0].start_date == dt.date(2024, 1, 1)


def test_whole_id_numbers_are_never_stored(world, engine, settings, tmp_path):
    load(engine, settings, tmp_path)
    with engine.connect() as conn:
        dump = "\n".join(conn.execute(text("SELECT x::text FROM resident x")).scalars()) + \
            "\n".join(conn.execute(text("SELECT x::text FROM audit x")).scalars())
        last4 = conn.execute(text("SELECT id_last4 FROM resident ORDER BY id")).scalars().all()
    for number in IDS[:8]:
        assert number not in dump and number[:-4] not in dump
    assert last4 == [n[-4:] for n in IDS[:8]]


def test_bad_rows_are_all_reported_and_nothing_is_stored(world, engine, settings, tmp_path):
    load(engine, settings, tmp_path)  # the stored register the file is checked against
    before = counts(engine)
    bad = [
        row("N1", "甲", "", "", "户籍", "甲", "户主", IDS[10], building="NOPE"),                 # row 2: unknown building
        row("N2", "乙", 120.012, 30.012, "户籍", "乙", "户主", IDS[11]),                         # row 3: fine
        row("N2", "乙", 120.012, 30.012, "户籍", "乙二", "子女", IDS[11]),                       # row 4: duplicate in file
        row("N3", "丙", 120.013, 30.013, "户籍", "丙", "户主", IDS[0]),                          # row 5: duplicate stored (H1)
        row("N4", "丁", 121.5, 31.5, "户籍", "丁", "户主", IDS[12]),                             # row 6: outside
        row("N5", "戊", 120.014, 30.014, "租户", "戊", "户主", IDS[13]),                         # row 7: bad kind
        row("N6", "", 120.015, 30.015, "户籍", "己", "户主", IDS[14]),                           # row 8: no head
        row("N2", "乙", 120.0125, 30.012, "户籍", "乙三", "子女", IDS[15]),                      # row 9: lon differs
        row("N7", "庚", 120.016, 30.016, "户籍", "庚", "户主", IDS[16], birth="1990-13-40"),     # row 10: bad date
    ]
    with pytest.raises(GeogridError) as err:
        load(engine, settings, tmp_path, rows=bad)
    assert 400 <= err.value.status < 500
    found = {(p.index, p.field) for p in err.value.problems}
    assert found == {(2, "building"), (4, "id_number"), (5, "id_number"), (6, "location"), (7, "kind"), (8, "head"),
                     (9, "lon"), (10, "birth_date")}
    messages = {p.index: p.message for p in err.value.problems}
    assert messages[4] == "ID number duplicates row 3"
    assert messages[5] == "ID number duplicates an existing resident"
    assert "8 of 9 rows rejected" in err.value.message
    assert not any(n in str(err.value) or n[:-4] in str(err.value) for n in IDS)
    assert counts(engine) == before


def test_a_reimport_replaces_the_household_and_keeps_its_id(world, engine, settings, tmp_path):
    load(engine, settings, tmp_path)
    with engine.connect() as conn:
        h1 = conn.execute(text("SELECT id FROM household WHERE ref = 'H1'")).scalar_one()
    # H1 again, now two members (its old ID numbers reused: they were its own), moved to W3.
    again = [row("H1", "张三", 120.005, 30.005, "户籍", "张三", "户主", IDS[0]),
             row("H1", "张三", 120.005, 30.005, "户籍", "李四", "配偶", IDS[1], gender="女")]
    report = load(engine, settings, tmp_path, rows=again)
    assert (report["households"], report["replaced"], report["residents"]) == (1, 1, 2)
    with db.transaction(engine) as session:
        assert session.execute(text("SELECT id FROM household WHERE ref = 'H1'")).scalar_one() == h1
        assert hh.require_household(session, h1)["members"] == 2
        history = hh.household_history(session, h1)
        assert [(r["grid"]["code"], r["reason"], r["valid_to"] is None) for r in history] == [
            (W3, "register", True), (W1, "register", False)]


def test_redrawing_grids_rederives_households_with_history(world, engine, settings, tmp_path):
    load(engine, settings, tmp_path)
    with db.transaction(engine) as session:
        h1 = session.execute(text("SELECT id FROM household WHERE ref = 'H1'")).scalar_one()
        h3 = session.execute(text("SELECT id FROM household WHERE ref = 'H3'")).scalar_one()
    # W1 gives up its east part (120.004..120.01): H1 (120.005) and H3 (120.006) fall outside every grid ...
    with db.transaction(engine) as session:
        versions.update_area(session, W1, settings, geometry=shapely.box(120.0, 30.02, 120.004, 30.04))
        assert hh.household_place(session, h1) == area_id(session, VW)  # the village holds it now
    # ... and W2 takes it over in a later transaction.
    with db.transaction(engine) as session:
        versions.update_area(session, W2, settings, geometry=shapely.box(120.004, 30.02, 120.02, 30.04))
    with db.transaction(engine) as session:
        history = hh.household_history(session, h1)
        assert [(r["grid"]["code"] if r["grid"] else None, r["reason"]) for r in history] == [
            (W2, "redraw"), (None, "redraw"), (W1, "register")]
        assert history[1]["valid_from"] == history[2]["valid_to"]
        assert history[0]["valid_from"] == history[1]["valid_to"]
        assert hh.require_household(session, h3)["grid"]["code"] == W2
        w1, w2 = area_id(session, W1), area_id(session, W2)
        assert hh.register_counts(session, [w1, w2]) == {w2: {"households": 3, "residents": 6}}
        # Two boundary writes in one transaction: the period opened by the first is corrected
        # in place, never left empty.
        versions.update_area(session, W2, settings, geometry=shapely.box(120.01, 30.02, 120.02, 30.04))
        versions.update_area(session, W1, settings, geometry=shapely.box(120.0, 30.02, 120.01, 30.04))
    with db.transaction(engine) as session:
        history = hh.household_history(session, h1)
        assert [(r["grid"]["code"] if r["grid"] else None, r["reason"]) for r in history][:2] == [
            (W1, "redraw"), (W2, "redraw")]
        assert not session.execute(text("SELECT count(*) FROM household_grid WHERE isempty(valid)")).scalar_one()


def test_a_new_grid_and_a_retired_grid_rederive(world, engine, settings, tmp_path):
    load(engine, settings, tmp_path)
    from geogrid.areas import importing

    with db.transaction(engine) as session:
        h4 = session.execute(text("SELECT id FROM household WHERE ref = 'H4'")).scalar_one()
        report = importing.import_areas(session, [{"name": "东村三格", "level": "grid", "layer": "comprehensive",
                                                   "parent": VE}], [shapely.box(120.03, 30.0, 120.04, 30.03)], settings)
        assert hh.require_household(session, h4)["grid"]["code"] == report.codes[0]
        versions.retire_area(session, report.codes[0], settings)
        assert hh.require_household(session, h4)["grid"] is None


def test_a_move_rederives_with_reason_moved(world, engine, settings, tmp_path):
    load(engine, settings, tmp_path)
    with db.transaction(engine) as session:
        h3 = session.execute(text("SELECT id FROM household WHERE ref = 'H3'")).scalar_one()
        out = hh.move_household(session, h3, lon=120.025, lat=30.01)
        assert out["grid"]["code"] == E1
        assert [r["reason"] for r in hh.household_history(session, h3)] == ["moved", "register"]
        out = hh.move_household(session, h3, building="B1")
        assert (out["grid"]["code"], out["located_by"]) == (W2, "building")


def test_scope_of_an_import_is_checked_before_anything_is_stored(world, engine, settings, tmp_path):
    from geogrid.access.scopes import Grant, Principal

    before = counts(engine)
    with db.transaction(engine) as session:
        vw = area_id(session, VW)
    path = write_csv(tmp_path / "r.csv", GOOD)
    b = buildings_csv(tmp_path / "b.csv", [["B1", "一号楼", "青禾镇", "西村", 120.015, 30.03]])
    with pytest.raises(GeogridError) as err, db.transaction(engine) as session:
        session.info["principal"] = Principal(1, "worker-w", (Grant("grid_worker", vw, VW),))
        register_import.import_register(session, path, settings, buildings=b)
    assert err.value.status == 403 and VE in err.value.message  # H4 lies in the east village
    assert counts(engine) == before


def test_declared_format_and_xlsx(world, engine, settings, tmp_path):
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["household_ref", "head", "lon", "lat", "kind", "rental", "name", "relation", "gender",
                  "birth_date", "id_number", "tags"])
    sheet.append(["X1", "吴一", 120.005, 30.005, "floating", "no", "吴一", "户主", "M", dt.datetime(1970, 1, 2),
                  IDS[20], "dibao"])
    sheet.append(["X1", "吴一", 120.005, 30.005, "floating", "no", "吴二", "子女", "F", None, 339901199001011234,
                  ""])
    path = tmp_path / "register.xlsx"
    book.save(path)
    with pytest.raises(GeogridError) as err, db.transaction(engine) as session:
        register_import.import_register(session, path, settings)
    assert [(p.index, p.field) for p in err.value.problems] == [(3, "id_number")]  # a number: digits lost
    sheet.delete_rows(3)
    book.save(path)
    with db.transaction(engine) as session:
        out = register_import.import_register(session, path, settings)
    assert (out["households"], out["residents"], out["tags"], out["grids_assigned"]) == (1, 1, 1, 1)
    # The content of another format than declared: 422, nothing read.
    with pytest.raises(GeogridError) as err, db.transaction(engine) as session:
        register_import.import_register(session, path, settings, fmt="csv")
    assert err.value.status == 422 and "binary" in err.value.message
    csv_path = write_csv(tmp_path / "r.csv", GOOD[:1])
    with pytest.raises(GeogridError) as err, db.transaction(engine) as session:
        register_import.import_register(session, csv_path, settings, fmt="xlsx")
    assert err.value.status == 422 and "not an Excel workbook" in err.value.message


def test_id_key_file_is_created_once_private(tmp_path):
    from geogrid.core.settings import Settings

    s = Settings(state_dir=tmp_path)
    key = hh.id_key(s)
    assert len(key) == 32 and hh.id_key(s) == key
    assert (tmp_path / "id-hash.key").stat().st_mode & 0o777 == 0o600
    assert hh.id_key(Settings(state_dir=tmp_path, id_hash_key="secret")) == b"secret"


def test_tags_are_current_on_the_jurisdictions_day(world, engine, other_day, tmp_path):
    """A tag given without a date starts on the jurisdiction's day, and the residents
    listed by tag are those whose tag holds on that day, not on the database server's."""
    day = timeutil.local_today(other_day)
    load(engine, other_day, tmp_path)
    with db.transaction(engine) as session:
        spouse = session.execute(text("SELECT id FROM resident WHERE name = '李四'")).scalar_one()
        hh.add_tag(session, spouse, {"group_key": "tekun", "start_date": day, "end_date": day})
        alone, _ = hh.list_residents(session, other_day, tag="living_alone")
        hardship, _ = hh.list_residents(session, other_day, tag="tekun")
        started = session.execute(text("SELECT start_date FROM resident_tag WHERE group_key = 'living_alone'")).scalar_one()
    assert started == day
    assert [r["name"] for r in alone] == ["张三"] and [r["name"] for r in hardship] == ["李四"]
