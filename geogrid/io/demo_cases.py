"""Synthetic assessment data for the demo town 青禾镇 (``339901100``): a year of cases,
environment patrols and a monthly score sheet, so that the assessment dashboard, the
monthly report and the public red/black list have something to show.

Every case runs through the real workflow at explicit moments: :func:`intake` at the
report, :func:`workflow.transition` for each step, :func:`workflow.escalate` and
:func:`workflow.callback`, so its steps, facts and monthly sums are written exactly as
production writes them. The moments come from the working calendar of the settings
(:func:`geogrid.incidents.states.calendar`) and each category's time limits: a step done
on time ends inside its limit, a late one after it, and, as the service's escalation task
does, a case of a category that escalates automatically climbs one level within
``escalation_interval_s`` of each deadline it misses (also the cases still open when the
demo loads). The mix: most cases closed on time, some late, a few escalated by hand,
voided, parked or stuck, the newest still open; most closed cases rated (at closing or
by a call-back). Every event is about 17 statements of the real workflow, so a case costs
about 90 ms: ``PER_MONTH`` keeps the demo's first load within about 15 s more.

Everything is relative to ``now`` (the moment the demo loads): twelve whole months
before the current one, and the current month up to ``now``; nothing happens later.
The villages differ in how often they run late, how satisfied residents are and how
regularly their environment grid is patrolled, so rankings differ. The same seed and
``now`` give the same data; descriptions and notes say 演示数据 (demo data).
"""

from __future__ import annotations

import calendar as monthcal
import contextlib
import datetime as dt
import random
from collections.abc import Iterator
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.orm import Session

from geogrid.assessment import scoring
from geogrid.assessment.periods import Period, period_containing, previous
from geogrid.core.errors import GeogridError
from geogrid.core.settings import Settings
from geogrid.environment import patrols
from geogrid.incidents import workflow
from geogrid.incidents.categories import categories
from geogrid.incidents.intake import intake
from geogrid.incidents.states import calendar
from geogrid.incidents.workcal import WorkCalendar

TOWN = "339901100"
SEED = 20261124
MONTHS = 12  # whole months before the current one
PER_MONTH = 12  # cases a month in the town before the season's factor (about 90 ms each to make)
MARK = "（演示数据）"
SCHEME_NAME = "青禾镇村（社区）网格化服务管理月度考核（演示）"
FROZEN_MONTHS = 3  # the last ones frozen; the very last also published
# Who does what (names of the demo accounts, or the service's own actor): the history of
# a case names them as production would name the accounts that acted.
CENTRE_ACTOR, WORKER_ACTOR, HANDLER_ACTOR = "demo-inspector", "demo-gridworker", "demo-handler"
PLANNER_ACTOR, ADMIN_ACTOR, ESCALATION_ACTOR = "demo-planner", "demo-admin", "system:escalation"

# category: (weight, {month: seasonal factor}, descriptions)
CATEGORIES: dict[str, tuple[float, dict[int, float], tuple[str, ...]]] = {
    "sanitation": (24, {}, ("路边垃圾堆放，多日未清运", "垃圾桶满溢，周边异味明显", "河道漂浮垃圾较多",
                            "建筑垃圾乱倒在路旁", "公厕卫生差，无人保洁")),
    "dispute": (14, {1: 1.4, 2: 1.5}, ("邻里因宅基地边界发生纠纷", "租户与房东因押金退还产生矛盾",
                                       "两户因排水沟堵塞引发争执", "务工人员反映工资拖欠，要求协调")),
    "safety_hazard": (12, {7: 1.3, 8: 1.3, 12: 1.2}, ("老旧民房外墙开裂，存在坍塌隐患", "电动车在楼道内充电，存在火灾隐患",
                                                     "路灯损坏，夜间通行不安全", "燃气管道老化，有轻微气味")),
    "illegal_construction": (6, {}, ("村民未经审批加盖一层", "河道管理范围内搭建简易棚", "农田上违规建设附属用房")),
    "noise": (7, {6: 1.5, 7: 1.8, 8: 1.8}, ("夜间装修噪声扰民", "广场舞音响音量过大", "工地夜间施工噪声扰民")),
    "catering_fumes": (6, {}, ("沿街餐馆油烟直排，居民投诉", "夜宵烧烤摊油烟扰民")),
    "garbage_burning": (5, {11: 1.4, 12: 1.6, 1: 1.6}, ("村民在田间焚烧生活垃圾", "空地焚烧废旧塑料，气味刺鼻")),
    "straw_burning": (3, {6: 5.0, 10: 4.0, 11: 4.0}, ("田间焚烧秸秆，烟雾较大", "收割后田头有零星秸秆焚烧")),
    "construction_dust": (5, {3: 1.4, 4: 1.4, 9: 1.3}, ("工地裸土未覆盖，扬尘明显", "渣土车未密闭运输，沿路洒落")),
    "illegal_discharge": (4, {}, ("小作坊疑似向河道排放污水", "厂区雨水管有异色水流出")),
    "new_pollution_source": (2, {}, ("发现新开办的小型喷漆作坊", "新建养殖场未见环评手续")),
    "drinking_water_risk": (1.5, {}, ("水源保护区内有人游泳、垂钓", "取水口附近发现垃圾堆放")),
}
# How cases come in: the grid worker's own patrol (首报) most, then the 12345 hotline.
CHANNELS = {"comprehensive": {"patrol": 36, "hotline_12345": 24, "wechat": 15, "walk_in": 9, "public_web": 7,
                              "lower_level": 6, "department": 3},
            "environment": {"patrol": 30, "hotline_12345": 28, "wechat": 14, "public_web": 10, "department": 12,
                            "walk_in": 6}}
# Months of the year with more cases (holidays in February have fewer).
SEASON = {1: 0.9, 2: 0.7, 3: 1.0, 4: 1.0, 5: 1.05, 6: 1.1, 7: 1.15, 8: 1.1, 9: 1.0, 10: 1.0, 11: 1.0, 12: 0.95}
# How often a village runs a step late (spread over the villages by the seed) and how
# regularly its environment grid is patrolled.
LATE_RATES = (0.04, 0.06, 0.09, 0.12, 0.15, 0.19, 0.24, 0.30, 0.36, 0.43)
PATROL_RATES = (1.0, 0.97, 0.95, 0.92, 0.88, 0.84, 0.78, 0.72, 0.64, 0.55)
SCHEME_ITEMS = [
    {"code": "closed_late", "name": "逾期结案（每件扣2分）", "points": 20, "kind": "deduction",
     "rule": {"indicator": "closed_late", "per": 1, "points": 2}},
    {"code": "satisfaction", "name": "群众满意率低于90%扣5分", "points": 5, "kind": "deduction",
     "rule": {"indicator": "satisfaction_rate", "below": 0.9, "points": 5}},
    {"code": "patrols", "name": "环境网格漏巡（每次扣1分）", "points": 10, "kind": "deduction",
     "rule": {"indicator": "patrols_missed", "per": 1, "points": 1}},
    {"code": "first_reports", "name": "网格员首报（每2件加1分）", "points": 3, "kind": "bonus",
     "rule": {"indicator": "first_reports", "per": 2, "points": 1}},
    {"code": "inspection", "name": "日常督查（台账、在岗在位）", "points": 10, "kind": "deduction", "rule": "manual"},
]
INSPECTION_FINDINGS = (("工作台账记录不全", 2), ("网格员抽查不在岗", 3), ("事件处置照片缺失", 1),
                       ("民情日志未按时填写", 2))


@contextlib.contextmanager
def acting(session: Session, actor: str) -> Iterator[None]:
    """Write as ``actor`` (what the history and the audit log name) inside the block."""
    before = session.info.get("actor")
    session.info["actor"] = actor
    try:
        yield
    finally:
        if before is None:
            session.info.pop("actor", None)
        else:
            session.info["actor"] = before


def _choice(rng: random.Random, weights: dict):
    keys = list(weights)
    return rng.choices(keys, [weights[k] for k in keys])[0]


def _add_months(first: dt.date, months: int) -> dt.date:
    n = first.year * 12 + first.month - 1 + months
    return dt.date(n // 12, n % 12 + 1, 1)


def _within(cal: WorkCalendar, a: dt.datetime, b: dt.datetime, frac: float) -> dt.datetime:
    """The moment ``frac`` of the working time from ``a`` to ``b`` (at least a minute after ``a``)."""
    hours = cal.working_hours_between(a, b)
    if hours < 0.05:
        return a + max((b - a) * frac, dt.timedelta(minutes=1))
    return max(cal.add(a, frac * hours, "working_hours"), a + dt.timedelta(minutes=1))


class _Case:
    """One case on its way through the workflow; every move is refused past ``now``."""

    def __init__(self, run: _Run, rng: random.Random, case: dict, category: dict):
        self.run, self.rng, self.category = run, rng, category
        # The service escalates every escalation_interval_s (0: never).
        self.auto = bool(category["auto_escalate"]) and run.settings.escalation_interval_s > 0
        self.last = case["reported_at"]
        self.sync(case)

    def sync(self, case: dict) -> None:
        self.id, self.state, self.due, self.authority = case["id"], case["state"], case["due_at"], case["authority"]

    def catch_up(self, until: dt.datetime) -> None:
        """The automatic escalations the service would have made before ``until``: one level
        within its interval after each missed deadline, as long as there is a level above."""
        until = min(until, self.run.now)
        while (self.auto and self.due is not None and self.state not in ("closed", "void", "parked")
               and self.due < until and self.run.parent.get(self.authority)):
            at = self.due + dt.timedelta(seconds=self.rng.uniform(0.1, 1.0) * self.run.settings.escalation_interval_s)
            if at >= until:
                at = self.due + (until - self.due) / 2
            with acting(self.run.session, ESCALATION_ACTOR):
                case = workflow.escalate(self.run.session, self.id, self.run.settings, note="time limit exceeded",
                                         automatic=True, at=at)
            self.last = at
            self.sync(case)

    def go(self, to: str, when: dt.datetime, actor: str = CENTRE_ACTOR, **kw) -> bool:
        """Move to ``to`` at ``when`` (after the escalations due before); False past ``now``."""
        when = max(when, self.last + dt.timedelta(minutes=1))
        if when > self.run.now:
            self.catch_up(self.run.now)
            return False
        self.catch_up(when)
        with acting(self.run.session, actor):
            case = workflow.transition(self.run.session, self.id, to, self.run.settings, at=when, **kw)
        self.last = when
        self.sync(case)
        return True

    def escalate(self, when: dt.datetime, note: str) -> bool:
        """Hand the case up by hand (村呼镇应) at ``when``; False past ``now``."""
        when = max(when, self.last + dt.timedelta(minutes=1))
        if when > self.run.now or not self.run.parent.get(self.authority):
            return False
        self.catch_up(when)
        with acting(self.run.session, CENTRE_ACTOR):
            case = workflow.escalate(self.run.session, self.id, self.run.settings, note=note, at=when)
        self.last = when
        self.sync(case)
        return True

    def end_of_step(self, late: bool) -> dt.datetime:
        """When the step just opened (at ``last``, due at ``due``) ends: inside its limit,
        or, when ``late``, after it (mostly by less than the limit itself)."""
        cal, start = self.run.cal, self.last
        if not late:
            return _within(cal, start, self.due, self.rng.uniform(0.15, 0.9))
        limit = max(cal.working_hours_between(start, self.due), 0.25)
        over = limit * (self.rng.uniform(0.1, 0.8) if self.rng.random() < 0.85 else self.rng.uniform(1.2, 2.5))
        return cal.add(self.due, max(over, 0.2), "working_hours")

    def then(self, end: dt.datetime, lo: float, hi: float) -> dt.datetime:
        """A moment between the last move and ``end``."""
        return _within(self.run.cal, self.last, end, self.rng.uniform(lo, hi))


class _Run:
    def __init__(self, session: Session, settings: Settings, now: dt.datetime):
        self.session, self.settings, self.now = session, settings, now
        self.cal = calendar(settings)
        self.tz = ZoneInfo(settings.timezone)
        self.parent = dict(session.execute(text(
            "SELECT a.code, p.code FROM area a LEFT JOIN area p ON p.id = a.parent_id WHERE a.code LIKE :p"),
            {"p": TOWN[:6] + "%"}).all())


# --------------------------------------------------------------------------- plans


def _villages(session: Session) -> list[dict]:
    rows = session.execute(text("""
        SELECT v.code, v.name FROM area v JOIN area t ON t.id = v.parent_id
        WHERE t.code = :town AND v.layer_key = 'admin' AND v.level_key = 'village' AND v.retired_at IS NULL
        ORDER BY v.code
    """), {"town": TOWN}).mappings()
    return [dict(r) for r in rows]


def _grids(session: Session) -> list[dict]:
    """The town's comprehensive grids in force today, with their village and households."""
    rows = session.execute(text("""
        SELECT g.code, g.name, v.code AS village, coalesce(g.households, 400) AS households
        FROM area g JOIN area v ON v.id = g.parent_id JOIN area t ON t.id = v.parent_id
        WHERE t.code = :town AND g.layer_key = 'comprehensive' AND g.retired_at IS NULL
          AND EXISTS (SELECT 1 FROM boundary b WHERE b.area_id = g.id AND upper_inf(b.valid))
        ORDER BY g.code
    """), {"town": TOWN}).mappings()
    return [dict(r) for r in rows]


def _environment_grids(session: Session) -> list[dict]:
    rows = session.execute(text("""
        SELECT g.code, v.code AS village FROM area g JOIN area v ON v.id = g.parent_id JOIN area t ON t.id = v.parent_id
        WHERE t.code = :town AND g.layer_key = 'environment' AND g.retired_at IS NULL ORDER BY g.code
    """), {"town": TOWN}).mappings()
    return [dict(r) for r in rows]


def _report_moment(rng: random.Random, cal: WorkCalendar, first: dt.date, channel: str) -> dt.datetime:
    """When a case of the month starting ``first`` comes in: mostly working days and hours;
    the hotline and WeChat also in the evening and at weekends."""
    days = [first + dt.timedelta(days=k) for k in range(monthcal.monthrange(first.year, first.month)[1])]
    anytime = channel in ("hotline_12345", "wechat", "public_web")
    weights = [1.0 if cal.is_workday(d) else (0.25 if anytime else 0.03) for d in days]
    day = rng.choices(days, weights)[0]
    start, end = (7.5, 21.0) if anytime and rng.random() < 0.3 else (8.5, 17.5)
    hour = rng.uniform(start, end)
    return dt.datetime.combine(day, dt.time(int(hour), int(hour % 1 * 60)), tzinfo=cal.tz)


def _weighted_sample(rng: random.Random, items: list, weights: list[float], k: int) -> list:
    """``k`` distinct items drawn with probability by weight (Efraimidis-Spirakis keys)."""
    keyed = sorted(((rng.random() ** (1.0 / w) if w > 0 else 0.0), i) for i, w in enumerate(weights))
    return [items[i] for _, i in keyed[::-1][:k]]


def _plans(villages: list[dict], grids: list[dict], known: dict, cal: WorkCalendar, now: dt.datetime,
           per_month: int) -> list[dict]:
    """Every case to make (reported before ``now``), oldest first.

    A month's fates come by quota, so that every month has cases closed late, one voided,
    one parked and (the last two months) one left unhandled; which cases run late is
    drawn by their village's and grid's late rate. Each case draws its own details from
    its own generator, so what ``now`` cuts off never shifts the others."""
    rng = random.Random(SEED)
    rates = [LATE_RATES[i % len(LATE_RATES)] for i in range(len(villages))]
    rng.shuffle(rates)
    late_of = dict(zip([v["code"] for v in villages], rates, strict=True))
    grid_factor = {g["code"]: rng.uniform(0.5, 1.6) for g in grids}
    mean_rate = sum(rates) / len(rates)
    first = now.astimezone(cal.tz).date().replace(day=1)
    plans = []
    for m in range(-MONTHS, 1):
        month = _add_months(first, m)
        days = monthcal.monthrange(month.year, month.month)[1]
        mrng = random.Random(f"{SEED}:{month:%Y-%m}")
        # A slow improvement over the year, as a centre's campaign would bring.
        trend = 1.25 - 0.45 * (m + MONTHS) / MONTHS
        count = max(4, round(per_month * SEASON[month.month] * mrng.uniform(0.9, 1.1)))
        weights = {k: w * season.get(month.month, 1.0) for k, (w, season, _) in CATEGORIES.items() if k in known}
        month_plans = []
        for k in range(count):
            crng = random.Random(f"{SEED}:{month:%Y-%m}:{k}")
            key = _choice(crng, weights)
            grid = crng.choices(grids, [g["households"] for g in grids])[0]
            channel = _choice(crng, CHANNELS.get(known[key]["layer_key"], CHANNELS["comprehensive"]))
            reported = _report_moment(crng, cal, month, channel)
            if channel == "patrol" and not cal.is_workday(reported.date()):
                channel = "hotline_12345"  # nobody patrols on a day off
            month_plans.append({"rng": crng, "category": key, "grid": grid, "channel": channel, "reported": reported,
                                "fate": "closed", "late": None,
                                "late_rate": min(late_of[grid["village"]] * grid_factor[grid["code"]] * trend, 0.8),
                                "description": crng.choice(CATEGORIES[key][2])})
        order = mrng.sample(month_plans, len(month_plans))
        fates = ["void", "parked_back" if m % 2 else "parked"]
        if m >= -1:
            fates.append("stuck")
        if mrng.random() < 0.6:
            fates.append("escalated")
        for plan, fate in zip(order, fates):
            plan["fate"] = fate
        # Late cases among the rest reported early enough in the month to have closed by its end.
        early = [p for p in month_plans if p["fate"] in ("closed", "escalated") and p["reported"].day <= days * 0.7]
        late_count = max(1, round(count * mean_rate * trend))
        for plan in _weighted_sample(mrng, early, [p["late_rate"] for p in early], late_count):
            plan["late"] = _choice(mrng, {"accept": 2, "dispatch": 1.5, "handle": 6, "verify": 1})
        plans += [p for p in month_plans if p["reported"] <= now - dt.timedelta(minutes=10)]
    plans.sort(key=lambda p: p["reported"])
    return plans


def _points(session: Session, plans: list[dict]) -> None:
    """A random point inside its grid's stored boundary for every plan (PostGIS, seeded)."""
    wanted: dict[str, int] = {}
    for p in plans:
        wanted[p["grid"]["code"]] = wanted.get(p["grid"]["code"], 0) + 1
    if not wanted:
        return
    rows = session.execute(text("""
        SELECT w.code, round(ST_X(d.geom)::numeric, 7)::float8 AS lon, round(ST_Y(d.geom)::numeric, 7)::float8 AS lat
        FROM unnest(CAST(:codes AS text[]), CAST(:counts AS int[])) AS w(code, n)
        JOIN area a ON a.code = w.code
        JOIN boundary b ON b.area_id = a.id AND upper_inf(b.valid)
        CROSS JOIN LATERAL ST_Dump(ST_GeneratePoints(b.geom, w.n, :seed)) d
        ORDER BY w.code, d.path
    """), {"codes": list(wanted), "counts": list(wanted.values()), "seed": SEED}).all()
    points: dict[str, list] = {}
    for r in rows:
        points.setdefault(r.code, []).append((r.lon, r.lat))
    for p in plans:
        p["point"] = points[p["grid"]["code"]].pop()


# --------------------------------------------------------------------------- cases


def _rating(rng: random.Random, late_rate: float, late: bool) -> int:
    """A resident's rating (0-10): most are satisfied, less so where cases often run late,
    and least for a case that did."""
    mean = 9.6 - 3.0 * late_rate - (2.5 if late else 0.0)
    return max(0, min(10, round(rng.gauss(mean, 1.3))))


def _run_case(run: _Run, plan: dict, known: dict) -> str:
    """Take the case in and move it as far as its plan goes before ``now``; its final state."""
    rng, category, late = plan["rng"], known[plan["category"]], plan["late"]
    handler = WORKER_ACTOR if category["layer_key"] == "comprehensive" else HANDLER_ACTOR
    reporter = None if plan["channel"] in ("patrol", "department", "lower_level") else \
        {"name": rng.choice("王李张刘陈杨黄赵吴周") + rng.choice(("先生", "女士")) + "（演示）"}
    data = {"category": plan["category"], "description": f"{plan['grid']['name']}：{plan['description']}{MARK}",
            "lon": plan["point"][0], "lat": plan["point"][1], "channel": plan["channel"], "reporter": reporter,
            "occurred_at": plan["reported"] - dt.timedelta(minutes=rng.randint(5, 180)),
            "attributes": _answers(category)}
    with acting(run.session, WORKER_ACTOR if plan["channel"] == "patrol" else CENTRE_ACTOR):
        case = _Case(run, rng, intake(run.session, data, run.settings, at=plan["reported"]), category)
    fate = plan["fate"]
    # accept (受理)
    if fate == "void" and rng.random() < 0.7:
        case.go("void", case.end_of_step(False), note="重复上报，已并案处理")
        return case.state
    if not case.go("accepted", case.end_of_step(late == "accept")):
        return case.state
    # dispatch (立案, 派遣)
    end = case.end_of_step(late == "dispatch")
    if fate == "void":
        case.go("void", case.then(end, 0.3, 0.8), note="经核实不属于受理范围")
        return case.state
    if not (case.go("filed", case.then(end, 0.2, 0.6)) and case.go("dispatched", end)):
        return case.state
    # handle (处置, 反馈)
    end = case.end_of_step(late == "handle")
    if not case.go("in_progress", case.then(end, 0.05, 0.3), actor=handler):
        return case.state
    if fate == "stuck":  # never handled: it climbs the levels and stays overdue
        case.catch_up(run.now)
        return case.state
    if fate in ("parked", "parked_back"):
        if not case.go("parked", case.then(end, 0.3, 0.7), note="涉及历史遗留问题，需统筹解决，暂挂账"):
            return case.state
        if fate == "parked":
            return case.state
        back = run.cal.add(case.last, rng.uniform(16, 120), "working_hours")
        if not case.go("in_progress", back, actor=handler, note="条件具备，恢复处置"):
            return case.state
        end = case.end_of_step(False)
    if fate == "escalated" and case.escalate(case.then(end, 0.2, 0.5), "村级协调未果，提请上级协调处置"):
        end = case.end_of_step(late == "handle")  # the handling limit starts again up there
    if not case.go("handled", end, actor=handler, note="已处置完毕，附处置照片"):
        return case.state
    # verify (核查, 结案)
    end = case.end_of_step(late == "verify")
    if not case.go("verified", case.then(end, 0.3, 0.8)):
        return case.state
    how = _choice(rng, {"closing": 62, "callback": 26, "none": 12})
    rating = _rating(rng, plan["late_rate"], late is not None)
    if not case.go("closed", end, satisfaction=rating if how == "closing" else None):
        return case.state
    if how == "callback":
        when = run.cal.add(case.last, rng.uniform(2, 16), "working_hours")
        if when <= run.now:
            with acting(run.session, CENTRE_ACTOR):
                workflow.callback(run.session, case.id, rating, run.settings, note="电话回访", at=when)
    return case.state


def _answers(category: dict) -> dict:
    """Answers to the category's required questions (a category may ask some)."""
    out = {}
    for d in category.get("attributes") or []:
        if not d.get("required"):
            continue
        if d["datatype"] in ("singlevaluelist", "multivaluelist"):
            out[d["code"]] = d["values"][0]["key"]
        elif d["datatype"] == "number":
            out[d["code"]] = 1
        elif d["datatype"] == "datetime":
            out[d["code"]] = "2026-01-01T09:00:00+08:00"
        else:
            out[d["code"]] = "演示"
    return out


# --------------------------------------------------------------------------- patrols


def _patrols(run: _Run, grids: list[dict], start: dt.date) -> int:
    """Weekly patrols of the environment grids from ``start`` to now, some grids behind."""
    rng = random.Random(f"{SEED}:patrols")
    shuffled = [PATROL_RATES[i % len(PATROL_RATES)] for i in range(len(grids))]
    rng.shuffle(shuffled)
    rates = dict(zip([g["code"] for g in grids], shuffled, strict=True))
    done = 0
    monday = start - dt.timedelta(days=start.weekday())
    with acting(run.session, WORKER_ACTOR):
        while monday <= run.now.astimezone(run.tz).date():
            week = [monday + dt.timedelta(days=k) for k in range(7)]
            workdays = [d for d in week if run.cal.is_workday(d) and d >= start] or [d for d in week if d >= start]
            for g in grids:
                times = (rng.random() < rates[g["code"]]) + (rng.random() < 0.08)
                for day in sorted(rng.sample(workdays, min(times, len(workdays)))):
                    hour = rng.uniform(9.0, 16.5)
                    at = dt.datetime.combine(day, dt.time(int(hour), int(hour % 1 * 60)), tzinfo=run.tz)
                    if at > run.now:
                        continue
                    note = "例行巡查，未发现异常" if rng.random() < 0.85 else "巡查发现问题，已现场督促整改"
                    patrols.record_patrol(run.session, {"grid": g["code"], "at": at, "notes": note + MARK},
                                          run.settings)
                    done += 1
            monday += dt.timedelta(days=7)
    return done


# --------------------------------------------------------------------------- score sheet


def _score_sheet(run: _Run, villages: list[dict]) -> dict:
    """The town's monthly sheet for its villages: the last months computed, assessed by hand,
    reviewed and frozen, the very last one published; the current month computed."""
    session = run.session
    rng = random.Random(f"{SEED}:scores")
    with acting(session, PLANNER_ACTOR):
        scheme = scoring.create_scheme(session, {"area": TOWN, "name": SCHEME_NAME, "total": 100,
                                                 "target_kind": "village", "period_kind": "month",
                                                 "items": SCHEME_ITEMS})
    current = period_containing(run.now.astimezone(run.tz).date(), "month")
    done: list[Period] = previous(current, FROZEN_MONTHS + 1)[:-1]
    for p in [*done, current]:
        with acting(session, PLANNER_ACTOR):
            scoring.compute_period(session, run.settings, scheme["id"], p.name, now=run.now)
        for village in rng.sample(villages, min(2, len(villages))):
            finding, points = rng.choice(INSPECTION_FINDINGS)
            with acting(session, CENTRE_ACTOR):
                scoring.enter_manual(session, scheme["id"], p.name, {
                    "target": village["code"], "item": "inspection", "points": points,
                    "reason": f"{finding}{MARK}", "evidence": f"青禾镇网格中心督查通报 {p.name} 第{rng.randint(1, 4)}期（演示）"})
        if p != current:
            with acting(session, PLANNER_ACTOR):
                scoring.review_period(session, scheme["id"], p.name)
                scoring.freeze_period(session, run.settings, scheme["id"], p.name)
    published = done[-1].name if done else None
    if published:
        with acting(session, ADMIN_ACTOR):
            scoring.publish_period(session, scheme["id"], published, red=3, black=3)
    return {"scheme_id": scheme["id"], "frozen": [p.name for p in done], "published": published,
            "computed": current.name}


# --------------------------------------------------------------------------- entry points


def load_cases(session: Session, settings: Settings, *, now: dt.datetime | None = None,
               per_month: int = PER_MONTH) -> dict:
    """Make the demo town's year of cases (about ``per_month`` a month), its patrols and its
    score sheet (see the module docstring), in the caller's transaction. Returns what was made."""
    now = now or dt.datetime.now(dt.UTC)
    run = _Run(session, settings, now)
    known = {k: c for k, c in categories(session).items() if k in CATEGORIES}
    villages, grids = _villages(session), _grids(session)
    if not (villages and grids and known):
        raise GeogridError(f"the demo town {TOWN} has no villages, grids or known categories: load its areas first")
    plans = _plans(villages, grids, known, run.cal, now, per_month)
    _points(session, plans)
    states: dict[str, int] = {}
    for plan in plans:
        state = _run_case(run, plan, known)
        states[state] = states.get(state, 0) + 1
    first = _add_months(now.astimezone(run.tz).date().replace(day=1), -MONTHS)
    patrolled = _patrols(run, _environment_grids(session), first)
    sheet = _score_sheet(run, villages)
    return {"cases": len(plans), "states": states, "patrols": patrolled, "since": first, **sheet}


def summary(session: Session, settings: Settings) -> dict:
    """What the demo town holds of assessment data now: cases (the local day of the first,
    how many open, overdue now), patrols, score sheets and their frozen and published periods."""
    prefix = {"p": TOWN + "%", "tz": settings.timezone}
    cases = session.execute(text("""
        SELECT count(*) AS cases, min(i.reported_at AT TIME ZONE :tz)::date AS since,
               count(*) FILTER (WHERE i.state NOT IN ('closed', 'void')) AS open,
               count(*) FILTER (WHERE i.state NOT IN ('closed', 'void', 'parked') AND i.due_at < now()) AS overdue
        FROM incident i JOIN area a ON a.id = coalesce(i.grid_id, i.authority_id) WHERE a.code LIKE :p
    """), prefix).mappings().one()
    patrolled = session.execute(text("SELECT count(*) FROM patrol p JOIN area a ON a.id = p.area_id "
                                     "WHERE a.code LIKE :p"), prefix).scalar_one()
    sheets = session.execute(text("""
        SELECT s.name, max(p.name) FILTER (WHERE p.state = 'frozen') AS frozen,
               max(p.name) FILTER (WHERE p.published) AS published, max(p.name) AS latest
        FROM assessment_scheme s JOIN area a ON a.id = s.area_id LEFT JOIN assessment_period p ON p.scheme_id = s.id
        WHERE a.code = :town GROUP BY s.id ORDER BY s.id
    """), {"town": TOWN}).mappings().all()
    return {**cases, "patrols": patrolled, "sheets": [dict(s) for s in sheets]}
