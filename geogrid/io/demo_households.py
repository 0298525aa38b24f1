"""Synthetic household register, contact links, visits and requests for one demo village,
杨家村 (``339901100004``, 11 grids): the base data a grid worker collects first
("基础数据全摸清"), so that the register, the contact cards, the visit quotas and the
requests without a map point have something to show.

- **Register.** Buildings and households inside each grid of the village (as many
  households as the grid's typed count, residents adding up to its typed population, so
  the register agrees with the numbers it replaces), written as the spreadsheet a county
  keeps (``register.csv``, one row per resident; ``buildings.csv``) and loaded through the
  same import as a user's file. About one resident in twelve carries a special-group tag.
- **Contact (联户, 1+1+n).** Party-member cadres (联户党员, a post of their own) each hold a
  few central households, each with about five radiating ones; hardship households are
  linked to the grid's full-time worker. A few households are left without a cadre and
  a few cadres hold too many, as the structure check should find.
- **Visits.** A year of visits up to ``now``, most on quota; some cadres fall behind in
  the last months, so the "behind" list has names on it.
- **Requests without a point.** Consultations, suggestions and complaints tied to a
  household or to the village, taken in through the real intake at explicit moments:
  some answered on the spot (即办), some with a promised date (承诺), a few handled jointly
  (联办) or owned by a leader (包案).

Names, ID numbers and phones are synthetic: ID numbers use the demo county's own code
``339901``, which no real place has; phones start 199 0000. The same seed and ``now``
give the same data.
"""

from __future__ import annotations

import csv
import datetime as dt
import random
from pathlib import Path

import numpy as np
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from geogrid.core.settings import Settings
from geogrid.io.demo_data import GIVEN, SURNAMES
from geogrid.people.due import refresh_due

VILLAGE = "339901100004"
VILLAGE_NAME = "杨家村"
TOWN_NAME = "青禾镇"
SEED = 20261125
CADRE_ROLE = ("contact_cadre", "联户党员", "Party-member contact cadre")
HOUSEHOLDS_PER_BUILDING = (1, 1, 1, 2, 2, 3)  # a village: mostly houses of one family
TAG_SHARE = 1 / 12
KINDS = {"户籍": 0.82, "流动": 0.12, "人户分离": 0.06}
TAGS = {"dibao": 0.18, "empty_nest": 0.2, "living_alone": 0.14, "left_behind_child": 0.16, "disabled": 0.16,
        "wubao": 0.04, "tekun": 0.04, "community_correction": 0.04, "petitioner": 0.04}
RELATIONS = ("配偶", "子女", "子女", "父母", "孙子女", "兄弟姐妹")
CHECK_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CODES = "10X98765432"


def _id_number(rng: random.Random, born: dt.date, gender: str, taken: set[str]) -> str:
    """A well-formed 18-character ID number of the demo county (GB 11643 check digit), not in ``taken``."""
    while True:
        seq = rng.randrange(0, 500) * 2 + (1 if gender == "M" else 0)
        body = f"339901{born:%Y%m%d}{seq:03d}"
        number = body + CHECK_CODES[sum(int(c) * w for c, w in zip(body, CHECK_WEIGHTS, strict=True)) % 11]
        if number not in taken:
            taken.add(number)
            return number


def _name(rng: random.Random, surname: str | None = None) -> str:
    return (surname or rng.choice(SURNAMES)) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))


def _phone(rng: random.Random) -> str:
    return f"1990000{rng.randrange(10_000):04d}"


def _points_in(rng: np.random.Generator, geom, n: int) -> np.ndarray:
    """``n`` points inside ``geom`` (rejection sampling in its bounding box)."""
    x0, y0, x1, y1 = geom.bounds
    shapely.prepare(geom)
    out: list[np.ndarray] = []
    while sum(len(o) for o in out) < n:
        xy = rng.uniform((x0, y0), (x1, y1), size=(max(4 * n, 64), 2))
        out.append(xy[shapely.contains_xy(geom, xy[:, 0], xy[:, 1])])
    return np.round(np.concatenate(out)[:n], 7)


def village_grids(session: Session) -> list[dict]:
    """The village's comprehensive grids in force: code, name, typed households and population, shape."""
    rows = session.execute(text("""
        SELECT a.code, a.name, coalesce(a.households, 400) AS households, coalesce(a.population, 1300) AS population,
               ST_AsBinary(b.geom) AS wkb
        FROM area a JOIN area v ON v.id = a.parent_id JOIN boundary b ON b.area_id = a.id AND upper_inf(b.valid)
        WHERE v.code = :v AND a.layer_key = 'comprehensive' AND a.retired_at IS NULL ORDER BY a.code
    """), {"v": VILLAGE}).mappings()
    return [{**r, "geom": shapely.from_wkb(r["wkb"])} for r in rows]


def write_register(grids: list[dict], out_dir: Path, *, seed: int = SEED,
                   as_of: dt.date | None = None) -> dict[str, Path]:
    """Write ``buildings.csv`` and ``register.csv`` for ``grids`` into ``out_dir``."""
    rng, nrng = random.Random(seed), np.random.default_rng(seed)
    as_of = as_of or dt.date.today()
    buildings, residents = [], []
    taken: set[str] = set()
    group = 0
    for g in grids:
        n_households, population = int(g["households"]), max(int(g["population"]), int(g["households"]))
        sizes = [rng.choice(HOUSEHOLDS_PER_BUILDING) for _ in range(n_households)]
        per_building: list[int] = []
        while sum(per_building) < n_households:
            per_building.append(sizes[len(per_building)])
        per_building[-1] -= sum(per_building) - n_households
        points = _points_in(nrng, g["geom"], len(per_building))
        # Members: everyone has a head; the rest of the population spread at random.
        members = [1] * n_households
        for i in nrng.integers(0, n_households, population - n_households):
            members[i] += 1
        h = 0
        for b, (count, (x, y)) in enumerate(zip(per_building, points, strict=True)):
            group += 1
            bref = f"{g['code']}-B{b + 1:03d}"
            buildings.append({"楼栋编码": bref, "名称": f"{VILLAGE_NAME}{group}号", "镇街": TOWN_NAME, "村社区": VILLAGE_NAME,
                              "街路巷": f"{VILLAGE_NAME}{(group - 1) // 40 + 1}组", "门牌号": f"{group}号",
                              "经度": f"{x:.7f}", "纬度": f"{y:.7f}"})
            for _ in range(count):
                h += 1
                kind = rng.choices(list(KINDS), list(KINDS.values()))[0]
                surname = rng.choice(SURNAMES)
                head_gender = rng.choice("MMMF")
                base = {"户编号": f"{g['code']}-H{h:04d}", "楼栋编码": bref, "镇街": TOWN_NAME, "村社区": VILLAGE_NAME,
                        "街路巷": buildings[-1]["街路巷"], "门牌号": buildings[-1]["门牌号"], "单元": "", "室": "",
                        "户类型": kind, "出租": "是" if kind == "流动" or rng.random() < 0.08 else "否"}
                head_born = dt.date(rng.randrange(1940, 1996), rng.randrange(1, 13), rng.randrange(1, 29))
                head = _name(rng, surname)
                people = [(head, "户主", head_gender, head_born)]
                for _ in range(members[h - 1] - 1):
                    relation = rng.choice(RELATIONS)
                    born = {"配偶": head_born + dt.timedelta(days=rng.randrange(-1500, 1500)),
                            "子女": head_born + dt.timedelta(days=rng.randrange(8000, 12000)),
                            "孙子女": head_born + dt.timedelta(days=rng.randrange(16000, 20000)),
                            "父母": head_born - dt.timedelta(days=rng.randrange(8000, 11000)),
                            "兄弟姐妹": head_born + dt.timedelta(days=rng.randrange(-2500, 2500))}[relation]
                    born = min(born, as_of - dt.timedelta(days=30))
                    gender = "F" if relation == "配偶" and head_gender == "M" else rng.choice("MF")
                    people.append((_name(rng, surname if relation != "配偶" else None), relation, gender, born))
                for name, relation, gender, born in people:
                    tag = ""
                    age = (as_of - born).days // 365
                    if rng.random() < TAG_SHARE:
                        key = rng.choices(list(TAGS), list(TAGS.values()))[0]
                        if key == "left_behind_child" and age >= 16 or key in ("empty_nest", "living_alone") and age < 60:
                            key = "dibao"
                        since = as_of - dt.timedelta(days=rng.randrange(60, 2000))
                        tag = f"{key}:{since.isoformat()}"
                    residents.append({**base, "户主": head, "姓名": name, "与户主关系": relation,
                                      "性别": "男" if gender == "M" else "女", "出生日期": born.isoformat(),
                                      "身份证号": _id_number(rng, born, gender, taken), "电话": _phone(rng) if age >= 18 else "",
                                      "特殊人群": tag})
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"buildings": out_dir / "buildings.csv", "register": out_dir / "register.csv"}
    for key, rows in (("buildings", buildings), ("register", residents)):
        with paths[key].open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return paths


FINDINGS = ("家中一切正常，老人身体尚可", "反映村道路灯不亮，已记录", "询问医保缴费事宜，已解答", "家中有人外出务工，留守老人生活自理",
            "反映邻居家狗夜间吠叫扰民", "子女就学问题咨询", "房屋漏雨，需协调维修", "关心村里垃圾分类，提出建议")
MEASURES = ("宣传防诈骗知识", "登记诉求，转村委会办理", "现场解答，群众满意", "联系村医上门", "协调邻里，约定改正",
            "下次走访回访落实情况")


def _cadres(session: Session, grids: list[dict], households: list[dict], rng: random.Random,
            start: dt.date) -> dict[str, list[int]]:
    """Create the village's contact cadres (one post each in their grid) and return them by grid."""
    from geogrid.people import assignments, persons

    if CADRE_ROLE[0] not in assignments.roles(session):
        assignments.add_role(session, *CADRE_ROLE, rank=90, responsible=False)
    per_grid: dict[str, int] = {}
    for h in households:
        per_grid[h["grid"]] = per_grid.get(h["grid"], 0) + 1
    people, posts = [], []
    for g in grids:
        # The first grid has too few cadres: theirs hold more households than the limit.
        for k in range(max(1, round(per_grid.get(g["code"], 0) / (34 if g is grids[0] else 22)))):
            ref = f"demo-lh-{g['code'][-3:]}-{k + 1:02d}"
            people.append({"ref": ref, "name": _name(rng), "phone": _phone(rng), "name_public": True,
                           "phone_public": False, "photo_public": False, "notes": "联户党员（演示数据）"})
            posts.append({"person": ref, "area": g["code"], "role": CADRE_ROLE[0], "start_date": start.isoformat(),
                          "duties": "联系中心户及辐射户，定期走访，收集反映民情"})
    persons.create_persons(session, people)
    assignments.create_assignments(session, posts)
    rows = session.execute(text("SELECT p.id, a.code FROM person p JOIN assignment s ON s.person_id = p.id "
                                "JOIN area a ON a.id = s.area_id WHERE p.ref = ANY(:refs) ORDER BY p.ref"),
                           {"refs": [p["ref"] for p in people]}).all()
    out: dict[str, list[int]] = {}
    for pid, code in rows:
        out.setdefault(code, []).append(pid)
    return out


def _links(households: list[dict], cadres: dict[str, list[int]], workers: dict[str, int], rng: random.Random,
           start: dt.date) -> list[dict]:
    """1+1+n links per grid: each cadre's central households with about five radiating ones;
    hardship households with the grid's worker; a few households left without a cadre."""
    links = []
    by_grid: dict[str, list[dict]] = {}
    for h in households:
        by_grid.setdefault(h["grid"], []).append(h)
    for code, members in by_grid.items():
        rng.shuffle(members)
        unlinked = max(1, len(members) // 40)
        queue = members[unlinked:]
        hardship = [h for h in queue if h["hardship"]]
        queue = [h for h in queue if not h["hardship"]]
        if code in workers:
            links += [{"person_id": workers[code], "household_id": h["id"], "kind": "hardship", "central_id": None,
                       "start_date": start} for h in hardship]
        else:  # a grid without a full-time worker today: its cadres take them in their groups
            queue += hardship
        group_cadres = cadres.get(code, [])
        c = 0
        while queue and group_cadres:
            cadre = group_cadres[c % len(group_cadres)]
            central, radiating = queue[0], queue[1:1 + rng.choice((4, 5, 5, 6))]
            queue = queue[1 + len(radiating):]
            links.append({"person_id": cadre, "household_id": central["id"], "kind": "central", "central_id": None,
                          "start_date": start})
            links += [{"person_id": cadre, "household_id": h["id"], "kind": "radiating", "central_id": central["id"],
                       "start_date": start} for h in radiating]
            c += 1
    return links


def _visits(links: list[dict], households: dict[int, dict], rng: random.Random, start: dt.date,
            today: dt.date, late: set[int]) -> list[dict]:
    """A year of visits: central and hardship households every three to four weeks, each
    central household's radiating ones together at every second visit, households with a
    tagged resident as often as their group asks; a few cadres (and those in ``late``) stop
    in the last months."""
    by_cadre: dict[int, list[dict]] = {}
    for link in links:
        by_cadre.setdefault(link["person_id"], []).append(link)
    visits = []
    for cadre, held in by_cadre.items():
        stops = today - dt.timedelta(days=rng.randrange(50, 120)) if rng.random() < 0.12 else today
        if cadre in late:
            stops = today - dt.timedelta(days=26)
        groups: dict[int, list[int]] = {}
        for link in held:
            if link["kind"] == "radiating":
                groups.setdefault(link["central_id"], []).append(link["household_id"])
        for link in held:
            every = households[link["household_id"]]["every"]
            if link["kind"] == "radiating" and not every:
                continue
            # Tagged residents set the pace where they ask for more than the link does.
            gap = (max(5, every * 2 // 3), max(6, every - 1)) if every and every < 31 else (18, 30)
            day = start + dt.timedelta(days=rng.randrange(0, gap[0]))
            n = 0
            while day <= stops:
                visits.append({"visited_on": day, "person_id": cadre, "households": [link["household_id"]]})
                if link["kind"] == "central" and link["household_id"] in groups and n % 2 == 0:
                    visits.append({"visited_on": min(day + dt.timedelta(days=1), stops), "person_id": cadre,
                                   "households": groups[link["household_id"]]})
                day += dt.timedelta(days=rng.randrange(*gap))
                n += 1
    for v in visits:
        v["grid_id"] = households[v["households"][0]]["grid_id"]
        v["findings"] = rng.choice(FINDINGS) + "（演示数据）"
        v["measures"] = rng.choice(MEASURES)
    return visits


def _store_links_and_visits(session: Session, links: list[dict], visits: list[dict]) -> None:
    """Insert the links and visits in bulk (set-based; the demo writes a year at once)."""
    session.execute(text("INSERT INTO contact_link (person_id, household_id, kind, central_id, start_date) "
                         "VALUES (:person_id, :household_id, :kind, :central_id, :start_date)"), links)
    ids = session.execute(text("SELECT nextval('visit_id_seq') FROM generate_series(1, :n)"),
                          {"n": len(visits)}).scalars().all()
    session.execute(text("INSERT INTO visit (id, visited_on, person_id, area_id, findings, measures, created_by) "
                         "VALUES (:id, :visited_on, :person_id, :grid_id, :findings, :measures, 'demo-gridworker')"),
                    [{**v, "id": i} for i, v in zip(ids, visits, strict=True)])
    session.execute(text("INSERT INTO visit_household (visit_id, household_id, visited_on) "
                         "VALUES (:visit_id, :household_id, :visited_on)"),
                    [{"visit_id": i, "household_id": h, "visited_on": v["visited_on"]}
                     for i, v in zip(ids, visits, strict=True) for h in v["households"]])


REQUEST_CATEGORY = {
    "key": "livelihood", "name_zh": "民生诉求", "name_en": "Livelihood request", "group_key": "governance",
    "layer_key": "comprehensive", "department": "便民服务中心", "public": False, "auto_escalate": False,
    "time_limits": {"accept": [4, "working_hours"], "dispatch": [1, "working_days"], "handle": [5, "working_days"],
                    "verify": [2, "working_days"]},
}
# (request type, category, handling, what the resident asked, the answer or work)
REQUESTS = (
    ("consultation", "livelihood", "immediate", "咨询城乡居民医保缴费时间和标准", "当场告知缴费时间及标准，已解答"),
    ("consultation", "livelihood", "immediate", "询问高龄补贴申领需要哪些材料", "告知所需材料，代为预约村便民服务中心"),
    ("suggestion", "livelihood", "promised", "建议在村口增设公交候车亭", "已报镇交通办，承诺一个月内答复"),
    ("complaint", "sanitation", "promised", "反映组内垃圾收集点清运不及时，气味大", "已联系保洁公司，承诺三天内整改"),
    ("complaint", "dispute", "joint", "反映邻居加盖房屋影响采光，双方协商未果", "综治中心牵头，执法队联合处理"),
    ("suggestion", "livelihood", "standard", "建议文化礼堂晚上开放供老人活动", "转村委会研究"),
    ("complaint", "safety_hazard", "standard", "反映组内老旧电线杆倾斜，存在安全隐患", "上报应急管理部门处置"),
)
CHANNELS = ("visit", "hotline_12345", "mailbox", "walk_in")


def _requests(session: Session, settings: Settings, households: list[dict], rng: random.Random,
              now: dt.datetime) -> int:
    """About five requests a month over the year, tied to a household (most) or the village,
    through the real intake and workflow at explicit moments."""
    from geogrid.incidents import categories, workflow
    from geogrid.incidents.intake import intake
    from geogrid.io.demo_cases import CENTRE_ACTOR, WORKER_ACTOR, acting

    if REQUEST_CATEGORY["key"] not in categories.categories(session):
        categories.create_category(session, REQUEST_CATEGORY)
    owner = session.execute(text("SELECT p.id FROM person p JOIN assignment s ON s.person_id = p.id "
                                 "JOIN area a ON a.id = s.area_id WHERE s.role_key = 'instructor' "
                                 "AND a.code LIKE :v ORDER BY p.id LIMIT 1"), {"v": VILLAGE + "%"}).scalar()
    made = 0
    for month_back in range(12, -1, -1):
        for _ in range(5):
            when = now - dt.timedelta(days=30 * month_back + rng.uniform(2, 28))
            when = when.replace(hour=rng.randrange(8, 17), minute=rng.randrange(60))
            if when.weekday() >= 5:  # residents call and visit on working days mostly
                when -= dt.timedelta(days=when.weekday() - 4)
            if when >= now - dt.timedelta(hours=2):
                continue
            kind, category, handling, asked, answer = rng.choice(REQUESTS)
            data = {"category": category, "description": asked + "（演示数据）", "channel": rng.choice(CHANNELS),
                    "request_type": kind, "handling": handling, "occurred_at": when.isoformat()}
            if rng.random() < 0.85:
                data["household_id"] = rng.choice(households)["id"]
            else:
                data["area"] = VILLAGE
            if handling == "immediate":
                data["resolution"] = answer
            elif handling == "promised":
                data["promised_at"] = (when + dt.timedelta(days=rng.choice((3, 7, 20)))).date().isoformat()
            elif handling == "joint":
                data["co_departments"] = ["综合执法局"]
                data["owner_person_id"] = owner
            with acting(session, CENTRE_ACTOR):
                case = intake(session, data, settings, at=when)
            made += 1
            if handling == "immediate":
                continue
            # The rest run through the workflow as far as their age allows: a day a step.
            steps = [("accepted", CENTRE_ACTOR), ("filed", CENTRE_ACTOR), ("dispatched", CENTRE_ACTOR),
                     ("in_progress", WORKER_ACTOR), ("handled", WORKER_ACTOR), ("verified", CENTRE_ACTOR),
                     ("closed", CENTRE_ACTOR)]
            moment = when
            for to, actor in steps:
                moment += dt.timedelta(hours=rng.uniform(1, 30))
                if moment >= now:
                    break
                with acting(session, actor):
                    workflow.transition(session, case["id"], to, settings, at=moment,
                                        note=answer if to == "handled" else None,
                                        satisfaction=rng.choice((7, 8, 9, 10, 5)) if to == "closed" else None)
    return made


def load_households(session: Session, settings: Settings, out_dir: Path, *, now: dt.datetime) -> dict:
    """Generate the village's register files into ``out_dir`` and load them through the register
    import, then its contact links, a year of visits and requests up to ``now`` (see the module
    docstring), in the caller's transaction. Returns what was made."""
    from zoneinfo import ZoneInfo

    from geogrid.people import register_import

    rng = random.Random(SEED)
    today = now.astimezone(ZoneInfo(settings.timezone)).date()
    grids = village_grids(session)
    if not grids:
        return {"households": 0, "residents": 0, "links": 0, "visits": 0, "requests": 0}
    paths = write_register(grids, Path(out_dir), as_of=today)
    report = register_import.import_register(session, paths["register"], settings, buildings=paths["buildings"])
    households = [dict(r) for r in session.execute(text("""
        SELECT h.id, g.code AS grid, h.grid_id,
               EXISTS (SELECT 1 FROM resident r JOIN resident_tag t ON t.resident_id = r.id
                       WHERE r.household_id = h.id AND t.group_key IN ('dibao', 'tekun', 'wubao')) AS hardship,
               (SELECT min(sg.visit_every_days) FROM resident r JOIN resident_tag t ON t.resident_id = r.id
                JOIN special_group sg ON sg.key = t.group_key WHERE r.household_id = h.id) AS every
        FROM household h JOIN area g ON g.id = h.grid_id JOIN area v ON v.id = g.parent_id
        WHERE v.code = :v AND h.retired_at IS NULL ORDER BY h.id
    """), {"v": VILLAGE}).mappings()]
    start = today - dt.timedelta(days=365)
    cadres = _cadres(session, grids, households, rng, start)
    workers = dict(session.execute(text("""
        SELECT DISTINCT ON (a.code) a.code, s.person_id FROM assignment s JOIN area a ON a.id = s.area_id
        WHERE s.role_key = 'grid_worker_fulltime' AND a.code LIKE :v AND s.period @> CAST(:d AS date)
        ORDER BY a.code, s.person_id
    """), {"v": VILLAGE + "%", "d": today}).all())
    links = _links(households, cadres, workers, rng, start)
    # The demo grid worker (the first grid's full-time worker) is a little behind: its day list shows it.
    first_worker = {workers[grids[0]["code"]]} if grids[0]["code"] in workers else set()
    visits = _visits(links, {h["id"]: h for h in households}, rng, start, today - dt.timedelta(days=1), first_worker)
    _store_links_and_visits(session, links, visits)
    refresh_due(session, [h["id"] for h in households], settings)
    requests = _requests(session, settings, households, rng, now)
    return {"households": report["households"], "residents": report["residents"], "links": len(links),
            "visits": len(visits), "requests": requests}


def summary(session: Session) -> dict:
    """What the demo village's register holds now."""
    return dict(session.execute(text("""
        SELECT (SELECT count(*) FROM household h JOIN area g ON g.id = h.grid_id WHERE g.code LIKE :v) AS households,
               (SELECT count(*) FROM resident r JOIN household h ON h.id = r.household_id JOIN area g ON g.id = h.grid_id
                WHERE g.code LIKE :v) AS residents,
               (SELECT count(*) FROM contact_link l JOIN household h ON h.id = l.household_id JOIN area g ON g.id = h.grid_id
                WHERE g.code LIKE :v) AS links,
               (SELECT count(*) FROM visit v JOIN area g ON g.id = v.area_id WHERE g.code LIKE :v) AS visits,
               (SELECT count(*) FROM incident i JOIN area a ON a.id = i.authority_id
                WHERE a.code LIKE :v AND i.geom IS NULL) AS requests
    """), {"v": VILLAGE + "%"}).mappings().one())
