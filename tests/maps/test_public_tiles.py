"""The public map drawn from vector tiles (/maps/public when the area has more published
grids than ``settings.tiles_above``), in a real browser at a phone's size (390×844, touch)
and a desktop's (1280×800), against the live service of test_maps.py's world (the demo,
published).

The world's town has 330 grids: this module lowers ``tiles_above`` to 10 on the world's
settings (the service reads them per request), so the town's served page takes the tiled
path; the standalone file keeps its GeoJSON. What is checked: the served page carries no
grid (no grid code in it, a fraction of the GeoJSON page's size); the browser asks
/tiles/comprehensive/... and /tiles/admin/..., answered 200 or 204; the grids drawn are
those PostGIS finds in view, in the grids' fill colour at a grid's point on its surface; a
tap on a stored grid with holes opens that grid's board (code and name from PostGIS, its
persons' published fields only) and a tap in its hole the grid /api/locate gives there;
``grid=CODE`` opens that board; the search, locate-me and the report form's grid; below
zoom 8 the hint; no console error, no failed request, no inline handler.
Expected answers come from PostGIS and /api/locate, never from the page's code.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from pathlib import Path

import pytest
import shapely
from sqlalchemy import text
from test_maps import PIXEL, TOWN, render, world  # noqa: F401  (world: test_maps' fixture, used through w)

from geogrid.areas import lookup, versions
from geogrid.core import timeutil
from geogrid.db import engine as db
from geogrid.publication import generations

VIEWPORTS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 800}}
MAP_JS = "Object.values(window).find(v => v instanceof L.Map)"
SHOTS = Path(os.environ.get("GEOGRID_SHOTS", "/tmp/shots13/tiles"))
TILES_ABOVE = 5  # the town's 330 grids and its 10 villages are drawn from tiles
FILL = (0xAB, 0xDD, 0xA4)  # the grids' fill colour (#abdda4), as in the GeoJSON page


@contextlib.contextmanager
def tiles_above(w, value: int):
    """The world's setting for the duration (the service reads the same settings object)."""
    before = w.settings.tiles_above
    w.settings.tiles_above = value
    try:
        yield
    finally:
        w.settings.tiles_above = before


def carve_hole(session, settings) -> dict:
    """A stored grid with a hole and a MultiPolygon (the demo's grids are simple polygons):
    a square in the middle of grid A moves to its neighbour B of the same village, so A has
    a hole and B two parts, the coverage stays gapless; then the layer is published again."""
    a, b = session.execute(text("""
        SELECT a.code, b.code FROM published_area a JOIN published_area b
          ON b.parent_code = a.parent_code AND b.code > a.code AND ST_Relate(a.geom, b.geom, '****1****')
        WHERE upper_inf(a.valid) AND upper_inf(b.valid) AND a.layer_key = 'comprehensive'
          AND b.layer_key = 'comprehensive' AND a.code LIKE :p
        ORDER BY a.code OFFSET 60 LIMIT 1"""), {"p": TOWN + "%"}).one()
    geoms = lookup.current_geometries(session, [a, b])
    inside = geoms[a].representative_point()
    r = 0.002
    while not geoms[a].buffer(-r / 4).contains(square := shapely.box(inside.x - r, inside.y - r, inside.x + r, inside.y + r)):
        r *= 0.8
    versions.update_area(session, a, settings, geometry=geoms[a].difference(square), note="test: a hole")
    versions.update_area(session, b, settings, geometry=shapely.MultiPolygon([*shapely.get_parts(geoms[b]), square]),
                         note="test: an island")
    generations.publish(session, TOWN, layer="comprehensive", note="test: hole and island")
    return {"a": a, "b": b}


@pytest.fixture(scope="module")
def w(world):  # noqa: F811
    """test_maps' world with ``tiles_above`` lowered, and a stored grid with a hole next to
    a MultiPolygon (PostGIS's point on the holed grid's surface, and a point in its hole)."""
    with db.transaction(world.engine) as session:
        world.carved = carve_hole(session, world.settings)
    with db.transaction(world.engine) as session:
        holed = session.execute(text("""
            SELECT code, name, ST_X(p) AS lon, ST_Y(p) AS lat, ST_X(h) AS hole_lon, ST_Y(h) AS hole_lat
            FROM (SELECT pa.code, pa.name, pa.geom, d.geom AS part
                  FROM published_area pa, LATERAL ST_Dump(pa.geom) d
                  WHERE upper_inf(pa.valid) AND pa.layer_key = 'comprehensive' AND pa.code LIKE :p
                    AND ST_NumInteriorRings(d.geom) > 0) x,
                 LATERAL ST_PointOnSurface(x.geom) p,
                 LATERAL ST_PointOnSurface(ST_MakePolygon(ST_InteriorRingN(x.part, 1))) h
            ORDER BY code LIMIT 1"""), {"p": TOWN + "%"}).mappings().one()
        world.holed = dict(holed)
        world.island = session.execute(text(
            "SELECT code FROM published_area WHERE upper_inf(valid) AND layer_key = 'comprehensive' "
            "AND code LIKE :p AND ST_NumGeometries(geom) > 1"), {"p": TOWN + "%"}).scalars().all()
        world.published_grids = session.execute(text(
            "SELECT count(*) FROM published_area WHERE upper_inf(valid) AND layer_key = 'comprehensive' "
            "AND code LIKE :p"), {"p": TOWN + "%"}).scalar_one()
        world.published_villages = session.execute(text(
            "SELECT count(*) FROM published_area WHERE upper_inf(valid) AND layer_key = 'admin' "
            "AND code LIKE :p"), {"p": TOWN + "%"}).scalar_one()
    assert world.holed["code"] == world.carved["a"] and world.island == [world.carved["b"]]
    assert world.published_grids == 330 > world.published_villages > TILES_ABOVE
    with tiles_above(world, TILES_ABOVE):
        yield world


def located(w, lon: float, lat: float) -> str | None:
    found = w.http.get("/api/locate", params={"lon": lon, "lat": lat}).json()["results"]
    primary = [r["code"] for r in found if r["layer"] == "comprehensive" and r["primary"]]
    return primary[0] if primary else None


def extent(w, code: str) -> tuple[float, ...]:
    with db.transaction(w.engine) as session:
        return tuple(session.execute(text(
            "SELECT ST_XMin(geom), ST_YMin(geom), ST_XMax(geom), ST_YMax(geom) FROM published_area "
            "WHERE upper_inf(valid) AND code = :c"), {"c": code}).one())


def board_persons(w, code: str) -> list[dict]:
    """The persons holding a post in the grid today with their publication flags (person table)."""
    with db.transaction(w.engine) as session:
        return [dict(r) for r in session.execute(text("""
            SELECT p.name, p.phone, p.photo_url, p.name_public, p.phone_public, p.photo_public
            FROM assignment s JOIN person p ON p.id = s.person_id JOIN area a ON a.id = s.area_id
            WHERE a.code = :c AND s.period @> CAST(:day AS date)"""),
            {"c": code, "day": timeutil.local_today(w.settings)}).mappings()]


class Visit:
    """A page in a fresh context of the given viewport; what went wrong on it and every tile
    answer are collected."""

    def __init__(self, w, viewport: str, *, geolocation=None):
        phone = viewport == "phone"
        options = {"viewport": VIEWPORTS[viewport], "is_mobile": phone, "has_touch": phone, "locale": "zh-CN"}
        if geolocation:
            options.update(geolocation={"longitude": geolocation[0], "latitude": geolocation[1], "accuracy": 10},
                           permissions=["geolocation"])
        self.context = w.browser.new_context(**options)
        self.context.route("https://example.invalid/**", lambda route: route.fulfill(
            status=200, content_type="image/png", body=PIXEL))
        self.context.route("**/favicon.ico", lambda route: route.fulfill(status=204, body=b""))
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.tiles: list[tuple[str, int]] = []
        self.locates: list[int] = []
        p = self.page
        p.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        p.on("console", lambda m: m.type == "error" and self.problems.append(m.text))
        p.on("requestfailed", lambda r: self.problems.append(f"request failed: {r.url[:160]} {r.failure}"))
        p.on("response", self._response)

    def _response(self, r) -> None:
        if "/tiles/" in r.url:
            self.tiles.append((r.url.split("/tiles/", 1)[1], r.status))
        if "/api/locate?" in r.url:
            self.locates.append(r.status)
        if r.status >= 400:
            self.problems.append(f"HTTP {r.status}: {r.url[:160]}")

    def goto(self, url: str) -> float:
        """Open ``url``; the seconds until every tile in view is drawn."""
        if self.page.url.startswith("http"):
            self.drawn()  # leaving a page with tiles in flight would abort them (a failed request)
        start = time.perf_counter()
        self.page.goto(url, wait_until="load")
        self.page.wait_for_function(f"() => window.L && {MAP_JS} && {MAP_JS}._loaded", timeout=30_000)
        self.drawn()
        return time.perf_counter() - start

    def drawn(self) -> list[str]:
        """The grid codes drawn once no tile is loading (geogrid.tiled.drawn: VectorGrid's features)."""
        self.page.wait_for_timeout(100)  # a fit the page just started (a tap, a search) may pan first
        self.page.wait_for_function(f"""() => window.geogridTiles === true && !{MAP_JS}._animatingZoom
            && !({MAP_JS}._panAnim && {MAP_JS}._panAnim._inProgress)
            && Object.values(window).every(v => !(v instanceof L.GridLayer) || !v._map || !v.isLoading())""",
                                    timeout=30_000)
        self.page.wait_for_timeout(150)  # VectorGrid paints a tile on the next animation frame
        return self.page.evaluate("() => geogrid.tiled.drawn()")

    def view(self) -> list[float]:
        return self.page.evaluate(f"""() => {{ const b = {MAP_JS}.getBounds();
            return [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()]; }}""")

    def shows(self, bbox) -> bool:
        return self.page.evaluate(f"""(b) => {MAP_JS}.getBounds().contains(L.latLngBounds([b[1], b[0]], [b[3], b[2]]))""",
                                  list(bbox))

    def point(self, lon: float, lat: float) -> dict:
        """The page coordinates of a place (the map's container point plus its offset)."""
        return self.page.evaluate(f"""([lon, lat]) => {{ const m = {MAP_JS}, p = m.latLngToContainerPoint([lat, lon]),
            r = m.getContainer().getBoundingClientRect(); return {{x: r.left + p.x, y: r.top + p.y}}; }}""", [lon, lat])

    def pixel(self, lon: float, lat: float) -> list[int] | None:
        """RGBA of the grid tiles' canvas at a place (the canvas of the tile under it)."""
        return self.page.evaluate(f"""([lon, lat]) => {{
            const m = {MAP_JS}, p = m.latLngToContainerPoint([lat, lon]), r = m.getContainer().getBoundingClientRect();
            const x = r.left + p.x, y = r.top + p.y;
            const layer = Object.values(window).find(v => v instanceof L.VectorGrid && v.geogridTiles);
            for (const c of layer.getContainer().querySelectorAll('canvas')) {{
                const b = c.getBoundingClientRect();
                if (x < b.left || x >= b.right || y < b.top || y >= b.bottom) continue;
                const sx = c.width / b.width, sy = c.height / b.height;
                return Array.from(c.getContext('2d').getImageData(Math.floor((x - b.left) * sx),
                                                                  Math.floor((y - b.top) * sy), 1, 1).data);
            }}
            return null; }}""", [lon, lat])

    def tap(self, lon: float, lat: float, phone: bool) -> None:
        at = self.point(lon, lat)
        if phone:
            self.page.touchscreen.tap(at["x"], at["y"])
        else:
            self.page.mouse.click(at["x"], at["y"])

    def board(self, code: str) -> str:
        return self.page.wait_for_function("""(c) => { const s = document.getElementById('geogrid-sheet');
            return s && !s.hidden && s.innerText.includes(c) && s.innerText; }""", arg=code, timeout=15_000).json_value()

    def settle(self) -> None:
        self.page.wait_for_function(f"() => !{MAP_JS}._animatingZoom", timeout=10_000)
        self.page.wait_for_timeout(400)

    def close(self) -> None:
        self.context.close()


def codes_in_view(w, bbox) -> set[str]:
    with db.transaction(w.engine) as session:
        return set(session.execute(text("""
            SELECT code FROM published_area WHERE upper_inf(valid) AND layer_key = 'comprehensive' AND code LIKE :p
              AND ST_Intersects(geom, ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326))"""),
            {"p": TOWN + "%", "x0": bbox[0], "y0": bbox[1], "x1": bbox[2], "y1": bbox[3]}).scalars())


def area_codes(w) -> set[str]:
    with db.transaction(w.engine) as session:
        return set(session.execute(text(
            "SELECT code FROM published_area WHERE upper_inf(valid) AND layer_key = 'comprehensive' AND code LIKE :p"),
            {"p": TOWN + "%"}).scalars())


# --------------------------------------------------------------------------- the page itself


def test_tiled_page_carries_no_grid(w):
    tiled = w.http.get("/maps/public", params={"area": TOWN})
    with tiles_above(w, 100_000):
        embedded = w.http.get("/maps/public", params={"area": TOWN})
    assert tiled.status_code == embedded.status_code == 200
    codes = sorted(area_codes(w))
    assert len(codes) == 330
    # The GeoJSON page holds every grid; the tiled page none (no code, no board of a person).
    assert all(c in embedded.text for c in codes)
    assert [c for c in codes if c in tiled.text] == []
    assert "leaflet.vectorgrid@1.3.0/dist/Leaflet.VectorGrid.bundled.js" in tiled.text
    assert "/maps/assets/geogrid/tiles.js" in tiled.text and "tiles.js" not in embedded.text
    assert re.search(r'"tiles": ?true', tiled.text) and re.search(r'"tiles": ?false', embedded.text)
    assert len(tiled.content) < len(embedded.content) / 2, (len(tiled.content), len(embedded.content))
    # Served under the same policy: scripts by nonce, no inline handler.
    policy = tiled.headers["content-security-policy"]
    assert "'unsafe-inline'" not in policy.split("script-src", 1)[1].split(";")[0]
    assert re.search(r"<[^>]+\son[a-z]+\s*=", tiled.text) is None
    # A standalone file has no service to ask: it carries the grids whatever the setting.
    standalone = render(w, "public")
    assert all(c in standalone for c in codes) and "vectorgrid" not in standalone.lower()
    # The setting switches the mode back.
    with tiles_above(w, 330):
        assert re.search(r'"tiles": ?false', w.http.get("/maps/public", params={"area": TOWN}).text)


# --------------------------------------------------------------------------- in a browser


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_tiles_draw_and_boards_open(w, viewport):
    phone = viewport == "phone"
    holed = w.holed
    visit = Visit(w, viewport)
    try:
        visit.goto(f"{w.base}/maps/public?area={TOWN}")
        page = visit.page
        assert page.evaluate("() => window.geogridTiles") is True
        drawn = set(visit.drawn())
        # What PostGIS finds in view is drawn; nothing outside the town (tiles hold neighbours).
        in_view = codes_in_view(w, visit.view())
        assert in_view and in_view <= drawn <= area_codes(w), (len(in_view), len(drawn))
        # Tiles were asked and answered: grids and village outlines, 200 or 204 only.
        grid_tiles = [s for u, s in visit.tiles if u.startswith("comprehensive/")]
        admin_tiles = [s for u, s in visit.tiles if u.startswith("admin/")]
        assert grid_tiles and admin_tiles and set(grid_tiles + admin_tiles) <= {200, 204, 304}
        assert 200 in grid_tiles
        # Drawn in the grids' colour: the fill at the grid's point on its surface.
        page.evaluate(f"([lon, lat]) => {MAP_JS}.setView([lat, lon], 16, {{animate: false}})",
                      [holed["lon"], holed["lat"]])
        assert holed["code"] in visit.drawn()
        rgba = visit.pixel(holed["lon"], holed["lat"])
        assert rgba and rgba[3] > 0 and all(abs(a - b) <= 3 for a, b in zip(rgba[:3], FILL)), rgba
        # A tap on the stored grid with holes: its board, as PostGIS names it.
        assert located(w, holed["lon"], holed["lat"]) == holed["code"]
        visit.tap(holed["lon"], holed["lat"], phone)
        board = visit.board(holed["code"])
        page.wait_for_timeout(300)
        assert visit.locates == [200]  # one question a tap, though VectorGrid and the map both hear it
        assert page.locator("#geogrid-sheet-title").inner_text() == holed["name"]
        assert w.settings.supervision_hotline in board
        persons = board_persons(w, holed["code"])
        assert persons, "the demo staffs every grid"
        for p in persons:
            assert (p["name"] in board) == bool(p["name_public"]), p
            if p["phone"]:
                assert (p["phone"] in board) == bool(p["phone_public"]), p
        photos = page.locator("#geogrid-sheet img").evaluate_all("(imgs) => imgs.map(i => i.getAttribute('src'))")
        assert {u for u in photos if u.startswith("http")} == {p["photo_url"] for p in persons
                                                                if p["photo_public"] and p["photo_url"]}
        # The chosen grid is outlined (VectorGrid's style override).
        assert page.evaluate("(c) => Object.values(window).find(v => v instanceof L.VectorGrid && v.geogridTiles)"
                             "._overriddenStyles[c].color", holed["code"]) == "#d95f02"
        # A tap in its hole: the grid there, as /api/locate says (not the one with the hole).
        inner = located(w, holed["hole_lon"], holed["hole_lat"])
        assert inner and inner != holed["code"]
        page.locator("#geogrid-sheet-close").click()  # on a phone the sheet lies over the hole
        assert page.evaluate("(c) => Object.values(window).find(v => v instanceof L.VectorGrid && v.geogridTiles)"
                             "._overriddenStyles[c]", holed["code"]) is None
        visit.tap(holed["hole_lon"], holed["hole_lat"], phone)
        visit.board(inner)
        assert page.locator("#geogrid-sheet-title").inner_text() != holed["name"]
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"tiles-{viewport}-board.png"))
        # Far out: the outlines stay, the grids wait for a closer zoom and a hint says so.
        page.locator("#geogrid-sheet-close").click()
        page.evaluate(f"() => {MAP_JS}.setZoom(7, {{animate: false}})")
        page.wait_for_timeout(300)
        assert page.locator("#geogrid-zoom-hint").is_visible()
        assert page.locator("#geogrid-zoom-hint").inner_text() == "放大地图以查看网格"
        page.screenshot(path=str(SHOTS / f"tiles-{viewport}-zoomed-out.png"))
        page.evaluate(f"() => {MAP_JS}.setZoom(13, {{animate: false}})")
        visit.drawn()
        assert page.locator("#geogrid-zoom-hint").is_hidden()
        assert visit.problems == []
    finally:
        visit.close()


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_grid_parameter_search_and_locate(w, viewport):
    holed = w.holed
    visit = Visit(w, viewport, geolocation=(holed["lon"], holed["lat"]))
    try:
        # grid=CODE: the map fits the grid and its board opens.
        visit.goto(f"{w.base}/maps/public?area={TOWN}&grid={holed['code']}")
        assert holed["name"] in visit.board(holed["code"])
        visit.settle()
        assert visit.shows(extent(w, holed["code"]))
        visit.page.locator("#geogrid-sheet-close").click()
        # The search box: a grid's name finds it, choosing it opens its board.
        other = sorted(area_codes(w))[40]
        with db.transaction(w.engine) as session:
            name = session.execute(text("SELECT name FROM published_area WHERE upper_inf(valid) AND code = :c"),
                                   {"c": other}).scalar_one()
        box = visit.page.locator("#geogrid-search-input")
        box.press_sequentially(name, delay=15)
        visit.page.wait_for_function("""(q) => { const t = document.getElementById('geogrid-search-tips');
            return !t.hidden && t.dataset.q === q; }""", arg=name, timeout=10_000)
        visit.page.locator("#geogrid-search-tips .search-tip").first.click()
        assert name in visit.board(other)
        visit.settle()
        assert visit.shows(extent(w, other))
        # Locate me: the grid of the browser's position.
        visit.page.locator("#geogrid-sheet-close").click()
        visit.page.locator("#geogrid-locate").click()
        assert holed["name"] in visit.board(holed["code"])
        # An unknown code: the page says so.
        visit.goto(f"{w.base}/maps/public?area={TOWN}&grid=339901100999999")
        visit.page.wait_for_function("""() => { const n = document.getElementById('geogrid-notice');
            return n && !n.hidden && n.innerText.includes('339901100999999'); }""", timeout=15_000)
        assert visit.page.locator("#geogrid-sheet").is_hidden()
        # The test hook answers with a promise of the code in tile mode.
        assert visit.page.evaluate("([lat, lng]) => window.geogridFindGrid(lat, lng)",
                                   [holed["lat"], holed["lon"]]) == holed["code"]
        assert visit.problems == []
    finally:
        visit.close()


@pytest.mark.parametrize("above", [TILES_ABOVE, 10])
def test_report_form_names_the_grid_from_the_service(w, above):
    """Grids from tiles; the villages too (5), or as GeoJSON over the tiles (10: the town's
    10 villages are not above it), whose canvas then takes the taps before the tiles do."""
    holed = w.holed
    visit = Visit(w, "desktop")
    try:
        with tiles_above(w, above):
            visit.goto(f"{w.base}/maps/public?area={TOWN}")
        villages_from_tiles = any(u.startswith("admin/") for u, _ in visit.tiles)
        assert villages_from_tiles == (w.published_villages > above)
        visit.page.evaluate(f"([lon, lat]) => {MAP_JS}.setView([lat, lon], 16, {{animate: false}})",
                            [holed["lon"], holed["lat"]])
        visit.drawn()
        visit.tap(holed["lon"], holed["lat"], False)  # a tap: the board
        assert holed["name"] in visit.board(holed["code"])
        visit.page.locator("#geogrid-report-btn").click()
        visit.tap(holed["lon"], holed["lat"], False)
        where = visit.page.wait_for_function("""(c) => { const n = document.getElementById('geogrid-report-grid');
            return n && n.innerText.includes(c) && n.innerText; }""", arg=holed["code"], timeout=15_000).json_value()
        assert holed["name"] in where
        # The tap pinned the place: no board opened under the form.
        assert "geogrid-report" in visit.page.locator("#geogrid-sheet").inner_html()
        assert visit.problems == []
    finally:
        visit.close()


def test_english_hint(w):
    visit = Visit(w, "phone")
    try:
        visit.goto(f"{w.base}/maps/public?area={TOWN}&lang=en")
        visit.page.evaluate(f"() => {MAP_JS}.setZoom(6, {{animate: false}})")
        visit.page.wait_for_timeout(300)
        assert visit.page.locator("#geogrid-zoom-hint").inner_text() == "Zoom in to see the grids"
        assert visit.problems == []
    finally:
        visit.close()
