"""Assessment at county scale (issue 11): one year of a county, indicators and the monthly report.

Builds, in a scratch database, a county of T towns, V villages per town and G grids in all
(default 5,000), a grid worker in post in each grid, and one year of cases (default
1,000,000), bulk-loaded in SQL the way a historical import would leave them: every case
with its steps (accept, dispatch, handle, verify: deadlines, ends, working hours, some
late), a share escalated, voided or parked, satisfaction on most closed ones, its events
(report, escalations, the last transition) and its ``case_fact`` row written by
``geogrid.incidents.steps.refresh_facts`` (the code the workflow uses). Then measures,
each against the obvious alternative in the same run:

(a) indicators for the whole county grouped by grid and month (60,000 groups over the
    year) with :func:`geogrid.assessment.indicators.indicators` (from the monthly sums),
    against the same function over every case's facts and against the plain SQL GROUP BY
    over the raw history (cases, their steps and their events, aggregated per case in the
    query itself); all must give the same figures;
(b) the same grouped by town and month, and the county total of one month;
(c) the monthly report (PDF and XLSX) of the county for one month, when
    ``geogrid.assessment.reports`` is installed.

    .venv/bin/python bench/assessment_bench.py [--cases 1000000] [--grids 5000] [--repeat 3]

Targets: (a) < 1 s, (c) < 10 s for both files. Exits 0 only when they are met. The scratch
database (``geogrid_assessbench_<pid>``) is dropped at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

from machine import describe, loadavg, scratch_database  # noqa: E402
from sqlalchemy import text

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from geogrid.assessment import indicators as ind  # noqa: E402
from geogrid.core.settings import Settings  # noqa: E402
from geogrid.db import engine as db  # noqa: E402
from geogrid.incidents import steps  # noqa: E402

DB_PREFIX = "geogrid_assessbench_"
COUNTY = "339901"
YEAR = 2025
TARGET_GROUPED_S, TARGET_REPORT_S = 1.0, 10.0


def build(engine, towns: int, villages: int, grids: int, cases: int, seed: int) -> None:
    """The county, its areas, a worker per grid and a year of cases, all in SQL."""
    per_village = max(1, grids // (towns * villages))
    with engine.begin() as conn:
        conn.execute(text("SELECT setseed(:s)"), {"s": (seed % 1000) / 1000})
        conn.execute(text("""
            INSERT INTO area (code, name, level_key, layer_key, parent_id)
            VALUES (:c, '基准县', 'county', 'admin', NULL)"""), {"c": COUNTY})
        conn.execute(text("""
            INSERT INTO area (code, name, level_key, layer_key, parent_id)
            SELECT :c || lpad(t::text, 3, '0'), '基准镇' || t, 'town', 'admin', (SELECT id FROM area WHERE code = :c)
            FROM generate_series(100, 99 + :towns) t"""), {"c": COUNTY, "towns": towns})
        conn.execute(text("""
            INSERT INTO area (code, name, level_key, layer_key, parent_id)
            SELECT t.code || lpad(v::text, 3, '0'), t.name || '村' || v, 'village', 'admin', t.id
            FROM area t CROSS JOIN generate_series(1, :villages) v WHERE t.level_key = 'town'"""),
                     {"villages": villages})
        conn.execute(text("""
            INSERT INTO area (code, name, level_key, layer_key, parent_id)
            SELECT v.code || lpad(g::text, 3, '0'), v.name || '网格' || g, 'grid', 'comprehensive', v.id
            FROM area v CROSS JOIN generate_series(1, :n) g WHERE v.level_key = 'village'"""), {"n": per_village})
        # Boundaries are not what this benchmark is about: each grid a small square on a lattice.
        conn.execute(text("""
            INSERT INTO boundary (area_id, version, geom, valid)
            SELECT id, 1, ST_Multi(ST_MakeEnvelope(119.0 + (n % 100) * 0.01, 29.0 + (n / 100) * 0.01,
                                                     119.01 + (n % 100) * 0.01, 29.01 + (n / 100) * 0.01, 4326)),
                   tstzrange('2020-01-01', NULL)
            FROM (SELECT id, row_number() OVER (ORDER BY code) - 1 AS n FROM area WHERE level_key = 'grid') g"""))
        conn.execute(text("""
            INSERT INTO person (name, phone, ref)
            SELECT '网格员' || a.code, '138' || lpad((row_number() OVER ())::text, 8, '0'), a.code
            FROM area a WHERE a.level_key = 'grid'"""))
        conn.execute(text("""
            INSERT INTO assignment (person_id, area_id, role_key, start_date)
            SELECT p.id, a.id, 'grid_worker_fulltime', DATE '2020-01-01'
            FROM area a JOIN person p ON p.ref = a.code"""))
        # The cases: spread over the year in working hours; a category and a fate each.
        conn.execute(text("""
            CREATE TEMP TABLE g AS SELECT a.id, a.code, p.id AS person_id, row_number() OVER (ORDER BY a.id) - 1 AS n,
                                          ST_Centroid(b.geom) AS centre
            FROM area a JOIN boundary b ON b.area_id = a.id JOIN person p ON p.ref = a.code
            WHERE a.level_key = 'grid'"""))
        conn.execute(text("CREATE TEMP TABLE cat AS SELECT key, department, row_number() OVER (ORDER BY key) - 1 AS n "
                          "FROM category WHERE layer_key = 'comprehensive'"))
        conn.execute(text("""
            INSERT INTO incident (receipt, category_key, channel, description, occurred_at, reported_at, geom, original,
                                  route_kind, grid_id, authority_id, responsible, department, state, closed_at,
                                  satisfaction, escalation_level)
            SELECT 'B' || lpad(i::text, 9, '0'), c.key,
                   CASE WHEN random() < 0.35 THEN 'patrol' ELSE 'hotline_12345' END,
                   '基准案件', t.at, t.at, g.centre, '{}'::jsonb, 'grid', g.id,
                   CASE WHEN fate = 'escalated' THEN (SELECT parent_id FROM area WHERE id = g.id) ELSE g.id END,
                   jsonb_build_array(jsonb_build_object('person_id', g.person_id, 'name', '网格员', 'phone', '',
                                                        'role', 'grid_worker_fulltime', 'role_name', '专职网格员')),
                   c.department,
                   CASE fate WHEN 'void' THEN 'void' WHEN 'parked' THEN 'parked' WHEN 'open' THEN 'in_progress'
                             ELSE 'closed' END,
                   CASE WHEN fate IN ('ontime', 'late', 'escalated') THEN t.at + interval '2 days'
                        WHEN fate = 'void' THEN t.at + interval '10 minutes' END,
                   CASE WHEN fate IN ('ontime', 'late', 'escalated') AND random() < 0.8 THEN floor(random() * 11)::int END,
                   CASE WHEN fate = 'escalated' THEN 1 ELSE 0 END
            FROM generate_series(0, :cases - 1) i
            CROSS JOIN LATERAL (SELECT timestamptz '2025-01-01 08:30+08' + (i::float8 / :cases) * interval '365 days'
                                       + (random() * 8) * interval '1 hour' AS at,
                                       (i::bigint * 7919) % :grids AS gn, (i * 31) % 8 AS cn,
                                       CASE WHEN random() < 0.70 THEN 'ontime' WHEN random() < 0.55 THEN 'late'
                                            WHEN random() < 0.40 THEN 'escalated' WHEN random() < 0.5 THEN 'void'
                                            WHEN random() < 0.5 THEN 'parked' ELSE 'open' END AS fate) t
            JOIN g ON g.n = t.gn
            JOIN cat c ON c.n = t.cn % (SELECT count(*) FROM cat)
        """), {"cases": cases, "grids": grids})
        # Steps: four for a closed case (late handling for 'late', an escalated accept for
        # 'escalated'), one ended for void, three for parked, an open handle step for 'open'.
        conn.execute(text("""
            INSERT INTO incident_step (incident_id, step, authority_id, started_at, due_at, ended_at, ended_by, outcome,
                                       working_hours)
            SELECT i.id, s.step, i.grid_id, i.reported_at + s.off, i.reported_at + s.off + s.lim,
                   CASE WHEN s.open THEN NULL ELSE i.reported_at + s.off + s.took END,
                   CASE WHEN s.open THEN NULL ELSE 'bench' END,
                   CASE WHEN s.open THEN NULL ELSE s.outcome END,
                   CASE WHEN s.open THEN NULL ELSE extract(epoch FROM s.took) / 3600 END
            FROM incident i
            CROSS JOIN LATERAL (VALUES
                ('accept', interval '0', interval '1 hour',
                 CASE WHEN i.escalation_level > 0 THEN interval '3 hours' ELSE interval '30 minutes' END,
                 CASE WHEN i.state = 'void' THEN 'voided' WHEN i.escalation_level > 0 THEN 'escalated' ELSE 'done' END,
                 false),
                ('dispatch', interval '3 hours', interval '1 hour', interval '20 minutes', 'done', false),
                ('handle', interval '4 hours', interval '1 day',
                 CASE WHEN i.description = '基准案件' AND i.id % 7 = 0 THEN interval '30 hours' ELSE interval '5 hours' END,
                 CASE WHEN i.state = 'parked' THEN 'parked' ELSE 'done' END, i.state = 'in_progress'),
                ('verify', interval '30 hours', interval '1 day', interval '4 hours', 'done', false)
            ) s(step, off, lim, took, outcome, open)
            WHERE (i.state <> 'void' OR s.step = 'accept')
              AND (i.state NOT IN ('parked', 'in_progress') OR s.step <> 'verify')
        """))
        # An open case's deadline is its open step's, as the workflow leaves it.
        conn.execute(text("UPDATE incident i SET due_at = s.due_at FROM incident_step s "
                          "WHERE s.incident_id = i.id AND s.ended_at IS NULL"))
        conn.execute(text("""
            INSERT INTO incident_event (incident_id, at, actor, action, from_state, to_state)
            SELECT id, reported_at, 'bench', 'report', NULL, 'reported' FROM incident
            UNION ALL
            SELECT id, reported_at + interval '1 hour', 'bench', 'escalate', 'reported', 'reported'
            FROM incident WHERE escalation_level > 0
            UNION ALL
            SELECT id, coalesce(closed_at, reported_at + interval '5 hours'), 'bench', 'transition', 'verified', state
            FROM incident WHERE state <> 'in_progress'
        """))
        ids = conn.execute(text("SELECT min(id), max(id) FROM incident")).one()
    # Facts in slices, by the workflow's own function, as a historical import writes them.
    lo, hi = ids
    step = 50_000
    for start in range(lo, hi + 1, step):
        with engine.begin() as conn:
            steps.refresh_facts(conn, list(range(start, min(start + step, hi + 1))), "Asia/Shanghai")
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))


RAW_SQL = """
    WITH RECURSIVE sub AS (
        SELECT id, code, 0 AS depth FROM area WHERE code = :county
        UNION ALL SELECT a.id, a.code, sub.depth + 1 FROM area a JOIN sub ON a.parent_id = sub.id WHERE depth < 64
    )
    SELECT s.code AS grid, date_trunc('month', i.reported_at AT TIME ZONE :tz)::date AS month,
           count(*) AS received,
           count(*) FILTER (WHERE i.state = 'closed') AS closed,
           count(*) FILTER (WHERE i.state = 'closed' AND NOT EXISTS (
               SELECT 1 FROM incident_step st WHERE st.incident_id = i.id AND st.late)) AS closed_on_time,
           count(*) FILTER (WHERE i.state = 'void') AS voided,
           count(*) FILTER (WHERE EXISTS (SELECT 1 FROM incident_step st WHERE st.incident_id = i.id AND st.late)
                            OR (i.state NOT IN ('closed', 'void', 'parked') AND EXISTS (
                                SELECT 1 FROM incident_step st WHERE st.incident_id = i.id AND st.ended_at IS NULL
                                AND st.due_at < :now))) AS overdue_ever,
           avg(h.hours) FILTER (WHERE i.state = 'closed') AS avg_hours,
           percentile_cont(0.9) WITHIN GROUP (ORDER BY h.hours) FILTER (WHERE i.state = 'closed') AS p90_hours,
           sum((SELECT count(*) FROM incident_event e WHERE e.incident_id = i.id AND e.action = 'escalate'))
               AS escalations,
           count(*) FILTER (WHERE i.satisfaction >= :satisfied) AS satisfied
    FROM incident i JOIN sub s ON s.id = coalesce(i.grid_id, i.authority_id)
    LEFT JOIN LATERAL (SELECT sum(st.working_hours) AS hours FROM incident_step st WHERE st.incident_id = i.id) h ON true
    WHERE i.reported_at >= :lo AND i.reported_at < :hi
    GROUP BY 1, 2
"""


def timed(fn, repeat: int) -> tuple[list[float], object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return times, out


def fmt(times: list[float]) -> str:
    return f"best {min(times):7.3f} s  median {statistics.median(times):7.3f} s"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=1_000_000)
    ap.add_argument("--grids", type=int, default=5000)
    ap.add_argument("--towns", type=int, default=20)
    ap.add_argument("--villages", type=int, default=25, help="villages per town")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = ap.parse_args()

    with scratch_database(DB_PREFIX, keep=args.keep) as (base, url):
        settings = Settings(database_url=url, state_dir=base.state_dir)
        print(describe())
        engine = db.get_engine(settings)
        t0 = time.perf_counter()
        build(engine, args.towns, args.villages, args.grids, args.cases, args.seed)
        with engine.connect() as conn:
            counts = conn.execute(text("SELECT (SELECT count(*) FROM incident), (SELECT count(*) FROM incident_step), "
                                       "(SELECT count(*) FROM incident_event), "
                                       "(SELECT count(*) FROM area WHERE level_key = 'grid')")).one()
        print(f"built in {time.perf_counter() - t0:.1f} s: {counts[0]:,} cases, {counts[1]:,} steps, "
              f"{counts[2]:,} events, {counts[3]:,} grids")
        start, end = dt.date(YEAR, 1, 1), dt.date(YEAR + 1, 1, 1)
        now = dt.datetime(YEAR + 1, 1, 15, tzinfo=dt.UTC)
        ok = True

        def grouped(by, use_months=None):
            with db.transaction(engine) as session:
                return ind.indicators(session, settings, area=COUNTY, start=start, end=end, by=by, now=now,
                                      use_months=use_months)

        def raw():
            with engine.connect() as conn:
                tz = settings.timezone
                lo = dt.datetime.combine(start, dt.time(), tzinfo=dt.timezone(dt.timedelta(hours=8)))
                hi = dt.datetime.combine(end, dt.time(), tzinfo=dt.timezone(dt.timedelta(hours=8)))
                return conn.execute(text(RAW_SQL), {"county": COUNTY, "tz": tz, "lo": lo, "hi": hi, "now": now,
                                                    "satisfied": settings.satisfied_from}).mappings().all()

        print(f"load {loadavg()}")
        times, out = timed(lambda: grouped(["grid", "month"]), args.repeat)
        print(f"(a) indicators by grid x month ({len(out['rows']):,} groups):  {fmt(times)}")
        fact_times, fact_out = timed(lambda: grouped(["grid", "month"], use_months=False), max(1, min(args.repeat, 2)))
        print(f"    the same over every case (case_fact, no monthly sums): {fmt(fact_times)}  "
              f"({statistics.median(fact_times) / statistics.median(times):.1f}x slower)")
        same_paths = fact_out["rows"] == out["rows"] and fact_out["total"] == out["total"]
        print(f"    same figures: {'yes' if same_paths else 'NO'}")
        ok &= same_paths
        raw_times, raw_rows = timed(raw, max(1, min(args.repeat, 2)))
        print(f"    plain GROUP BY over cases + steps + events:         {fmt(raw_times)}  "
              f"({statistics.median(raw_times) / statistics.median(times):.1f}x slower)")
        mine = {(r["grid"], r["month"]): r for r in out["rows"]}
        keys = ("received", "closed", "closed_on_time", "voided", "overdue_ever", "escalations")
        mismatched = [k for k in raw_rows
                      if any(int(k[c]) != mine[(k["grid"], k["month"].isoformat())][c] for c in keys)
                      or abs(float(k["avg_hours"] or 0) - (mine[(k["grid"], k["month"].isoformat())]["avg_hours"] or 0))
                      > 0.01]
        same = len(raw_rows) == len([r for r in out["rows"] if r["received"]]) and not mismatched
        print(f"    same figures: {'yes' if same else 'NO'} ({len(raw_rows):,} groups compared, {len(mismatched)} differ)")
        ok &= same and statistics.median(times) < TARGET_GROUPED_S
        times, out = timed(lambda: grouped(["town", "month"]), args.repeat)
        print(f"(b) indicators by town x month ({len(out['rows'])} groups):      {fmt(times)}")
        with db.transaction(engine) as session:
            t1 = time.perf_counter()
            ind.indicators(session, settings, area=COUNTY, start=dt.date(YEAR, 11, 1), end=dt.date(YEAR, 12, 1), now=now)
            print(f"    county total of one month:                          {time.perf_counter() - t1:7.3f} s")
        try:
            from geogrid.assessment import reports
        except ImportError:
            print("(c) monthly report: geogrid.assessment.reports is not installed; skipped")
        else:
            with tempfile.TemporaryDirectory() as tmp:
                for suffix in ("pdf", "xlsx"):
                    target = Path(tmp) / f"report.{suffix}"

                    def build_report(target=target, suffix=suffix):
                        with db.transaction(engine) as session:
                            out = reports.export_monthly(session, settings, area=COUNTY, month=f"{YEAR}-11",
                                                         format=suffix, now=now)
                        target.write_bytes(out.content)

                    times, _ = timed(build_report, max(1, min(args.repeat, 2)))
                    print(f"(c) monthly report {suffix.upper():4} ({target.stat().st_size / 1024:,.0f} KiB):            "
                          f"{fmt(times)}")
                    ok &= statistics.median(times) < TARGET_REPORT_S
        print(f"verdict: {'all targets met' if ok else 'TARGET MISSED'} (grouped < {TARGET_GROUPED_S} s, "
              f"report < {TARGET_REPORT_S} s)")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
