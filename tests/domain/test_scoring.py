"""Score sheets on hand-built cases: the scores of a grid scheme recomputed by the test's
own arithmetic (from the indicator values and, for a few grids, by hand), caps, below and
above rules, manual items with their audit rows, ranking ties and the bottom three, a
frozen period that a later correction leaves alone, scheme versions, and the red/black
list of a worker scheme where one person's name is not public.

The cases run through the real workflow at chosen moments in September and October 2026
(sanitation: accept 1 working hour, dispatch 1, handle 4, verify 1 working day;
08:30-17:30, Asia/Shanghai; Friday 25 September a holiday; satisfied from 6).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from zoneinfo import ZoneInfo

import pytest
from conftest import COUNTY, E1, E2, ENV_E, ENV_W, TOWN, W1, W2, W3, W4
from sqlalchemy import text

from geogrid.access import scopes
from geogrid.assessment import indicators as ind
from geogrid.assessment import scoring
from geogrid.core.errors import GeogridError
from geogrid.db import engine as db
from geogrid.environment import patrols
from geogrid.incidents import intake as intake_mod
from geogrid.incidents import workflow
from geogrid.people import assignments, persons

TZ = ZoneInfo("Asia/Shanghai")
IN_W1, IN_W2, IN_E1 = (120.005, 30.03), (120.015, 30.03), (120.025, 30.01)
CLOSE = ["filed", "dispatched", "in_progress", "handled", "verified", "closed"]
NOW = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
GRIDS = {W1, W2, W3, W4, E1, E2, ENV_W, ENV_E}  # the leaf grids of the town, both nets

ITEMS = [
    {"code": "late", "name": "逾期结案", "points": 10, "kind": "deduction",
     "rule": {"indicator": "closed_late", "per": 1, "points": 2}},
    {"code": "unclosed", "name": "未结案", "points": 2, "kind": "deduction",
     "rule": {"indicator": "unclosed", "per": 1, "points": 3}},
    {"code": "sat", "name": "满意率低于90%", "points": 5, "kind": "deduction",
     "rule": {"indicator": "satisfaction_rate", "below": 0.9, "points": 5}},
    {"code": "patrol", "name": "漏巡", "points": 10, "kind": "deduction",
     "rule": {"indicator": "patrols_missed", "per": 1, "points": 1}},
    {"code": "first", "name": "首报加分", "points": 3, "kind": "bonus",
     "rule": {"indicator": "first_reports", "above": 0, "points": 3}},
    {"code": "ontime", "name": "按期结案率高于90%", "points": 2, "kind": "bonus",
     "rule": {"indicator": "on_time_rate", "above": 0.9, "points": 2}},
    {"code": "spot", "name": "督查发现问题", "points": 10, "kind": "deduction", "rule": "manual"},
]


def at(month: int, day: int, hh: int, mm: int = 0) -> dt.datetime:
    return dt.datetime(2026, month, day, hh, mm, tzinfo=TZ)


@pytest.fixture
def cal_settings(settings):
    return settings.model_copy(update={"holidays": [dt.date(2026, 9, 25)], "satisfied_from": 6})


def report(session, s, when, point, channel="hotline_12345"):
    return intake_mod.intake(session, {"category": "sanitation", "description": "考核测试", "lon": point[0],
                                       "lat": point[1], "channel": channel, "occurred_at": when}, s, at=when)["id"]


def walk(session, s, case, moves):
    for to, when, *sat in moves:
        workflow.transition(session, case, to, s, at=when, satisfaction=sat[0] if sat else None)


def on_time(session, s, case, month, day, sat):
    """Every step within its limit: accepted 09:30, handled 13:00, closed the next day."""
    walk(session, s, case, [("accepted", at(month, day, 9, 30)), ("filed", at(month, day, 9, 40)),
                            ("dispatched", at(month, day, 10)), ("in_progress", at(month, day, 10, 10)),
                            ("handled", at(month, day, 13)), ("verified", at(month, day + 1, 10)),
                            ("closed", at(month, day + 1, 11), sat)])


def late(session, s, case, month, day, sat):
    """Handled at 15:00, an hour after its 4 working hours from dispatch at 10:00."""
    walk(session, s, case, [("accepted", at(month, day, 9, 30)), ("filed", at(month, day, 9, 40)),
                            ("dispatched", at(month, day, 10)), ("in_progress", at(month, day, 10, 10)),
                            ("handled", at(month, day, 15)), ("verified", at(month, day + 1, 10)),
                            ("closed", at(month, day + 1, 11), sat)])


@pytest.fixture
def cases(world, engine, cal_settings):
    """W1: A on time (first reported by patrol, 9), B late (4), C accepted late after an
    escalation and left open, D voided; W2: E on time (10); E1: F late (8); three patrols
    of the west environment grid, none of the east one; H in W1 in October, open."""
    s = cal_settings
    with db.transaction(engine) as session:
        ids = {}
        ids["C"] = c = report(session, s, at(9, 16, 9), IN_W1)
        assert workflow.escalate_overdue(session, s, now=at(9, 16, 10, 30)) != []
        walk(session, s, c, [("accepted", at(9, 16, 10, 45))])
        ids["A"] = a = report(session, s, at(9, 14, 9), IN_W1, channel="patrol")
        on_time(session, s, a, 9, 14, 9)
        ids["B"] = b = report(session, s, at(9, 15, 9), IN_W1)
        late(session, s, b, 9, 15, 4)
        ids["D"] = d = report(session, s, at(9, 17, 9), IN_W1)
        walk(session, s, d, [("void", at(9, 17, 9, 10))])
        ids["E"] = e = report(session, s, at(9, 21, 9), IN_W2)
        on_time(session, s, e, 9, 21, 10)
        ids["F"] = f = report(session, s, at(9, 22, 9), IN_E1)
        late(session, s, f, 9, 22, 8)
        ids["H"] = report(session, s, at(10, 12, 9), IN_W1)
        for day in (3, 12, 21):
            patrols.record_patrol(session, {"grid": ENV_W, "at": at(9, day, 15)}, s)
    return {"ids": ids, "settings": s}


def make_scheme(engine, *, area=TOWN, kind="grid", items=ITEMS, name="网格月考核", period="month", total=100):
    with db.transaction(engine) as session:
        return scoring.create_scheme(session, {"area": area, "name": name, "total": total, "target_kind": kind,
                                               "period_kind": period, "items": items})


def compute(engine, s, scheme_id, period="2026-09"):
    with db.transaction(engine) as session:
        return scoring.compute_period(session, s, scheme_id, period, now=NOW)


def results(engine, scheme_id, period="2026-09") -> dict:
    with db.transaction(engine) as session:
        return {r["target"]: r for r in scoring.get_period(session, scheme_id, period)["rows"]}


def expected_points(item: dict, value) -> float:
    """The test's own reading of a rule: p per whole n, p below/above x, capped; nothing without a value."""
    rule = item["rule"]
    if value is None:
        return 0
    if "per" in rule:
        raw = math.floor(value / rule["per"]) * rule["points"]
    elif "below" in rule:
        raw = rule["points"] if value < rule["below"] else 0
    else:
        raw = rule["points"] if value > rule["above"] else 0
    return min(raw, item["points"])


# --------------------------------------------------------------------------- scores


def test_scores_follow_the_rules(cases, engine):
    s = cases["settings"]
    scheme = make_scheme(engine)
    period = compute(engine, s, scheme["id"])
    assert (period["state"], period["targets"], period["start"], period["end"]) == (
        "computed", 8, dt.date(2026, 9, 1), dt.date(2026, 10, 1))
    got = results(engine, scheme["id"])
    assert set(got) == GRIDS

    # An independent calculation from the indicator values per grid.
    with db.transaction(engine) as session:
        found = ind.indicators(session, s, area=TOWN, start=dt.date(2026, 9, 1), end=dt.date(2026, 10, 1),
                               by=["grid"], now=NOW)
    values = {r["grid"]: r for r in found["rows"]}
    for grid in GRIDS:
        v = values.get(grid, {})
        closed, on_time_, received, voided = (v.get(k, 0) for k in ("closed", "closed_on_time", "received", "voided"))
        derived = {"closed_late": closed - on_time_, "unclosed": received - voided - closed}
        total = 100.0
        for item in ITEMS[:-1]:
            key = item["rule"]["indicator"]
            value = derived[key] if key in derived else v.get(key, 0 if key in ("patrols_missed", "first_reports")
                                                                else None)
            points = expected_points(item, value)
            total += points if item["kind"] == "bonus" else -points
        assert got[grid]["score"] == pytest.approx(max(total, 0)), grid

    # The same, worked out by hand for the grids with cases or patrols.
    by_hand = {W1: 100 - 2 - 2 - 5 + 3,  # 1 closed late, 1 unclosed (3 capped at 2), 满意率 0.5, a first report
               W2: 100 + 2,  # on time, satisfied
               E1: 100 - 2,  # closed late, satisfied
               ENV_W: 100 - 1,  # 4 patrols due, 3 done
               ENV_E: 100 - 4, W3: 100, W4: 100, E2: 100}
    assert {g: got[g]["score"] for g in GRIDS} == by_hand
    w1 = {i["code"]: i for i in got[W1]["items"]}
    assert (w1["unclosed"]["raw"], w1["unclosed"]["points"], w1["unclosed"]["capped"]) == (3, 2, True)
    assert (w1["sat"]["value"], w1["sat"]["points"]) == (0.5, 5)
    assert w1["late"]["rule"] == {"indicator": "closed_late", "per": 1, "points": 2}
    assert w1["spot"] == {"code": "spot", "name": "督查发现问题", "kind": "deduction", "max": 10, "rule": "manual",
                          "points": 0, "entered": False}
    assert got[W1]["indicator_values"]["closed_late"] == 1 and got[W1]["indicator_values"]["received"] == 4
    assert (got[W1]["deductions"], got[W1]["bonuses"]) == (9, 3)
    # No cases: no satisfaction rate, no deduction for it and no on-time bonus.
    w3 = {i["code"]: i for i in got[W3]["items"]}
    assert (w3["sat"]["value"], w3["sat"]["points"], w3["ontime"]["points"]) == (None, 0, 0)


def test_caps_never_go_below_zero_and_bonus_caps(cases, engine):
    items = [{"code": "late", "name": "逾期", "points": 100, "kind": "deduction",
              "rule": {"indicator": "received", "per": 1, "points": 60}},
             {"code": "extra", "name": "扣分", "points": 50, "kind": "deduction",
              "rule": {"indicator": "received", "per": 1, "points": 50}},
             {"code": "b", "name": "加分", "points": 4, "kind": "bonus",
              "rule": {"indicator": "received", "per": 2, "points": 3}}]
    scheme = make_scheme(engine, items=items, name="封顶")
    compute(engine, cases["settings"], scheme["id"])
    got = results(engine, scheme["id"])
    w1 = {i["code"]: i for i in got[W1]["items"]}
    # 4 received: 240 capped at 100, 200 capped at 50, bonus 2 x 3 = 6 capped at 4; 100 - 150 + 4 < 0.
    assert [(w1[c]["raw"], w1[c]["points"]) for c in ("late", "extra", "b")] == [(240, 100), (200, 50), (6, 4)]
    assert got[W1]["score"] == 0
    w2 = {i["code"]: i for i in got[W2]["items"]}
    assert w2["b"]["points"] == 0 and got[W2]["score"] == 0  # 1 received: half of "per 2" gives nothing


def test_bad_items_are_refused_naming_each(world, engine):
    bad = [ITEMS[0],
           {"code": "x", "name": "未知", "points": 5, "kind": "deduction", "rule": {"indicator": "colour", "per": 1,
                                                                                    "points": 1}},
           {"code": "y", "name": "负分", "points": -5, "kind": "deduction",
            "rule": {"indicator": "received", "per": 0, "points": -1}},
           {"code": "z", "name": "百分比", "points": 5, "kind": "deduction",
            "rule": {"indicator": "satisfaction_rate", "below": 90, "points": 5}},
           {"code": "late", "name": "重复", "points": 5, "kind": "bonus", "rule": "manual"}]
    with pytest.raises(GeogridError) as refused:
        make_scheme(engine, items=bad)
    assert refused.value.status == 422
    found = {(p.index, p.field) for p in refused.value.problems}
    assert found == {(1, "items[1].rule.indicator"), (2, "items[2].points"), (2, "items[2].rule.per"),
                     (2, "items[2].rule.points"), (3, "items[3].rule.below"), (4, "items[4].code")}
    assert "colour" in str(refused.value)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM assessment_scheme")).scalar_one() == 0


# --------------------------------------------------------------------------- manual items, ranking


def test_manual_items_ranks_ties_and_bottom_three(cases, engine):
    s = cases["settings"]
    scheme = make_scheme(engine)
    compute(engine, s, scheme["id"])
    with db.transaction(engine) as session:
        out = scoring.enter_manual(session, scheme["id"], "2026-09", {
            "target": ENV_W, "item": "spot", "points": 1, "reason": "台账缺失", "evidence": "https://x/1.jpg"})
    assert out["score"] == 98
    for bad, field in (({"points": 11}, "points"), ({"reason": " "}, "reason"), ({"item": "late"}, "item"),
                       ({"evidence": ""}, "evidence")):
        with pytest.raises(GeogridError) as refused, db.transaction(engine) as session:
            scoring.enter_manual(session, scheme["id"], "2026-09", {
                "target": E1, "item": "spot", "points": 2, "reason": "r", "evidence": "e", **bad})
        assert refused.value.status == 422 and [p.field for p in refused.value.problems] == [field]
    with pytest.raises(GeogridError) as unknown, db.transaction(engine) as session:
        scoring.enter_manual(session, scheme["id"], "2026-09", {
            "target": "339901999", "item": "spot", "points": 2, "reason": "r", "evidence": "e"})
    assert unknown.value.status == 422

    with engine.connect() as conn:
        audit_rows = conn.execute(text("SELECT action, key, after FROM audit WHERE resource = 'assessment_period' "
                                       "AND action = 'manual'")).all()
    assert [(r.action, r.key) for r in audit_rows] == [("manual", f"{scheme['id']}/2026-09/{ENV_W}/spot")]
    assert audit_rows[0].after["reason"] == "台账缺失" and audit_rows[0].after["evidence"] == "https://x/1.jpg"

    # Recomputing keeps the manual entry.
    compute(engine, s, scheme["id"])
    with db.transaction(engine) as session:
        rank = scoring.ranking(session, scheme["id"], "2026-09")
    rows = [(r["target"], r["score"], r["rank"]) for r in rank["rows"]]
    names = {r["target"]: r["name"] for r in rank["rows"]}
    hundreds = sorted([W3, W4, E2], key=lambda c: names[c])  # ties: by name
    assert rows == [(W2, 102, 1)] + [(c, 100, 2) for c in hundreds] + \
        sorted([(ENV_W, 98, 5), (E1, 98, 5)], key=lambda r: names[r[0]]) + [(ENV_E, 96, 7), (W1, 94, 8)]
    spot = next(i for i in results(engine, scheme["id"])[ENV_W]["items"] if i["code"] == "spot")
    assert (spot["points"], spot["reason"], spot["evidence"], spot["entered"]) == (1, "台账缺失", "https://x/1.jpg", True)
    # 末三位: the last three places, ties included: 94, 96 and both 98s.
    assert {r["target"] for r in rank["bottom"]} == {W1, ENV_E, ENV_W, E1}
    assert [r["target"] for r in rank["red"]] == [W2] + hundreds
    assert {r["target"] for r in rank["black"]} == {W1, ENV_E, ENV_W, E1}
    assert set(rank["rows"][0]) == {"rank", "target", "name", "score", "deductions", "bonuses"}
    with db.transaction(engine) as session:
        one = scoring.ranking(session, scheme["id"], "2026-09", red=1, black=1)
    assert [r["target"] for r in one["red"]] == [W2] and [r["target"] for r in one["black"]] == [W1]


# --------------------------------------------------------------------------- freezing


def test_a_frozen_period_ignores_later_corrections(cases, engine):
    s, ids = cases["settings"], cases["ids"]
    scheme = make_scheme(engine)
    compute(engine, s, scheme["id"])
    compute(engine, s, scheme["id"], "2026-10")
    with db.transaction(engine) as session:
        with pytest.raises(GeogridError) as early:
            scoring.freeze_period(session, s, scheme["id"], "2026-09")
        assert early.value.status == 409  # not reviewed yet
        scoring.review_period(session, scheme["id"], "2026-09")
        assert scoring.freeze_period(session, s, scheme["id"], "2026-09")["state"] == "frozen"
    frozen = results(engine, scheme["id"])
    october = results(engine, scheme["id"], "2026-10")
    assert october[W1]["indicator_values"]["received"] == 1 and october[W1]["indicator_values"]["unclosed"] == 1

    # Corrections: September's open case C is closed late in October, September's satisfied case
    # E is... left alone, October's H is voided, and the scheme loses its patrol item.
    with db.transaction(engine) as session:
        walk(session, s, ids["C"], [(to, at(10, 5, 10 + i)) for i, to in enumerate(CLOSE[:-1])]
             + [("closed", at(10, 6, 9), 2)])
        walk(session, s, ids["H"], [("void", at(10, 12, 9, 5))])
        scoring.update_scheme(session, scheme["id"], {"items": [i for i in ITEMS if i["code"] != "patrol"]})
        fresh = ind.indicators(session, s, area=W1, start=dt.date(2026, 9, 1), end=dt.date(2026, 10, 1), now=NOW)
    assert fresh["total"]["closed"] == 3  # the register changed...
    assert results(engine, scheme["id"]) == frozen  # ...the frozen period did not

    for attempt in (lambda session: scoring.compute_period(session, s, scheme["id"], "2026-09", now=NOW),
                    lambda session: scoring.enter_manual(session, scheme["id"], "2026-09", {
                        "target": W1, "item": "spot", "points": 1, "reason": "r", "evidence": "e"}),
                    lambda session: scoring.review_period(session, scheme["id"], "2026-09")):
        with pytest.raises(GeogridError) as refused, db.transaction(engine) as session:
            attempt(session)
        assert refused.value.status == 409

    # October sees what belongs to October (H voided), not C (reported in September), and
    # the scheme's new version (no patrol item) applies to it.
    compute(engine, s, scheme["id"], "2026-10")
    after = results(engine, scheme["id"], "2026-10")
    assert after[W1]["indicator_values"]["voided"] == 1 and after[W1]["indicator_values"]["unclosed"] == 0
    assert after[W1]["indicator_values"]["closed"] == 0
    assert "patrol" not in {i["code"] for i in after[W1]["items"]}
    assert "patrol" in {i["code"] for i in results(engine, scheme["id"])[W1]["items"]}
    with db.transaction(engine) as session:
        periods = {p["name"]: p for p in scoring.list_periods(session, scheme["id"])}
    assert (periods["2026-09"]["scheme_version"], periods["2026-10"]["scheme_version"]) == (1, 2)


def test_the_period_kind_and_name_must_fit(cases, engine):
    scheme = make_scheme(engine)
    for name in ("2026-Q3", "2026-13", "soon"):
        with pytest.raises(GeogridError) as bad:
            compute(engine, cases["settings"], scheme["id"], name)
        assert bad.value.status == 422
    quarterly = make_scheme(engine, period="quarter", name="季度", total=1000)
    assert compute(engine, cases["settings"], quarterly["id"], "2026-Q3")["end"] == dt.date(2026, 10, 1)
    assert results(engine, quarterly["id"], "2026-Q3")[W3]["score"] == 1000


def test_reviewing_twice_and_a_review_undone_by_a_change(cases, engine):
    s = cases["settings"]
    scheme = make_scheme(engine)
    compute(engine, s, scheme["id"])
    with db.transaction(engine) as session:
        scoring.review_period(session, scheme["id"], "2026-09")
        with pytest.raises(GeogridError) as twice:
            scoring.review_period(session, scheme["id"], "2026-09")
        assert twice.value.status == 409
        scoring.enter_manual(session, scheme["id"], "2026-09", {"target": W2, "item": "spot", "points": 2,
                                                                "reason": "抽查", "evidence": "记录"})
        assert scoring.list_periods(session, scheme["id"])[0]["state"] == "computed"
    with pytest.raises(GeogridError) as missing, db.transaction(engine) as session:
        scoring.review_period(session, scheme["id"], "2026-08")
    assert missing.value.status == 404
    # The month under way may be computed and reviewed, not frozen before it ends.
    this_month = dt.datetime.now(TZ).strftime("%Y-%m")
    compute(engine, s, scheme["id"], this_month)
    with pytest.raises(GeogridError) as running, db.transaction(engine) as session:
        scoring.review_period(session, scheme["id"], this_month)
        scoring.freeze_period(session, s, scheme["id"], this_month)
    assert running.value.status == 409 and "ended" in running.value.message


# --------------------------------------------------------------------------- workers, publication, reports


@pytest.fixture
def workers(world, engine, cal_settings):
    """Two grid workers: 王网格 on W1 (name not public), 李网格 on W2; two cases each."""
    s = cal_settings
    with db.transaction(engine) as session:
        hidden, shown = persons.create_persons(session, [{"name": "王网格", "name_public": False},
                                                         {"name": "李网格"}])
        assignments.create_assignments(session, [
            {"person": hidden["id"], "area": W1, "role": "grid_worker_fulltime", "start_date": "2020-01-01"},
            {"person": shown["id"], "area": W2, "role": "grid_worker_parttime", "start_date": "2020-01-01"}])
        late(session, s, report(session, s, at(9, 14, 9), IN_W1), 9, 14, 9)
        late(session, s, report(session, s, at(9, 15, 9), IN_W1), 9, 15, 9)
        on_time(session, s, report(session, s, at(9, 21, 9), IN_W2), 9, 21, 9)
    return {"hidden": hidden["id"], "shown": shown["id"], "settings": s}


def test_worker_scheme_and_the_published_lists(workers, engine):
    s = workers["settings"]
    items = [ITEMS[0], ITEMS[3], {"code": "talk", "name": "工作作风", "points": 5, "kind": "deduction",
                                  "rule": "manual"}]
    scheme = make_scheme(engine, kind="worker", items=items, name="网格员月考核")
    compute(engine, s, scheme["id"])
    got = results(engine, scheme["id"])
    hidden, shown = str(workers["hidden"]), str(workers["shown"])
    assert set(got) == {hidden, shown}
    assert (got[hidden]["score"], got[shown]["score"]) == (96, 100)  # two cases closed late; patrols: no data
    patrol = next(i for i in got[hidden]["items"] if i["code"] == "patrol")
    assert (patrol["value"], patrol["points"]) == (None, 0)
    with db.transaction(engine) as session:
        scoring.enter_manual(session, scheme["id"], "2026-09", {"target": hidden, "item": "talk", "points": 1,
                                                                "reason": "迟到早退", "evidence": "考勤表第3页"})
        with pytest.raises(GeogridError) as early:
            scoring.publish_period(session, scheme["id"], "2026-09")
        assert early.value.status == 409
        assert scoring.published_lists(session, TOWN)["lists"] == []
        scoring.review_period(session, scheme["id"], "2026-09")
        scoring.freeze_period(session, s, scheme["id"], "2026-09")
        scoring.publish_period(session, scheme["id"], "2026-09", red=1, black=1)
    with db.transaction(engine) as session:
        session.info["principal"] = scopes.ANONYMOUS  # the public board needs no account
        board = scoring.published_lists(session, COUNTY)
    assert board["lists"] == [{"scheme": "网格员月考核", "target_kind": "worker", "period": "2026-09",
                               "start": dt.date(2026, 9, 1), "end": dt.date(2026, 10, 1),
                               "red": [{"rank": 1, "name": "李网格", "score": 100}],
                               "black": [{"rank": 2, "name": None, "score": 95}]}]
    flat = json.dumps(board, default=str, ensure_ascii=False)
    for private in ("王网格", "迟到早退", "考勤表", "deductions", "items", "\"target\""):
        assert private not in flat


def test_latest_ranking_for_the_report(cases, engine):
    s = cases["settings"]
    county = make_scheme(engine, area=COUNTY, name="县网格考核")
    compute(engine, s, county["id"])
    own = make_scheme(engine, name="镇网格考核")
    compute(engine, s, own["id"])
    with db.transaction(engine) as session:
        scoring.review_period(session, county["id"], "2026-09")
        mine = scoring.latest_ranking(session, TOWN, dt.date(2026, 9, 1), dt.date(2026, 10, 1))
        assert mine["scheme"] == {"id": own["id"], "name": "镇网格考核", "target_kind": "grid", "total": 100}
        assert mine["period"] == {"name": "2026-09", "start": dt.date(2026, 9, 1), "end": dt.date(2026, 10, 1),
                                  "state": "computed", "published": False}
        assert {r["target"] for r in mine["rows"]} == GRIDS
        assert [r["target"] for r in mine["bottom"]] == [E1, ENV_E, W1]  # 98, 96, 94: the last three places
        # A village has no scheme: the nearest ancestor's (the town's), its own grids only.
        village = scoring.latest_ranking(session, "339901100002", dt.date(2026, 9, 1), dt.date(2026, 10, 1))
        assert village["scheme"]["id"] == own["id"]
        assert {r["target"] for r in village["rows"]} == {E1, E2}
        assert {r["rank"] for r in village["rows"]} == {2, 6}
        county_view = scoring.latest_ranking(session, COUNTY, dt.date(2026, 9, 1), dt.date(2026, 10, 1))
        assert county_view["scheme"]["id"] == county["id"] and county_view["period"]["state"] == "reviewed"
        assert len(county_view["rows"]) > 100  # the micro grids of the other town too
        assert scoring.latest_ranking(session, TOWN, dt.date(2026, 8, 1), dt.date(2026, 9, 1)) is None
