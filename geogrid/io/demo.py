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
from geogrid.io import files
from geogrid.people import assignments, persons

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


def load(engine: Engine, settings: Settings, out_dir: Path, *, reset: bool = False,
         now: dt.datetime | None = None, cases: bool = True) -> str:
    """Generate the demo files (when missing) and load them, once; ``reset`` reloads. A first
    load also makes the demo town's year of cases, patrols and score sheet up to ``now``
    (default: now; see :mod:`geogrid.io.demo_cases`), unless ``cases`` is False (about 15 s
    less, for callers that want an empty case register)."""
    from geogrid.io import demo_cases, demo_data

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
        passwords = _accounts(session, settings)
        counts = dict(session.execute(text(
            "SELECT layer_key, count(*) FROM area WHERE code LIKE :p AND retired_at IS NULL GROUP BY layer_key"),
            {"p": COUNTY + "%"}).all())
        assigned = session.execute(text("SELECT count(*) FROM assignment s JOIN area a ON a.id = s.area_id "
                                        "WHERE a.code LIKE :p"), {"p": COUNTY + "%"}).scalar_one()
        assessed = demo_cases.summary(session, settings)
    state = "already loaded" if loaded else "loaded"
    logins = "\n".join(f"  {user:<16} {passwords[user]:<24} {role}" + (f" on {area}" if area else " everywhere")
                       for user, role, area, _ in ACCOUNTS)
    return (f"demo jurisdiction 演示县 ({COUNTY}) {state} from {out_dir}: "
            + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
            + f"; {len(people)} persons, {assigned} assignments\n"
            + _assessment_line(assessed) + "\n"
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
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(known, indent=1))
    os.chmod(path, 0o600)
    return known


def wipe(session, person_refs: list[str]) -> None:
    """Remove the demo jurisdiction: the areas under the demo county, their cases, monthly
    sums, patrols and score sheets, and the demo persons and accounts."""
    params = {"p": COUNTY + "%"}
    demo_ids = "SELECT id FROM area WHERE code LIKE :p"
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
    session.execute(text("DELETE FROM area WHERE code LIKE :p"), params)
