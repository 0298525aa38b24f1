"""Requests without a map point (民情: 收集→分析→办理→反馈→评价) in the domain: intake by
household and by area code, the handling kinds 即办 / 承诺 / 联办, 包案, and cases without
a point on the maps. On the incident world of tests/conftest.py: the west village VW
holds grids W1..W4 of the comprehensive net, the environment net has one grid per
village (ENV_W covers VW).

Expected answers are worked out by hand: the household at (120.004, 30.006) lies in W3
(120.0-120.01 × 30.0-30.02); a village code is an administrative area, so its office
takes the case; the environment grid of the west village is not on the comprehensive net.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from conftest import ENV_W, TOWN, VE, VW, W1, W3, publish
from sqlalchemy import text

from geogrid.access.scopes import Grant, Principal
from geogrid.core.errors import GeogridError
from geogrid.db import engine as db
from geogrid.incidents import intake as intake_mod
from geogrid.incidents import records, steps, workflow
from geogrid.people import assignments, persons

TZ = ZoneInfo("Asia/Shanghai")
HOUSE_POINT = (120.0043217, 30.0065431)  # in W3; digits that appear nowhere else
PATH = ["accepted", "filed", "dispatched", "in_progress", "handled", "verified", "closed"]


def area_id(session, code: str) -> int:
    return session.execute(text("SELECT id FROM area WHERE code = :c"), {"c": code}).scalar_one()


def add_household(session, ref: str, point: tuple[float, float], grid: str | None, *, retired: bool = False) -> int:
    """A household row as the register stores it (point, derived grid), written directly."""
    return session.execute(text("""
        INSERT INTO household (ref, geom, located_by, head_name, kind, grid_id, town, village, street, number, room,
                               retired_at)
        VALUES (:ref, ST_SetSRID(ST_MakePoint(:x, :y), 4326), 'own', '户主甲', 'registered',
                (SELECT id FROM area WHERE code = :grid), '青禾镇', '西村', '和平路', '12号', '301室',
                CASE WHEN :retired THEN now() END)
        RETURNING id
    """), {"ref": ref, "x": point[0], "y": point[1], "grid": grid, "retired": retired}).scalar_one()


def as_user(session, username: str, *grants: tuple[str, str | None, str | None]) -> None:
    """Act as an account holding ``grants`` (role, area code, department) in this session."""
    session.info["principal"] = Principal(99, username, tuple(
        Grant(role, area_id(session, code) if code else None, code, department) for role, code, department in grants))


@pytest.fixture
def register(world, engine):
    """Two households of the west village (one in W3, one moved away), a grid leader on W3,
    a post on the west village's office and a town leader without a post in the village."""
    with db.transaction(engine) as session:
        made = persons.create_persons(session, [{"name": "王网格长", "phone": "13800000001"},
                                                {"name": "村书记", "phone": "13800000002"},
                                                {"name": "包案镇长", "phone": "13800000003"}])
        assignments.create_assignments(session, [
            {"person": made[0]["id"], "area": W3, "role": "grid_leader", "start_date": dt.date(2020, 1, 1)},
            {"person": made[1]["id"], "area": VW, "role": "grid_leader", "start_date": dt.date(2020, 1, 1)},
            {"person": made[2]["id"], "area": TOWN, "role": "instructor", "start_date": dt.date(2020, 1, 1)}])
        house = add_household(session, "H-0001", HOUSE_POINT, W3)
        gone = add_household(session, "H-0002", (120.006, 30.007), W3, retired=True)
    return {"house": house, "gone": gone, "leader": made[0]["id"], "secretary": made[1]["id"],
            "mayor": made[2]["id"]}


def take(session, settings, **data) -> dict:
    body = {"category": "sanitation", "description": "群众来电反映楼道堆物", "channel": "hotline_12345", **data}
    return intake_mod.intake(session, body, settings)


def refused(session, settings, status: int = 422, **data) -> GeogridError:
    with pytest.raises(GeogridError) as caught:
        with session.begin_nested():
            take(session, settings, **data)
    assert caught.value.status == status, (caught.value.message, caught.value.problems)
    return caught.value


def problems_text(exc: GeogridError) -> str:
    return exc.message + " | " + " | ".join(f"{p.field}: {p.message}" for p in exc.problems)


# --------------------------------------------------------------------------- placing a request


def test_request_by_household_goes_to_the_households_grid_without_a_point(register, engine, settings):
    with db.transaction(engine) as session:
        case = take(session, settings, household_id=register["house"], request_type="complaint", channel="mailbox",
                    address="和平路12号301室")
        assert (case["route_kind"], case["grid"], case["authority"]) == ("grid", W3, W3)
        assert [p["name"] for p in case["responsible"]] == ["王网格长"]
        assert case["lon"] is None and case["lat"] is None
        assert case["household"] == {"id": register["house"], "ref": "H-0001", "address": "青禾镇 西村 和平路 12号 301室"}
        assert (case["request_type"], case["request_type_zh"], case["address"]) == ("complaint", "投诉", "和平路12号301室")
        assert case["channel"] == "mailbox" and case["original"] == {"household_id": register["house"]}
        stored = session.execute(text("SELECT geom IS NULL, household_id FROM incident WHERE id = :i"),
                                 {"i": case["id"]}).one()
        assert tuple(stored) == (True, register["house"])
        # The case's facts count it in the household's grid, like a point there (once caught up).
        steps.catch_up(session, settings.timezone)
        place = session.execute(text("SELECT a.code FROM case_fact f JOIN area a ON a.id = f.place_id "
                                     "WHERE f.incident_id = :i"), {"i": case["id"]}).scalar_one()
        assert place == W3

        # An environment category is not on the household's net: routed by its point instead.
        env = take(session, settings, category="straw_burning", household_id=register["house"])
        assert (env["route_kind"], env["grid"]) == ("grid", ENV_W) and env["lon"] is None


def test_request_by_area_code_goes_to_the_village_office_or_the_grid(register, engine, settings):
    with db.transaction(engine) as session:
        office = take(session, settings, area=VW, request_type="consultation", channel="visit")
        assert (office["route_kind"], office["grid"], office["authority"]) == ("area", None, VW)
        assert [p["name"] for p in office["responsible"]] == ["村书记"]
        assert office["lon"] is None and office["household"] is None
        grid = take(session, settings, area=W3, channel="walk_in")
        assert (grid["route_kind"], grid["grid"], grid["authority"]) == ("area", W3, W3)
        assert [p["name"] for p in grid["responsible"]] == ["王网格长"]
        # The case runs the usual workflow at the village office.
        closed = office
        for to in PATH:
            closed = workflow.transition(session, office["id"], to, settings)
        assert closed["state"] == "closed" and {s["authority"] for s in closed["steps"]} == {VW}

        e = refused(session, settings, area=ENV_W)
        assert "environment" in problems_text(e) and "comprehensive" in problems_text(e)
        e = refused(session, settings, area="339901100999")
        assert "no area has the code 339901100999" in problems_text(e)


def test_exactly_one_place_and_clear_problems(register, engine, settings):
    with db.transaction(engine) as session:
        e = refused(session, settings)
        assert "household_id or an area code" in problems_text(e)
        e = refused(session, settings, lon=120.004, lat=30.006, area=VW)
        assert "give one place" in problems_text(e)
        e = refused(session, settings, household_id=register["house"], area=VW)
        assert "give one place" in problems_text(e)
        e = refused(session, settings, household_id=register["gone"])
        assert "left the register" in problems_text(e)
        e = refused(session, settings, household_id=999999)
        assert "household 999999 does not exist" in problems_text(e)  # the operator sees everywhere
        e = refused(session, settings, area=VW, request_type="gossip")
        assert "unknown request_type 'gossip'" in problems_text(e) and "consultation" in problems_text(e)
        e = refused(session, settings, area=VW, channel="fax")
        assert "mailbox" in problems_text(e) and "visit" in problems_text(e)
        assert session.execute(text("SELECT count(*) FROM incident")).scalar_one() == 0


def test_the_public_never_names_a_household(register, engine, settings):
    with db.transaction(engine) as session:
        with pytest.raises(GeogridError) as caught:
            with session.begin_nested():
                intake_mod.intake(session, {"category": "sanitation", "description": "x",
                                            "household_id": register["house"]}, settings, public=True)
        assert caught.value.status == 422 and "public report cannot name a household" in problems_text(caught.value)
        # An area code is fine for the public.
        case = intake_mod.intake(session, {"category": "sanitation", "description": "x", "area": VW}, settings,
                                 public=True)
        assert case["route_kind"] == "area"
        assert set(records.public_view(case)) == {"receipt", "category", "category_name", "state", "state_name",
                                                  "reported_at", "closed_at", "grid", "authority"}


def test_households_out_of_scope_answer_like_unknown_ones(register, engine, settings):
    with db.transaction(engine) as session:
        as_user(session, "gw-east", ("grid_worker", VE, None))
        hidden = refused(session, settings, household_id=register["house"])
        unknown = refused(session, settings, household_id=999999)
        assert [p.message for p in hidden.problems] == [f"household {register['house']} is outside your scope or does not exist"]
        assert [p.message for p in unknown.problems] == ["household 999999 is outside your scope or does not exist"]
        # A department's grant reaches its cases, not the register.
        as_user(session, "dept", ("department_handler", None, "环卫所"))
        refused(session, settings, household_id=register["house"])
        # The west village's grid worker may; an area outside their scope is a 403 naming it.
        as_user(session, "gw-west", ("grid_worker", VW, None))
        assert take(session, settings, household_id=register["house"])["grid"] == W3
        assert "outside their scope" in refused(session, settings, status=403, area=VE).message


# --------------------------------------------------------------------------- handling kinds


def test_immediate_request_is_closed_in_one_call_with_its_trail(register, engine, settings):
    with db.transaction(engine) as session:
        case = take(session, settings, area=VW, request_type="consultation", handling="immediate",
                    resolution="已当场答复低保申请流程")
        assert case["state"] == "closed" and case["handling"] == "immediate" and case["closed_at"] is not None
        assert [(h["action"], h["to_state"]) for h in case["history"]] == [("report", "reported")] + [
            ("transition", s) for s in PATH]
        assert [h["note"] for h in case["history"] if h["to_state"] == "handled"] == ["已当场答复低保申请流程"]
        assert [(s["step"], s["outcome"], s["authority"]) for s in case["steps"]] == [
            ("accept", "done", VW), ("dispatch", "done", VW), ("handle", "done", VW), ("verify", "done", VW)]
        fact = session.execute(text("SELECT closed_at IS NOT NULL, accepted, late_steps FROM case_fact "
                                    "WHERE incident_id = :i"), {"i": case["id"]}).one()
        assert tuple(fact) == (True, True, 0)
        # The call-back (回访) follows as for any closed case.
        assert workflow.callback(session, case["id"], 9, settings)["satisfaction"] == 9

        assert "resolution" in problems_text(refused(session, settings, area=VW, handling="immediate"))
        # Answered on the spot means running the whole case: a grid worker may not.
        as_user(session, "gw-west", ("grid_worker", VW, None))
        refused(session, settings, status=403, area=VW, handling="immediate", resolution="已答复")
        as_user(session, "planner-west", ("planner", VW, None))
        assert take(session, settings, area=VW, handling="immediate", resolution="已答复")["state"] == "closed"


def test_promised_date_is_the_deadline_of_the_handling_step(register, engine, settings):
    now = dt.datetime(2026, 9, 7, 9, 0, tzinfo=TZ)  # a Monday
    promised = dt.datetime(2026, 9, 30, 17, 0, tzinfo=TZ)
    with db.transaction(engine) as session:
        case = intake_mod.intake(session, {"category": "sanitation", "description": "修路灯", "area": W3,
                                           "handling": "promised", "promised_at": promised.isoformat(),
                                           "occurred_at": now}, settings, at=now)
        assert case["promised_at"] == promised
        # Accepting keeps the category's limits (sanitation: accept 1, dispatch 1 working hour).
        assert case["due_at"] == dt.datetime(2026, 9, 7, 10, 0, tzinfo=TZ)
        for to in ("accepted", "filed", "dispatched"):
            case = workflow.transition(session, case["id"], to, settings, at=now + dt.timedelta(minutes=10))
        assert case["due_at"] == promised
        assert [(s["step"], s["due_at"]) for s in case["steps"]][-1] == ("handle", promised)
        # Sent back by verification: the promise still holds.
        for to in ("in_progress", "handled", "in_progress"):
            case = workflow.transition(session, case["id"], to, settings, at=now + dt.timedelta(hours=2))
        assert case["due_at"] == promised
        assert [s["due_at"] for s in case["steps"] if s["step"] == "handle"] == [promised, promised]

        def bad(value) -> str:
            return problems_text(intake_mod_refused(session, settings, now, value))

        assert "not in the future" in bad("2026-09-06T10:00:00+08:00")
        assert "more than 366 days ahead" in bad("2028-01-01")
        assert "not an ISO date" in bad("next week")
        assert "needs promised_at" in bad(None)
        # A date alone is the end of that working day.
        day = intake_mod.intake(session, {"category": "sanitation", "description": "x", "area": W3,
                                          "handling": "promised", "promised_at": "2026-09-10", "occurred_at": now},
                                settings, at=now)
        assert day["promised_at"] == dt.datetime(2026, 9, 10, 17, 30, tzinfo=TZ)
        # A field of another kind is refused, not ignored.
        with pytest.raises(GeogridError) as caught:
            with session.begin_nested():
                intake_mod.intake(session, {"category": "sanitation", "description": "x", "area": W3,
                                            "promised_at": "2026-09-10"}, settings, at=now)
        assert "promised_at belongs to handling 'promised'" in problems_text(caught.value)


def intake_mod_refused(session, settings, now, promised) -> GeogridError:
    with pytest.raises(GeogridError) as caught:
        with session.begin_nested():
            intake_mod.intake(session, {"category": "sanitation", "description": "x", "area": W3,
                                        "handling": "promised", "promised_at": promised, "occurred_at": now},
                              settings, at=now)
    assert caught.value.status == 422
    return caught.value


def test_joint_case_co_departments_read_and_comment_only_the_lead_moves_it(register, engine, settings):
    with db.transaction(engine) as session:
        case = take(session, settings, area=W3, handling="joint", co_departments=["住建局", "市场监管局", "住建局"])
        assert case["co_departments"] == ["住建局", "市场监管局"] and case["department"] == "环卫所"
        for to in ("accepted", "filed", "dispatched"):
            workflow.transition(session, case["id"], to, settings)
        case_id = case["id"]

        as_user(session, "dept-housing", ("department_handler", None, "住建局"))
        assert records.get_incident(session, case_id)["receipt"] == case["receipt"]
        assert [c["id"] for c in records.list_incidents(session)[0]] == [case_id]
        noted = workflow.add_note(session, case_id, "住建局已派人到场", settings)
        assert noted["history"][-1]["action"] == "note" and noted["history"][-1]["actor"] == "dept-housing"
        with pytest.raises(GeogridError) as caught:
            workflow.transition(session, case_id, "in_progress", settings)
        assert caught.value.status == 403

        as_user(session, "dept-police", ("department_handler", None, "公安分局"))
        with pytest.raises(GeogridError) as caught:
            records.get_incident(session, case_id)
        assert caught.value.status == 403
        assert records.list_incidents(session)[1] == 0

        as_user(session, "dept-sanitation", ("department_handler", None, "环卫所"))
        assert workflow.transition(session, case_id, "in_progress", settings)["state"] == "in_progress"

        session.info.pop("principal")
        e = refused(session, settings, area=W3, handling="joint", co_departments=["环卫所"])
        assert "leads this category's cases" in problems_text(e)
        assert "needs co_departments" in problems_text(refused(session, settings, area=W3, handling="joint"))


def test_owner_of_a_case(register, engine, settings):
    with db.transaction(engine) as session:
        case = take(session, settings, area=VW, owner_person_id=register["mayor"])
        assert (case["owner_person_id"], case["owner_name"]) == (register["mayor"], "包案镇长")
        assert "person 999999 is outside your scope or does not exist" in problems_text(
            refused(session, settings, area=VW, owner_person_id=999999))
        changed = workflow.set_owner(session, case["id"], register["secretary"], settings, note="改由村书记包案")
        assert changed["owner_name"] == "村书记"
        assert changed["history"][-1]["data"] == {"from": register["mayor"], "to": register["secretary"]}
        # A west-village inspector cannot name a person with no post in their scope.
        as_user(session, "insp-east", ("inspector", VE, None))
        other = take(session, settings, area=VE)
        with pytest.raises(GeogridError) as caught:
            workflow.set_owner(session, other["id"], register["secretary"], settings)
        assert caught.value.status == 422


# --------------------------------------------------------------------------- no point on maps


def test_cases_without_a_point_stay_off_the_maps(register, engine, settings):
    from maps import inspector, public

    publish(engine)  # the public map shows the published town
    with db.transaction(engine) as session:
        take(session, settings, lon=120.014, lat=30.006)  # W4, a point
        take(session, settings, household_id=register["house"], address="PRIVATE-ADDRESS-77")
        take(session, settings, area=W1)
        page = public.render(session, settings, area=TOWN)
        assert "公开事件 (1)" in page
        staff = inspector.render(session, settings, area=TOWN)
        assert "事件 (1)" in staff
        for html in (page, staff):
            assert "120.004321" not in html and "30.006543" not in html
        assert "PRIVATE-ADDRESS-77" not in page and "H-0001" not in page
        public_rows, _ = records.list_incidents(session, public_only=True)
        assert len(public_rows) == 3
        for row in public_rows:
            shown = records.public_view(row)
            assert not {"household", "address", "owner_name", "request_type", "co_departments"} & set(shown)
