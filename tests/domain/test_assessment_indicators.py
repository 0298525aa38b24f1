"""Assessment indicators on hand-built cases with known answers.

The cases run through the real workflow (intake, transitions, escalation) at chosen
moments, in September 2026 with a holiday on Friday 25 September. The expected figures
below were worked out by hand from the category time limits (sanitation: accept 1
working hour, dispatch 1, handle 4, verify 1 working day; working day 08:30-17:30,
Asia/Shanghai) and are written out, not computed by the code under test.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from conftest import COUNTY, E1, ENV_E, ENV_W, TOWN, VE, VW, W1
from sqlalchemy import text

from geogrid.assessment import indicators as ind
from geogrid.core.errors import GeogridError
from geogrid.db import engine as db
from geogrid.environment import patrols
from geogrid.incidents import intake as intake_mod
from geogrid.incidents import steps, workflow
from geogrid.incidents.states import calendar
from geogrid.people import assignments, persons

TZ = ZoneInfo("Asia/Shanghai")
IN_W1 = (120.005, 30.03)
IN_E1 = (120.025, 30.01)
PATH = ["accepted", "filed", "dispatched", "in_progress", "handled", "verified", "closed"]


def at(day: int, hh: int, mm: int = 0, month: int = 9) -> dt.datetime:
    return dt.datetime(2026, month, day, hh, mm, tzinfo=TZ)


@pytest.fixture
def cal_settings(settings):
    return settings.model_copy(update={"holidays": [dt.date(2026, 9, 25)], "satisfied_from": 6})


def _report(session, s, when, point=IN_W1, channel="hotline_12345", category="sanitation"):
    case = intake_mod.intake(session, {"category": category, "description": "测试案件", "lon": point[0], "lat": point[1],
                                       "channel": channel, "occurred_at": when}, s, at=when)
    return case["id"]


def _walk(session, s, case_id, moves):
    for to, when, *extra in moves:
        workflow.transition(session, case_id, to, s, at=when, satisfaction=extra[0] if extra else None)


@pytest.fixture
def september(world, engine, cal_settings):
    """Five cases in W1 in September, one in E1 in October, a grid worker on W1, patrols."""
    s = cal_settings
    with db.transaction(engine) as session:
        worker = persons.create_persons(session, [{"name": "王网格", "phone": "13800000001"}])[0]
        assignments.create_assignments(session, [{"person": worker["id"], "area": W1, "role": "grid_worker_fulltime",
                                                  "start_date": "2020-01-01"}])
        ids = {}
        # A: on time all along, first reported by the grid's own patrol; 11.0 working hours.
        ids["A"] = a = _report(session, s, at(14, 9), channel="patrol")
        _walk(session, s, a, [("accepted", at(14, 9, 30)), ("filed", at(14, 9, 40)), ("dispatched", at(14, 10)),
                              ("in_progress", at(14, 10, 10)), ("handled", at(14, 13)), ("verified", at(15, 10)),
                              ("closed", at(15, 11), 9)])
        # B: across the holiday; accepted on time only because Friday 25 is off; handling late; 12.0 hours.
        ids["B"] = b = _report(session, s, at(24, 17))
        _walk(session, s, b, [("accepted", at(28, 8, 50)), ("filed", at(28, 8, 55)), ("dispatched", at(28, 9)),
                              ("in_progress", at(28, 9, 30)), ("handled", at(28, 15)), ("verified", at(29, 10)),
                              ("closed", at(29, 11), 4)])
        # C: not accepted in time, escalated automatically at 10:30, then accepted and left open.
        ids["C"] = c = _report(session, s, at(15, 9))
        assert workflow.escalate_overdue(session, s, now=at(15, 10, 30)) != []
        _walk(session, s, c, [("accepted", at(15, 10, 45))])
        # D: a duplicate, voided before acceptance.
        ids["D"] = d = _report(session, s, at(16, 9))
        _walk(session, s, d, [("void", at(16, 9, 10))])
        # E: parked (挂账) while being handled.
        ids["E"] = e = _report(session, s, at(16, 10))
        _walk(session, s, e, [("accepted", at(16, 10, 10)), ("filed", at(16, 10, 20)), ("dispatched", at(16, 10, 30)),
                              ("in_progress", at(16, 10, 40)), ("parked", at(16, 11))])
        # Outside September and W1.
        ids["G"] = _report(session, s, at(10, 9, month=10), point=IN_E1)
        for day in (3, 12, 21):
            patrols.record_patrol(session, {"grid": ENV_W, "at": at(day, 15)}, s)
        patrols.record_patrol(session, {"grid": ENV_E, "at": at(2, 15, month=10)}, s)
    return {"ids": ids, "worker": worker["id"], "settings": s}


def _run(engine, s, **kw):
    with db.transaction(engine) as session:
        return ind.indicators(session, s, now=dt.datetime(2026, 11, 20, tzinfo=dt.UTC), **kw)


EXPECTED_SEPTEMBER = {
    "received": 5, "accepted": 4, "closed": 2, "closure_rate": 0.5, "closed_on_time": 1, "on_time_rate": 0.25,
    "overdue_now": 1, "overdue_ever": 2, "avg_hours": 11.5, "p90_hours": 11.9, "escalations": 1, "voided": 1,
    "parked": 1, "satisfaction_mean": 6.5, "satisfaction_rate": 0.5, "callbacks": 2, "callback_rate": 1.0,
    "first_reports": 1, "first_report_rate": 0.2,
}


def test_known_answers_for_the_month(september, engine):
    out = _run(engine, september["settings"], area=COUNTY, start=dt.date(2026, 9, 1), end=dt.date(2026, 10, 1))
    total = out["total"]
    assert {k: total[k] for k in EXPECTED_SEPTEMBER} == EXPECTED_SEPTEMBER
    # Two environment grids of the county's village level, weekly: 4 due each in 30 days; 3 done in one.
    assert (total["patrols_due"], total["patrols_done"], total["patrols_missed"]) == (8, 3, 5)
    assert total["patrol_rate"] == 0.375
    assert set(total) == {i.key for i in ind.INDICATORS}


def test_steps_keep_their_deadlines_after_closing(september, engine):
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT step, due_at, ended_at, outcome, late, working_hours FROM incident_step "
                                 "WHERE incident_id = :i ORDER BY id"), {"i": september["ids"]["B"]}).all()
        case = conn.execute(text("SELECT due_at, state FROM incident WHERE id = :i"), {"i": september["ids"]["B"]}).one()
    assert case.state == "closed" and case.due_at is None  # the case's own deadline is cleared...
    # ...its steps keep theirs: accept due Monday 09:00 (Friday 25 is a holiday), handling late.
    assert [(r.step, r.due_at.astimezone(TZ), r.outcome, r.late) for r in rows] == [
        ("accept", at(28, 9), "done", False),
        ("dispatch", at(28, 9, 50), "done", False),
        ("handle", at(28, 13), "done", True),
        ("verify", at(29, 17, 30), "done", False)]
    assert [round(r.working_hours, 4) for r in rows] == [0.8333, 0.1667, 6.0, 5.0]


def test_without_the_holiday_the_acceptance_would_have_been_late(september, engine, settings):
    work = calendar(settings)  # no holidays
    assert work.add(at(24, 17), 1, "working_hours") == at(25, 9)


def test_grouping_by_time_and_place(september, engine):
    s = september["settings"]
    out = _run(engine, s, area=COUNTY, start=dt.date(2026, 9, 1), end=dt.date(2026, 11, 1), by=["month"])
    months = {r["month"]: r for r in out["rows"]}
    assert set(months) == {"2026-09-01", "2026-10-01"}
    assert months["2026-09-01"]["received"] == 5 and months["2026-10-01"]["received"] == 1
    assert months["2026-10-01"]["patrols_done"] == 1 and months["2026-10-01"]["patrols_due"] == 8
    assert out["total"]["received"] == 6

    out = _run(engine, s, area=COUNTY, start=dt.date(2026, 9, 1), end=dt.date(2026, 11, 1), by=["village"])
    villages = {r["village"]: r for r in out["rows"]}
    assert villages[VW]["received"] == 5 and villages[VW]["village_name"] == "西村"
    assert villages[VE]["received"] == 1

    out = _run(engine, s, area=TOWN, start=dt.date(2026, 9, 1), end=dt.date(2026, 10, 1), by=["grid", "day"])
    cells = {(r["grid"], r["day"]): r["received"] for r in out["rows"] if r["received"]}
    assert cells == {(W1, "2026-09-14"): 1, (W1, "2026-09-15"): 1, (W1, "2026-09-16"): 2, (W1, "2026-09-24"): 1}

    out = _run(engine, s, area=COUNTY, start=dt.date(2026, 9, 1), end=dt.date(2026, 10, 1), by=["worker"])
    assert [(r["worker"], r["worker_name"], r["received"]) for r in out["rows"]] == [
        (str(september["worker"]), "王网格", 5)]
    assert out["rows"][0]["patrols_due"] is None  # patrols are not counted per person

    out = _run(engine, s, area=E1, start=dt.date(2026, 9, 1), end=dt.date(2026, 11, 1))
    assert out["total"]["received"] == 1


def test_replaying_the_events_rebuilds_the_same_history(september, engine):
    s = september["settings"]
    query = text("SELECT incident_id, step, authority_id, started_at, due_at, ended_at, outcome, late, "
                 "round(working_hours::numeric, 4) FROM incident_step ORDER BY incident_id, id")
    facts = text("SELECT * FROM case_fact ORDER BY incident_id")
    with engine.begin() as conn:
        steps.catch_up(conn, s.timezone)  # the facts of the cases just taken in follow their intake
        before, facts_before = conn.execute(query).all(), conn.execute(facts).all()
        assert steps.rebuild(conn, calendar(s)) == 6
        after, facts_after = conn.execute(query).all(), conn.execute(facts).all()
    assert after == before
    assert facts_after == facts_before


def test_bad_requests_are_clear(september, engine):
    s = september["settings"]
    with pytest.raises(GeogridError) as bad:
        _run(engine, s, area=COUNTY, start=dt.date(2026, 9, 1), end=dt.date(2026, 9, 1), by=["colour"])
    fields = {p.field for p in bad.value.problems}
    assert fields == {"by", "to"}
    with pytest.raises(GeogridError) as unknown:
        _run(engine, s, area="999999", start=dt.date(2026, 9, 1), end=dt.date(2026, 10, 1))
    assert unknown.value.status == 404


@pytest.mark.parametrize("by", [[], ["grid", "month"], ["village", "quarter"], ["town", "year"], ["month"]])
def test_monthly_sums_give_the_same_figures_as_every_case(september, engine, by):
    s = september["settings"]
    kw = dict(area=COUNTY, start=dt.date(2026, 9, 1), end=dt.date(2026, 11, 1), by=by)
    months, cases = _run(engine, s, use_months=True, **kw), _run(engine, s, use_months=False, **kw)
    assert months["rows"] == cases["rows"] and months["total"] == cases["total"]
    assert months["total"]["received"] == 6


def test_monthly_sums_follow_every_change_of_a_case(september, engine):
    s = september["settings"]
    with db.transaction(engine) as session:
        # C is accepted and open: it goes on and closes late in October, rated 10.
        c = september["ids"]["C"]
        for to, when in (("filed", at(2, 9, month=10)), ("dispatched", at(2, 9, 5, month=10)),
                         ("in_progress", at(2, 9, 10, month=10)), ("handled", at(2, 10, month=10)),
                         ("verified", at(2, 11, month=10))):
            workflow.transition(session, c, to, s, at=when)
        workflow.transition(session, c, "closed", s, at=at(2, 12, month=10), satisfaction=10)
    with engine.begin() as conn:
        assert steps.catch_up(conn, s.timezone)[1] > 0  # the monthly sums are rewritten by the catch-up
        stored = conn.execute(text("SELECT sum(received), sum(closed), sum(late_cases) FROM case_month")).one()
        conn.execute(text("SELECT 1"))
    assert tuple(stored) == (6, 3, 2)
    kw = dict(area=COUNTY, start=dt.date(2026, 9, 1), end=dt.date(2026, 10, 1), by=["grid", "month"])
    months, cases = _run(engine, s, use_months=True, **kw), _run(engine, s, use_months=False, **kw)
    assert months["rows"] == cases["rows"]
    assert months["total"]["closed"] == 3 and months["total"]["closed_on_time"] == 1
    assert months["total"]["overdue_now"] == 0 and months["total"]["overdue_ever"] == 2
