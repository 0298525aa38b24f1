"""Load the synthetic demo jurisdiction (see :mod:`geogrid.io.demo_data`) through the same
import path as any user file."""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
from pathlib import Path

from sqlalchemy import Engine, text

from geogrid.access import accounts
from geogrid.areas import importing
from geogrid.core.settings import Settings
from geogrid.db import engine as db
from geogrid.incidents import steps
from geogrid.io import files
from geogrid.people import assignments, persons
from geogrid.publication import generations

COUNTY = "339901"
TOWN = "339901100"
# The demo's boundaries have been in force since the last re-division, so that
# historical incidents can be imported and routed.
DEMO_SINCE = dt.datetime(2021, 1, 1, tzinfo=dt.UTC)
FILES_IN_ORDER = ("areas", "grids", "environment_grids")
# One account per role, scoped as such accounts would be in a real town.
ACCOUNTS = (
    ("demo-admin", "admin", None, None),
    ("demo-planner", "planner", "339901100", None),
    ("demo-inspector", "inspector", "339901100", None),
    ("demo-gridworker", "grid_worker", "339901100001", None),
    ("demo-handler", "department_handler", COUNTY, "生态环境分局"),
)
# The demo grid worker also works in 杨家村, the village with a household register, where it
# may read residents (resident_data).
EXTRA_GRANTS = (
    ("demo-gridworker", "grid_worker", "339901100004"),
    ("demo-gridworker", "resident_data", "339901100004"),
)


def load(engine: Engine, settings: Settings, out_dir: Path, *, reset: bool = False,
         now: dt.datetime | None = None, cases: bool = True) -> str:
    """Generate the demo files (when missing) and load them, once; ``reset`` reloads. A first
    load also makes the demo town's year of cases, patrols and score sheet up to ``now``
    (default: now; see :mod:`geogrid.io.demo_cases`), unless ``cases`` is False (about 15 s
    less, for callers that want an empty case register)."""
    from geogrid.io import demo_cases, demo_data, demo_households

    out_dir = Path(out_dir)
    paths = demo_data.generate(out_dir)
    with db.transaction(engine) as session:
        loaded = session.execute(text("SELECT count(*) FROM area WHERE code LIKE :p"), {"p": COUNTY + "%"}).scalar_one()
        people = json.loads(Path(paths["persons"]).read_text(encoding="utf-8"))
        if loaded and reset:
            wipe(session, [p["ref"] for p in people])
            loaded = 0
        if not loaded:
            for name in FILES_IN_ORDER:
                read = files.read_features(paths[name])
                importing.import_areas(session, read.records, read.geoms, settings, note=f"demo {name}",
                                   valid_from=DEMO_SINCE)
            persons.create_persons(session, people)
            posts = json.loads(Path(paths["assignments"]).read_text(encoding="utf-8"))
            named = dict(session.execute(text("SELECT name, code FROM area WHERE code LIKE :p AND layer_key <> 'admin'"),
                                         {"p": COUNTY + "%"}).all())
            for post in posts:  # grids that had no code in the file got one on import
                if "area_name" in post:
                    post["area"] = named[post.pop("area_name")]
            assignments.create_assignments(session, posts)
            if cases:
                demo_cases.load_cases(session, settings, now=now or dt.datetime.now(dt.UTC))
                demo_households.load_households(session, settings, out_dir / "register",
                                                now=now or dt.datetime.now(dt.UTC))
                steps.catch_up(session, settings.timezone)  # the cases' facts and monthly sums, now
        # The public sees what a planner published: the demo starts with every layer published
        # (also a demo loaded before publication existed).
        published = session.execute(text("SELECT count(*) FROM published_area WHERE code LIKE :p"),
                                    {"p": COUNTY + "%"}).scalar_one()
        if not published:
            for layer in sorted(counts_by_layer(session)):
                generations.publish(session, COUNTY, layer=layer, note="演示数据首次公示")
        passwords = _accounts(session, settings)
        # The demo grid worker is a person too: the full-time worker of 杨家村's first grid, whose
        # day list (GET /api/me/today) shows the visits and patrols due.
        session.execute(text("""
            UPDATE account SET person_id = (
                SELECT s.person_id FROM assignment s JOIN area a ON a.id = s.area_id
                WHERE a.code LIKE '339901100004%' AND s.role_key = 'grid_worker_fulltime' ORDER BY a.code LIMIT 1)
            WHERE username = 'demo-gridworker' AND person_id IS NULL
        """))
        register = demo_households.summary(session)
        counts = counts_by_layer(session)
        assigned = session.execute(text("SELECT count(*) FROM assignment s JOIN area a ON a.id = s.area_id "
                                        "WHERE a.code LIKE :p"), {"p": COUNTY + "%"}).scalar_one()
        assessed = demo_cases.summary(session, settings)
    state = "already loaded" if loaded else "loaded"
    logins = "\n".join(f"  {user:<16} {passwords[user]:<24} {role}" + (f" on {area}" if area else " everywhere")
                       + "".join(f", {r} on {a}" for u, r, a in EXTRA_GRANTS if u == user)
                       for user, role, area, _ in ACCOUNTS)
    return (f"demo jurisdiction 演示县 ({COUNTY}) {state} from {out_dir}: "
            + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
            + f"; {len(people)} persons, {assigned} assignments\n"
            + _assessment_line(assessed) + "\n"
            + f"register: {register['households']} households, {register['residents']} residents in 杨家村 "
            + f"(339901100004); {register['links']} contact links, {register['visits']} visits, "
            + f"{register['requests']} requests without a map point\n"
            + f"demo accounts (passwords kept in {_password_file(settings)}):\n{logins}\n"
            + f"log in: curl -d 'username=demo-planner&password=...' http://{settings.host}:{settings.port}/api/token, "
            + "or the Authorize button on /docs\n"
            + f"maps: http://{settings.host}:{settings.port}/maps/public?area={TOWN}  (public board)\n"
            + f"      http://{settings.host}:{settings.port}/maps/login?next=/maps/planner?area={TOWN}  (planner)\n"
            + f"      http://{settings.host}:{settings.port}/maps/login?next=/maps/inspector?area={TOWN}  (inspector)\n"
            + f"      http://{settings.host}:{settings.port}/maps/login?next=/maps/dashboard?area={TOWN}  "
            + "(assessment dashboard)")


def _assessment_line(assessed: dict) -> str:
    """What the demo town holds for assessment: cases, patrols, score sheets."""
    since = f" since {assessed['since']:%Y-%m}" if assessed["since"] else ""
    sheets = "; ".join(f"score sheet {s['name']}: " + (f"{s['published']} published (红黑榜), " if s["published"] else "")
                       + f"{s['latest']} computed" for s in assessed["sheets"]) or "no score sheet"
    hint = "" if assessed["cases"] else " (none: a demo loaded without them; --reset adds them)"
    return (f"assessment: {assessed['cases']} cases{since} in 青禾镇 ({TOWN}), {assessed['open']} open, "
            f"{assessed['overdue']} overdue now; {assessed['patrols']} patrols; {sheets}{hint}")


def _password_file(settings: Settings) -> Path:
    return Path(settings.state_dir) / "demo-accounts.json"


def _accounts(session, settings: Settings) -> dict[str, str]:
    """Create the demo accounts that are missing; passwords are random, kept (0600) in the
    state directory so that the next run can print them again."""
    path = _password_file(settings)
    known = json.loads(path.read_text()) if path.exists() else {}
    existing = set(session.execute(text("SELECT username FROM account WHERE username = ANY(:u)"),
                                   {"u": [a[0] for a in ACCOUNTS]}).scalars())
    for user, role, area, department in ACCOUNTS:
        if user in existing and user in known:
            continue
        known[user] = secrets.token_urlsafe(12)
        if user in existing:
            accounts.set_password(session, user, known[user])
        else:
            accounts.create_account(session, user, known[user], display_name=f"演示账号 {role}")
            accounts.grant(session, user, role, area, department)
            for extra_user, extra_role, extra_area in EXTRA_GRANTS:
                if extra_user == user:
                    accounts.grant(session, user, extra_role, extra_area)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(known, indent=1))
    os.chmod(path, 0o600)
    return known


def counts_by_layer(session) -> dict[str, int]:
    """The demo's current areas per layer."""
    return dict(session.execute(text(
        "SELECT layer_key, count(*) FROM area WHERE code LIKE :p AND retired_at IS NULL GROUP BY layer_key"),
        {"p": COUNTY + "%"}).all())


def wipe(session, person_refs: list[str]) -> None:
    """Remove the demo jurisdiction: the areas under the demo county, their cases, monthly
    sums, patrols and score sheets, and the demo persons and accounts."""
    params = {"p": COUNTY + "%"}
    demo_ids = "SELECT id FROM area WHERE code LIKE :p"
    # The register first: visits name cases, cases name households, households name grids.
    session.execute(text(f"DELETE FROM visit WHERE area_id IN ({demo_ids})"), params)
    session.execute(text(f"DELETE FROM incident WHERE household_id IN (SELECT id FROM household "
                         f"WHERE grid_id IN ({demo_ids}))"), params)
    session.execute(text("DELETE FROM contact_link WHERE person_id IN (SELECT id FROM person WHERE ref LIKE 'demo-lh-%')"))
    session.execute(text(f"DELETE FROM household WHERE grid_id IN ({demo_ids}) OR ref LIKE :p"), params)
    session.execute(text("DELETE FROM building WHERE ref LIKE :p"), params)
    session.execute(text("DELETE FROM assignment WHERE person_id IN (SELECT id FROM person WHERE ref LIKE 'demo-lh-%')"))
    session.execute(text("DELETE FROM person WHERE ref LIKE 'demo-lh-%'"))
    session.execute(text(f"DELETE FROM incident WHERE grid_id IN ({demo_ids}) OR authority_id IN ({demo_ids})"), params)
    session.execute(text(f"DELETE FROM patrol WHERE area_id IN ({demo_ids})"), params)
    # Steps and facts go with their incidents; the monthly sums and score sheets of the
    # demo's places stay behind unless removed (score sheets take their periods along).
    session.execute(text(f"DELETE FROM case_month WHERE place_id IN ({demo_ids})"), params)
    session.execute(text(f"DELETE FROM assessment_scheme WHERE area_id IN ({demo_ids})"), params)
    session.execute(text(f"UPDATE pollution_source SET grid_id = NULL WHERE grid_id IN ({demo_ids})"), params)
    session.execute(text("DELETE FROM assignment WHERE area_id IN (SELECT id FROM area WHERE code LIKE :p)"), params)
    session.execute(text("DELETE FROM person WHERE ref = ANY(:refs)"), {"refs": person_refs})
    session.execute(text("DELETE FROM account WHERE username = ANY(:u)"), {"u": [a[0] for a in ACCOUNTS]})
    session.execute(text(f"DELETE FROM published_area WHERE area_id IN ({demo_ids})"), params)
    session.execute(text(f"DELETE FROM publication WHERE root_id IN ({demo_ids})"), params)
    session.execute(text("DELETE FROM area WHERE code LIKE :p"), params)
