"""Visits behind their quotas at county scale (issue 12): who is behind, for a county of
500,000 households, in one set-based query.

Builds, in a scratch database, a county of T towns, V villages per town and G grids
(default 20 x 25 x 3 = 1,500 grids), H households (default 500,000) spread over them, the
"1+1+5" contact structure (a cadre per 24 households: 4 central households, each with 5
radiating ones), a special-group resident in 8 % of households (独居老人 every 14 days,
低保 every 90 days), and about two years of visits (central households about monthly,
radiating ones about every two months, one in ten households visited more lazily), all with
``generate_series`` in SQL. Then measures:

(a) :func:`geogrid.people.visits.behind` for the whole county today (households and
    cadres behind, totals per grid and village: the ``GET /api/visits/behind`` answer),
    through the stored ``household.visit_behind_from`` dates (:mod:`geogrid.people.due`)
    and, in the same run, by the full query over every household (``use_cache=False``, the
    path of a past day); the same for one town and one grid. The two answers for the county,
    every household listed, must be identical. Also timed: refreshing the stored dates of
    every household at once (what the register import adds), and of one household (what a
    visit, link or tag write adds);
(b) the obvious alternative: per household, look up its links, its tags, its last visit
    and this year's count (four small indexed queries), and judge it in Python; timed on a
    random sample and extrapolated to the county. Its verdicts on the sample must equal
    the set-based ones (an independent implementation of the rule);
(c) :func:`geogrid.people.contacts.check_structure` (the 1+1+n check) for the county.

    .venv/bin/python bench/visits_bench.py [--households 500000] [--sample 2000] [--repeat 3]

Target: (a) county < 1 s (median). Exits 0 only when it is met, the stored dates' answer is
the full query's, and (b) agrees. The
scratch database (``geogrid_visitbench_<pid>``) is dropped at the end.
"""

from __future__ import annotations

import argparse
import calendar
import datetime as dt
import statistics
import sys
import time
from pathlib import Path

from machine import describe, loadavg, scratch_database  # noqa: E402
from sqlalchemy import text

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from geogrid.core.settings import Settings  # noqa: E402
from geogrid.core.timeutil import local_today  # noqa: E402
from geogrid.db import engine as db  # noqa: E402
from geogrid.people import contacts, due, visits  # noqa: E402

DB_PREFIX = "geogrid_visitbench_"
COUNTY = "339901"
DAY = local_today(Settings())  # the stored dates answer for today and later days
FIRST = dt.date(DAY.year - 1, 1, 1)
TARGET_S = 1.0


def build(engine, towns: int, villages: int, per_village: int, households: int, seed: int) -> None:
    """The county, its areas, households, cadres and links, residents and tags, visits."""
    with engine.begin() as conn:
        conn.execute(text("SELECT setseed(:s)"), {"s": (seed % 1000) / 1000})
        conn.execute(text("INSERT INTO area (code, name, level_key, layer_key) VALUES (:c, '基准县', 'county', 'admin')"),
                     {"c": COUNTY})
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
        conn.execute(text("CREATE TEMP TABLE g AS SELECT id, row_number() OVER (ORDER BY code) - 1 AS n "
                          "FROM area WHERE level_key = 'grid'"))
        grids = conn.execute(text("SELECT count(*) FROM g")).scalar_one()
        # Households in blocks of 24 per grid stretch, so that a cadre's households share a grid.
        conn.execute(text("""
            INSERT INTO household (ref, geom, located_by, head_name, kind, grid_id, street, number)
            SELECT 'H' || lpad(i::text, 7, '0'), ST_SetSRID(ST_MakePoint(119 + (i % 1000) * 0.001,
                                                                       29 + (i / 1000) * 0.001), 4326),
                   'own', '户主' || i, 'registered', g.id, '基准路', (i % 300)::text || '号'
            FROM generate_series(0, :h - 1) i JOIN g ON g.n = (i / 24) * :grids / ((:h + 23) / 24)
        """), {"h": households, "grids": grids})
        conn.execute(text("INSERT INTO person (name, phone, ref) SELECT '干部' || c, '137' || lpad(c::text, 8, '0'), "
                          "'C' || c FROM generate_series(0, (:h - 1) / 24) c"), {"h": households})
        # 1+1+5: in each block of 6 households the first is central, the others radiate from it.
        conn.execute(text("""
            INSERT INTO contact_link (person_id, household_id, kind, central_id, start_date)
            SELECT p.id, h.id, CASE WHEN k % 6 = 0 THEN 'central' ELSE 'radiating' END,
                   CASE WHEN k % 6 = 0 THEN NULL ELSE h.id - k % 6 END,
                   DATE '2024-06-01' + (k / 6 % 200)
            FROM (SELECT id, id - (SELECT min(id) FROM household) AS k FROM household) h
            JOIN person p ON p.ref = 'C' || (h.k / 24)
        """))
        conn.execute(text("""
            INSERT INTO resident (household_id, name)
            SELECT id, '居民' || id FROM household WHERE random() < 0.08
        """))
        conn.execute(text("""
            INSERT INTO resident_tag (resident_id, group_key, start_date)
            SELECT id, CASE WHEN random() < 0.5 THEN 'living_alone' ELSE 'dibao' END,
                   DATE '2025-01-01' + (random() * 600)::int FROM resident
        """))
        # Visits: about every 24-31 days (central) or 50-57 days (radiating); one household in
        # ten twice as lazily; from a random first day early in 2025 up to the day looked at.
        conn.execute(text("""
            CREATE TEMP TABLE plan AS
            SELECT h.id AS household_id, l.person_id, h.grid_id,
                   (CASE WHEN l.kind = 'central' THEN 24 ELSE 50 END + (random() * 7)::int)
                   * CASE WHEN random() < 0.1 THEN 2 ELSE 1 END AS every,
                   :first + (random() * 60)::int AS first_day
            FROM household h JOIN contact_link l ON l.household_id = h.id
        """), {"first": FIRST})
        conn.execute(text("""
            CREATE TEMP TABLE planned AS
            SELECT nextval(pg_get_serial_sequence('visit', 'id')) AS visit_id, p.household_id, p.person_id, p.grid_id,
                   p.first_day + k * p.every + (random() * 6)::int - 3 AS day
            FROM plan p CROSS JOIN LATERAL generate_series(0, (:day - p.first_day) / p.every) k
        """), {"day": DAY})
        conn.execute(text("DELETE FROM planned WHERE day > :day"), {"day": DAY})
        conn.execute(text("""
            INSERT INTO visit (id, visited_on, person_id, area_id, findings, created_by)
            SELECT visit_id, day, person_id, grid_id, '例行走访', 'bench' FROM planned
        """))
        conn.execute(text("INSERT INTO visit_household (visit_id, household_id, visited_on) "
                          "SELECT visit_id, household_id, day FROM planned"))
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))


# --------------------------------------------------------------------------- the obvious alternative


def judge(links, tags, visit_days, day: dt.date, per_year_min: int) -> dt.date | None:
    """The quota rule (``geogrid.people.visits``) for one household in plain Python: the
    first day it is behind, or None when it is on time."""
    jan1 = dt.date(day.year, 1, 1)
    diy = 366 if calendar.isleap(day.year) else 365
    obligations = [(every, since) for every, since, _ in links] + list(tags)
    if not obligations:
        return None
    past = [v for v in visit_days if v <= day]
    last = max(past) if past else None
    due_on = min((max(last, since) if last else since) + dt.timedelta(days=every) for every, since in obligations)
    found = []
    if due_on < day:
        found.append(due_on + dt.timedelta(days=1))
    if links:
        per_year = max(max(py for _, _, py in links), per_year_min)
        count_since = max(jan1, min(since for _, since, _ in links))
        made = sum(1 for v in past if v >= jan1)
        elapsed = (day - count_since).days + 1
        if per_year > 0 and made < per_year * elapsed // diy:
            need = -(-(made + 1) * diy // per_year)  # ceil
            found.append(count_since + dt.timedelta(days=need - 1))
    return min(found) if found else None


def per_household(engine, ids: list[int], day: dt.date, per_year_min: int) -> dict[int, dt.date | None]:
    """Judge each household with its own lookups: the obvious loop."""
    out = {}
    with engine.connect() as conn:
        for hid in ids:
            links = conn.execute(text("""
                SELECT k.visit_every_days, l.start_date, k.visits_per_year FROM contact_link l
                JOIN contact_kind k ON k.key = l.kind
                WHERE l.household_id = :h AND l.start_date <= :d AND (l.end_date IS NULL OR l.end_date >= :d)
            """), {"h": hid, "d": day}).all()
            tags = conn.execute(text("""
                SELECT g.visit_every_days, t.start_date FROM resident_tag t JOIN resident r ON r.id = t.resident_id
                JOIN special_group g ON g.key = t.group_key
                WHERE r.household_id = :h AND r.retired_at IS NULL AND g.visit_every_days IS NOT NULL
                  AND t.start_date <= :d AND (t.end_date IS NULL OR t.end_date >= :d)
            """), {"h": hid, "d": day}).all()
            last = conn.execute(text("SELECT max(visited_on) FROM visit_household WHERE household_id = :h "
                                     "AND visited_on <= :d"), {"h": hid, "d": day}).scalar()
            this_year = conn.execute(text("SELECT visited_on FROM visit_household WHERE household_id = :h "
                                          "AND visited_on BETWEEN :j AND :d"),
                                     {"h": hid, "d": day, "j": dt.date(day.year, 1, 1)}).scalars().all()
            days = list(this_year) + ([last] if last and last.year < day.year else [])
            out[hid] = judge([tuple(r) for r in links], [tuple(r) for r in tags], days, day, per_year_min)
    return out


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
    ap.add_argument("--households", type=int, default=500_000)
    ap.add_argument("--towns", type=int, default=20)
    ap.add_argument("--villages", type=int, default=25, help="villages per town")
    ap.add_argument("--grids", type=int, default=3, help="grids per village")
    ap.add_argument("--sample", type=int, default=2000, help="households judged one by one (b)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = ap.parse_args()

    with scratch_database(DB_PREFIX, keep=args.keep) as (base, url):
        settings = Settings(database_url=url, state_dir=base.state_dir)
        print(describe())
        engine = db.get_engine(settings)
        t0 = time.perf_counter()
        build(engine, args.towns, args.villages, args.grids, args.households, args.seed)
        with engine.connect() as conn:
            counts = conn.execute(text("SELECT (SELECT count(*) FROM household), (SELECT count(*) FROM contact_link), "
                                       "(SELECT count(*) FROM resident_tag), (SELECT count(*) FROM visit_household), "
                                       "(SELECT count(*) FROM area WHERE level_key = 'grid')")).one()
        print(f"built in {time.perf_counter() - t0:.1f} s: {counts[0]:,} households, {counts[1]:,} links, "
              f"{counts[2]:,} tags, {counts[3]:,} household visits, {counts[4]:,} grids; day looked at {DAY}")
        print(f"load {loadavg()}")

        # The stored dates: every household at once, as the register import refreshes its own.
        with engine.connect() as conn:
            all_ids = conn.execute(text("SELECT id FROM household")).scalars().all()

        def refresh(ids):
            with db.transaction(engine) as session:
                return due.refresh_due(session, ids, settings, today=DAY)

        refresh_all = timed(lambda: refresh(all_ids), 1)[0]
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE household"))
        refresh_all += timed(lambda: refresh(all_ids), max(1, args.repeat - 1))[0]
        with engine.connect() as conn:
            stored, candidates = conn.execute(text("SELECT count(visit_behind_from), count(*) FILTER "
                                                   "(WHERE visit_behind_from <= :d) FROM household"),
                                              {"d": DAY}).one()
        one = [all_ids[i] for i in range(0, len(all_ids), max(1, len(all_ids) // 200))]
        t1 = time.perf_counter()
        for hid in one:
            refresh([hid])
        one_ms = (time.perf_counter() - t1) / len(one) * 1000
        print(f"refresh_due, all {len(all_ids):,} households (one statement, as the register import): "
              f"{fmt(refresh_all)}; one household (a visit write; own transaction): {one_ms:.2f} ms; "
              f"{stored:,} with obligations, {candidates:,} read on {DAY}")

        def behind(area: str, limit: int = 1000, use_cache: bool = True):
            with db.transaction(engine) as session:
                return visits.behind(session, settings, area=area, on=DAY, limit=limit, use_cache=use_cache)

        times, out = timed(lambda: behind(COUNTY), args.repeat)
        county_s = statistics.median(times)
        print(f"(a) behind, county ({out['households']['count']:,} households and {out['cadres']['count']:,} cadres "
              f"behind; {len(out['grids']):,} grids, {len(out['villages'])} villages): {fmt(times)}")
        times, _ = timed(lambda: behind(COUNTY, use_cache=False), args.repeat)
        print(f"    the same by the full query (every household judged):  {fmt(times)}")
        with engine.connect() as conn:
            town, grid = conn.execute(text("SELECT (SELECT min(code) FROM area WHERE level_key = 'town'), "
                                           "(SELECT min(code) FROM area WHERE level_key = 'grid')")).one()
        for label, code in (("one town", town), ("one grid", grid)):
            times, small = timed(lambda c=code: behind(c), args.repeat)
            full_times, _ = timed(lambda c=code: behind(c, use_cache=False), args.repeat)
            print(f"    {label} ({small['households']['count']:,} behind): {fmt(times)}; "
                  f"full query {fmt(full_times)}")
        everything, every_out = timed(lambda: behind(COUNTY, limit=1_000_000), 1)
        print(f"    county with every household behind listed (not paged): {fmt(everything)}")
        full_out = behind(COUNTY, limit=1_000_000, use_cache=False)
        same = full_out == every_out
        print(f"    stored dates vs full query, county, every household listed: "
              f"{'identical' if same else 'DIFFERENT'}")

        # (b) the loop, on a sample, against the set-based verdicts for the same households.
        with engine.connect() as conn:
            conn.execute(text("SELECT setseed(0.5)"))
            sample = conn.execute(text("SELECT id FROM household ORDER BY random() LIMIT :n"),
                                  {"n": args.sample}).scalars().all()
        t1 = time.perf_counter()
        verdicts = per_household(engine, sample, DAY, settings.visits_per_year_min)
        loop_s = time.perf_counter() - t1
        extrapolated = loop_s / len(sample) * counts[0]
        print(f"(b) per-household lookups in Python: {len(sample):,} households in {loop_s:.2f} s "
              f"({loop_s / len(sample) * 1000:.2f} ms each): county EXTRAPOLATED {extrapolated:,.0f} s "
              f"({extrapolated / county_s:,.0f}x slower)")
        set_based = {h["id"]: h["since"] for h in every_out["households"]["items"]}
        wrong = [hid for hid in sample if verdicts[hid] != set_based.get(hid)]
        agree = not wrong
        print(f"    verdicts on the sample: {sum(v is not None for v in verdicts.values()):,} behind; "
              f"{'identical' if agree else f'{len(wrong)} DIFFER, e.g. household {wrong[:3]}'} to the set-based query")

        times, check = timed(lambda: _check(engine, settings), max(1, min(args.repeat, 2)))
        print(f"(c) 1+1+n check, county ({check['unlinked']['count']:,} without a cadre, "
              f"{check['centrals_off']['count']:,} centrals off):             {fmt(times)}")
        ok = agree and same and county_s < TARGET_S
        print(f"verdict: {'target met' if ok else 'TARGET MISSED'} (county behind < {TARGET_S} s, median; "
              f"the stored dates' answer is the full query's, the loop agrees)")
        return 0 if ok else 1


def _check(engine, settings):
    with db.transaction(engine) as session:
        return contacts.check_structure(session, settings, area=COUNTY, on=DAY)


if __name__ == "__main__":
    sys.exit(main())
