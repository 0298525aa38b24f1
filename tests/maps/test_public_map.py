"""The resident's public map (/maps/public) in a real browser, on a phone (390×844, touch)
and a desktop (1280×800): finding one's grid by a village name, a grid name or an address
of the household register (the suggestions come from /api/public/places), by the location
(granted inside a grid, granted outside the jurisdiction, denied), the board as a sheet no
control covers (elementFromPoint), placeholders for photos that do not load, tap-to-call,
the title and the instruction, village labels, ``grid=CODE``, and the standalone file's
search without a service.

The world (demo database, live server, browser) is test_maps.py's, built once for this
module; expected answers come from PostGIS and /api/locate, not from the page's code.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text
from test_maps import (  # noqa: F401  (world: test_maps' fixture, used through w below)
    PIXEL,
    TOWN,
    render,
    screenshot,
    world,
)

from geogrid.core import timeutil
from geogrid.db import engine as db
from geogrid.io import demo_households
from geogrid.people import register_import

VIEWPORTS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 800}}
MAP_JS = "Object.values(window).find(v => v instanceof L.Map)"
YANGJIA = "339901100004"  # 杨家村: the demo's register lives there
OUTSIDE = (121.9, 31.5)  # lon, lat: far from the demo county, inside the service's extent


@pytest.fixture(scope="module")
def w(world):  # noqa: F811
    """test_maps' world (demo database, live server, browser), built once for this module,
    with the demo's household register of 杨家村 (test_maps loads the demo without it)."""
    with db.transaction(world.engine) as session:
        if not session.execute(text("SELECT count(*) FROM household")).scalar_one():
            paths = demo_households.write_register(demo_households.village_grids(session), world.tmp / "register",
                                                   as_of=timeutil.local_today(world.settings))
            register_import.import_register(session, paths["register"], world.settings, buildings=paths["buildings"])
    return world


class Visit:
    """A page in a fresh context of the given viewport, with what went wrong on it collected."""

    def __init__(self, w, viewport: str, *, photos: int = 200, geolocation=None, permissions=()):
        phone = viewport == "phone"
        options = {"viewport": VIEWPORTS[viewport], "is_mobile": phone, "has_touch": phone, "locale": "zh-CN",
                   "permissions": list(permissions)}
        if geolocation:
            options["geolocation"] = {"longitude": geolocation[0], "latitude": geolocation[1], "accuracy": 10}
        self.context = w.browser.new_context(**options)
        # The demo's photo addresses are fictitious (example.invalid): found, or missing.
        self.context.route("https://example.invalid/**", lambda route: route.fulfill(
            status=photos, content_type="image/png", body=PIXEL if photos == 200 else b""))
        self.context.route("**/favicon.ico", lambda route: route.fulfill(status=204, body=b""))
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.dialogs: list[str] = []
        p = self.page
        p.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        p.on("console", lambda m: m.type == "error" and "404" not in m.text and self.problems.append(m.text))
        p.on("response", lambda r: r.status >= 400 and "example.invalid" not in r.url
             and self.problems.append(f"HTTP {r.status}: {r.url[:160]}"))
        p.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))

    def goto(self, url: str) -> None:
        self.page.goto(url, wait_until="load")
        self.page.wait_for_function("() => window.L && Object.values(window).some(v => v instanceof L.Map && v._loaded)",
                                    timeout=30_000)
        self.page.wait_for_timeout(300)

    def zoom(self) -> float:
        return self.page.evaluate(f"() => {MAP_JS}.getZoom()")

    def shows(self, bbox) -> bool:
        """The map's view holds all of ``bbox`` (minx, miny, maxx, maxy)."""
        return self.page.evaluate(f"""(b) => {MAP_JS}.getBounds().contains(L.latLngBounds([b[1], b[0]], [b[3], b[2]]))""",
                                  list(bbox))

    def board(self, code: str) -> str:
        """The open board's text once it shows ``code``."""
        return self.page.wait_for_function("""(c) => { const s = document.getElementById('geogrid-sheet');
            return s && !s.hidden && s.innerText.includes(c) && s.innerText; }""", arg=code, timeout=10_000).json_value()

    def search(self, query: str) -> list[str]:
        box = self.page.locator("#geogrid-search-input")
        box.fill("")
        box.press_sequentially(query, delay=15)
        self.page.wait_for_function("""(q) => { const t = document.getElementById('geogrid-search-tips');
            return !t.hidden && t.dataset.q === q; }""", arg=query, timeout=10_000)
        return self.page.locator("#geogrid-search-tips .geogrid-tip-text").all_inner_texts()

    def settle(self) -> None:
        self.page.wait_for_function(f"() => !{MAP_JS}._animatingZoom", timeout=10_000)
        self.page.wait_for_timeout(400)

    def close(self) -> None:
        self.context.close()


def extent(w, code: str) -> tuple[float, ...]:
    with db.transaction(w.engine) as session:
        return tuple(session.execute(text("""
            SELECT ST_XMin(b.geom), ST_YMin(b.geom), ST_XMax(b.geom), ST_YMax(b.geom)
            FROM boundary b JOIN area a ON a.id = b.area_id WHERE a.code = :c AND upper_inf(b.valid)"""),
            {"c": code}).one())


def located(w, lon: float, lat: float) -> str | None:
    found = w.http.get("/api/locate", params={"lon": lon, "lat": lat}).json()["results"]
    primary = [r["code"] for r in found if r["layer"] == "comprehensive" and r["primary"]]
    return primary[0] if primary else None


def area_row(w, code: str) -> dict:
    with db.transaction(w.engine) as session:
        return dict(session.execute(text("SELECT code, name FROM area WHERE code = :c"), {"c": code}).mappings().one())


# --------------------------------------------------------------------------- search


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_search_by_village_and_grid_name_zooms_and_opens_the_board(w, viewport, tmp_path):
    village = area_row(w, TOWN + "001")  # 新街社区
    grid = area_row(w, w.grid_codes[40])
    visit = Visit(w, viewport)
    try:
        visit.goto(f"{w.base}/maps/public?area={TOWN}")
        page = visit.page
        assert page.locator("#geogrid-public-title").inner_text() == "青禾镇 · 网格公示"
        assert page.locator("#geogrid-public-hint").inner_text() == "点击地图或搜索地址，查看您所在网格的网格员"
        start = visit.zoom()
        # A part of the village's name finds the village first (names shown, as text).
        tips = visit.search(village["name"][:2])
        assert tips[0] == f"{village['name']} · 青禾镇"
        page.locator("#geogrid-search-input").press("Enter")
        visit.settle()
        assert visit.shows(extent(w, village["code"])) and visit.zoom() > start
        # A grid's name: the map fits the grid and its board opens.
        tips = visit.search(grid["name"])
        assert tips[0].startswith(grid["name"])
        page.locator("#geogrid-search-tips .search-tip").first.click()
        board = visit.board(grid["code"])
        visit.settle()
        assert grid["name"] in board and "监督电话" in board and w.settings.supervision_hotline in board
        assert visit.shows(extent(w, grid["code"])) and visit.zoom() > start + 1
        screenshot(page, tmp_path / f"public-{viewport}-board.png")
        assert visit.problems == [] and visit.dialogs == []
    finally:
        visit.close()


def demo_addresses(w, count: int = 3) -> list[dict]:
    """Door-plate addresses of the demo register in 杨家村 and the points of their households."""
    with db.transaction(w.engine) as session:
        rows = session.execute(text("""
            SELECT DISTINCT ON (b.id) b.street, b.number, ST_X(b.geom) AS lon, ST_Y(b.geom) AS lat
            FROM household h JOIN building b ON b.id = h.building_id
            WHERE h.retired_at IS NULL AND b.village = '杨家村' ORDER BY b.id""")).mappings().all()
    assert len(rows) > 1000  # the demo loads its register
    return [dict(rows[i]) for i in range(0, len(rows), len(rows) // count)][:count]


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_search_by_an_address_finds_the_grid_locate_gives(w, viewport):
    visit = Visit(w, viewport)
    try:
        visit.goto(f"{w.base}/maps/public?area={TOWN}")
        for address in demo_addresses(w, 2):
            expected = located(w, address["lon"], address["lat"])
            assert expected and expected.startswith(YANGJIA)
            query = address["street"] + address["number"]
            tips = visit.search(query)
            kinds = visit.page.locator("#geogrid-search-tips .geogrid-kind").all_inner_texts()
            assert kinds[0] == "地址" and tips[0].startswith(query), tips
            visit.page.locator("#geogrid-search-input").press("Enter")
            board = visit.board(expected)
            assert query in board  # "您查找的地址：..." above the board
            visit.settle()
            assert visit.shows(extent(w, expected))
        assert visit.problems == []
    finally:
        visit.close()


def test_places_answers_carry_nothing_of_a_household(w):
    with db.transaction(w.engine) as session:
        rows = session.execute(text("SELECT head_name, unit, room, phone FROM household")).all()
    heads = {r.head_name for r in rows}
    private = heads | {r.phone for r in rows if r.phone}
    assert len(heads) > 100
    rooms = {f"{r.unit}单元" for r in rows if r.unit} | {f"{r.room}室" for r in rows if r.room}
    for q in ("杨家村", "杨家村1", "杨家村3组", "号", "组1", "1号", "网格", "339901100004"):
        r = w.http.get("/api/public/places", params={"q": q, "area": TOWN, "limit": 20})
        assert r.status_code == 200, r.text
        answer = r.json()["results"]
        shown = json.dumps(answer, ensure_ascii=False)
        assert [v for v in private | rooms if v in shown] == [], q
        assert all(set(a) == {"kind", "label", "code", "name", "grid_code", "grid_name", "bbox"} for a in answer)
    # A head's name is no way in.
    some = sorted(heads)[:5]
    for name in some:
        found = w.http.get("/api/public/places", params={"q": name, "area": TOWN}).json()["results"]
        assert [a for a in found if a["kind"] == "address"] == []


# --------------------------------------------------------------------------- the sheet


def _uncovered(page) -> dict:
    """What the browser finds at the centre of the close button and of the board's title,
    and whether any map control's box meets the sheet's."""
    return page.evaluate("""() => {
        const sheet = document.getElementById('geogrid-sheet');
        const at = (el) => { const r = el.getBoundingClientRect();
            const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
            return !!hit && sheet.contains(hit); };
        const s = sheet.getBoundingClientRect();
        const over = [...document.querySelectorAll('.leaflet-control')].filter(c => c.offsetParent !== null)
            .map(c => c.getBoundingClientRect())
            .filter(r => r.left < s.right && s.left < r.right && r.top < s.bottom && s.top < r.bottom);
        const head = document.getElementById('geogrid-public-head').getBoundingClientRect();
        return {close: at(document.getElementById('geogrid-sheet-close')),
                title: at(document.getElementById('geogrid-sheet-title')),
                controls_over: over.length, below_head: s.top >= head.bottom - 1,
                inside: s.left >= 0 && s.right <= innerWidth + 1 && s.bottom <= innerHeight + 1};
    }""")


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_no_control_covers_the_board(w, viewport, tmp_path):
    code = w.grid_codes[123]
    point = w.points[code]
    visit = Visit(w, viewport)
    try:
        visit.goto(f"{w.base}/maps/public?area={TOWN}")
        page = visit.page
        assert page.evaluate("([lat, lng]) => window.geogridFindGrid(lat, lng)", [point.y, point.x]) == code
        board = visit.board(code)
        assert _uncovered(page) == {"close": True, "title": True, "controls_over": 0, "below_head": True,
                                    "inside": True}
        # Tap to call: every published phone and the hotline are tel: links.
        links = page.locator("#geogrid-sheet a[href^='tel:']")
        assert links.count() >= 2 and links.last.get_attribute("href") == "tel:" + w.settings.supervision_hotline
        # The printable board (helper B's route), in the page's language.
        pdf = page.locator("#geogrid-sheet a.geogrid-pdf")
        assert pdf.is_visible() and pdf.get_attribute("href") == f"/maps/public/board.pdf?grid={code}&lang=zh"
        assert "下载公示牌 (PDF)" in board
        # Opened by a search too (the box is a control of the title bar: the sheet stays clear).
        visit.search(w.grid_codes[200])
        page.locator("#geogrid-search-input").press("Enter")
        visit.board(w.grid_codes[200])
        visit.settle()
        assert _uncovered(page)["close"] and _uncovered(page)["title"]
        screenshot(page, tmp_path / f"sheet-{viewport}.png")
        page.locator("#geogrid-sheet-close").click()
        assert page.locator("#geogrid-sheet").is_hidden()
        assert visit.problems == []
    finally:
        visit.close()


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_missing_photos_show_a_placeholder(w, viewport):
    visit = Visit(w, viewport, photos=404)
    with db.transaction(w.engine) as session:  # a grid with a published photo
        code = session.execute(text("""
            SELECT a.code FROM assignment s JOIN person p ON p.id = s.person_id JOIN area a ON a.id = s.area_id
            WHERE a.code LIKE :t AND a.layer_key = 'comprehensive' AND p.photo_public AND p.photo_url IS NOT NULL
              AND upper_inf(s.period) ORDER BY a.code LIMIT 1"""), {"t": TOWN + "%"}).scalar_one()
    try:
        visit.goto(f"{w.base}/maps/public?area={TOWN}&grid={code}")
        visit.board(code)
        page = visit.page
        page.wait_for_function("""() => [...document.querySelectorAll('#geogrid-sheet img')]
            .every(i => i.complete && i.naturalWidth > 0)""", timeout=10_000)
        photos = page.evaluate("""() => [...document.querySelectorAll('#geogrid-sheet img')].map(i => ({
            src: i.getAttribute('src'), shown: i.currentSrc, w: i.naturalWidth, onerror: i.hasAttribute('onerror')}))""")
        assert photos and all(p["w"] > 0 and not p["onerror"] for p in photos)
        published = [p for p in photos if p["src"].startswith("https://example.invalid/")]
        assert published and all(p["shown"].startswith("data:image/svg+xml") for p in published)
        assert visit.problems == []
    finally:
        visit.close()


# --------------------------------------------------------------------------- location


def wait_notice(page, start: str) -> None:
    """Until the page's banner shows a message starting with ``start``."""
    page.wait_for_function("""(s) => { const n = document.getElementById('geogrid-notice');
        return n && !n.hidden && n.innerText.startsWith(s); }""", arg=start, timeout=20_000)


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_locate_inside_outside_and_denied(w, viewport):
    code = w.grid_codes[250]
    inside = w.points[code]
    assert located(w, inside.x, inside.y) == code
    visit = Visit(w, viewport, geolocation=(inside.x, inside.y), permissions=["geolocation"])
    try:
        visit.goto(f"{w.base}/maps/public?area={TOWN}")
        start = visit.zoom()
        visit.page.locator("#geogrid-locate").click()
        assert code in visit.board(code)
        visit.settle()
        assert visit.shows(extent(w, code)) and visit.zoom() > start
        # Outside the jurisdiction: a message, and the whole area instead of level 19 on grey.
        visit.context.set_geolocation({"longitude": OUTSIDE[0], "latitude": OUTSIDE[1]})
        visit.page.locator("#geogrid-locate").click()
        notice = visit.page.locator("#geogrid-notice")
        wait_notice(visit.page, "您的位置不在本辖区网格范围内")  # after "正在获取您的位置……"
        visit.settle()
        assert visit.zoom() <= start + 0.5 and visit.shows(extent(w, TOWN))
        assert visit.page.locator("#geogrid-sheet").is_hidden()
        # The message can be dismissed.
        notice.locator("button").click()
        assert notice.is_hidden()
        assert visit.problems == [] and visit.dialogs == []
    finally:
        visit.close()
    denied = Visit(w, viewport, permissions=[])
    try:
        denied.goto(f"{w.base}/maps/public?area={TOWN}")
        start = denied.zoom()
        denied.page.locator("#geogrid-locate").click()
        wait_notice(denied.page, "位置权限被拒绝")
        assert denied.zoom() == start and denied.dialogs == []  # no browser alert
        # The locate button's icon is inline SVG (no icon font, nothing to load).
        assert denied.page.locator("#geogrid-locate svg").count() == 1
        assert denied.problems == []
    finally:
        denied.close()


# --------------------------------------------------------------------------- labels, grid=, standalone


def test_village_labels_are_text_and_do_not_overlap(w):
    visit = Visit(w, "desktop")
    try:
        visit.goto(f"{w.base}/maps/public?area={TOWN}")
        labels = visit.page.evaluate("""() => [...document.querySelectorAll('.geogrid-village-label')].map(l => {
            const r = l.getBoundingClientRect(); return {text: l.textContent, html: l.innerHTML,
                                                         box: [r.left, r.top, r.right, r.bottom]}; })""")
        with db.transaction(w.engine) as session:
            names = set(session.execute(text("SELECT name FROM area WHERE code LIKE :t AND layer_key = 'admin' "
                                             "AND code <> :town"), {"t": TOWN + "%", "town": TOWN}).scalars())
        assert len(labels) >= len(names) - 2 and {lab["text"] for lab in labels} <= names
        assert all(lab["text"] == lab["html"] for lab in labels)  # text, not markup
        boxes = [lab["box"] for lab in labels]
        for i, a in enumerate(boxes):
            for b in boxes[i + 1:]:
                assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]), (a, b)
        # Zoomed far out, the labels step back.
        visit.page.evaluate(f"() => {{ {MAP_JS}.setZoom(9, {{animate: false}}); }}")
        visit.page.wait_for_timeout(300)
        assert visit.page.locator(".geogrid-village-label").count() == 0
    finally:
        visit.close()


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_grid_parameter_opens_its_board(w, viewport):
    code = w.grid_codes[77]
    visit = Visit(w, viewport)
    try:
        visit.goto(f"{w.base}/maps/public?area={TOWN}&grid={code}")
        assert code in visit.board(code)
        visit.settle()
        assert visit.shows(extent(w, code))
        visit.goto(f"{w.base}/maps/public?area={TOWN}&grid=339901100999999")
        assert "未找到网格 339901100999999" in visit.page.locator("#geogrid-notice").inner_text()
        assert visit.page.locator("#geogrid-sheet").is_hidden()
        assert w.http.get("/maps/public", params={"area": TOWN, "grid": "<b>"}).status_code == 422
    finally:
        visit.close()


def test_standalone_file_searches_its_own_grids(w, tmp_path):
    code = w.grid_codes[5]
    path = tmp_path / "public.html"
    path.write_text(render(w, "public", grid=code), encoding="utf-8")
    visit = Visit(w, "phone")
    try:
        visit.goto(path.as_uri())
        assert code in visit.board(code)  # grid= in a saved file too
        assert visit.page.locator("#geogrid-sheet a.geogrid-pdf").is_hidden()  # no service to print
        village = area_row(w, TOWN + "007")
        assert visit.search(village["name"][:2])[0] == f"{village['name']} · 青禾镇"
        start = visit.zoom()
        visit.page.locator("#geogrid-search-input").press("Enter")
        visit.settle()
        assert visit.shows(extent(w, village["code"]))
        assert visit.zoom() != start or visit.page.locator("#geogrid-sheet").is_hidden()
        # Codes: the suggestion starts with the code.
        assert visit.search(w.grid_codes[9][:12])[0].startswith(w.grid_codes[9][:12])
        # No address in a file: it says why instead of nothing.
        assert visit.search("杨家村31组") == []
        assert "离线文件" in visit.page.locator("#geogrid-search-tips").inner_text()
        # No leaflet-search and no locate plugin (its icon font): the page's own box and button.
        assert visit.page.evaluate("() => [typeof L.Control.Search, typeof L.Control.Locate]") == ["undefined"] * 2
        assert visit.page.locator("#geogrid-locate svg").count() == 1
        # Nothing failed in the file.
        assert visit.problems == []
    finally:
        visit.close()

