"""The editing operations in the domain (geogrid.editing.operations), as the command line
(the trusted local operator) runs them: all or nothing, audited, dry runs write nothing."""

from __future__ import annotations

import datetime as dt

import pytest
import shapely
from conftest import VW, W1, W2, W3, W4
from sqlalchemy import text

from geogrid.core import timeutil
from geogrid.core.errors import GeogridError
from geogrid.db import engine as db
from geogrid.editing import operations
from geogrid.people import assignments, persons


def counts(engine) -> tuple[int, int, int]:
    with engine.connect() as conn:
        return tuple(conn.execute(text(
            "SELECT (SELECT count(*) FROM boundary), (SELECT count(*) FROM area), (SELECT count(*) FROM audit)")).one())


def test_dry_runs_write_nothing_and_real_runs_audit_every_grid(world, engine, settings):
    moves = [((120.01, 30.03), (120.011, 30.03))]  # the middle of the W1 | W2 edge
    before = counts(engine)
    with db.transaction(engine) as session:
        dry = operations.move_shared_vertices(session, settings, "comprehensive", moves, dry_run=True)
    assert dry["changed"] == [W1, W2] and counts(engine) == before
    line = shapely.LineString([(120.005, 30.0), (120.005, 30.05)])
    with db.transaction(engine) as session:
        operations.split(session, W3, settings, line, dry_run=True)
        operations.merge(session, [W3, W4], settings, dry_run=True)
    assert counts(engine) == before

    with db.transaction(engine) as session:
        done = operations.move_shared_vertices(session, settings, "comprehensive", moves,
                                               expected={W1: 1, W2: 1}, note="路改")
    assert done["changed"] == [W1, W2]
    with engine.connect() as conn:
        audited = conn.execute(text("SELECT key FROM audit WHERE action = 'update' ORDER BY key")).scalars().all()
        notes = conn.execute(text("SELECT DISTINCT b.note FROM boundary b WHERE upper_inf(b.valid) AND b.version = 2"))
        assert notes.scalars().all() == ["路改"]
    assert audited == [W1, W2]


def test_a_failing_step_leaves_nothing_behind(world, engine, settings):
    before = counts(engine)
    # W3 and W4 merge, but the stale version of W4 stops it before anything is written.
    with pytest.raises(GeogridError) as exc, db.transaction(engine) as session:
        operations.merge(session, [W3, W4], settings, expected={W3: 1, W4: 5})
    assert exc.value.status == 412 and W4 in exc.value.message
    # An administrative area is no grid: it cannot be merged with one.
    with pytest.raises(GeogridError), db.transaction(engine) as session:
        operations.merge(session, [W3, VW], settings, expected={W3: 1, VW: 1})
    assert counts(engine) == before


def test_posts_end_and_move_on_the_jurisdictions_day(world, engine, other_day):
    """Splitting a grid ends its posts and hands them to a piece on the jurisdiction's
    day, whatever day the database server is on."""
    day = timeutil.local_today(other_day)
    with db.transaction(engine) as session:
        worker = persons.create_persons(session, [{"name": "赵网格"}])[0]["id"]
        assignments.create_assignments(session, [{"person": worker, "area": W3, "role": "grid_worker_fulltime",
                                                  "start_date": "2020-01-01"}])
    line = shapely.LineString([(120.005, 30.0), (120.005, 30.05)])
    with db.transaction(engine) as session:
        done = operations.split(session, W3, other_day, line, expected={W3: 1, W1: 1}, assign_to=1)
    heir = done["created"][1]["id"]
    with engine.connect() as conn:
        posts = conn.execute(text("SELECT a.code, s.start_date, s.end_date FROM assignment s JOIN area a ON a.id = s.area_id "
                                  "WHERE s.person_id = :p ORDER BY s.start_date"), {"p": worker}).all()
    assert [tuple(p) for p in posts] == [(W3, dt.date(2020, 1, 1), day), (heir, day, None)]
