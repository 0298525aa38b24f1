"""Publishing from the planner map in a real browser (headless Chromium through Playwright), on
the demo jurisdiction (published by the demo) served by a live uvicorn: the publish panel
lists what a publication would change (a grid renamed and a grid reshaped through the API),
outlines those grids on the map, publishes with a note after the page's confirming dialog,
and then the public reads the new name and boundary and the note. An inspector's read-only
map has no publish panel; a planner who lost the area meanwhile reads the refusal in the
panel. Phone (390×844) and desktop (1280×800).

The world (demo database, live server, browser) is test_maps.py's, built once for this module.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import shapely
from sqlalchemy import text
from test_maps import (  # noqa: F401  (world: test_maps' fixture, used through w below)
    EVIL_TOWN,
    PASSWORD,
    TOWN,
    VILLAGE,
    Watched,
    click_grid,
    hide_parent_boundaries,
    map_login,
    save,
    screenshot,
    set_drawn,
    token,
    world,
)
from test_planner_editing import boxes, inside, overlaps

from geogrid.access import accounts
from geogrid.areas import lookup
from geogrid.db import engine as db


@pytest.fixture(scope="module")
def w(world):  # noqa: F811
    """test_maps' world (demo database, live server, browser), built once for this module."""
    return world


VIEWPORTS = {"phone": (390, 844), "desktop": (1280, 800)}
SHOTS = Path("/tmp/shots13/publish")
PUBLISH_JS = "Object.values(window).find(v => v && v.reload && v.layer instanceof L.FeatureGroup)"
ARM_JS = """(name) => { window.__done = new Promise(resolve => document.addEventListener(
    name, e => resolve(e.detail), {once: true})); }"""
# Every refusal of the page's Content-Security-Policy, kept where the test can read it.
CSP_JS = """document.addEventListener('securitypolicyviolation', e => {
    (window.__csp = window.__csp || []).push(e.violatedDirective + ' ' + e.blockedURI); });"""


# --------------------------------------------------------------------------- helpers


def open_planner(w, size, *, user: str = "maps-planner", lang: str = "zh") -> Watched:
    watched = Watched(w)
    watched.page.set_viewport_size({"width": size[0], "height": size[1]})
    watched.page.add_init_script(CSP_JS)
    watched.alerts = []
    watched.page.on("dialog", lambda d: (watched.alerts.append(d.message), d.dismiss()))
    map_login(watched, w, f"/maps/planner?area={TOWN}&lang={lang}", user=user)
    watched.ready()
    return watched


def open_panel(page) -> dict:
    """Open the publish panel: it asks what is pending; its answer."""
    page.evaluate(ARM_JS, "geogrid-pending")
    page.click("#geogrid-tab-publish")
    assert page.is_visible("#geogrid-publish")
    return page.evaluate("() => window.__done")


def unpublished_changes(w) -> tuple[set[str], set[str], int]:
    """Independently of the code under test: the town's comprehensive grids whose current name
    or boundary differs from what the public sees (changed), those the public does not see
    at all (added), and how many the public sees unchanged."""
    with db.transaction(w.engine) as session:
        current = dict(session.execute(text(
            "SELECT code, name FROM area WHERE code LIKE :p AND layer_key = 'comprehensive' AND retired_at IS NULL"),
            {"p": TOWN + "%"}).all())
        public = {r.code: (r.name, shapely.from_wkb(bytes(r.wkb))) for r in session.execute(text(
            "SELECT code, name, ST_AsBinary(geom) AS wkb FROM public_area WHERE code LIKE :p "
            "AND layer_key = 'comprehensive'"), {"p": TOWN + "%"})}
        geoms = lookup.current_geometries(session, list(current))
    changed = {c for c in current if c in public and (
        public[c][0] != current[c] or not shapely.equals_exact(shapely.normalize(public[c][1]),
                                                                shapely.normalize(geoms[c]), 1e-9))}
    added = set(current) - set(public)
    return changed, added, len(set(public) & set(current)) - len(changed)


def single_polygon_grid(w, start: int, *, holes: bool = True) -> tuple[str, shapely.Geometry]:
    """A stored grid from ``start`` on whose shrunk copy is still one valid polygon (with no
    holes unless ``holes``)."""
    with db.transaction(w.engine) as session:
        geoms = lookup.current_geometries(session, w.grid_codes[start:start + 20])
    for code in w.grid_codes[start:start + 20]:
        shrunk = geoms[code].buffer(-2e-5)
        if shrunk.geom_type == "Polygon" and shrunk.is_valid and shrunk.area > 0.5 * geoms[code].area and (
                holes or not shrunk.interiors):
            return code, geoms[code]
    raise AssertionError("no grid to reshape")


def staff(w, user: str = "maps-planner") -> dict:
    return {"Authorization": f"Bearer {token(w, user)}"}


# --------------------------------------------------------------------------- the round trip


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_planner_publishes_a_renamed_and_a_reshaped_grid(w, viewport):
    size = VIEWPORTS[viewport]
    offset = 40 if viewport == "phone" else 80  # each viewport its own grids
    renamed = w.grid_codes[offset]
    reshaped, old_geom = single_polygon_grid(w, offset + 1)
    new_name = f"公示测试网格{viewport}"
    old_name = w.http.get(f"/api/grids/{renamed}").json()["properties"]["name"]
    assert old_name != new_name
    r = w.http.patch(f"/api/grids/{renamed}", json={"properties": {"name": new_name}}, headers=staff(w))
    assert r.status_code == 200, r.text
    new_geom = old_geom.buffer(-2e-5)
    r = w.http.patch(f"/api/grids/{reshaped}", json={"geometry": shapely.geometry.mapping(new_geom)},
                     headers=staff(w))
    assert r.status_code == 200, r.text
    # Drafts: the public still reads the published name and boundary.
    assert w.http.get(f"/api/grids/{renamed}").json()["properties"]["name"] == old_name
    changed, added, unchanged = unpublished_changes(w)
    assert {renamed, reshaped} <= changed and not added

    watched = open_planner(w, size)
    page = watched.page
    try:
        assert page.locator("#geogrid-tab-publish").inner_text() == "发布"
        detail = open_panel(page)
        assert detail["status"] == 200, detail
        summary = page.locator("#geogrid-publish-summary").inner_text()
        assert summary == (f"自上次发布以来：新增 {len(added)} 个、修改 {len(changed)} 个、撤销 0 个网格"
                           f"（未变 {unchanged} 个）")
        shown = page.eval_on_selector_all(".geogrid-publish-changed li[data-code]",
                                          "els => els.map(e => [e.dataset.code, e.textContent])")
        if len(changed) <= 8:  # the panel lists eight codes per kind, then how many more
            assert {c for c, _ in shown} == changed
        else:
            assert {c for c, _ in shown} < changed
        assert dict(shown)[renamed] == f"{renamed} {new_name}"  # the name the page has (the current one)
        # The outlines on the map: exactly the grids that would change, dashed, clicks passing through.
        outlined = page.evaluate(f"""() => {PUBLISH_JS}.layer.getLayers().map(l =>
            [l.feature.properties.code, l.options.dashArray, l.options.interactive, !!l._map])""")
        assert {c for c, *_ in outlined} == changed | added
        assert all(dash == "8 4" and interactive is False and on_map for c, dash, interactive, on_map in outlined
                   if c in changed)
        # The grids themselves keep their cards' properties (the outlines are copies).
        props = page.evaluate(f"""(code) => Object.values(window).filter(v => v instanceof L.GeoJSON)
            .flatMap(g => g.getLayers()).filter(l => l.feature && l.feature.properties.code === code
                     && !{PUBLISH_JS}.layer.hasLayer(l)).map(l => l.feature.properties.name)""", renamed)
        assert props and set(props) == {new_name}
        legend = page.locator("#geogrid-publish-legend").inner_text()
        assert "待发布：修改的网格" in legend and "待发布：新增的网格" in legend
        assert page.is_enabled("#geogrid-publish-btn")
        assert page.locator("#geogrid-publish-scope").inner_text().startswith(f"发布范围：青禾镇（{TOWN}）")
        # The panel takes its place in the dock: over no control, inside the screen.
        found = boxes(page)
        assert overlaps(found) == [] and inside(found, size) == [], found
        last = page.locator("#geogrid-publish-last").inner_text()
        assert last.startswith("上次发布：")
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.evaluate("([b]) => { Object.values(window).find(v => v instanceof L.Map)"
                      ".fitBounds(b, {animate: false, maxZoom: 16}); }",
                      [[[old_geom.bounds[1], old_geom.bounds[0]], [old_geom.bounds[3], old_geom.bounds[2]]]])
        page.wait_for_timeout(300)
        screenshot(page, SHOTS / f"{viewport}-pending.png")

        note = f"2026年11月网格调整（{viewport}）"
        page.fill("#geogrid-publish-note", note)
        page.click("#geogrid-publish-btn")
        page.wait_for_selector("#geogrid-publish-confirm", state="visible")
        dialog = page.locator("#geogrid-publish-confirm").inner_text()
        assert "确认发布？" in dialog and summary in dialog and note in dialog
        screenshot(page, SHOTS / f"{viewport}-confirm.png")
        page.evaluate(ARM_JS, "geogrid-published")
        page.click("#geogrid-publish-confirm-yes")
        published = page.evaluate("() => window.__done")
        assert published["status"] == 201, published
        pub = published["body"]
        assert (pub["changed"], pub["added"], pub["withdrawn"]) == (len(changed), len(added), 0)
        status = page.locator("#geogrid-publish-status").inner_text()
        assert status == (f"已发布（发布编号 {pub['id']}）：新增 {len(added)} 个、修改 {len(changed)} 个、"
                          f"撤销 0 个、未变 {unchanged} 个")
        # Refreshed: nothing pending now, the button off and why, no outlines left.
        page.wait_for_function("() => /修改 0 个/.test(document.getElementById('geogrid-publish-summary').textContent)")
        assert page.locator("#geogrid-publish-summary").inner_text().startswith(
            "自上次发布以来：新增 0 个、修改 0 个、撤销 0 个网格")
        assert page.is_disabled("#geogrid-publish-btn")
        assert page.is_visible("#geogrid-publish-nothing")
        assert page.locator("#geogrid-publish-nothing").inner_text() == "没有需要发布的修改"
        assert page.evaluate(f"() => {PUBLISH_JS}.layer.getLayers().length") == 0
        last = page.locator("#geogrid-publish-last").inner_text()
        assert note in last
        # the jurisdiction's time, whatever time zone the browser is in (UTC here)
        at = dt.datetime.fromisoformat(pub["published_at"]).astimezone(ZoneInfo(w.settings.timezone))
        assert f"{at.year}/{at.month}/{at.day} {at:%H:%M:%S}" in last, (last, pub["published_at"])
        assert page.locator("#geogrid-publish-note").input_value() == ""
        screenshot(page, SHOTS / f"{viewport}-published.png")
        assert watched.errors() == []
        assert page.evaluate("() => window.__csp || []") == []
        assert watched.alerts == []
    finally:
        watched.close()

    # The public, with no token, reads the new name and boundary now.
    assert w.http.get(f"/api/grids/{renamed}").json()["properties"]["name"] == new_name
    public_geom = shapely.geometry.shape(w.http.get(f"/api/grids/{reshaped}").json()["geometry"])
    with db.transaction(w.engine) as session:
        stored = lookup.current_geometries(session, [reshaped])[reshaped]
    assert shapely.hausdorff_distance(public_geom, stored) < 1e-7
    assert shapely.hausdorff_distance(public_geom, old_geom) > 1e-5
    items = w.http.get("/api/publications", params={"area": TOWN, "layer": "comprehensive", "limit": 1}).json()["items"]
    assert (items[0]["id"], items[0]["note"]) == (pub["id"], note)
    assert unpublished_changes(w) == (set(), set(), unchanged + len(changed))


def test_pending_follows_an_edit_saved_on_the_map(w):
    """Once asked, the panel asks again after the editor saves (its panel shut meanwhile): the
    grid reshaped in the browser is listed and outlined with its new boundary."""
    code, old = single_polygon_grid(w, 120, holes=False)
    watched = open_planner(w, VIEWPORTS["desktop"], lang="en")
    page = watched.page
    try:
        before = open_panel(page)["body"]
        assert code not in before["changed"]
        assert page.locator("#geogrid-publish-summary").inner_text().startswith("Since the last publication: ")
        hide_parent_boundaries(page)  # opens the editor's panel: the publish panel is shut now
        click_grid(page, old, code)
        new = shapely.Polygon(shapely.get_geometry(old, 0).buffer(-2e-5).exterior)
        set_drawn(page, code, new)
        page.evaluate(ARM_JS, "geogrid-pending")
        saved = save(page)
        assert saved["status"] == 200, saved
        after = page.evaluate("() => window.__done")
        assert code in after["body"]["changed"]
        assert not page.is_visible("#geogrid-publish")
        assert page.locator(f".geogrid-publish-changed li[data-code='{code}']").count() == 1
        ring = page.evaluate(f"""(code) => {PUBLISH_JS}.layer.getLayers()
            .filter(l => l.feature.properties.code === code).map(l => l.toGeoJSON().geometry)""", code)
        assert len(ring) == 1
        with db.transaction(w.engine) as session:
            stored = lookup.current_geometries(session, [code])[code]
        assert shapely.hausdorff_distance(shapely.geometry.shape(ring[0]), stored) < 1e-5  # the new boundary
        assert shapely.hausdorff_distance(stored, old) > 1e-5
        assert watched.errors() == []
    finally:
        watched.close()


def test_a_new_grid_is_listed_as_added_and_outlined_dotted(w):
    """A grid drawn (here through the API) is a draft: listed as added, outlined dotted, until
    it is published; retired before that, it is pending no more."""
    with db.transaction(w.engine) as session:
        village = shapely.geometry.shape(lookup.get_area(session, VILLAGE)["geometry"])
    centre = village.representative_point()
    square = shapely.box(centre.x - 2e-4, centre.y - 2e-4, centre.x + 2e-4, centre.y + 2e-4)
    r = w.http.post("/api/grids", json={"type": "Feature", "geometry": shapely.geometry.mapping(square),
                                        "properties": {"name": "新建待发布网格", "parent": VILLAGE,
                                                       "layer": "comprehensive"}}, headers=staff(w))
    assert r.status_code == 201, r.text
    code = r.json()["codes"][0]
    try:
        assert code in unpublished_changes(w)[1]
        watched = open_planner(w, VIEWPORTS["phone"])
        page = watched.page
        try:
            body = open_panel(page)["body"]
            assert code in body["added"]
            assert page.locator(f".geogrid-publish-added li[data-code='{code}']").inner_text() == \
                f"{code} 新建待发布网格"
            outline = page.evaluate(f"""(code) => {PUBLISH_JS}.layer.getLayers()
                .filter(l => l.feature.properties.code === code).map(l => l.options.dashArray)""", code)
            assert outline == ["2 5"]
            assert watched.errors() == []
        finally:
            watched.close()
    finally:
        assert w.http.delete(f"/api/grids/{code}", headers=staff(w)).status_code == 204
    assert code not in unpublished_changes(w)[1]


# --------------------------------------------------------------------------- who may publish


def test_exported_planner_map_has_no_publish_panel(w):
    """An exported file has no session to publish with: no panel, no script for it."""
    from test_maps import render

    html = render(w, "planner")
    assert "geogrid.publish(" not in html and "publish.js" not in html
    assert "geogrid.editor(" in html  # the editor is there: only publishing is left out


def test_inspector_has_no_publish_panel(w):
    with db.transaction(w.engine) as session:
        if not session.execute(text("SELECT 1 FROM account WHERE username = 'maps-inspector'")).first():
            accounts.create_account(session, "maps-inspector", PASSWORD)
            accounts.grant(session, "maps-inspector", "inspector", TOWN)
    watched = open_planner(w, VIEWPORTS["phone"], user="maps-inspector")
    page = watched.page
    try:
        assert page.locator("#geogrid-tab-problems").count() == 1  # the dock is there
        assert page.locator("#geogrid-tab-publish, #geogrid-publish, #geogrid-publish-btn").count() == 0
        assert not any("publish.js" in u for u in watched.requests)
        assert watched.errors() == []
    finally:
        watched.close()


def test_planner_out_of_scope_reads_the_refusal_in_the_panel(w):
    """A planner of another town cannot open this town's map (403); one whose grant moved to
    another town while the map was open reads the refusal in the panel, in the page's language."""
    with db.transaction(w.engine) as session:
        accounts.create_account(session, "maps-mover", PASSWORD)
        accounts.create_account(session, "maps-elsewhere", PASSWORD)
        accounts.grant(session, "maps-elsewhere", "planner", EVIL_TOWN)
    assert w.http.get("/maps/planner", params={"area": TOWN}, headers=staff(w, "maps-elsewhere")).status_code == 403
    code = w.grid_codes[200]
    r = w.http.patch(f"/api/grids/{code}", json={"properties": {"name": "未发布的改名"}}, headers=staff(w))
    assert r.status_code == 200, r.text
    for lang, refusal in (("en", "Not allowed: this area is outside your planning scope [403]"),
                          ("zh", "无权发布：该区域不在您的规划管理范围内 [403]")):
        with db.transaction(w.engine) as session:
            accounts.grant(session, "maps-mover", "planner", TOWN)
        watched = open_planner(w, VIEWPORTS["phone"], user="maps-mover", lang=lang)
        page = watched.page
        try:
            assert code in open_panel(page)["body"]["changed"]
            with db.transaction(w.engine) as session:  # moved to another town meanwhile
                accounts.revoke(session, "maps-mover", "planner", TOWN)
                accounts.grant(session, "maps-mover", "planner", EVIL_TOWN)
            page.click("#geogrid-publish-btn")
            page.evaluate(ARM_JS, "geogrid-published")
            page.click("#geogrid-publish-confirm-yes")
            assert page.evaluate("() => window.__done")["status"] == 403
            status = page.locator("#geogrid-publish-status").inner_text()
            assert status == refusal, status  # the page's words only: the service's English stays out
            assert page.is_visible("#geogrid-publish-status")
            screenshot(page, Path(SHOTS / f"refused-{lang}.png"))
            # The one refusal (the browser logs a failed request as a console error): nothing else.
            unexpected = [e for e in watched.errors() if "403" not in e]
            assert unexpected == [] and len(watched.errors()) <= 2
            assert watched.alerts == []
            assert page.evaluate("() => window.__csp || []") == []
        finally:
            watched.close()
            with db.transaction(w.engine) as session:
                accounts.revoke(session, "maps-mover", "planner", EVIL_TOWN)
    # Nothing was published: the public still reads the old name.
    assert w.http.get(f"/api/grids/{code}").json()["properties"]["name"] != "未发布的改名"
