"""Load the synthetic demo jurisdiction (see :mod:`geogrid.demo_data`) through the same
import path as any user file."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import Engine, text

from geogrid import areas, db, files, people
from geogrid.settings import Settings

COUNTY = "339901"
FILES_IN_ORDER = ("areas", "grids", "environment_grids")


def load(engine: Engine, settings: Settings, out_dir: Path, *, reset: bool = False) -> str:
    """Generate the demo files (when missing) and load them, once; ``reset`` reloads."""
    from geogrid import demo_data

    out_dir = Path(out_dir)
    paths = demo_data.generate(out_dir)
    with db.transaction(engine) as session:
        loaded = session.execute(text("SELECT count(*) FROM area WHERE code LIKE :p"), {"p": COUNTY + "%"}).scalar_one()
        persons = json.loads(Path(paths["persons"]).read_text(encoding="utf-8"))
        if loaded and reset:
            wipe(session, [p["ref"] for p in persons])
            loaded = 0
        if not loaded:
            for name in FILES_IN_ORDER:
                read = files.read_features(paths[name])
                areas.import_areas(session, read.records, read.geoms, settings, note=f"demo {name}")
            people.create_persons(session, persons)
            people.create_assignments(session, json.loads(Path(paths["assignments"]).read_text(encoding="utf-8")))
        counts = dict(session.execute(text(
            "SELECT layer_key, count(*) FROM area WHERE code LIKE :p AND retired_at IS NULL GROUP BY layer_key"),
            {"p": COUNTY + "%"}).all())
        assigned = session.execute(text("SELECT count(*) FROM assignment s JOIN area a ON a.id = s.area_id "
                                        "WHERE a.code LIKE :p"), {"p": COUNTY + "%"}).scalar_one()
    state = "already loaded" if loaded else "loaded"
    return (f"demo jurisdiction 演示县 ({COUNTY}) {state} from {out_dir}: "
            + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
            + f"; {len(persons)} persons, {assigned} assignments")


def wipe(session, person_refs: list[str]) -> None:
    """Remove the demo jurisdiction: the areas under the demo county and the demo persons."""
    params = {"p": COUNTY + "%"}
    session.execute(text("DELETE FROM assignment WHERE area_id IN (SELECT id FROM area WHERE code LIKE :p)"), params)
    session.execute(text("DELETE FROM person WHERE ref = ANY(:refs)"), {"refs": person_refs})
    session.execute(text("DELETE FROM area WHERE code LIKE :p"), params)
