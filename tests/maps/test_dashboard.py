"""The assessment dashboard (/maps/dashboard) in a real browser (headless Chromium through
Playwright), on the demo town of test_maps' world (its stored grids: MultiPolygons from
the database), served by a live uvicorn.

Cases are built by hand in October 2026 (and one in September) in four grids of three
villages, through the real workflow at chosen moments:

====  ==========  ======================================  ================
grid  village     cases                                   按期结案率
====  ==========  ======================================  ================
g0    A           two closed on time (ratings 9, 8)        2/2 = 100 %
g1    B           one on time (9), one accepted a week     1/2 = 50 %
                  late then closed (3)
g2    C           accepted a week late, left open          0/1 = 0 %
g3    C           voided                                  none (0 due)
====  ==========  ======================================  ================

So the town's October: received 6, closed 4, 结案率 4/5 = 80.0 %, 按期结案率 3/5 = 60.0 %,
overdue now 1, 满意率 3/4 = 75.0 % (ratings of 6 or more).

What is checked: the page loads after the /maps/login form with no JavaScript error and
no failed request, everything from this service; the cards show those figures (and the
same as ``indicators()``, formatted here); both ECharts charts exist with the right
series and painted pixels; the choropleth has one polygon per unit, coloured by class;
phone and desktop layouts do not overflow; English labels with lang=en; anonymous
browsers go to the login form, callers out of scope get a 403 page; hostile area names
stay text everywhere the page shows them.
"""

from __future__ import annotations

import datetime as dt
import re
import urllib.parse
from zoneinfo import ZoneInfo

import httpx
import pytest
import shapely
from sqlalchemy import text
from test_maps import (  # noqa: F401  (world: test_maps' fixture, used through w below)
    PASSWORD,
    TOWN,
    VILLAGE,
    Watched,
    map_login,
    token,
    world,
)

from geogrid.access import accounts
from geogrid.areas import importing
from geogrid.assessment import indicators as ind
from geogrid.assessment import scoring
from geogrid.db import engine as db
from geogrid.incidents import intake, workflow

TZ = ZoneInfo("Asia/Shanghai")
MONTH = "2026-10"
PATH = ["accepted", "filed", "dispatched", "in_progress", "handled", "verified", "closed"]
VIEWPORTS = {"phone": (390, 844), "desktop": (1400, 900)}
GREEN, RED, GREY = "#1a9641", "#d7191c", "#d9d9d9"  # 按期结案率 ≥ 95 %, < 60 %, no case due

HOSTILE_COUNTY = "339903"
HOSTILE_TOWN = "339903100"
HOSTILE_GRID = "339903100001001"
COUNTY_NAME = '</script><script>window.__xss=(window.__xss||0)+1</script>县'
TOWN_NAME = '<img src=x onerror="window.__xss=(window.__xss||0)+1">镇'
SCHEME_NAME = '<img src=x onerror="window.__xss=(window.__xss||0)+1">网格月考核'
GRID_NAME = '"><svg onload="window.__xss=(window.__xss||0)+1">&amp;格'


def at(month: int, day: int, hh: int, mm: int = 0) -> dt.datetime:
    return dt.datetime(2026, month, day, hh, mm, tzinfo=TZ)


@pytest.fixture(scope="module")
def w(world):  # noqa: F811
    """test_maps' world with the hand-built cases and a county whose names are HTML."""
    s = world.settings
    by_village: dict[str, list[str]] = {}
    for code in world.grid_codes:
        by_village.setdefault(code[:12], []).append(code)
    villages = sorted(by_village)
    a, b, c = villages[0], villages[1], villages[2]
    world.g = [by_village[a][0], by_village[b][0], by_village[c][0], by_village[c][1]]
    world.villages = (a, b, c)
    with db.transaction(world.engine) as session:
        def case(grid, when):
            point = world.points[grid]
            made = intake.intake(session, {"category": "sanitation", "channel": "hotline_12345",
                                           "description": "看板测试案件", "lon": point.x, "lat": point.y,
                                           "occurred_at": when}, s, at=when)
            assert made["grid"] == grid, made
            return made["id"]

        def walk(case_id, start, late=False, rating=None, until="closed"):
            accepted = start + dt.timedelta(days=7 if late else 0, minutes=5)
            moves = PATH[:PATH.index(until) + 1]
            for i, to in enumerate(moves):
                workflow.transition(session, case_id, to, s, at=accepted + dt.timedelta(minutes=5 * i),
                                    satisfaction=rating if to == "closed" else None)

        g0, g1, g2, g3 = world.g
        walk(case(g0, at(10, 14, 9)), at(10, 14, 9), rating=9)
        walk(case(g0, at(10, 14, 10)), at(10, 14, 10), rating=8)
        walk(case(g1, at(10, 14, 9)), at(10, 14, 9), rating=9)
        walk(case(g1, at(10, 14, 11)), at(10, 14, 11), late=True, rating=3)
        walk(case(g2, at(10, 14, 9)), at(10, 14, 9), late=True, until="accepted")
        workflow.transition(session, case(g3, at(10, 15, 9)), "void", s, at=at(10, 15, 9, 10), note="duplicate")
        walk(case(g0, at(9, 16, 9)), at(9, 16, 9), rating=10)  # September: the trend's other month

        records = [
            {"code": HOSTILE_COUNTY, "name": COUNTY_NAME, "level": "county", "layer": "admin"},
            {"code": HOSTILE_TOWN, "name": TOWN_NAME, "level": "town", "layer": "admin", "parent": HOSTILE_COUNTY},
            {"code": HOSTILE_TOWN + "001", "name": TOWN_NAME + "村", "level": "village", "layer": "admin",
             "parent": HOSTILE_TOWN},
            {"code": HOSTILE_GRID, "name": GRID_NAME, "level": "grid", "layer": "comprehensive",
             "parent": HOSTILE_TOWN + "001", "households": 400, "population": 1200},
        ]
        geoms = [shapely.box(120.7, 30.7, 120.74, 30.74)] + [shapely.box(120.7, 30.7, 120.72, 30.72)] * 3
        importing.import_areas(session, records, geoms, s, note="hostile names")
        accounts.create_account(session, "dash-hostile", PASSWORD)
        accounts.grant(session, "dash-hostile", "planner", HOSTILE_COUNTY)
        accounts.create_account(session, "dash-inspector", PASSWORD)
        accounts.grant(session, "dash-inspector", "inspector", TOWN)
        # A score sheet of the town's villages, computed for October (its name is HTML).
        scheme = scoring.create_scheme(session, {
            "area": TOWN, "name": SCHEME_NAME, "total": 100, "target_kind": "village", "period_kind": "month",
            "items": [{"code": "late", "name": "逾期结案", "points": 10, "kind": "deduction",
                       "rule": {"indicator": "closed_late", "per": 1, "points": 5}},
                      {"code": "open", "name": "未结案", "points": 6, "kind": "deduction",
                       "rule": {"indicator": "unclosed", "per": 1, "points": 3}},
                      {"code": "sat", "name": "满意率低于90%", "points": 4, "kind": "deduction",
                       "rule": {"indicator": "satisfaction_rate", "below": 0.9, "points": 4}}]})
        scoring.compute_period(session, s, scheme["id"], MONTH)
        # One case now in the hostile grid: the default month (this one) has it.
        hostile_point = shapely.Point(120.71, 30.71)
        made = intake.intake(session, {"category": "sanitation", "channel": "hotline_12345", "description": "测试",
                                       "lon": hostile_point.x, "lat": hostile_point.y}, s)
        assert made["grid"] == HOSTILE_GRID
    return world


def shot(page, path) -> None:
    """The whole page as a PNG (kept with pytest's temporary files, for a look)."""
    page.screenshot(path=str(path), full_page=True)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 30_000


def figures(w, area: str, start: dt.date, end: dt.date, by=()) -> dict:
    with db.transaction(w.engine) as session:
        return ind.indicators(session, w.settings, area=area, start=start, end=end, by=list(by))


def pct(rate) -> str:
    return "—" if rate is None else "%.1f%%" % (rate * 100)


def open_dashboard(w, query: str, *, size=(1400, 900), user: str = "maps-planner") -> Watched:
    watched = Watched(w)
    watched.page.set_viewport_size({"width": size[0], "height": size[1]})
    map_login(watched, w, f"/maps/dashboard?{query}", user=user)
    watched.page.wait_for_function("() => window.geogrid && geogrid.dashboardPage && geogrid.dashboardPage.map._loaded",
                                   timeout=30_000)
    watched.page.wait_for_timeout(300)  # canvas redraws are batched on animation frames
    return watched


def cards(page) -> dict:
    return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('.card')].map(
        c => [c.dataset.key, {label: c.querySelector('.label').textContent,
                              value: c.querySelector('.value').textContent}]))""")


CHARTS_JS = """() => {
    const out = {};
    for (const id of ['geogrid-chart-trend', 'geogrid-chart-units']) {
        const el = document.getElementById(id), chart = echarts.getInstanceByDom(el);
        if (!chart) { out[id] = null; continue; }
        const canvas = el.querySelector('canvas');
        const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let painted = 0;
        for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) painted++;
        const option = chart.getOption();
        out[id] = {series: option.series.map(s => ({type: s.type, data: s.data.map(d => d && typeof d === 'object' ? d.value : d)})),
                   categories: (option.xAxis[0].type === 'category' ? option.xAxis : option.yAxis)[0].data,
                   painted: painted, width: el.getBoundingClientRect().width};
    }
    return out;
}"""

POLYGONS_JS = """() => {
    const layer = geogrid.dashboardPage.layer, out = {};
    layer.eachLayer(l => { out[l.feature.properties.code] = {colour: l.options.fillColor,
                                                             rings: l.getLatLngs().length}; });
    return out;
}"""


def current_units(w, area: str, level: str | None, layer: str) -> int:
    with w.engine.connect() as conn:
        return conn.execute(text(
            "SELECT count(*) FROM area a JOIN boundary b ON b.area_id = a.id WHERE upper_inf(b.valid) "
            "AND a.code LIKE :p AND a.layer_key = :layer AND (CAST(:level AS text) IS NULL OR a.level_key = :level)"),
            {"p": area + "%", "layer": layer, "level": level}).scalar_one()


# --------------------------------------------------------------------------- 1. figures, charts, map


def test_dashboard_by_grid(w, tmp_path):
    watched = open_dashboard(w, f"area={TOWN}&month={MONTH}&unit=grid")
    page = watched.page
    try:
        assert watched.errors() == []
        assert all(u.startswith((w.base, "data:", "about:", "blob:")) for u in watched.requests), watched.requests
        assert any("/maps/assets/echarts@6.1.0/dist/echarts.common.min.js" in u for u in watched.requests)
        # The cards: figures worked out by hand (module docstring)...
        shown = cards(page)
        assert list(shown) == ["received", "closure_rate", "on_time_rate", "overdue_now", "avg_hours",
                               "satisfaction_rate", "patrol_rate"]
        assert {k: shown[k]["value"] for k in ("received", "closure_rate", "on_time_rate", "overdue_now",
                                               "satisfaction_rate")} == {
            "received": "6", "closure_rate": "80.0%", "on_time_rate": "60.0%", "overdue_now": "1",
            "satisfaction_rate": "75.0%"}
        assert shown["on_time_rate"]["label"] == "按期结案率" and shown["received"]["label"] == "上报数"
        # ...and the same as the domain function's, formatted here.
        total = figures(w, TOWN, dt.date(2026, 10, 1), dt.date(2026, 11, 1))["total"]
        assert shown["received"]["value"] == str(total["received"])
        assert shown["closure_rate"]["value"] == pct(total["closure_rate"])
        assert shown["on_time_rate"]["value"] == pct(total["on_time_rate"])
        assert shown["overdue_now"]["value"] == str(total["overdue_now"])
        assert shown["satisfaction_rate"]["value"] == pct(total["satisfaction_rate"])
        assert shown["patrol_rate"]["value"] == pct(total["patrol_rate"])
        assert shown["avg_hours"]["value"] == ("—" if total["avg_hours"] is None
                                               else "%.1f 小时" % total["avg_hours"])
        assert total["avg_hours"] is not None and total["avg_hours"] > 0

        charts = page.evaluate(CHARTS_JS)
        trend, units = charts["geogrid-chart-trend"], charts["geogrid-chart-units"]
        assert trend and units, charts
        months = trend["categories"]
        assert months == [f"{y}-{m:02d}" for y, m in [(2025, 11), (2025, 12)] + [(2026, k) for k in range(1, 11)]]
        assert [s["type"] for s in trend["series"]] == ["bar", "bar", "line"]
        received = dict(zip(months, trend["series"][0]["data"]))
        closed = dict(zip(months, trend["series"][1]["data"]))
        on_time = dict(zip(months, trend["series"][2]["data"]))
        assert (received["2026-09"], received["2026-10"], closed["2026-09"], closed["2026-10"]) == (1, 6, 1, 4)
        assert on_time["2026-09"] == 100 and on_time["2026-10"] == 60
        assert sum(received.values()) == 7 and on_time["2026-08"] is None
        # One bar per grid with a case due to close, best at the top (a category axis lists upwards).
        g0, g1, g2, g3 = w.g
        names = grid_names(w, [g0, g1, g2])
        assert units["categories"] == [names[g2], names[g1], names[g0]]
        assert units["series"][0]["data"] == [0, 50, 100]
        assert trend["painted"] > 2000 and units["painted"] > 2000, charts

        # The choropleth: one polygon per current comprehensive grid of the town, by class.
        polygons = page.evaluate(POLYGONS_JS)
        assert len(polygons) == current_units(w, TOWN, None, "comprehensive") == len(w.grid_codes) == 330
        expected = {code: GREY for code in polygons} | {g0: GREEN, g1: RED, g2: RED}
        assert {code: p["colour"] for code, p in polygons.items()} == expected
        legend = page.locator(".geogrid-dashboard-legend").inner_text()
        assert "按期结案率" in legend and "≥ 95%" in legend and "本月无案件" in legend

        # The ranking: rated grids best first, the voided-only grid without a rank.
        rows = page.evaluate("""() => [...document.querySelectorAll('#geogrid-ranking tbody tr')].map(
            r => [r.dataset.code, ...[...r.cells].map(c => c.innerText.trim())])""")
        assert [r[0] for r in rows] == [g0, g1, g2, g3]
        assert [r[1] for r in rows] == ["1", "2", "3", "—"]
        assert [r[6] for r in rows] == ["100.0%", "50.0%", "0.0%", "—"]  # 按期结案率 column
        assert [r[3] for r in rows] == ["2", "2", "1", "1"]  # 上报数 column
        shot(page, tmp_path / "dashboard-grid.png")
    finally:
        watched.close()


def grid_names(w, codes) -> dict:
    with w.engine.connect() as conn:
        return dict(conn.execute(text("SELECT code, name FROM area WHERE code = ANY(:c)"), {"c": codes}).all())


def test_dashboard_by_village_is_the_default_for_a_town(w):
    watched = open_dashboard(w, f"area={TOWN}&month={MONTH}", user="dash-inspector")
    page = watched.page
    try:
        assert watched.errors() == []
        assert page.locator('select[name="unit"]').input_value() == "village"
        polygons = page.evaluate(POLYGONS_JS)
        assert len(polygons) == current_units(w, TOWN, "village", "admin") > 3
        a, b, c = w.villages
        expected = {code: GREY for code in polygons} | {a: GREEN, b: RED, c: RED}
        assert {code: p["colour"] for code, p in polygons.items()} == expected
        charts = page.evaluate(CHARTS_JS)
        assert charts["geogrid-chart-units"]["series"][0]["data"] == [0, 50, 100]
        rows = figures(w, TOWN, dt.date(2026, 10, 1), dt.date(2026, 11, 1), by=["village"])["rows"]
        assert {r["village"]: r["on_time_rate"] for r in rows if r["received"]} == {a: 1.0, b: 0.5, c: 0.0}
        # The month picker's links: September and November, same unit.
        prev = page.get_attribute("#geogrid-previous", "href")
        assert urllib.parse.parse_qs(urllib.parse.urlsplit(prev).query) == {
            "area": [TOWN], "month": ["2026-09"], "unit": ["village"]}
        page.click("#geogrid-previous")
        page.wait_for_function("() => window.geogrid && geogrid.dashboardPage && geogrid.dashboardPage.map._loaded")
        assert "2026-09" in page.locator("h1").inner_text()
        assert cards(page)["received"]["value"] == "1"
        assert cards(page)["on_time_rate"]["value"] == "100.0%"
        assert watched.errors() == []
    finally:
        watched.close()


def test_score_ranking_from_the_score_sheet(w):
    """Village scores worked out by hand: A 100; B 100 − 5 (one closed late) − 4 (满意率 1/2
    below 90 %) = 91; C 100 − 3 (one case neither closed nor voided) = 97; others 100."""
    watched = open_dashboard(w, f"area={TOWN}&month={MONTH}")
    page = watched.page
    try:
        assert watched.errors() == []
        heading = page.locator("#geogrid-scores h2").inner_text()
        assert SCHEME_NAME in heading and "2026-10" in heading and "村/社区" in heading
        rows = page.evaluate("""() => [...document.querySelectorAll('#geogrid-score-ranking tbody tr')].map(
            r => [r.dataset.target, r.className, ...[...r.cells].map(c => c.innerText.trim())])""")
        scores = {r[0]: r[4] for r in rows}
        a, b, c = w.villages
        assert (scores[a], scores[b], scores[c]) == ("100", "91", "97")
        assert set(scores.values()) == {"100", "97", "91"}
        assert rows[-1][0] == b and rows[-1][1] == "bottom" and rows[-1][2].startswith(str(len(rows)))
        assert rows[-2][0] == c and rows[-2][1] == "bottom"
        assert page.evaluate("() => window.__xss") is None
    finally:
        watched.close()


# --------------------------------------------------------------------------- 2. layout and language


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_layout_fits_the_screen(w, viewport, tmp_path):
    size = VIEWPORTS[viewport]
    watched = open_dashboard(w, f"area={TOWN}&month={MONTH}&unit=grid", size=size)
    page = watched.page
    try:
        assert watched.errors() == []
        layout = page.evaluate("""() => ({
            scroll: document.scrollingElement.scrollWidth, inner: window.innerWidth,
            cards: [...document.querySelectorAll('.card')].map(c => c.getBoundingClientRect().toJSON()),
            panels: [...document.querySelectorAll('.chart, .map')].map(c => c.getBoundingClientRect().toJSON()),
            main: document.querySelector('main').getBoundingClientRect().toJSON(),
        })""")
        assert layout["scroll"] <= layout["inner"] == size[0], layout
        for box in layout["cards"] + layout["panels"]:
            assert box["left"] >= 0 and box["right"] <= size[0] and box["width"] > 100, box
        columns = len({round(c["left"]) for c in layout["cards"]})
        if viewport == "phone":
            # Cards two abreast, charts and map the whole width of the page.
            assert columns == 2
            assert all(p["width"] >= size[0] - 60 for p in layout["panels"]), layout["panels"]
        else:
            assert columns == 7  # one row of cards
            assert min(p["width"] for p in layout["panels"]) < size[0] / 2  # map and bar chart side by side
        # The charts drew at the width they were given.
        charts = page.evaluate(CHARTS_JS)
        assert all(c["painted"] > 1000 and c["width"] <= size[0] for c in charts.values()), charts
        shot(page, tmp_path / f"dashboard-{viewport}.png")
    finally:
        watched.close()


def test_english_labels(w):
    watched = open_dashboard(w, f"area={TOWN}&month={MONTH}&unit=grid&lang=en")
    page = watched.page
    try:
        assert watched.errors() == []
        shown = cards(page)
        assert [shown[k]["label"] for k in shown] == ["Received", "Closure rate", "On-time closure rate",
                                                      "Overdue now", "Average handling time", "Satisfaction rate",
                                                      "Patrol completion"]
        assert shown["avg_hours"]["value"].endswith(" h")
        heading = page.locator("h1").inner_text()
        assert "Assessment dashboard" in heading and "2026-10" in heading
        texts = page.evaluate("""() => [...document.querySelectorAll('h2, th, nav a, nav label, nav button, .note')]
                                      .map(e => e.innerText)""")
        # Chinese only in what users wrote (the score sheet's name) and the link to the Chinese page.
        texts = [t.replace(SCHEME_NAME, "") for t in texts if t != "中文"]
        assert texts and not [t for t in texts if re.search(r"[\u4e00-\u9fff]", t)], texts
        charts = page.evaluate("""() => echarts.getInstanceByDom(document.getElementById('geogrid-chart-trend'))
                                        .getOption().legend[0].data""")
        assert charts == ["Received", "Closed", "On-time closure rate"]
        assert page.get_attribute("html", "lang") == "en"
    finally:
        watched.close()


# --------------------------------------------------------------------------- 3. access


def test_anonymous_goes_to_the_login_form(w):
    query = {"area": TOWN, "month": MONTH}
    r = httpx.get(w.base + "/maps/dashboard", params=query, headers={"Accept": "text/html"}, timeout=60)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/maps/login?next=/maps/dashboard")
    r = httpx.get(w.base + "/maps/dashboard", params=query, timeout=60)
    assert r.status_code == 401
    watched = Watched(w)
    try:
        watched.page.goto(f"{w.base}/maps/dashboard?area={TOWN}&month={MONTH}")
        assert urllib.parse.urlsplit(watched.page.url).path == "/maps/login"
        assert watched.page.locator('input[name="next"]').input_value() == f"/maps/dashboard?area={TOWN}&month={MONTH}"
    finally:
        watched.close()


def test_out_of_scope_is_refused(w):
    worker = token(w, "maps-worker")  # a grid worker of one village of the town
    nobody = token(w, "maps-nobody")

    def get(area, bearer, accept="*/*", **extra):
        return httpx.get(w.base + "/maps/dashboard", params={"area": area, **extra}, timeout=60,
                         headers={"Authorization": f"Bearer {bearer}", "Accept": accept})

    r = get(TOWN, worker, accept="text/html")
    assert r.status_code == 403 and "text/html" in r.headers["content-type"]
    assert "无权查看" in r.text and TOWN in r.text and "<script" not in r.text
    assert get(TOWN, worker).status_code == 403 and "detail" in get(TOWN, worker).json()
    assert get(TOWN, nobody).status_code == 403
    assert get(HOSTILE_COUNTY, worker).status_code == 403
    assert get(VILLAGE, worker).status_code == 200  # the worker's own village
    assert get(VILLAGE, worker, unit="town").status_code == 422  # a village is not broken into towns
    assert get(VILLAGE, worker, month="2026-13").status_code == 422
    # The area as written in the address is shown as text on the refusal page.
    r = get('<img src=x onerror="alert(1)">', worker, accept="text/html")
    assert r.status_code == 403 and "<img" not in r.text and "&lt;img" in r.text
    # In a browser, the refusal is a page.
    watched = Watched(w)
    try:
        map_login(watched, w, f"/maps/dashboard?area={TOWN}&month={MONTH}", user="maps-worker")
        assert watched.page.locator("#geogrid-error").inner_text().startswith("403")
    finally:
        watched.close()


def test_page_security_headers(w):
    planner = token(w, "maps-planner")
    r = httpx.get(w.base + "/maps/dashboard", params={"area": TOWN, "month": MONTH}, timeout=60,
                  headers={"Authorization": f"Bearer {planner}"})
    assert r.status_code == 200
    policy = r.headers["content-security-policy"]
    nonce = re.search(r"'nonce-([^']+)'", policy).group(1)
    assert "unsafe-eval" not in policy and "frame-ancestors 'none'" in policy
    scripts = re.findall(r"<script\b[^>]*>", r.text)
    assert len(scripts) == 5 and all(f'nonce="{nonce}"' in s for s in scripts)
    assert "cdn.jsdelivr" not in r.text and r.headers["cache-control"] == "no-store"


# --------------------------------------------------------------------------- 4. hostile names


@pytest.mark.parametrize("unit", ["town", "grid"])
def test_hostile_names_are_text(w, unit):
    watched = open_dashboard(w, f"area={HOSTILE_COUNTY}&unit={unit}", user="dash-hostile")
    page = watched.page
    try:
        dialogs = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        assert watched.errors() == []
        name = TOWN_NAME if unit == "town" else GRID_NAME
        code = HOSTILE_TOWN if unit == "town" else HOSTILE_GRID
        assert page.locator("#geogrid-area-name").inner_text() == COUNTY_NAME
        assert page.title().startswith(COUNTY_NAME)
        row = page.locator(f'#geogrid-ranking tr[data-code="{code}"] td.name')
        assert row.inner_text().splitlines()[0] == name
        charts = page.evaluate(CHARTS_JS)
        assert charts["geogrid-chart-units"]["categories"] == [name]
        # The map's tooltip and the bar chart's tooltip, opened.
        page.evaluate("""() => { const l = geogrid.dashboardPage.layer.getLayers()[0]; l.openTooltip(); }""")
        assert name in page.locator(".leaflet-tooltip").inner_text()
        page.evaluate("""() => echarts.getInstanceByDom(document.getElementById('geogrid-chart-units'))
                              .dispatchAction({type: 'showTip', seriesIndex: 0, dataIndex: 0})""")
        page.wait_for_timeout(200)
        assert page.evaluate("() => [...document.querySelectorAll('div')].some(d => d.className === 'geogrid-card' "
                             "&& d.textContent.includes(%r))" % name)
        page.wait_for_timeout(300)
        assert page.evaluate("() => window.__xss") is None and dialogs == []
        assert page.evaluate("""() => [...document.querySelectorAll('*')].filter(e => [...e.attributes].some(
                                    a => a.name.startsWith('on'))).length""") == 0
        assert page.locator("svg[onload], img[src='x']").count() == 0
    finally:
        watched.close()


# --------------------------------------------------------------------------- 5. report links


def test_report_links_use_the_map_session(w):
    watched = open_dashboard(w, f"area={TOWN}&month={MONTH}")
    page = watched.page
    try:
        for fmt in ("pdf", "xlsx"):
            href = page.get_attribute(f"#geogrid-report-{fmt}", "href")
            assert urllib.parse.parse_qs(urllib.parse.urlsplit(href).query) == {
                "area": [TOWN], "month": [MONTH], "format": [fmt]}
        seen = []
        page.on("request", lambda r: "/api/reports/monthly" in r.url and seen.append(r.headers))
        with page.expect_download(timeout=120_000) as download:
            page.click("#geogrid-report-xlsx")
        assert download.value.suggested_filename == f"report-{TOWN}-{MONTH}.xlsx"
        with open(download.value.path(), "rb") as f:
            assert f.read(2) == b"PK"  # a workbook (a zip), not an error message
        assert page.locator("#geogrid-download-status").inner_text() == ""
        assert seen and seen[0].get("x-requested-with") == "geogrid-map"
        assert watched.errors() == []
    finally:
        watched.close()
