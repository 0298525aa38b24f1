"""Contact links (联户), the 1+1+n check, visits and the quota "behind" lists, on hand-built
households and visit histories (issue 12). Expected sets are computed by hand in the
comments; the households are inserted directly (their grids set as the register would)."""

from __future__ import annotations

import datetime as dt

import pytest
from conftest import COUNTY, E1, VW, W1, W2
from sqlalchemy import text

from geogrid.access.scopes import Grant, Principal
from geogrid.core.errors import GeogridError
from geogrid.db import engine as db
from geogrid.people import cards, contacts, visits

D = dt.date
POINT = {W1: (120.005, 30.03), W2: (120.015, 30.03), E1: (120.025, 30.01)}


def area_id(session, code: str) -> int:
    return session.execute(text("SELECT id FROM area WHERE code = :c"), {"c": code}).scalar_one()


def household(session, ref: str, grid: str | None, *, head: str = "张三丰", point=None, street: str = "和平路",
              number: str = "1号") -> int:
    lon, lat = point or POINT[grid]
    return session.execute(text("""
        INSERT INTO household (ref, geom, located_by, head_name, kind, grid_id, town, village, street, number, phone)
        VALUES (:ref, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), 'own', :head, 'registered', :grid, '青禾镇', '西村',
                :street, :number, '13999999999') RETURNING id
    """), {"ref": ref, "lon": lon, "lat": lat, "head": head, "grid": area_id(session, grid) if grid else None,
           "street": street, "number": number}).scalar_one()


def person(session, name: str, phone: str = "13800001111", grid: str | None = None, role: str = "grid_leader") -> int:
    pid = session.execute(text("INSERT INTO person (name, phone) VALUES (:n, :p) RETURNING id"),
                          {"n": name, "p": phone}).scalar_one()
    if grid:
        session.execute(text("INSERT INTO assignment (person_id, area_id, role_key, start_date) "
                             "VALUES (:p, :a, :r, '2020-01-01')"), {"p": pid, "a": area_id(session, grid), "r": role})
    return pid


def link(session, pid: int, hid: int, kind: str, start: dt.date, end: dt.date | None = None,
         central: int | None = None) -> int:
    return session.execute(text("""
        INSERT INTO contact_link (person_id, household_id, kind, central_id, start_date, end_date)
        VALUES (:p, :h, :k, :c, :s, :e) RETURNING id
    """), {"p": pid, "h": hid, "k": kind, "c": central, "s": start, "e": end}).scalar_one()


def visit(session, pid: int, hids: list[int], day: dt.date) -> int:
    area = session.execute(text("SELECT grid_id FROM household WHERE id = :h"), {"h": hids[0]}).scalar_one()
    vid = session.execute(text("INSERT INTO visit (visited_on, person_id, area_id, created_by) "
                               "VALUES (:d, :p, :a, 'test') RETURNING id"), {"d": day, "p": pid, "a": area}).scalar_one()
    for h in hids:
        session.execute(text("INSERT INTO visit_household (visit_id, household_id, visited_on) VALUES (:v, :h, :d)"),
                        {"v": vid, "h": h, "d": day})
    return vid


def tag(session, hid: int, group: str, start: dt.date, *, retired: bool = False) -> None:
    rid = session.execute(text("INSERT INTO resident (household_id, name, retired_at) VALUES (:h, '王五', "
                               "CASE WHEN :r THEN now() END) RETURNING id"), {"h": hid, "r": retired}).scalar_one()
    session.execute(text("INSERT INTO resident_tag (resident_id, group_key, start_date) VALUES (:r, :g, :s)"),
                    {"r": rid, "g": group, "s": start})


def as_user(session, *grants: tuple[str, str]) -> None:
    session.info["principal"] = Principal(99, "tester", tuple(
        Grant(role, area_id(session, code), code) for role, code in grants))


# --------------------------------------------------------------------------- quotas across a year boundary


@pytest.fixture
def history(world, engine, settings):
    """Households of grids W1, W2 (village VW) and E1 (village VE), hand-built visit histories."""
    h = {}
    with db.transaction(engine) as s:
        p = person(s, "李联户", grid=W1)
        q = person(s, "赵联户", grid=E1)
        h["C"] = household(s, "C", W1)        # central: 31 days, 12 a year
        h["R"] = household(s, "R", W1)        # radiating of C: 92 days, 6 a year
        h["T"] = household(s, "T", W2)        # no link; a resident living alone (独居): every 14 days
        h["U"] = household(s, "U", W2)        # the tagged resident moved away: no obligation
        h["O"] = household(s, "O", E1)        # ordinary from 2027-03-01: 183 days, 6 a year, pro rata
        h["E"] = household(s, "E", W1)        # central link ended 2026-12-31: nothing owed in 2027
        h["L"] = household(s, "L", W1)        # central since 2025, last visited 2025-06-01
        link(s, p, h["C"], "central", D(2026, 1, 1))
        link(s, p, h["R"], "radiating", D(2026, 1, 1), central=h["C"])
        link(s, q, h["O"], "ordinary", D(2027, 3, 1))
        link(s, p, h["E"], "central", D(2026, 1, 1), D(2026, 12, 31))
        link(s, p, h["L"], "central", D(2025, 1, 1))
        tag(s, h["T"], "living_alone", D(2027, 1, 10))
        tag(s, h["U"], "living_alone", D(2027, 1, 10), retired=True)
        for day in (D(2026, 11, 20), D(2026, 12, 20)):
            visit(s, p, [h["C"], h["R"]], day)
        visit(s, p, [h["R"]], D(2027, 2, 1))
        visit(s, p, [h["C"]], D(2027, 1, 25))   # after some of the days asked about: must not count on them
        visit(s, p, [h["L"]], D(2025, 6, 1))
        visits.refresh_due(s, list(h.values()), settings)  # written directly: refreshed as a writer would
        h["p"], h["q"] = p, q
    return h


def behind_on(engine, settings, day: dt.date, area: str = "339901") -> dict:
    with db.transaction(engine) as s:
        out = visits.behind(s, settings, area=area, on=day)
    return out


def refs(out: dict) -> dict[str, tuple]:
    return {h["ref"]: (h["since"], tuple(r["rule"] for r in h["reasons"])) for h in out["households"]["items"]}


def test_behind_across_the_year_boundary(history, engine, settings):
    # 2027-01-15. C: visited 2026-12-20, due by 2027-01-20; count floor(12*15/365) = 0: on time.
    # R: due by 2026-12-20 + 92; count floor(6*15/365) = 0. T: tag since 01-10, due by 01-24.
    # L: last visit 2025-06-01 (outside the visits the query aggregates): behind since 2025-07-03.
    out = behind_on(engine, settings, D(2027, 1, 15))
    assert refs(out) == {"L": (D(2025, 7, 3), ("gap",))}
    assert out["households"]["items"][0]["last_visit"] == D(2025, 6, 1)
    # 2027-01-20: C still on time (31 days old is not older than 31).
    assert set(refs(behind_on(engine, settings, D(2027, 1, 20)))) == {"L"}
    # 2027-01-21: C behind on the gap since that day (its 2027-01-25 visit lies after the day asked about).
    out = behind_on(engine, settings, D(2027, 1, 21))
    assert refs(out) == {"L": (D(2025, 7, 3), ("gap",)), "C": (D(2027, 1, 21), ("gap",))}
    c = next(h for h in out["households"]["items"] if h["ref"] == "C")
    assert c["last_visit"] == D(2026, 12, 20) and c["grid"] == W1
    assert c["address"] == "青禾镇西村和平路1号"
    # Cadres: 李联户 holds both late households.
    assert [(x["name"], x["behind"], sorted(x["households"])) for x in out["cadres"]["items"]] == \
        [("李联户", 2, ["C", "L"])]
    # Per grid: W1 has C, R, L obliged (E's link ended), 2 behind; W2 has T obliged (U's resident
    # moved away), on time. Per village: VW 4 obliged, 2 behind.
    assert {g["code"]: (g["households"], g["behind"]) for g in out["grids"]} == {W1: (3, 2), W2: (1, 0)}
    assert {v["code"]: (v["households"], v["behind"]) for v in out["villages"]} == {VW: (4, 2)}
    # 2027-01-25: T (14 days since its tag started 01-10: due by 01-24) behind too; C visited that day.
    assert refs(behind_on(engine, settings, D(2027, 1, 25))) == {
        "L": (D(2025, 7, 3), ("gap",)), "T": (D(2027, 1, 25), ("gap",))}


def test_behind_on_the_yearly_count(history, engine, settings):
    # R: visits 2026-12-20 and 2027-02-01 (one in 2027). 2027-05-01 is day 121:
    # floor(6*121/365) = 1 due, on time; gap due by 2027-02-01 + 92 = 05-04.
    assert "R" not in refs(behind_on(engine, settings, D(2027, 5, 1), VW))
    # 2027-05-02, day 122: floor(6*122/365) = 2 due, 1 made: behind on the count since that day.
    r = refs(behind_on(engine, settings, D(2027, 5, 2), VW))["R"]
    assert r == (D(2027, 5, 2), ("count",))
    # 2027-05-05: behind on both; since the count's day, the earlier.
    assert refs(behind_on(engine, settings, D(2027, 5, 5), VW))["R"] == (D(2027, 5, 2), ("gap", "count"))
    # O, linked 2027-03-01, never visited: pro rata from its link: 2027-04-29 is its 60th day,
    # floor(6*60/365) = 0; 04-30 its 61st, 1 due: behind since 04-30. The gap runs to 08-31.
    assert "O" not in refs(behind_on(engine, settings, D(2027, 4, 29), E1))
    assert refs(behind_on(engine, settings, D(2027, 4, 30), E1)) == {"O": (D(2027, 4, 30), ("count",))}
    # The count restarts on 1 January: C has 12 visits due a year; 2027-01-31 is day 31,
    # floor(12*31/365) = 1, and C's only January visit (01-25) covers it; without it C would
    # be behind. The radiating R (6 a year) is not.
    out = behind_on(engine, settings, D(2027, 1, 31), VW)
    assert set(refs(out)) == {"L", "T"}  # T (every 14 days, never visited) too
    # Asked on 2027-02-26: C's gap ran out (01-25 + 31 = 02-25); its count is met (floor(12*57/365) = 1).
    assert refs(behind_on(engine, settings, D(2027, 2, 26), VW))["C"] == (D(2027, 2, 26), ("gap",))


def test_visits_per_year_floor(history, engine, settings):
    # A floor of 8 a year lifts the radiating household's quota: 2027-03-01 is day 60,
    # floor(8*60/365) = 1, and R has its 02-01 visit: on time; 2027-03-18 is day 77,
    # floor(8*77/365) = 1 (1.69); day 92 (04-02): floor(8*92/365) = 2: behind since the first day
    # with 2 due, day ceil(2*365/8) = 92, 2027-04-02.
    stricter = settings.model_copy(update={"visits_per_year_min": 8})
    assert "R" not in refs(behind_on(engine, stricter, D(2027, 3, 18), VW))
    assert refs(behind_on(engine, stricter, D(2027, 4, 2), VW))["R"] == (D(2027, 4, 2), ("count",))
    assert "R" not in refs(behind_on(engine, settings, D(2027, 4, 2), VW))


def test_behind_needs_scope_on_the_area(history, engine, settings):
    with db.transaction(engine) as s:
        as_user(s, ("grid_worker", W1))
        assert {h["ref"] for h in visits.behind(s, settings, area=W1, on=D(2027, 1, 21))["households"]["items"]} == \
            {"C", "L"}
        with pytest.raises(GeogridError) as err:
            visits.behind(s, settings, area=VW, on=D(2027, 1, 21))
        assert err.value.status == 403


def test_day_list(history, engine, settings):
    # On 2027-01-20 C falls due (its last on-time day), L is overdue, R is fine: the cadre's list.
    with db.transaction(engine) as s:
        due = {h["ref"]: h["status"] for h in visits.visits_due(s, settings, history["p"], D(2027, 1, 20))}
    assert due == {"L": "overdue", "C": "due_today"}


# --------------------------------------------------------------------------- the stored "behind from" dates


def full_and_cached(s, settings, area: str, day: dt.date) -> tuple[dict, dict]:
    """The answer judged over every household, and through ``visit_behind_from``."""
    return tuple(visits.behind(s, settings, area=area, on=day, limit=10_000, use_cache=cached)  # type: ignore[return-value]
                 for cached in (False, True))


def test_cached_path_equals_the_full_query(history, engine, settings, monkeypatch):
    # Refreshed on T (as if today were T), asked about every third day from T for a year and
    # a half, and about the days around the year boundary: the answers through the stored
    # dates are the full query's. The history has the hard cases: C behind on the count
    # through December 2026 and on time again on 1 January (the count restarts), R behind on
    # the count in May, O linked only from 2027-03-01, E's link ending 2026-12-31, T's tag
    # starting 2027-01-10, U's tagged resident gone, L long overdue, and visits dated after T.
    days_checked = 0
    for today in (D(2026, 11, 24), D(2026, 12, 31), D(2027, 1, 1), D(2027, 1, 22), D(2027, 5, 1)):
        monkeypatch.setattr(visits, "local_today", lambda _s, t=today: t)
        edge = [d for d in (D(2026, 12, 31), D(2027, 1, 1), D(2027, 1, 2), D(2027, 1, 20), D(2027, 1, 21),
                            D(2027, 4, 30), D(2027, 5, 2), D(2027, 12, 31), D(2028, 1, 1)) if d >= today]
        with db.transaction(engine) as s:
            visits.refresh_due(s, None, settings, today=today)
            for day in sorted({today + dt.timedelta(days=n) for n in range(0, 550, 3)} | set(edge)):
                for area in (COUNTY, W1, E1):
                    full, cached = full_and_cached(s, settings, area, day)
                    assert cached == full, (today, day, area)
                days_checked += 1
            if today == D(2026, 11, 24):  # the stored dates do skip households (T, U, O: see below)
                read = s.execute(text("SELECT ref FROM household WHERE visit_behind_from <= :t"),
                                 {"t": today}).scalars()
                assert set(read) == {"C", "R", "E", "L"}
    assert days_checked > 800
    # The cached path is the one answering from today on: a wrong stored date shows.
    monkeypatch.setattr(visits, "local_today", lambda _s: D(2027, 1, 15))
    with db.transaction(engine) as s:
        s.execute(text("UPDATE household SET visit_behind_from = '2030-01-01' WHERE ref = 'L'"))
        full, cached = full_and_cached(s, settings, COUNTY, D(2027, 1, 15))
        assert "L" in refs(full) and "L" not in refs(cached)
        # ... but not for a day before today.
        full, cached = full_and_cached(s, settings, COUNTY, D(2027, 1, 14))
        assert cached == full and "L" in refs(cached)
        s.rollback()


def test_behind_from_dates_by_hand(history, engine, settings):
    # Refreshed on 2026-11-24 (visits up to then: C and R on 2026-11-20, L on 2025-06-01):
    # C: gap 11-20 + 31 + 1 = 12-22; count: 2026 from 01-01, 1 visit made, 2 due from day
    #    ceil(2*365/12) = 61 (03-02): 2026-03-02, the earliest.
    # R: gap 11-20 + 92 + 1 = 2027-02-21; count: 1 made, day ceil(2*365/6) = 122 (05-02) of
    #    2026: 2026-05-02.
    # T: tag from 2027-01-10, never visited: 01-10 + 14 + 1 = 2027-01-25. U: none (moved away).
    # O: ordinary from 2027-03-01: gap 03-01 + 183 + 1 = 09-01 (2027); count in 2027 from
    #    03-01, day ceil(365/6) = 61: 2027-04-30.
    # E: central to 2026-12-31, never visited: gap 2026-01-01 + 32 = 02-02; count from day
    #    ceil(365/12) = 31: 2026-01-31 (both before its end).
    # L: its visit of 2025-06-01 lies before the visits read (from 1 January, the longest gap
    #    being shorter than the year so far), so its link's start counts: 2025-01-01 + 32 =
    #    2025-02-02 (behind on T either way: 2025-06-01 + 32 = 2025-07-03).
    with db.transaction(engine) as s:
        visits.refresh_due(s, None, settings, today=D(2026, 11, 24))
        got = dict(s.execute(text("SELECT ref, visit_behind_from FROM household")).all())
    assert got == {"C": D(2026, 3, 2), "R": D(2026, 5, 2), "T": D(2027, 1, 25), "U": None, "O": D(2027, 4, 30),
                   "E": D(2026, 1, 31), "L": D(2025, 2, 2)}
    # On 2027-01-22 (after C's gap date and the New Year): C has its visits of 2026-12-20 (and
    # the 2027 one on 01-25 lies ahead); gap 12-20 + 32 = 2027-01-21; count 2027: 0 made, day
    # ceil(365/12) = 31: 01-31. E's link has ended: no obligation left.
    with db.transaction(engine) as s:
        visits.refresh_due(s, None, settings, today=D(2027, 1, 22))
        got = dict(s.execute(text("SELECT ref, visit_behind_from FROM household")).all())
    assert got["C"] == D(2027, 1, 21) and got["E"] is None


def stale(engine, settings) -> int:
    """How many households' stored dates differ from a fresh computation (nothing kept)."""
    with db.transaction(engine) as s:
        changed = visits.refresh_due(s, None, settings)
        s.rollback()
    return changed


def test_writers_keep_the_dates_fresh(structure, engine, settings):
    h = structure
    with db.transaction(engine) as s:  # the fixture wrote its links directly
        visits.refresh_due(s, None, settings)
    assert stale(engine, settings) == 0
    with db.transaction(engine) as s:
        before = s.execute(text("SELECT visit_behind_from FROM household WHERE id = :h"), {"h": h["O1"]}).scalar()
        visits.record_visit(s, {"visited_on": "2026-11-02", "person_id": h["q"], "household_ids": [h["O1"]]}, settings)
        after = s.execute(text("SELECT visit_behind_from FROM household WHERE id = :h"), {"h": h["O1"]}).scalar()
    assert after != before
    assert stale(engine, settings) == 0
    with db.transaction(engine) as s:
        new = contacts.create_link(s, {"person_id": h["q"], "household_id": h["U"], "kind": "hardship",
                                       "start_date": "2026-01-01"})
    assert stale(engine, settings) == 0
    with db.transaction(engine) as s:
        contacts.update_link(s, new["id"], {"end_date": "2026-02-01"})
    assert stale(engine, settings) == 0
    from geogrid.people import households

    with db.transaction(engine) as s:
        rid = s.execute(text("INSERT INTO resident (household_id, name) VALUES (:h, '王五') RETURNING id"),
                        {"h": h["U"]}).scalar_one()
        tag = households.add_tag(s, rid, {"group_key": "living_alone", "start_date": D(2026, 1, 1)})
    assert stale(engine, settings) == 0
    with db.transaction(engine) as s:
        households.update_tag(s, tag["id"], {"end_date": D(2026, 1, 2)})
    assert stale(engine, settings) == 0


def test_the_register_import_keeps_the_dates_fresh(world, engine, settings, tmp_path):
    from test_register import GOOD, load

    load(engine, settings, tmp_path)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(visit_behind_from) FROM household")).scalar_one() > 0  # tagged ones
    assert stale(engine, settings) == 0
    load(engine, settings, tmp_path, rows=GOOD[:3])  # H1 again: its residents replaced, one tag fewer
    assert stale(engine, settings) == 0


# --------------------------------------------------------------------------- links and the 1+1+n check


@pytest.fixture
def structure(world, engine):
    """Cadre P: central C1 with radiating R1-R3, central C2 with R4 only, radiating R5 whose
    central link (C3) ended; cadre Q: ordinary links to O1-O4; U has no cadre (all in W1/W2)."""
    h = {}
    with db.transaction(engine) as s:
        p, q = person(s, "钱干部", grid=W1), person(s, "孙干部", grid=W2)
        for ref in ("C1", "C2", "C3", "R1", "R2", "R3", "R4", "R5", "U"):
            h[ref] = household(s, ref, W1)
        for ref in ("O1", "O2", "O3", "O4"):
            h[ref] = household(s, ref, W2)
        start = D(2026, 1, 1)
        for c in ("C1", "C2"):
            link(s, p, h[c], "central", start)
        link(s, p, h["C3"], "central", start, D(2026, 6, 30))
        for r in ("R1", "R2", "R3"):
            link(s, p, h[r], "radiating", start, central=h["C1"])
        link(s, p, h["R4"], "radiating", start, central=h["C2"])
        link(s, p, h["R5"], "radiating", start, central=h["C3"])
        for o in ("O1", "O2", "O3", "O4"):
            link(s, q, h[o], "ordinary", start)
        h["p"], h["q"] = p, q
    return h


def test_structure_check(structure, engine, settings):
    tight = settings.model_copy(update={"households_per_cadre_max": 4})
    with db.transaction(engine) as s:
        out = contacts.check_structure(s, tight, area=VW, on=D(2026, 11, 1))
    assert [u["ref"] for u in out["unlinked"]["items"]] == ["C3", "U"]  # C3's only link ended
    assert out["unlinked"]["count"] == 2
    # P holds C1, C2, R1-R5 (7) > 4; Q holds 4, not over.
    assert [(c["name"], c["households"]) for c in out["overloaded_cadres"]["items"]] == [("钱干部", 7)]
    # C1 has 3 radiating (in 3..8), C2 one.
    assert [(c["ref"], c["radiating"]) for c in out["centrals_off"]["items"]] == [("C2", 1)]
    assert [o["ref"] for o in out["orphaned_radiating"]["items"]] == ["R5"]
    grids = {g["code"]: g for g in out["grids"]}
    assert (grids[W1]["households"], grids[W1]["linked"], grids[W1]["unlinked"], grids[W1]["central"],
            grids[W1]["radiating"]) == (9, 7, 2, 2, 5)
    assert (grids[W2]["households"], grids[W2]["linked"]) == (4, 4)
    assert out["villages"] == [{"code": VW, "name": "西村", "households": 13, "linked": 11, "unlinked": 2,
                                "central": 2, "radiating": 5, "centrals_off": 1, "orphaned": 1}]
    with db.transaction(engine) as s:  # before C3's link ended, R5 was no orphan and C3 was linked
        out = contacts.check_structure(s, settings, area=VW, on=D(2026, 3, 1))
    assert [o["ref"] for o in out["orphaned_radiating"]["items"]] == []
    assert [u["ref"] for u in out["unlinked"]["items"]] == ["U"]
    assert {c["ref"] for c in out["centrals_off"]["items"]} == {"C2", "C3"}


def test_link_rules(structure, engine):
    h, p, q = structure, structure["p"], structure["q"]
    cases = [
        ({"kind": "radiating"}, "central_id"),                                   # radiating without its central
        ({"kind": "radiating", "central_id": h["C1"], "person_id": q}, "central_id"),  # C1 is P's, not Q's
        ({"kind": "radiating", "central_id": h["C3"]}, "central_id"),            # C3's central link ended
        ({"kind": "central", "central_id": h["C1"]}, "central_id"),
        ({"kind": "central", "end_date": "2025-12-31"}, "end_date"),             # ends before it starts
        ({"kind": "nosuch"}, "kind"),
    ]
    for changes, field in cases:
        body = {"person_id": p, "household_id": h["U"], "start_date": "2026-09-01", **changes}
        with pytest.raises(GeogridError) as err, db.transaction(engine) as s:
            contacts.create_link(s, body)
        assert err.value.status == 422 and field in {x.field for x in err.value.problems}, (changes, err.value)
    with db.transaction(engine) as s:
        made = contacts.create_link(s, {"person_id": p, "household_id": h["U"], "kind": "radiating",
                                        "central_id": h["C1"], "start_date": "2026-09-01"})
        assert (made["kind"], made["central_ref"], made["grid"]) == ("radiating", "C1", W1)
        # The same cadre over overlapping dates: 409.
        with pytest.raises(GeogridError) as err:
            contacts.create_link(s, {"person_id": p, "household_id": h["U"], "kind": "ordinary",
                                     "start_date": "2026-10-01"})
        assert err.value.status == 409
        ended = contacts.update_link(s, made["id"], {"end_date": "2026-12-31"}, expected_version=1)
        assert ended["end_date"] == D(2026, 12, 31) and ended["version"] == 2
        with pytest.raises(GeogridError) as err:
            contacts.update_link(s, made["id"], {"kind": "ordinary"}, expected_version=1)
        assert err.value.status == 412
        changed = contacts.update_link(s, made["id"], {"kind": "ordinary"})
        assert (changed["kind"], changed["central_id"]) == ("ordinary", None)
        n = s.execute(text("SELECT count(*) FROM audit WHERE resource = 'contact_link'")).scalar_one()
        assert n == 3


def test_link_scope(structure, engine):
    with pytest.raises(GeogridError) as err, db.transaction(engine) as s:
        as_user(s, ("grid_worker", W2))
        contacts.create_link(s, {"person_id": structure["q"], "household_id": structure["U"], "kind": "ordinary",
                                 "start_date": "2026-09-01"})
    assert err.value.status == 403
    with db.transaction(engine) as s:
        as_user(s, ("inspector", W2))
        items, total = contacts.list_links(s)
        assert total == 4 and {i["household_ref"] for i in items} == {"O1", "O2", "O3", "O4"}


# --------------------------------------------------------------------------- visits


def test_visit_log_and_scope(structure, engine, settings):
    h = structure
    body = {"visited_on": "2026-11-02", "person_id": h["q"], "household_ids": [h["O1"], h["O2"]],
            "findings": "屋顶漏水", "measures": "联系维修", "photo_urls": ["https://img.example/1.jpg"]}
    with db.transaction(engine) as s:
        as_user(s, ("grid_worker", W2))
        v = visits.record_visit(s, body, settings)
    assert v["area"] == W2 and [x["ref"] for x in v["households"]] == ["O1", "O2"]
    with db.transaction(engine) as s:
        assert s.execute(text("SELECT count(*), min(visited_on) FROM visit_household WHERE visit_id = :v"),
                         {"v": v["id"]}).one() == (2, D(2026, 11, 2))
        # Households of two grids: the visit's place is their village.
        both = visits.record_visit(s, {**body, "household_ids": [h["O1"], h["C1"]]}, settings)
        assert both["area"] == VW
    before = snapshot(engine)
    for household_ids, status in (([h["O1"], h["C1"]], 403), ([h["O1"], 999999], 403)):
        with pytest.raises(GeogridError) as err, db.transaction(engine) as s:
            as_user(s, ("grid_worker", W2))
            visits.record_visit(s, {**body, "household_ids": household_ids}, settings)
        assert err.value.status == status
        assert err.value.message.startswith("household ") and "outside your scope or does not exist" in err.value.message
    for bad, field in (({"photo_urls": ["ftp://x"]}, "photo_urls"), ({"visited_on": "2999-01-01"}, "visited_on"),
                       ({"deadline": "2026-01-01"}, "deadline"), ({"person_id": 999999}, "person_id")):
        with pytest.raises(GeogridError) as err, db.transaction(engine) as s:
            as_user(s, ("grid_worker", W2))
            visits.record_visit(s, {**body, **bad}, settings)
        assert err.value.status == 422 and field in {p.field for p in err.value.problems}, bad
    assert snapshot(engine) == before
    with db.transaction(engine) as s:
        as_user(s, ("inspector", W1))
        items, total = visits.list_visits(s)
        assert total == 0  # the village-wide visit lies above W1, the other in W2
        as_user(s, ("inspector", VW))
        items, total = visits.list_visits(s, start=D(2026, 11, 1), end=D(2026, 11, 3))
        assert total == 2
        with pytest.raises(GeogridError) as err:
            as_user(s, ("inspector", W1))
            visits.get_visit(s, v["id"])
        assert err.value.status == 403


def snapshot(engine) -> tuple:
    with engine.connect() as conn:
        return tuple(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
                     for t in ("visit", "visit_household", "incident", "audit"))


def intake_takes_households() -> bool:
    from geogrid.incidents import intake

    return "household_id" in (intake.__doc__ or "")


@pytest.mark.skipif(not intake_takes_households(), reason="intake() does not take household-tied cases yet")
def test_visit_opens_a_case(structure, engine, settings):
    h = structure
    with db.transaction(engine) as s:
        as_user(s, ("grid_worker", W2))
        v = visits.record_visit(s, {"visited_on": str(dt.date.today() - dt.timedelta(days=1)), "person_id": h["q"],
                                    "household_ids": [h["O3"]], "findings": "邻里纠纷",
                                    "open_case": {"category": "dispute", "description": "邻里噪音纠纷",
                                                  "request_type": "complaint"}}, settings)
    assert v["incident_id"] and v["incident_receipt"]
    with engine.connect() as conn:
        case = conn.execute(text("SELECT household_id, geom IS NULL AS no_point, request_type FROM incident "
                                 "WHERE id = :i"), {"i": v["incident_id"]}).one()
    assert (case.household_id, case.no_point, case.request_type) == (h["O3"], True, "complaint")
    # A case that cannot be opened (unknown category) stores no visit either.
    before = snapshot(engine)
    with pytest.raises(GeogridError), db.transaction(engine) as s:
        visits.record_visit(s, {"visited_on": "2026-11-02", "person_id": h["q"], "household_ids": [h["O3"]],
                                "open_case": {"category": "nosuch", "description": "x"}}, settings)
    assert snapshot(engine) == before


# --------------------------------------------------------------------------- cards


def test_card_rows_mask_the_head_and_name_the_post(structure, engine, settings):
    with db.transaction(engine) as s:
        area, day, rows = cards.card_rows(s, settings, area=W2, on=D(2026, 11, 1))
    assert len(rows) == 4
    assert rows[0]["head"] == "张**" and "三丰" not in str(rows)
    assert rows[0]["cadres"] == [{"name": "孙干部", "post": "网格长", "phone": "13800001111", "kind": "一般户"}]
    assert "13999999999" not in str(rows)  # the household's own phone


def test_command_line(structure, settings, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "GEOGRID_DATABASE_URL": settings.database_url}
    geogrid = str(Path(sys.executable).with_name("geogrid"))

    def run(*args):
        result = subprocess.run([geogrid, "contacts", *args], capture_output=True, text=True, env=env, timeout=300)
        assert "Traceback" not in result.stderr + result.stdout
        return result

    out = tmp_path / "cards.pdf"
    done = run("cards", "--area", W2, "--out", str(out), "--on", "2026-11-01")
    assert done.returncode == 0, done.stderr
    assert out.read_bytes().startswith(b"%PDF-")
    check = run("check", "--area", VW, "--on", "2026-11-01")
    assert check.returncode == 0 and "households without a contact cadre: 2" in check.stdout
    late = run("behind", "--area", VW, "--on", "2027-06-01")
    assert late.returncode == 0 and "households behind" in late.stdout
    bad = run("cards", "--area", W2, "--out", str(tmp_path / "cards.txt"))
    assert bad.returncode == 2 and ".pdf" in bad.stderr
    none = run("cards", "--area", "339901100", "--out", str(tmp_path / "x.pdf"), "--on", "2020-01-01")
    assert none.returncode == 1 and none.stderr.startswith("error:") and not (tmp_path / "x.pdf").exists()
