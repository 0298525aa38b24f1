"""Planner editing at town scale (issue 10): map first render, live coverage, dry run of an edit.

Builds, in a scratch database, one town of N synthetic edge-matched grids (default 2,000,
maps_bench's generator; a few grids given a hole that an exclave of another grid fills, so
that some are MultiPolygons with holes), one grid worker each, and a planner of the town;
serves it with uvicorn (one worker, its own process) and measures, each against the
obvious alternative in the same run:

(a) the planner map: server time of ``GET /maps/planner`` and time to first rendered map in
    headless Chromium (navigation start until all N grids are on the map; and until the
    live problems have arrived), with the default display simplification and without;
(b) live coverage ``GET /api/coverage/current`` of the town: fresh (after a real change)
    and stored (nothing changed), against reading the stored run alone
    (``GET /api/coverage/runs/{id}``, what the map showed before) and a full check
    (``GET /api/coverage?subtree=true``); and the freshness query alone, in-process;
(c) the dry run of an edit, ``PATCH /api/grids/{code}?dry_run=true`` moving a vertex
    shared by three grids a few metres (topological: the neighbours follow), p50/p95 over
    ``--edits`` runs, against the obvious alternative: save the same edit and run a full
    coverage check of the town to see its effect.

    .venv/bin/python bench/editing_bench.py [--grids 2000] [--repeat 5] [--edits 30]

Targets: first render < 2 s, live coverage < 2 s, dry run < 300 ms p50. Exits 0 only when
all are met. The scratch database (``geogrid_editbench_<pid>``) is dropped at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import shapely
from intake_load import Server  # noqa: E402  (bench/ is on sys.path when run)
from machine import describe, loadavg  # noqa: E402
from maps_bench import CHROMIUM_ARGS, READY_JS, TOWN, load, synthetic_town  # noqa: E402
from sqlalchemy import text

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from geogrid.access import accounts  # noqa: E402
from geogrid.core.settings import Settings  # noqa: E402
from geogrid.coverage import checks, runs  # noqa: E402
from geogrid.db import cluster  # noqa: E402
from geogrid.db import engine as db  # noqa: E402
from geogrid.people import assignments  # noqa: E402

DB_PREFIX = "geogrid_editbench_"
PLANNER = "bench-planner"
PASSWORD = "bench planner password"
TARGET_RENDER_S, TARGET_COVERAGE_S, TARGET_DRY_RUN_S = 2.0, 2.0, 0.300
# Resolves with the responseEnd (ms since navigation start) of the page's live-coverage
# request, once it has been made.
PROBLEMS_JS = """() => {
    const e = performance.getEntriesByType('resource').find(r => r.name.includes('/api/coverage/current'));
    return e && e.responseEnd > 0 ? e.responseEnd : false;
}"""


# --------------------------------------------------------------------------- the town


def with_exclaves(grids: np.ndarray, count: int, rng) -> tuple[np.ndarray, list[int]]:
    """Cut a small disc out of ``count`` grids and give each disc to a grid elsewhere: the
    first gets a hole, the second becomes a MultiPolygon; the layer stays edge-matched
    (the hole's ring and the exclave's are the same coordinates)."""
    grids = grids.copy()
    centres = shapely.get_coordinates(shapely.centroid(grids))
    changed: list[int] = []
    for i in rng.choice(len(grids), size=count, replace=False):
        if i in changed:
            continue
        inner = shapely.buffer(grids[i], -0.0002)  # about 20 m in from every edge
        if inner.is_empty:
            continue
        disc = shapely.set_precision(shapely.buffer(shapely.point_on_surface(inner), 0.00008, quad_segs=4),
                                     1e-7, mode="pointwise")
        if not grids[i].contains(disc):
            continue
        far = int(np.argmax(np.hypot(*(centres - centres[i]).T) > 0.005))  # some grid at least 500 m away
        if far in changed or far == i:
            continue
        grids[i] = shapely.difference(grids[i], disc)
        grids[far] = shapely.MultiPolygon([*shapely.get_parts(grids[far]), disc])
        changed += [int(i), far]
    return grids, changed


# --------------------------------------------------------------------------- measurements


def timed(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def ok(r: httpx.Response, status: int = 200) -> httpx.Response:
    if r.status_code != status:
        raise RuntimeError(f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text[:400]}")
    return r


def first_render(browser, base: str, token: str, n: int, repeat: int) -> tuple[list[float], list[float], list[str]]:
    """Seconds from navigation start until all ``n`` grids are on the planner map, and until
    its live problems arrived; page errors seen."""
    first, problems_at, errors = [], [], []
    for _ in range(repeat):
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        context.add_cookies([{"name": "geogrid_token", "value": token, "url": base}])
        page = context.new_page()
        page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
        page.goto(f"{base}/maps/planner?area={TOWN}", wait_until="commit", timeout=180_000)
        first.append(page.wait_for_function(READY_JS, arg=n, polling="raf", timeout=180_000).json_value() / 1000)
        try:
            problems_at.append(page.wait_for_function(PROBLEMS_JS, polling=100, timeout=60_000).json_value() / 1000)
        except Exception:  # a page that does not ask for live problems: nothing to time
            errors.append("no /api/coverage/current request")
        context.close()
    return first, problems_at, errors


def shared_vertex(geoms: list, codes: list[str], rng) -> tuple[str, tuple, list[str]]:
    """A grid near the middle of the town and one of its vertices shared by two other grids."""
    tree = shapely.STRtree(geoms)
    middle = shapely.centroid(shapely.union_all(shapely.envelope(geoms)))
    for i in tree.query_nearest(middle, all_matches=False).tolist() + rng.permutation(len(geoms)).tolist():
        parts = shapely.get_parts(geoms[i])
        if len(parts) != 1 or shapely.get_num_interior_rings(parts[0]):
            continue  # a plain grid: the exclaves are measured by the map and the coverage check
        for xy in shapely.get_coordinates(geoms[i])[:-1]:
            p = shapely.Point(xy)
            near = [j for j in tree.query(p.buffer(1e-9)) if j != i and shapely.dwithin(geoms[j], p, 1e-9)]
            if len(near) == 2:
                return codes[i], (float(xy[0]), float(xy[1])), [codes[j] for j in near]
    raise RuntimeError("no vertex shared by three grids")


def moved(geometry: dict, vertex: tuple, to: tuple) -> dict:
    """``geometry`` with every occurrence of ``vertex`` replaced by ``to``."""
    geom = shapely.geometry.shape(geometry)
    xy = shapely.get_coordinates(geom)
    hit = (np.abs(xy[:, 0] - vertex[0]) < 1e-9) & (np.abs(xy[:, 1] - vertex[1]) < 1e-9)
    xy[hit] = to
    return shapely.geometry.mapping(shapely.set_coordinates(geom, xy))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--grids", type=int, default=2_000)
    ap.add_argument("--repeat", type=int, default=5, help="runs of each page and coverage measurement")
    ap.add_argument("--edits", type=int, default=30, help="dry runs of the edit timed")
    ap.add_argument("--saves", type=int, default=3, help="save + full check runs of the alternative")
    ap.add_argument("--exclaves", type=int, default=20, help="grids given a hole filled by another grid's exclave")
    ap.add_argument("--densify", type=float, default=10.0, help="a boundary vertex every M metres")
    ap.add_argument("--seed", type=int, default=20261201)
    ap.add_argument("--chromium", default=os.environ.get("GEOGRID_CHROMIUM") or shutil.which("chromium")
                    or "/usr/bin/chromium")
    ap.add_argument("--vacant-leaders", action="store_true",
                    help="leave every grid without a leader: a problem per grid, the largest answer")
    ap.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = ap.parse_args()

    import fastapi
    from playwright.sync_api import sync_playwright

    print(describe(shapely=f"{shapely.__version__} / GEOS {shapely.geos_version_string}", fastapi=fastapi.__version__))
    base_settings = Settings()
    cluster.up(base_settings)
    name, url = cluster.process_database(base_settings, DB_PREFIX)
    rng = np.random.default_rng(args.seed)
    logs = Path(tempfile.mkdtemp(prefix="editing_bench_"))
    results: dict[str, object] = {}
    try:
        t = time.perf_counter()
        grids, town = synthetic_town(args.grids, cell_m2=10_000.0, densify=args.densify, jitter=1.0, seed=args.seed)
        grids, exclaves = with_exclaves(grids, args.exclaves, rng)
        multi = int(sum(shapely.get_num_geometries(g) > 1 for g in grids))
        holes = int(sum(shapely.get_num_interior_rings(g) > 0 for g in grids if g.geom_type == "Polygon"))
        print(f"synthetic town: {len(grids):,} grids, {int(shapely.get_num_coordinates(grids).sum()):,} vertices, "
              f"{multi} MultiPolygons, {holes} with holes; valid {bool(shapely.is_valid(grids).all())}, "
              f"edge-matched {bool(shapely.coverage_is_valid(grids))} ({time.perf_counter() - t:.1f} s)")
        db.migrate(url)
        settings = Settings(database_url=url, state_dir=base_settings.state_dir, map_tiles="none")
        t = time.perf_counter()
        codes = load(settings, grids, town)
        engine = db.get_engine(settings)
        with db.transaction(engine) as session:
            if not args.vacant_leaders:  # a town whose posts are filled: problems are the exception
                assignments.create_assignments(session, [
                    {"person": f"b{i:06d}", "area": c, "role": "grid_leader", "start_date": "2024-01-01"}
                    for i, c in enumerate(codes)])
            accounts.create_account(session, PLANNER, PASSWORD)
            accounts.grant(session, PLANNER, "planner", TOWN)
            token = accounts.login(session, PLANNER, PASSWORD, dt.timedelta(hours=4))["access_token"]
        print(f"loaded into {name}: {len(codes):,} grids, a worker{'' if args.vacant_leaders else ' and a leader'} each "
              f"({time.perf_counter() - t:.1f} s)")
        bearer = {"Authorization": f"Bearer {token}"}

        # ---------------------------------------------------------------- (a) first render
        render: dict[float, dict] = {}
        default_m = Settings.model_fields["map_simplify_m"].default
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
            for simplify in (default_m, 0.0):
                os.environ.update(GEOGRID_MAP_TILES="none", GEOGRID_MAP_SIMPLIFY_M=str(simplify))
                server = Server(url, base_settings.state_dir, 1, logs / f"serve_{simplify:g}.log")
                try:
                    server.wait_ready()
                    with httpx.Client(base_url=server.base, headers=bearer, timeout=120, trust_env=False) as http:
                        ok(http.get("/api/coverage/current", params={"area": TOWN}))  # a stored run to show
                        page_s = timed(lambda: ok(http.get("/maps/planner", params={"area": TOWN})), args.repeat)
                        size = len(http.get("/maps/planner", params={"area": TOWN}).content)
                    first, problems_at, errors = first_render(browser, server.base, token, len(codes), args.repeat)
                    render[simplify] = {"server": page_s, "bytes": size, "first": first, "problems": problems_at,
                                        "errors": errors}
                finally:
                    server.stop()
            browser.close()
        results["render"] = render

        # ---------------------------------------------------------------- (b) and (c) on one server
        os.environ.update(GEOGRID_MAP_SIMPLIFY_M=str(default_m))
        server = Server(url, base_settings.state_dir, 1, logs / "serve_api.log")
        try:
            server.wait_ready()
            with httpx.Client(base_url=server.base, headers=bearer, timeout=300, trust_env=False) as http:
                area = {"area": TOWN}

                def change(i: int) -> None:  # a real change in the town: an instructor appointed
                    ok(http.post("/api/assignments", json=[{"person": f"b{i:06d}", "area": codes[i],
                                                            "role": "instructor", "start_date": "2024-01-01"}]), 201)

                fresh, stored, flags = [], [], []
                for i in range(args.repeat):
                    change(i)
                    t = time.perf_counter()
                    out = ok(http.get("/api/coverage/current", params=area)).json()
                    fresh.append(time.perf_counter() - t)
                    flags.append(out["fresh"])
                    t = time.perf_counter()
                    again = ok(http.get("/api/coverage/current", params=area)).json()
                    stored.append(time.perf_counter() - t)
                    flags.append(not again["fresh"])
                run_id = again["id"]
                read_run = timed(lambda: ok(http.get(f"/api/coverage/runs/{run_id}")), args.repeat)
                full = timed(lambda: ok(http.get("/api/coverage", params={**area, "subtree": "true"})), args.repeat)
                with db.transaction(engine) as session:
                    options = checks.options_from(settings)
                    query = timed(lambda: runs.current_run_id(session, TOWN, "comprehensive", options, settings),
                                  args.repeat * 4)
                results["coverage"] = {"fresh": fresh, "stored": stored, "flags": all(flags), "read_run": read_run,
                                       "full": full, "query": query, "problems": len(out["problems"]["features"])}

                # (c) the dry run of a shared-vertex move
                with engine.connect() as conn:
                    stored_grids = conn.execute(text(
                        "SELECT a.code, ST_AsBinary(b.geom) FROM area a JOIN boundary b ON b.area_id = a.id "
                        "AND upper_inf(b.valid) WHERE a.code = ANY(:codes)"), {"codes": codes}).all()
                code, vertex, neighbours = shared_vertex([shapely.from_wkb(bytes(w)) for _, w in stored_grids],
                                                         [c for c, _ in stored_grids], rng)
                step = 3e-5  # about 3 m
                to = (vertex[0] + step, vertex[1] + step / 2)

                def edit(dry_run: bool, source: tuple, target: tuple) -> httpx.Response:
                    current = ok(http.get(f"/api/grids/{code}"))
                    body = {"geometry": moved(current.json()["geometry"], source, target),
                            "moves": [{"from": list(source), "to": list(target)}], "note": "bench"}
                    if not dry_run:
                        body["versions"] = {c: ok(http.get(f"/api/grids/{c}")).json()["properties"]["version"]
                                            for c in neighbours}
                    return ok(http.patch(f"/api/grids/{code}", params={"dry_run": str(dry_run).lower()}, json=body,
                                         headers={"If-Match": current.headers["etag"]}))

                probe = edit(True, vertex, to).json()
                dry = []
                for _ in range(args.edits):
                    current = ok(http.get(f"/api/grids/{code}"))
                    body = {"geometry": moved(current.json()["geometry"], vertex, to),
                            "moves": [{"from": list(vertex), "to": list(to)}]}
                    t = time.perf_counter()
                    ok(http.patch(f"/api/grids/{code}", params={"dry_run": "true"}, json=body,
                                  headers={"If-Match": current.headers["etag"]}))
                    dry.append(time.perf_counter() - t)
                saves, checks_s = [], []
                here = vertex
                for k in range(args.saves):  # there and back, so every save changes something
                    target = to if k % 2 == 0 else vertex
                    t = time.perf_counter()
                    saved = edit(False, here, target).json()
                    saves.append(time.perf_counter() - t)
                    t = time.perf_counter()
                    ok(http.get("/api/coverage", params={**area, "subtree": "true"}))
                    checks_s.append(time.perf_counter() - t)
                    here = target
                results["edit"] = {"code": code, "neighbours": neighbours, "dry": dry, "saves": saves,
                                   "checks": checks_s, "changed": probe.get("changed"),
                                   "created": len(probe["impact"]["created"]), "saved_changed": saved.get("changed")}
        finally:
            server.stop()
    finally:
        if args.keep:
            print(f"kept database {name}; server logs in {logs}")
        else:
            db.get_engine(Settings(database_url=url)).dispose()
            cluster.drop_database(base_settings, name)
            shutil.rmtree(logs, ignore_errors=True)
    return report(args, results, default_m)


def p(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def report(args, results: dict, default_m: float) -> int:
    def s(values):
        return f"{statistics.median(values):6.3f} / {min(values):6.3f}"

    verdicts = []
    print(f"\n(a) planner map of {args.grids:,} grids, {args.repeat} runs (median / best, seconds)")
    print(f"{'simplify_m':>14} {'page KB':>8} {'GET /maps/planner':>18} {'first render':>15} {'live problems in':>17}  errors")
    for simplify, r in results["render"].items():
        label = f"{simplify:g}" + (" (default)" if simplify == default_m else "")
        problems = s(r["problems"]) if r["problems"] else "-"
        print(f"{label:>14} {r['bytes'] / 1e3:8.0f} {s(r['server']):>18} {s(r['first']):>15} {problems:>17}  "
              f"{len(r['errors'])} {'; '.join(sorted(set(r['errors'])))[:200]}")
    chosen = results["render"][default_m]
    first = statistics.median(chosen["first"])
    verdicts.append((first < TARGET_RENDER_S and not [e for e in chosen["errors"] if e.startswith("page error")],
                     f"first render {first:.2f} s (target < {TARGET_RENDER_S:g})"))

    c = results["coverage"]
    print(f"\n(b) live coverage of the town ({c['problems']} problems{', every leader post vacant' if args.vacant_leaders else ''}), "
          f"{args.repeat} runs (median / best, seconds)")
    print(f"  /api/coverage/current, fresh after a change  {s(c['fresh'])}")
    print(f"  /api/coverage/current, stored run current    {s(c['stored'])}")
    print(f"  stored run alone, /api/coverage/runs/{{id}}    {s(c['read_run'])}   (the old map: may be out of date)")
    print(f"  full check, /api/coverage?subtree=true       {s(c['full'])}")
    print(f"  freshness query alone (in-process)           {s(c['query'])}")
    print(f"  fresh/stored answers as expected: {c['flags']}")
    worst = max(statistics.median(c["fresh"]), statistics.median(c["stored"]))
    verdicts.append((worst < TARGET_COVERAGE_S and c["flags"], f"live coverage {worst:.2f} s (target < {TARGET_COVERAGE_S:g})"))

    e = results["edit"]
    print(f"\n(c) moving a vertex of {e['code']} shared with {', '.join(e['neighbours'])} by ~3 m "
          f"(neighbours moved: {e['changed']}; gaps/overlaps created: {e['created']})")
    print(f"  dry run, PATCH ?dry_run=true      p50 {p(e['dry'], 50):.3f}  p95 {p(e['dry'], 95):.3f}  "
          f"best {min(e['dry']):.3f} s  ({len(e['dry'])} runs)")
    total = [a + b for a, b in zip(e["saves"], e["checks"])]
    print(f"  save + full coverage check        p50 {p(total, 50):.3f} s  (save {statistics.median(e['saves']):.3f} "
          f"+ check {statistics.median(e['checks']):.3f}; {len(total)} runs)")
    print(f"  the dry run answers {statistics.median(total) / statistics.median(e['dry']):.1f}x sooner")
    dry50 = p(e["dry"], 50)
    verdicts.append((dry50 < TARGET_DRY_RUN_S, f"dry run p50 {dry50 * 1000:.0f} ms (target < {TARGET_DRY_RUN_S * 1000:g})"))

    good = all(v for v, _ in verdicts)
    print(f"\nload average at the end: {loadavg()} (on {os.cpu_count()} CPUs: other work skews every figure)")
    print(f"\nVERDICT: {'PASS' if good else 'FAIL'}: " + "; ".join(f"{t} {'ok' if v else 'MISSED'}" for v, t in verdicts))
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
