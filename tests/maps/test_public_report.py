"""Reporting a problem from the public map (我要反映) and the receipt lookup (查询办理进度) in a
real browser (headless Chromium through Playwright) at a phone's size (390×844, touch) and
a desktop's (1280×800), against the live service of test_maps.py's world.

What is checked: a report pinned on a stored demo grid (a MultiPolygon with holes, at
PostGIS's ST_PointOnSurface) reaches the staff list with the pinned point, its category,
the channel public_web and the grid /api/locate gives there; the contact is stored but the
public receipt never shows it; a double click or a retry files one case; a point outside
the jurisdiction and a bad photo link are refused on the page before any request; a rate
limit (429) is told in Chinese and the form keeps its content; the lookup shows a case's
state and "未找到该回执号" for an unknown receipt; HTML typed by a user stays text; the page
lists the public categories only; a standalone file sends nothing.

The public intake allows ``settings.public_reports_per_minute`` reports a minute per
address (5 by default; the world keeps the default) and counts them in the world's
database (``rate_counter``): every test starts with the public counter of 127.0.0.1 emptied.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import urllib.parse
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from test_maps import PIXEL, TOWN, Watched, render, token, world  # noqa: F401  (world: used through w)

from geogrid.db import engine as db
from geogrid.incidents import workflow

VIEWPORTS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 800}}
MAP_JS = "Object.values(window).find(v => v instanceof L.Map)"
SHOTS = Path(os.environ.get("GEOGRID_SHOTS", "/tmp/shots16/R"))
REPORTS = "/api/public/reports"
EVIL = '<img src=x onerror="window.__xss=(window.__xss||0)+1">'


@pytest.fixture(scope="module")
def w(world):  # noqa: F811
    """test_maps' world, with stored grids to report on: MultiPolygons with holes first,
    each with PostGIS's point on its surface, kept only where /api/locate names that grid."""
    with db.transaction(world.engine) as session:
        rows = session.execute(text("""
            SELECT a.code, a.name, ST_X(p) AS lon, ST_Y(p) AS lat, ST_GeometryType(b.geom) AS type,
                   ST_NumGeometries(b.geom) AS parts, ST_NRings(b.geom) - ST_NumGeometries(b.geom) AS holes
            FROM area a JOIN boundary b ON b.area_id = a.id AND upper_inf(b.valid),
                 LATERAL ST_PointOnSurface(b.geom) AS p
            WHERE a.code LIKE :p AND a.layer_key = 'comprehensive' AND a.retired_at IS NULL
            ORDER BY (ST_NumGeometries(b.geom) > 1 AND ST_NRings(b.geom) > ST_NumGeometries(b.geom)) DESC,
                     ST_NRings(b.geom) > ST_NumGeometries(b.geom) DESC, a.code
            LIMIT 40"""), {"p": TOWN + "%"}).mappings().all()
        world.public_categories = session.execute(text(
            "SELECT key, name_zh, name_en FROM category WHERE public ORDER BY key")).mappings().all()
        world.town_bounds = session.execute(text("""
            SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (
                SELECT ST_Extent(b.geom) AS e FROM area a JOIN boundary b ON b.area_id = a.id AND upper_inf(b.valid)
                WHERE a.code LIKE :p) x"""), {"p": TOWN + "%"}).one()
    targets = []
    for r in rows:
        if primary_grid(world, r["lon"], r["lat"]) == r["code"]:
            targets.append(dict(r))
    assert targets and targets[0]["type"] == "ST_MultiPolygon"
    # The demo's grids with holes come first (if it has any: its grids are stored as MultiPolygons).
    assert targets[0]["holes"] > 0 or not any(r["holes"] for r in rows), targets[0]
    world.targets = targets
    return world


@pytest.fixture(autouse=True)
def rate_limit_reset(w):
    """The public intake's counter of this address starts empty in each test (it lives in the
    world's database, shared by every test of the module)."""
    with db.transaction(w.engine) as session:
        session.execute(text("DELETE FROM rate_counter WHERE bucket LIKE 'public:%'"))


def primary_grid(w, lon: float, lat: float, layer: str = "comprehensive") -> str | None:
    found = w.http.get("/api/locate", params={"lon": lon, "lat": lat}).json()["results"]
    primary = [r["code"] for r in found if r["layer"] == layer and r["primary"]]
    return primary[-1] if primary else None


def staff_case(w, receipt: str) -> dict:
    """The case as the staff list shows it to a planner of the town."""
    headers = {"Authorization": f"Bearer {token(w, 'maps-planner')}"}
    r = w.http.get("/api/incidents", params={"area": TOWN, "limit": 500}, headers=headers)
    assert r.status_code == 200, r.text
    found = [i for i in r.json()["items"] if i["receipt"] == receipt]
    assert len(found) == 1, f"{receipt} not in the staff list"
    return found[0]


def count_described(w, description: str) -> int:
    with db.transaction(w.engine) as session:
        return session.execute(text("SELECT count(*) FROM incident WHERE description = :d"),
                               {"d": description}).scalar_one()


class Browser(Watched):
    """test_maps' Watched page at a phone's (touch) or a desktop's size; responses the test
    expects (a 404, 409 or 429 it provokes) are not problems."""

    def __init__(self, w, viewport: str, *, lang: str = "zh", **options):
        phone = viewport == "phone"
        self.context = w.browser.new_context(viewport=VIEWPORTS[viewport], is_mobile=phone, has_touch=phone,
                                             locale="zh-CN" if lang == "zh" else "en-US", **options)
        self.context.route("**/favicon.ico", lambda route: route.fulfill(status=204, body=b""))
        # The demo's photo addresses are fictitious (example.invalid): a board that opens shows a pixel.
        self.context.route("https://example.invalid/**",
                           lambda route: route.fulfill(status=200, content_type="image/png", body=PIXEL))
        self.phone, self.expected = phone, []
        self.page = self.context.new_page()
        self.problems, self.requests = [], []
        p = self.page
        p.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        p.on("console", lambda m: m.type == "error" and self.problems.append(f"console error: {m.text}"))
        p.on("requestfailed", lambda r: self.problems.append(f"request failed: {r.url[:160]} {r.failure}"))
        p.on("response", lambda r: r.status >= 400 and self.problems.append(f"HTTP {r.status}: {r.url[:160]}"))
        p.on("request", lambda r: self.requests.append(f"{r.method} {r.url}"))

    def errors(self) -> list[str]:
        # Chromium logs every 4xx answer to fetch() as a console error too.
        return [e for e in self.problems if not any(x in e for x in self.expected)]

    def posts(self) -> list[str]:
        return [r for r in self.requests if r.startswith("POST ") and REPORTS in r]


def open_public(w, viewport: str, *, lang: str = "zh", **options) -> Browser:
    b = Browser(w, viewport, lang=lang, **options)
    b.goto(f"{w.base}/maps/public?area={TOWN}" + ("&lang=en" if lang == "en" else ""))
    return b


def shot(b: Browser, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    b.page.screenshot(path=str(SHOTS / f"{name}.png"))


def uncovered(page, selector: str) -> bool:
    """The element is on screen and what is at its centre is the element itself."""
    return page.evaluate("""(sel) => {
        const el = document.querySelector(sel); if (!el) return false;
        const r = el.getBoundingClientRect();
        if (r.width === 0 || r.bottom > innerHeight || r.right > innerWidth || r.top < 0 || r.left < 0) return false;
        const at = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
        return !!at && (at === el || el.contains(at));
    }""", selector)


def open_form(b: Browser) -> None:
    page = b.page
    assert uncovered(page, "#geogrid-report-btn")
    page.click("#geogrid-report-btn")
    page.locator("#geogrid-report-form").wait_for(state="visible")
    assert page.evaluate("() => window.geogridPicking") is True


def tap_map(b: Browser, lon: float, lat: float, zoom: int = 18) -> dict:
    """Bring (lon, lat) into the part of the map the form leaves free and tap it there, as a
    person would. Returns the pinned point the page shows (its rounding)."""
    page = b.page
    xy = page.evaluate(f"""([lat, lon, zoom]) => {{
        const map = {MAP_JS}, size = map.getSize(), ll = L.latLng(lat, lon);
        const box = map.getContainer().getBoundingClientRect();
        // Halfway between the title bar (if any) and the sheet or panel (if any): the part
        // of the map a person sees.
        const head = document.getElementById('geogrid-public-head');
        const sheet = [...document.querySelectorAll('#geogrid-sheet, #geogrid-report-panel')]
            .find(e => e.getClientRects().length > 0);
        const top = head ? head.getBoundingClientRect().bottom : box.top;
        const s = sheet ? sheet.getBoundingClientRect() : null;
        const side = s && s.top < top + 50;  // a side panel (desktop), else a bottom sheet
        const bottom = s && !side ? s.top : box.bottom;
        const y = (top + bottom) / 2 - box.top, x = side ? (s.left - box.left) / 2 : size.x / 2;
        const centre = map.unproject(map.project(ll, zoom).add([size.x / 2 - x, size.y / 2 - y]), zoom);
        map.setView(centre, zoom, {{animate: false}});
        const p = map.latLngToContainerPoint(ll);
        return [box.left + p.x, box.top + p.y];
    }}""", [lat, lon, zoom])
    page.wait_for_timeout(300)
    # What is there is the map, not the form or a control.
    assert page.evaluate("([x, y]) => !!document.elementFromPoint(x, y).closest('.leaflet-pane, canvas')", xy)
    if b.phone:
        page.touchscreen.tap(*xy)
    else:
        page.mouse.click(*xy)
    page.wait_for_function("() => /\\d+\\.\\d{6}, \\d+\\.\\d{6}/.test(document.getElementById('geogrid-report-where').textContent)")
    coords = re.search(r"(\d+\.\d{6}), (\d+\.\d{6})", page.locator("#geogrid-report-where").inner_text())
    return {"lon": float(coords.group(1)), "lat": float(coords.group(2)),
            "where": page.locator("#geogrid-report-where").inner_text()}


def fill(b: Browser, *, category: str, description: str, name: str = "", phone: str = "", photo: str = "") -> None:
    page = b.page
    page.select_option("#geogrid-report-category", category)
    page.fill("#geogrid-report-description", description)
    if photo:
        page.fill("#geogrid-report-photo", photo)
    if name:
        page.fill("#geogrid-report-name", name)
    if phone:
        page.fill("#geogrid-report-phone", phone)


# --------------------------------------------------------------------------- the round trip


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_report_from_the_map_reaches_the_staff_list(w, viewport):
    target = w.targets[0 if viewport == "desktop" else min(1, len(w.targets) - 1)]
    description = f"楼道堆放杂物堵塞通道（{viewport}）RP{target['code'][-4:]}"
    contact = {"name": "居民张某某", "phone": "13800001234"}
    b = open_public(w, viewport)
    page = b.page
    try:
        open_form(b)
        pinned = tap_map(b, target["lon"], target["lat"])
        shot(b, f"pinned-{viewport}")
        # The pinned point is the tapped one, to the page's rounding (1e-6 degree), and in the grid.
        assert abs(pinned["lon"] - target["lon"]) < 5e-5 and abs(pinned["lat"] - target["lat"]) < 5e-5
        expected_grid = primary_grid(w, pinned["lon"], pinned["lat"])
        assert expected_grid == target["code"]
        assert target["code"] in pinned["where"] and target["name"] in pinned["where"]
        fill(b, category="sanitation", description=description, **contact)
        # The submit button is in sight and nothing lies over it, nor over the form's fields.
        assert uncovered(page, "#geogrid-report-submit")
        for selector in ("#geogrid-report-category", "#geogrid-report-description", "#geogrid-report-phone"):
            page.focus(selector)  # as a tap or the Tab key does
            page.wait_for_timeout(100)
            assert uncovered(page, selector), selector
            assert uncovered(page, "#geogrid-report-submit")
        page.locator("#geogrid-report-private").scroll_into_view_if_needed()
        assert page.locator("#geogrid-report-private").inner_text().endswith("仅工作人员可见，不会公开")
        shot(b, f"form-{viewport}")
        page.click("#geogrid-report-submit")
        receipt = page.locator("#geogrid-report-receipt")
        receipt.wait_for(state="visible", timeout=20_000)
        number = receipt.inner_text().strip()
        assert re.fullmatch(r"GG\d{8}-[0-9A-F]{10}", number)
        assert uncovered(page, "#geogrid-report-receipt") and uncovered(page, "#geogrid-report-copy")
        public = w.http.get(f"{REPORTS}/{number}")
        assert public.status_code == 200
        done = page.locator("#geogrid-report-done").inner_text()
        assert public.json()["state_name"] in done and public.json()["category_name"] in done
        shot(b, f"receipt-{viewport}")
        assert page.evaluate("() => window.geogridPicking") is False

        case = staff_case(w, number)
        assert abs(case["lon"] - pinned["lon"]) <= 1e-6 and abs(case["lat"] - pinned["lat"]) <= 1e-6
        assert (case["category"], case["channel"], case["grid"]) == ("sanitation", "public_web", expected_grid)
        assert case["description"] == description and case["route_kind"] == "grid"
        assert case["reporter"] == contact  # kept for staff...
        for value in contact.values():  # ...never shown to the public
            assert value not in public.text

        # The lookup on the same page: the receipt is already in its box.
        page.locator("#geogrid-lookup-btn").scroll_into_view_if_needed()
        if page.locator("#geogrid-report-panel-close").is_visible():
            page.click("#geogrid-report-panel-close")
        page.click("#geogrid-lookup-btn")
        assert page.locator("#geogrid-lookup-receipt").input_value() == number
        page.press("#geogrid-lookup-receipt", "Enter")
        page.wait_for_function("(s) => document.getElementById('geogrid-lookup-result').textContent.includes(s)",
                               arg=public.json()["state_name"])
        result = page.locator("#geogrid-lookup-result").inner_text()
        assert number in result and public.json()["category_name"] in result
        for value in contact.values():
            assert value not in page.content()
        assert b.errors() == []
    finally:
        b.close()


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_double_submit_and_retry_file_one_report(w, viewport):
    target = w.targets[2 % len(w.targets)]
    b = open_public(w, viewport)
    page = b.page
    try:
        open_form(b)
        tap_map(b, target["lon"], target["lat"])
        description = f"路灯不亮，夜间出行不便 DB-{viewport}"
        fill(b, category="sanitation", description=description)
        page.locator("#geogrid-report-submit").dblclick()
        page.locator("#geogrid-report-receipt").wait_for(state="visible", timeout=20_000)
        page.wait_for_timeout(500)
        assert len(b.posts()) == 1 and count_described(w, description) == 1

        # A retry after a lost answer: the service stored the first attempt, the page never
        # heard back; the same form sends the same key, and nothing is filed twice.
        page.click("#geogrid-report-again")
        tap_map(b, target["lon"], target["lat"])
        lost = f"井盖缺失存在安全隐患 LOST-{viewport}"
        fill(b, category="sanitation", description=lost)
        calls = []

        def lose_answer(route):
            calls.append(route.request.post_data_json["idempotency_key"])
            if len(calls) == 1:
                route.fetch()  # reaches the service, which stores it...
                route.abort("connectionreset")  # ...but the answer is lost
            else:
                route.continue_()

        page.route(f"**{REPORTS}?*", lose_answer)
        b.expected += ["request failed", "net::ERR_CONNECTION_RESET", "HTTP 409", "409"]
        page.click("#geogrid-report-submit")
        page.wait_for_function("() => document.getElementById('geogrid-report-error').textContent.includes('网络')")
        assert page.locator("#geogrid-report-description").input_value() == lost  # the form keeps it
        page.click("#geogrid-report-submit")
        page.wait_for_function("() => document.getElementById('geogrid-report-error').textContent.includes('重复提交')")
        assert len(calls) == 2 and calls[0] == calls[1]
        assert count_described(w, lost) == 1
        assert b.errors() == []
    finally:
        b.close()


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_outside_the_jurisdiction_is_refused_before_any_request(w, viewport):
    x0, y0, x1, y1 = w.town_bounds
    lon, lat = x1 + 0.01, (y0 + y1) / 2  # east of the town, no grid, no village
    assert primary_grid(w, lon, lat) is None
    b = open_public(w, viewport)
    page = b.page
    try:
        open_form(b)
        pinned = tap_map(b, lon, lat)
        assert "该位置不在本辖区内" in pinned["where"]
        fill(b, category="sanitation", description="辖区外的问题", name="某人", phone="13900000000")
        page.click("#geogrid-report-submit")
        error = page.locator("#geogrid-report-error")
        assert error.inner_text() == "该位置不在本辖区内"
        # A bad photo link is refused on the page too (never a javascript: address).
        inside = w.targets[0]
        tap_map(b, inside["lon"], inside["lat"])
        page.fill("#geogrid-report-photo", "javascript:alert(1)")
        page.click("#geogrid-report-submit")
        assert "照片链接" in error.inner_text()
        page.wait_for_timeout(300)
        assert b.posts() == [] and count_described(w, "辖区外的问题") == 0
        assert page.locator("#geogrid-report-description").input_value() == "辖区外的问题"
        shot(b, f"outside-{viewport}")
        assert b.errors() == []
    finally:
        b.close()


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_rate_limit_is_told_and_the_form_kept(w, viewport):
    limit = w.settings.public_reports_per_minute
    target = w.targets[3 % len(w.targets)]
    b = open_public(w, viewport)
    page = b.page
    try:
        open_form(b)
        tap_map(b, target["lon"], target["lat"])
        description = f"占道经营 RATE-{viewport}"
        fill(b, category="sanitation", description=description, phone="13700000000")
        with db.transaction(w.engine) as session:  # this address has used up its minute
            session.execute(text("""
                INSERT INTO rate_counter (bucket, window_start, hits)
                VALUES ('public:127.0.0.1', date_bin('10 seconds', now(), TIMESTAMPTZ '1970-01-01 00:00:00+00'), :n)
                ON CONFLICT (bucket, window_start) DO UPDATE SET hits = :n"""), {"n": limit})
        b.expected += ["429"]
        page.click("#geogrid-report-submit")
        page.wait_for_function("() => document.getElementById('geogrid-report-error').textContent.length > 0")
        message = page.locator("#geogrid-report-error").inner_text()
        assert re.fullmatch(r"提交过于频繁，请 \d+ 秒后再试", message), message
        assert "{" not in page.locator("#geogrid-report").inner_text()  # no JSON on the page
        assert page.locator("#geogrid-report-description").input_value() == description
        assert page.locator("#geogrid-report-phone").input_value() == "13700000000"
        assert count_described(w, description) == 0
        shot(b, f"rate-{viewport}")
        with db.transaction(w.engine) as session:  # a minute later
            session.execute(text("DELETE FROM rate_counter WHERE bucket = 'public:127.0.0.1'"))
        page.click("#geogrid-report-submit")
        page.locator("#geogrid-report-receipt").wait_for(state="visible", timeout=20_000)
        assert count_described(w, description) == 1
        assert b.errors() == []
    finally:
        b.close()


def test_a_refusal_of_the_service_is_told_in_chinese(w):
    """A 422 from the service itself (a category it does not know, slipped past the page's
    list): a Chinese sentence on the form, no JSON, the form kept."""
    target = w.targets[0]
    b = open_public(w, "phone")
    page = b.page
    b.expected += ["422"]
    try:
        open_form(b)
        tap_map(b, target["lon"], target["lat"])
        description = "类别无效的反映 BADCAT"
        fill(b, category="sanitation", description=description, name="某人")
        page.evaluate("""() => { const s = document.getElementById('geogrid-report-category');
                                 s.add(new Option('?', 'no_such_category')); s.value = 'no_such_category'; }""")
        page.click("#geogrid-report-submit")
        page.wait_for_function("() => document.getElementById('geogrid-report-error').textContent.length > 0")
        assert page.locator("#geogrid-report-error").inner_text() == "请选择问题类别"
        assert uncovered(page, "#geogrid-report-error")
        form = page.locator("#geogrid-report").inner_text()
        assert "detail" not in form and "{" not in form and "unknown category" not in form
        assert page.locator("#geogrid-report-description").input_value() == description
        assert len(b.posts()) == 1 and count_described(w, description) == 0
        assert b.errors() == []
    finally:
        b.close()


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_use_my_location_pins_the_place(w, viewport):
    target = w.targets[5 % len(w.targets)]
    b = open_public(w, viewport, geolocation={"latitude": target["lat"], "longitude": target["lon"]},
                    permissions=["geolocation"])
    page = b.page
    try:
        open_form(b)
        page.click("#geogrid-report-locate")
        page.wait_for_function("(c) => document.getElementById('geogrid-report-where').textContent.includes(c)",
                               arg=target["code"])
        where = page.locator("#geogrid-report-where").inner_text()
        assert f"{target['lon']:.6f}, {target['lat']:.6f}" in where
        assert page.evaluate("() => window.geogridPicking") is True
        assert b.errors() == []
    finally:
        b.close()
    # Without the permission: the page says so in Chinese, and nothing is pinned.
    b = open_public(w, viewport)
    page = b.page
    try:
        open_form(b)
        page.click("#geogrid-report-locate")
        page.wait_for_function("() => document.body.innerText.includes('位置权限被拒绝')")
        assert page.locator("#geogrid-report-where").inner_text() == "尚未标出位置"
        assert b.errors() == []
    finally:
        b.close()


# --------------------------------------------------------------------------- the lookup


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_receipt_lookup_shows_the_state(w, viewport):
    target = w.targets[0]
    filed = w.http.post(REPORTS, json={"category": "sanitation", "lon": target["lon"], "lat": target["lat"],
                                       "description": f"查询测试 LK-{viewport}",
                                       "reporter": {"name": "查询人", "phone": "13600000000"}})
    assert filed.status_code == 201, filed.text
    receipt = filed.json()["receipt"]
    with db.transaction(w.engine) as session:
        case_id = session.execute(text("SELECT id FROM incident WHERE receipt = :r"), {"r": receipt}).scalar_one()
        workflow.transition(session, case_id, "accepted", w.settings, note="受理")
    public = w.http.get(f"{REPORTS}/{receipt}").json()
    assert public["state"] == "accepted"
    b = open_public(w, viewport)
    page = b.page
    b.expected += ["404", "/api/public/reports/GG19990101"]
    try:
        assert uncovered(page, "#geogrid-lookup-btn")
        page.click("#geogrid-lookup-btn")
        box = page.locator("#geogrid-lookup-receipt")
        box.fill(receipt.lower())  # typed in lower case: found all the same
        page.click("#geogrid-lookup-go")
        result = page.locator("#geogrid-lookup-result")
        page.wait_for_function("(s) => document.getElementById('geogrid-lookup-result').textContent.includes(s)",
                               arg=public["state_name"])
        shown = result.inner_text()
        assert receipt in shown and public["category_name"] in shown and "查询人" not in shown
        # the page shows the jurisdiction's day and time, whatever the browser's time zone
        local = dt.datetime.fromisoformat(public["reported_at"]).astimezone(ZoneInfo(w.settings.timezone))
        assert local.strftime("%Y/%m/%d %H:%M") in shown
        shot(b, f"lookup-{viewport}")
        box.fill("GG19990101-0000000000")
        box.press("Enter")
        page.wait_for_function("() => document.getElementById('geogrid-lookup-result').textContent.includes('未找到该回执号')")
        assert "detail" not in result.inner_text()
        assert b.errors() == []
    finally:
        b.close()


# --------------------------------------------------------------------------- text, categories, standalone


def test_html_typed_by_a_user_stays_text(w):
    target = w.targets[4 % len(w.targets)]
    b = open_public(w, "desktop")
    page = b.page
    try:
        open_form(b)
        tap_map(b, target["lon"], target["lat"])
        description = f"{EVIL} XSS-{target['code'][-3:]}"
        fill(b, category="sanitation", description=description, name=EVIL)
        page.click("#geogrid-report-submit")
        number = page.locator("#geogrid-report-receipt").inner_text().strip()
        case = staff_case(w, number)
        assert case["description"] == description and case["reporter"]["name"] == EVIL  # stored as typed
        page.click("#geogrid-lookup-btn")
        page.click("#geogrid-lookup-go")
        page.wait_for_function("() => document.getElementById('geogrid-lookup-result').textContent.includes('GG')")
        page.wait_for_timeout(300)
        assert page.evaluate("() => window.__xss") is None
        assert page.locator("#geogrid-report img, #geogrid-lookup img").count() == 0
        assert b.errors() == []
    finally:
        b.close()


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_only_public_categories_are_offered(w, lang):
    b = open_public(w, "desktop", lang=lang)
    page = b.page
    try:
        page.click("#geogrid-report-btn")
        options = page.evaluate("""() => [...document.querySelectorAll('#geogrid-report-category option')]
            .filter(o => o.value).map(o => [o.value, o.textContent])""")
        name = "name_en" if lang == "en" else "name_zh"
        assert sorted(options) == sorted([c["key"], c[name]] for c in w.public_categories)
        with db.transaction(w.engine) as session:
            private = session.execute(text("SELECT key FROM category WHERE NOT public")).scalars().all()
        assert private and not set(private) & {o[0] for o in options}
        if lang == "en":
            assert page.locator("#geogrid-report-btn").inner_text().endswith("Report a problem")
            assert "Seen by staff only" in page.locator("#geogrid-report-private").inner_text()
            shot(b, "form-en-desktop")
        assert b.errors() == []
    finally:
        b.close()


def test_standalone_file_sends_nothing(w, tmp_path):
    path = tmp_path / "public.html"
    path.write_text(render(w, "public"), encoding="utf-8")
    b = Browser(w, "phone")
    page = b.page
    try:
        b.goto(path.as_uri())
        page.click("#geogrid-report-btn")
        note = page.locator("#geogrid-report-standalone")
        note.wait_for(state="visible")
        assert "公示地图页面" in note.inner_text()
        assert page.locator("#geogrid-report-form").count() == 0
        assert page.evaluate("() => !!window.geogridPicking") is False
        assert [r for r in b.requests if urllib.parse.urlsplit(r.split(" ", 1)[1]).scheme not in ("file", "data")] == []
        shot(b, "standalone-phone")
        assert b.errors() == []
    finally:
        b.close()
