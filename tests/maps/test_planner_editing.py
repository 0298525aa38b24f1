"""The planner's editor in a real browser (headless Chromium through Playwright) on the demo
jurisdiction, served by a live uvicorn: reshaping a stored MultiPolygon grid by dragging a
vertex (leaflet-geoman), moving a vertex shared with neighbours, splitting a grid by a
drawn line and merging the pieces back, the dry run's impact (a gap measured like PostGIS),
a stale edit's readable conflict, the live coverage problems, the read-only map of an
inspector, the page's languages and its layout at a phone's and a desktop's size.

The world (demo database, live server, browser) is test_maps.py's, built once for this
module; each test takes grids no other test touches.
"""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo

import pytest
import shapely
from sqlalchemy import text
from test_maps import (  # noqa: F401  (world: test_maps' fixture, used through w below)
    PASSWORD,
    TOWN,
    Watched,
    map_login,
    save,
    screenshot,
    token,
    world,
)

from geogrid.access import accounts
from geogrid.areas import lookup
from geogrid.core import timeutil
from geogrid.coverage import checks, runs
from geogrid.db import engine as db


@pytest.fixture(scope="module")
def w(world):  # noqa: F811
    """test_maps' world (demo database, live server, browser), built once for this module."""
    return world


VIEWPORTS = {"phone": (390, 844), "desktop": (1400, 900)}
MAP_JS = "Object.values(window).find(v => v instanceof L.Map)"
EDITOR_JS = "Object.values(window).find(v => v && v.state && v.run && v.select)"


# --------------------------------------------------------------------------- helpers


def open_planner(w, *, lang: str = "zh", size=(1400, 900), user: str = "maps-planner") -> Watched:
    watched = Watched(w)
    watched.page.set_viewport_size({"width": size[0], "height": size[1]})
    map_login(watched, w, f"/maps/planner?area={TOWN}&lang={lang}", user=user)
    watched.ready()
    # The live problems arrive after the page: wait for them (their time is shown).
    watched.page.wait_for_function("() => /\\d/.test(document.getElementById('geogrid-problems-at').textContent)",
                                   timeout=60_000)
    return watched


def boxes(page) -> list[dict]:
    """Bounding boxes of every visible control and panel of the map."""
    return page.evaluate("""() => {
        const out = [];
        const seen = new Set();
        for (const el of document.querySelectorAll('.leaflet-control, .geogrid-dock-panel, #geogrid-confirm')) {
            const r = el.getBoundingClientRect();
            if (!el.offsetParent || r.width === 0 || r.height === 0) continue;
            // A control inside another (the layer control in the dock) is part of it.
            if ([...seen].some(o => o.contains(el))) continue;
            seen.add(el);
            out.push({name: (el.id || el.className).toString().slice(0, 60), x: r.left, y: r.top, w: r.width,
                      h: r.height});
        }
        return out;
    }""")


def overlaps(found: list[dict]) -> list[tuple[str, str]]:
    out = []
    for i, a in enumerate(found):
        for b in found[i + 1:]:
            if a["x"] < b["x"] + b["w"] - 1 and b["x"] < a["x"] + a["w"] - 1 and \
               a["y"] < b["y"] + b["h"] - 1 and b["y"] < a["y"] + a["h"] - 1:
                out.append((a["name"], b["name"]))
    return out


def inside(found: list[dict], size) -> list[str]:
    return [b["name"] for b in found if b["x"] < -1 or b["y"] < -1 or b["x"] + b["w"] > size[0] + 1
            or b["y"] + b["h"] > size[1] + 1]


VISIBLE_TEXT_JS = """() => {
    const out = [];
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    while (walker.nextNode()) {
        const node = walker.currentNode, el = node.parentElement;
        if (!el || !node.textContent.trim() || el.closest('.leaflet-control-attribution, script, style')) continue;
        if (!el.checkVisibility || !el.checkVisibility()) continue;
        out.push(node.textContent.trim());
    }
    for (const el of document.querySelectorAll('[title], [placeholder]')) {
        if (el.closest('.leaflet-control-attribution')) continue;
        if (el.checkVisibility && el.checkVisibility()) out.push(el.getAttribute('title') || el.getAttribute('placeholder'));
    }
    return out;
}"""


def english_words(texts: list[str]) -> list[str]:
    return sorted({w for t in texts for w in re.findall(r"[A-Za-z]{4,}", t)})


def chinese(texts: list[str]) -> list[str]:
    return sorted({t for t in texts if re.search(r"[\u4e00-\u9fff]", t)})


# --------------------------------------------------------------------------- layout and language


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_planner_layout_has_no_overlap(w, viewport, tmp_path):
    size = VIEWPORTS[viewport]
    watched = open_planner(w, size=size)
    page = watched.page
    try:
        assert watched.errors() == []
        assert all(u.startswith((w.base, "data:", "about:")) for u in watched.requests), watched.requests
        assert page.locator(".leaflet-pm-toolbar").count() > 0  # geoman's draw tools
        tabs = page.locator(".geogrid-dock-button")
        assert tabs.count() == 6
        found = boxes(page)
        assert overlaps(found) == [] and inside(found, size) == [], found
        for i in range(tabs.count()):  # each panel open in turn
            tabs.nth(i).click()
            page.wait_for_timeout(100)
            found = boxes(page)
            assert overlaps(found) == [] and inside(found, size) == [], (tabs.nth(i).inner_text(), found)
            screenshot(page, tmp_path / f"planner-{viewport}-{i}.png")
    finally:
        watched.close()


def test_planner_page_speaks_chinese_then_english(w):
    watched = open_planner(w, lang="zh")
    page = watched.page
    try:
        texts = []
        for i in range(page.locator(".geogrid-dock-button").count()):
            page.locator(".geogrid-dock-button").nth(i).click()
            texts += page.evaluate(VISIBLE_TEXT_JS)
        # The editor's answers too: a dry run's impact (the server's reasons in Chinese).
        code = w.grid_codes[250]
        old = stored(w, [code])[code]
        vertex, _ = sharing(w, code, old, at_least=1)
        show_parents(page, False)
        select(page, code, old)
        page.uncheck("#geogrid-move-shared")
        drag_vertex(page, *vertex, 40, 30)
        answer = preview(page)
        assert answer["status"] == 200 and answer["body"]["impact"]["reasons"], answer
        texts += page.evaluate(VISIBLE_TEXT_JS)
        assert english_words(texts) == []
        # The scale is in metres only.
        scale = page.locator(".leaflet-control-scale").inner_text()
        assert re.search(r"\d+ k?m", scale) and "ft" not in scale and "mi" not in scale
    finally:
        watched.close()
    watched = open_planner(w, lang="en")
    page = watched.page
    try:
        texts = []
        for i in range(page.locator(".geogrid-dock-button").count()):
            page.locator(".geogrid-dock-button").nth(i).click()
            texts += page.evaluate(VISIBLE_TEXT_JS)
        assert chinese(texts) == [] or all(
            re.search(r"\d{9,}", t) or t in names(w) for t in chinese(texts)), chinese(texts)
    finally:
        watched.close()


def names(w) -> set[str]:
    """Grid and area names (data, shown as stored whatever the page's language)."""
    with db.transaction(w.engine) as session:
        return set(session.execute(text("SELECT name FROM area WHERE code LIKE :p"), {"p": TOWN[:6] + "%"}).scalars())


# --------------------------------------------------------------------------- editing


def show_parents(page, show: bool) -> None:
    """Tick or untick the parent boundaries in the layer panel (on one canvas, the unfilled
    outlines above the grids take their clicks)."""
    page.click("#geogrid-tab-layers")
    box = page.locator(".leaflet-control-layers label", has_text=re.compile("上级边界|Parent boundaries")).locator("input")
    box.set_checked(show)
    page.click("#geogrid-tab-editor")


def select(page, code: str, geom) -> None:
    """Zoom to the grid and click inside it: its stored boundary comes into the editor."""
    x0, y0, x1, y1 = geom.bounds
    # Clear of the panels on the right and the tools on the left.
    page.evaluate(f"(b) => {{ {MAP_JS}.fitBounds(b, {{animate: false, paddingTopLeft: [80, 80], "
                  "paddingBottomRight: [420, 80]}); }", [[y0, x0], [y1, x1]])
    page.wait_for_timeout(300)
    # Inside the grid, away from its code label (a marker, which takes the click).
    label = shapely.point_on_surface(geom)
    inner = shapely.get_geometry(geom.buffer(-0.15 * min(x1 - x0, y1 - y0)), 0)
    spot = max((shapely.Point(c) for c in shapely.get_exterior_ring(inner).coords), key=label.distance)
    page.mouse.click(*xy(page, spot.y, spot.x))
    page.wait_for_function(f"(c) => {EDITOR_JS}.state.code === c && {EDITOR_JS}.state.layer", arg=code)


def xy(page, lat: float, lng: float) -> tuple[float, float]:
    return tuple(page.evaluate(f"""([lat, lng]) => {{ const map = {MAP_JS};
        const p = map.latLngToContainerPoint([lat, lng]), r = map.getContainer().getBoundingClientRect();
        return [r.left + p.x, r.top + p.y]; }}""", [lat, lng]))


def drag_vertex(page, lon: float, lat: float, dx: float, dy: float) -> dict:
    """Drag geoman's vertex marker at (lon, lat) by (dx, dy) pixels, as a hand would; the move recorded.
    Further than the snapping distance: closer, the vertex snaps back to the neighbours' copy of it."""
    found = page.evaluate(f"""([lat, lng]) => {{
        const l = {EDITOR_JS}.state.layer, map = {MAP_JS};
        const markers = l.pm._markers.flat(Infinity);
        const m = markers.reduce((a, b) => a.getLatLng().distanceTo([lat, lng]) <= b.getLatLng().distanceTo([lat, lng]) ? a : b);
        const r = m._icon.getBoundingClientRect();
        return {{x: r.left + r.width / 2, y: r.top + r.height / 2, off: m.getLatLng().distanceTo([lat, lng])}};
    }}""", [lat, lon])
    assert found["off"] < 0.01, found
    page.mouse.move(found["x"], found["y"])
    page.mouse.down()
    page.mouse.move(found["x"] + dx / 2, found["y"] + dy / 2, steps=4)
    page.mouse.move(found["x"] + dx, found["y"] + dy, steps=4)
    page.mouse.up()
    page.wait_for_timeout(200)
    moves = page.evaluate(f"() => {EDITOR_JS}.state.moves.map(m => [[m.from.lng, m.from.lat], [m.to.lng, m.to.lat]])")
    assert moves, "the drag was not recorded as a move"
    return {"from": tuple(moves[-1][0]), "to": tuple(moves[-1][1])}


ARM_JS = """(name) => { window.__done = new Promise(resolve => document.addEventListener(
    name, e => resolve(e.detail), {once: true})); }"""


def preview(page) -> dict:
    page.evaluate(ARM_JS, "geogrid-impact")
    page.click("#geogrid-preview-btn")
    return page.evaluate("() => window.__done")


def stored(w, codes) -> dict:
    with db.transaction(w.engine) as session:
        return lookup.current_geometries(session, list(codes))


def versions_of(w, codes) -> dict:
    with db.transaction(w.engine) as session:
        rows = session.execute(text("SELECT code, version FROM area WHERE code = ANY(:c)"), {"c": list(codes)}).all()
    return dict(rows)


def geography_area(w, geom) -> float:
    with db.transaction(w.engine) as session:
        return session.execute(text("SELECT ST_Area(ST_GeomFromText(:g, 4326)::geography)"),
                               {"g": geom.wkt}).scalar_one()


def moved(geom, frm, to):
    """``geom`` with every coordinate at ``frm`` put at ``to`` (what dragging that vertex means)."""
    def at(coords):
        hit = (abs(coords[:, 0] - frm[0]) < 1e-12) & (abs(coords[:, 1] - frm[1]) < 1e-12)
        coords[hit] = to
        return coords
    return shapely.transform(geom, at)


def sharing(w, code: str, geom, *, at_least: int):
    """A vertex of ``code``'s exterior that ``at_least`` other current grids have too, not on the
    parent's boundary; with those grids' codes."""
    with db.transaction(w.engine) as session:
        rows = session.execute(text("""
            SELECT a.code, ST_AsText(b.geom) FROM area a JOIN boundary b ON b.area_id = a.id AND upper_inf(b.valid)
            WHERE a.layer_key = 'comprehensive' AND a.retired_at IS NULL AND a.code <> :c
              AND ST_Intersects(b.geom, ST_GeomFromText(:g, 4326))"""), {"c": code, "g": geom.wkt}).all()
    others = {c: shapely.from_wkt(g) for c, g in rows}
    with db.transaction(w.engine) as session:
        edge = shapely.geometry.shape(lookup.get_area(session, parent_of(w, code))["geometry"]).boundary
    coords = {(x, y) for poly in shapely.get_parts(geom) for x, y in poly.exterior.coords}
    for x, y in sorted(coords):
        having = [c for c, g in others.items()
                  if any((x, y) == (cx, cy) for p in shapely.get_parts(g) for cx, cy in p.exterior.coords)]
        if len(having) >= at_least and edge.distance(shapely.Point(x, y)) > 1e-6:
            return (x, y), having
    return None, []


def grid_problems(w, parent: str, codes) -> list:
    with db.transaction(w.engine) as session:
        found = runs.run(session, parent, "comprehensive", checks.options_from(w.settings), subtree=False,
                         today=timeutil.local_today(w.settings), store=False)["problems"]["features"]
    return sorted((f["properties"]["kind"], tuple(f["properties"]["codes"])) for f in found
                  if f["properties"]["kind"] in ("gap", "overlap") and set(f["properties"]["codes"]) & set(codes))


def parent_of(w, code: str) -> str:
    with db.transaction(w.engine) as session:
        return lookup.get_area(session, code)["properties"]["parent"]


def test_reshape_a_stored_multipolygon_by_dragging_a_vertex(w, tmp_path):
    code = w.grid_codes[141]
    old = stored(w, [code])[code]
    assert old.geom_type == "MultiPolygon"
    vertex, neighbours = sharing(w, code, old, at_least=1)
    assert vertex, "no vertex shared with a neighbour"
    before = versions_of(w, [code, *neighbours])
    watched = open_planner(w, lang="en")
    page = watched.page
    try:
        show_parents(page, False)
        select(page, code, old)
        page.uncheck("#geogrid-move-shared")  # this grid only: the neighbours stay as they are
        move = drag_vertex(page, *vertex, 34, -24)
        answer = save(page)
        assert answer["status"] == 200, answer
        body = answer["body"]
        assert body["dry_run"] is False and body["changed"] == []
        assert body["properties"]["boundary_version"] == 2
        assert re.search(rf"Saved:.*{code} v2", page.locator("#geogrid-status").inner_text())
        now = stored(w, [code])[code]
        expected = moved(old, move["from"], move["to"])
        assert shapely.hausdorff_distance(now, expected) < 1e-9
        area = geography_area(w, now)
        assert area == pytest.approx(geography_area(w, expected), rel=1e-9)
        assert abs(area - geography_area(w, old)) > 1.0  # the drag did change it
        after = versions_of(w, [code, *neighbours])
        assert after[code] == before[code] + 1 and all(after[n] == before[n] for n in neighbours)
        # The map shows the saved boundary, not the old one.
        page.wait_for_timeout(300)
        shown = page.evaluate(f"(c) => {MAP_JS} && Object.values(window).find(v => v instanceof L.GeoJSON && "
                              "v.getLayers().some(l => l.feature.properties.code === c)).getLayers()"
                              ".find(l => l.feature.properties.code === c).toGeoJSON(false).geometry", code)
        assert shapely.hausdorff_distance(shapely.geometry.shape(shown), now) < 1e-6  # the API writes 7 decimals
        screenshot(page, tmp_path / "reshaped.png")
    finally:
        watched.close()


def test_dragging_a_shared_vertex_moves_every_grid_that_has_it(w):
    code = w.grid_codes[180]
    old = stored(w, [code])[code]
    vertex, neighbours = sharing(w, code, old, at_least=2)
    assert vertex, "no vertex shared by three grids"
    codes = [code, *neighbours]
    before_geoms = stored(w, codes)
    parents = {parent_of(w, c) for c in codes}
    problems_before = {p: grid_problems(w, p, codes) for p in parents}
    before = versions_of(w, codes)
    watched = open_planner(w)
    page = watched.page
    try:
        show_parents(page, False)
        select(page, code, old)
        assert page.is_checked("#geogrid-move-shared")  # on by default
        move = drag_vertex(page, *vertex, -30, 26)
        answer = save(page)
        assert answer["status"] == 200, answer
        assert sorted(answer["body"]["changed"]) == sorted(neighbours)
        after = versions_of(w, codes)
        assert all(after[c] == before[c] + 1 for c in codes), (before, after)
        now = stored(w, codes)
        for c in codes:  # each has the vertex where it was dragged, and nothing else moved
            assert shapely.hausdorff_distance(now[c], moved(before_geoms[c], move["from"], move["to"])) < 1e-9
        assert {p: grid_problems(w, p, codes) for p in parents} == problems_before
        assert watched.errors() == []
    finally:
        watched.close()


def test_dry_run_reports_the_gap_a_shrunk_grid_leaves(w):
    code = w.grid_codes[95]
    old = stored(w, [code])[code]
    vertex, neighbours = sharing(w, code, old, at_least=2)
    assert vertex
    centre = old.representative_point()
    watched = open_planner(w, lang="en")
    page = watched.page
    try:
        show_parents(page, False)
        select(page, code, old)
        page.uncheck("#geogrid-move-shared")
        here, there = xy(page, vertex[1], vertex[0]), xy(page, centre.y, centre.x)
        move = drag_vertex(page, *vertex, (there[0] - here[0]) * 0.3, (there[1] - here[1]) * 0.3)
        answer = preview(page)
        assert answer["status"] == 200 and answer["body"]["dry_run"] is True, answer
        impact = answer["body"]["impact"]
        gaps = [p for p in impact["created"] if p["kind"] == "gap"]
        assert len(gaps) == 1 and impact["needs_confirmation"], impact
        left = shapely.difference(old, moved(old, move["from"], move["to"]))
        assert gaps[0]["area_m2"] == pytest.approx(geography_area(w, left), rel=0.01)
        assert set(gaps[0]["codes"]) & set(neighbours)
        # The panel and the map show it; nothing was written.
        panel = page.locator("#geogrid-impact").inner_text()
        assert "Gaps/overlaps created (1)" in panel and code in panel and any(r for r in impact["reasons"] if r in panel)
        assert page.evaluate(f"() => {EDITOR_JS} && document.querySelectorAll('.geogrid-impact-created li').length") == 1
        assert versions_of(w, [code])[code] == 1
        # Saving asks first: declined, nothing is written.
        answer = save(page, confirm=False)
        assert answer["body"].get("cancelled") and versions_of(w, [code])[code] == 1
    finally:
        watched.close()


def test_stale_edit_shows_a_readable_conflict(w):
    code = w.grid_codes[230]
    old = stored(w, [code])[code]
    vertex, _ = sharing(w, code, old, at_least=1)
    watched = open_planner(w)
    page = watched.page
    try:
        show_parents(page, False)
        select(page, code, old)
        other = w.http.patch(f"/api/grids/{code}", json={"properties": {"households": 444}},
                                 headers={"Authorization": f"Bearer {token(w, 'maps-planner')}"})
        assert other.status_code == 200, other.text
        current = other.json()["properties"]["version"]
        page.uncheck("#geogrid-move-shared")
        drag_vertex(page, *vertex, 30, 24)
        answer = save(page)
        assert answer["status"] == 412, answer
        shown = page.locator("#geogrid-status").inner_text()
        assert f"网格 {code} 已被他人修改（当前版本 {current}）：请重新载入后再编辑" in shown
        assert answer["body"]["detail"] in shown  # the server's words under the headline
        assert versions_of(w, [code])[code] == current
    finally:
        watched.close()


def posts(w, code: str) -> list[tuple]:
    with db.transaction(w.engine) as session:
        return sorted(session.execute(text("""
            SELECT s.person_id, s.role_key FROM assignment s JOIN area a ON a.id = s.area_id
            WHERE a.code = :c AND s.period @> CAST(:d AS date)"""),
            {"c": code, "d": timeutil.local_today(w.settings)}).all())


def test_split_a_grid_by_a_line_then_merge_it_back(w, tmp_path):
    code = w.grid_codes[60]
    old = stored(w, [code])[code]
    old_posts = posts(w, code)
    assert old_posts, "the demo grid has persons"
    parent = parent_of(w, code)
    with db.transaction(w.engine) as session:
        highest = session.execute(text("SELECT max(code) FROM area WHERE code LIKE :p AND length(code) = 15"),
                                  {"p": parent + "%"}).scalar_one()
    watched = open_planner(w)
    page = watched.page
    try:
        show_parents(page, False)
        select(page, code, old)
        page.check('input[name="geogrid-mode"][value="split"]')
        # A line across the grid, west to east through its middle, drawn with geoman's line tool.
        x0, _, x1, _ = old.bounds
        middle = old.representative_point()
        west, east = xy(page, middle.y, x0 - (x1 - x0) * 0.1), xy(page, middle.y, x1 + (x1 - x0) * 0.1)
        page.mouse.click(*west)
        page.wait_for_timeout(150)
        page.mouse.click(*east)
        page.wait_for_timeout(150)
        page.mouse.click(*east)  # a click on the last vertex ends the line
        page.wait_for_function(f"() => {EDITOR_JS}.state.line")
        answer = preview(page)
        assert answer["status"] == 200, answer
        pieces = answer["body"]["created"]
        assert len(pieces) == 2 and answer["body"]["retired"] == [code]
        assert page.locator("#geogrid-assign input").count() == 2
        page.check('#geogrid-assign input[value="1"]')  # the southern piece takes the persons
        screenshot(page, tmp_path / "split-preview.png")
        answer = save(page)
        assert answer["status"] == 201, answer
        new = [f["properties"]["code"] for f in answer["body"]["created"]]
        # Generated after the highest sequence ever used under the parent (codes are never reused).
        assert len(new) == 2 and all(c.startswith(parent) and len(c) == 15 and c > highest for c in new)
        with db.transaction(w.engine) as session:
            retired = session.execute(text("SELECT retired_at IS NOT NULL FROM area WHERE code = :c"), {"c": code}).scalar()
        assert retired
        made = stored(w, new)
        assert shapely.union_all(list(made.values())).symmetric_difference(old).area < 1e-12
        assert made[new[0]].centroid.y > made[new[1]].centroid.y  # pieces in reading order
        assert posts(w, new[1]) == old_posts and posts(w, new[0]) == []
        # The map shows the two new grids, not the old one.
        page.wait_for_timeout(300)
        on_map = page.evaluate("""() => Object.values(window).filter(v => v instanceof L.GeoJSON)
            .flatMap(l => l.getLayers()).map(l => l.feature && l.feature.properties.code)""")
        assert code not in on_map and all(c in on_map for c in new)

        # Merge them back: pick both, save.
        page.check('input[name="geogrid-mode"][value="merge"]')
        for c in new:
            g = made[c]
            label = shapely.point_on_surface(g)
            inner = shapely.get_geometry(g.buffer(-0.1 * min(g.bounds[2] - g.bounds[0], g.bounds[3] - g.bounds[1])), 0)
            spot = max((shapely.Point(p) for p in shapely.get_exterior_ring(inner).coords), key=label.distance)
            page.mouse.click(*xy(page, spot.y, spot.x))
        page.wait_for_function(f"() => Object.values({EDITOR_JS}.state.picked).filter(p => p.version).length === 2")
        answer = save(page)
        assert answer["status"] == 201, answer
        merged = answer["body"]["created"][0]["properties"]["code"]
        assert sorted(answer["body"]["retired"]) == sorted(new)
        back = stored(w, [merged])[merged]
        assert back.symmetric_difference(old).area < 1e-12
        # The split's points stay on the old edges: planar-equal, a geodesic edge through one more
        # vertex differs by a few parts per million.
        assert geography_area(w, back) == pytest.approx(geography_area(w, old), rel=1e-5)
        assert posts(w, merged) == old_posts
        assert watched.errors() == []
    finally:
        watched.close()


def test_inspector_sees_the_planner_map_without_editing_tools(w):
    with db.transaction(w.engine) as session:
        if not session.execute(text("SELECT 1 FROM account WHERE username = 'maps-inspector'")).first():
            accounts.create_account(session, "maps-inspector", PASSWORD)
            accounts.grant(session, "maps-inspector", "inspector", TOWN)
    watched = open_planner(w, user="maps-inspector")
    page = watched.page
    try:
        assert page.locator(".leaflet-pm-toolbar").count() == 0
        assert page.locator("#geogrid-editor, #geogrid-save-btn, #geogrid-login").count() == 0
        assert page.locator("#geogrid-problem-list li").count() > 0  # the live problems are there
        assert page.is_visible("#geogrid-problem-list")  # their panel is the one open
        # A row zooms to its problem and opens its card: labels, not keys or Python lists.
        zoom = page.evaluate(f"() => {MAP_JS}.getZoom()")
        first = page.locator("#geogrid-problem-list a").first
        kind = first.inner_text().split(" · ")[0]
        first.click()
        card = page.locator(".leaflet-popup-content").inner_text()
        assert kind in card and page.evaluate(f"() => {MAP_JS}.getZoom()") > zoom
        assert "kind" not in card and "['" not in card and "codes" not in card
        # Checked again on demand: the time shown is the new run's.
        page.evaluate(ARM_JS, "geogrid-problems")
        page.click("#geogrid-check-again")
        again = page.evaluate("() => window.__done")
        assert again["count"] == page.locator("#geogrid-problem-list > *").count()  # every problem listed
        assert watched.errors() == []
    finally:
        watched.close()


def test_exported_planner_map_carries_its_problems_and_their_time(w, tmp_path):
    from test_maps import render

    with db.transaction(w.engine) as session:
        latest = runs.latest_run(session, TOWN, "comprehensive")
    path = tmp_path / "planner.html"
    path.write_text(render(w, "planner"), encoding="utf-8")
    watched = Watched(w)
    try:
        watched.goto(path.as_uri())
        page = watched.page
        assert [u for u in watched.requests if not u.startswith(("file:", "data:", "about:"))] == []
        shown = page.locator("#geogrid-problems-at").text_content()
        # the jurisdiction's time, not the browser's (UTC here)
        at = latest["at"].astimezone(ZoneInfo(w.settings.timezone))
        assert shown == f"检查时间: {at.year}/{at.month}/{at.day} {at:%H:%M:%S}"
        listed = page.locator("#geogrid-problem-list > li").count()
        assert listed == len(latest["problems"]["features"])
        assert page.locator("#geogrid-check-again").count() == 0  # a file cannot ask the service again
        assert page.locator("#geogrid-user").count() == 1  # it logs in to save
        assert watched.errors() == []
    finally:
        watched.close()
