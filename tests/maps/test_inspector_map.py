"""The inspector's map in a real browser (headless Chromium through Playwright) on the demo
jurisdiction, served by a live uvicorn: acting on a case from its popup (the moves offered
are the ones the API allows the caller; each goes through the workflow API with the case's
version and the popup's history shows it in Chinese), a stale version's Chinese message,
a grid worker's moves, the overdue counts in the cluster bubbles against the API's overdue
list, the filter bar against the API's filtered lists, the standalone export (no actions),
and the names of every history action. Phone (390×844) and desktop (1280×800).

The world (demo database, live server, browser) is test_maps.py's, built once for this
module, with a few more cases: fresh ones per viewport, overdue ones (taken in weeks ago),
and cases in the grid worker's village.
"""

from __future__ import annotations

import datetime as dt
import re
import types
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from test_maps import (  # noqa: F401  (world: test_maps' fixture, used through w below)
    PASSWORD,
    TOWN,
    VILLAGE,
    Watched,
    map_login,
    render,
    token,
    world,
)

import geogrid
from geogrid.access import accounts
from geogrid.db import engine as db
from geogrid.environment import sources
from geogrid.incidents import intake, workflow
from maps import views

VIEWPORTS = {"phone": (390, 844), "desktop": (1280, 800)}
SHOTS = Path("/tmp/shots16/C")
CLUSTER_JS = "Object.values(window).find(v => L.MarkerClusterGroup && v instanceof L.MarkerClusterGroup)"
MAP_JS = "Object.values(window).find(v => v instanceof L.Map)"


def _case(session, s, category: str, point, description: str, at: dt.datetime | None = None) -> dict:
    data = {"category": category, "channel": "hotline_12345", "description": description,
            "lon": point.x, "lat": point.y}
    if at is not None:
        data["occurred_at"] = at
    return intake.intake(session, data, s, at=at)


@pytest.fixture(scope="module")
def w(world):  # noqa: F811
    """test_maps' world with an inspector on the town and more cases."""
    s, c = world.settings, world.grid_codes
    village = [code for code in c if code.startswith(VILLAGE)]
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=40)
    with db.transaction(world.engine) as session:
        accounts.create_account(session, "maps-inspector", PASSWORD)
        accounts.grant(session, "maps-inspector", "inspector", TOWN)
        fresh = {v: _case(session, s, "sanitation", world.points[c[20 + i * 40]], f"垃圾满溢{v}")
                 for i, v in enumerate(VIEWPORTS)}
        stale = {v: _case(session, s, "sanitation", world.points[c[35 + i * 40]], f"占道经营{v}")
                 for i, v in enumerate(VIEWPORTS)}
        late = [_case(session, s, cat, world.points[c[i]], f"超期案件{i}", at=long_ago)
                for cat, i in (("sanitation", 5), ("illegal_discharge", 60), ("sanitation", 150), ("dispute", 250),
                               ("sanitation", 251), ("illegal_discharge", 320))]
        worker_reported = _case(session, s, "sanitation", world.points[village[0]], "村里垃圾W1")
        worker_dispatched = _case(session, s, "sanitation", world.points[village[1]], "村里垃圾W2")
        for to in ("accepted", "filed", "dispatched"):
            workflow.transition(session, worker_dispatched["id"], to, s)
        # The inspector's account belongs to the person responsible for the first overdue case:
        # "my cases" are that person's.
        person = late[0]["responsible"][0]["person_id"]
        session.execute(text("UPDATE account SET person_id = :p WHERE username = 'maps-inspector'"), {"p": person})
        # Two pollution sources at one spot (a key one and another), one elsewhere.
        spot, other = world.points[c[100]], world.points[c[180]]
        shared = [sources.create_source(session, {"name": name, "kind": kind, "key_supervision": key,
                                                  "lon": spot.x, "lat": spot.y}, s)
                  for name, kind, key in (("化工厂甲", "enterprise", True), ("排污口乙", "outfall", False))]
        sources.create_source(session, {"name": "养殖场丙", "kind": "livestock_farm", "lon": other.x, "lat": other.y}, s)
    SHOTS.mkdir(parents=True, exist_ok=True)
    return types.SimpleNamespace(world=world, base=world.base, http=world.http, fresh=fresh, stale=stale, late=late,
                                 worker_reported=worker_reported, worker_dispatched=worker_dispatched,
                                 person=person, settings=s, shared=shared, spot=spot)


def bearer(w, user: str) -> dict:
    return {"Authorization": f"Bearer {token(w.world, user)}"}


def api_cases(w, user: str = "maps-inspector", **params) -> list[dict]:
    r = w.http.get("/api/incidents", params={"area": TOWN, "limit": 1000, **params}, headers=bearer(w, user))
    assert r.status_code == 200, r.text
    return r.json()["items"]


def open_map(w, viewport: str, user: str = "maps-inspector", lang: str = "zh") -> Watched:
    watched = Watched(w.world)
    size = VIEWPORTS[viewport]
    watched.page.set_viewport_size({"width": size[0], "height": size[1]})
    map_login(watched, w.world, f"/maps/inspector?area={TOWN}&lang={lang}", user=user)
    watched.ready()
    return watched


def open_case(page, case_id: int) -> None:
    """Zoom in on the case until its marker is out of its cluster (spread if it shares its
    spot), then open its popup."""
    find = f"const c = {CLUSTER_JS}; const m = c.getLayers().find(m => m.geogridRow[5].id === {case_id});"
    # One popup at a time (a closing one fades out: wait until it is gone).
    page.evaluate(f"() => {MAP_JS}.closePopup()")
    page.wait_for_selector(".leaflet-popup", state="detached", timeout=5_000)
    assert page.evaluate(f"() => {{ {find} if (!m) return false; {MAP_JS}.setView(m.getLatLng(), 18, {{animate: false}});"
                         " return true; }")
    page.wait_for_timeout(300)
    # Circle markers have no icon, so markercluster's getVisibleParent cannot tell: a marker
    # shown on its own is on the map, else its nearest cluster with an icon holds it.
    page.evaluate(f"() => {{ {find} if ({MAP_JS}.hasLayer(m)) return; let p = m.__parent;"
                  " while (p && !p._icon) p = p.__parent; if (p) p.spiderfy(); }")
    page.wait_for_function(f"() => {{ {find} return {MAP_JS}.hasLayer(m); }}", timeout=10_000)
    page.evaluate(f"() => {{ {find} m.openPopup(); }}")
    page.wait_for_selector(f'.leaflet-popup [data-case="{case_id}"]', timeout=10_000)
    settle(page)


def settle(page) -> None:
    """Wait until the map has stopped moving (a popup pans the map to fit): a click aimed at a
    button while it moves could land on the map instead."""
    page.evaluate(f"""() => new Promise(done => {{
        const map = {MAP_JS};
        let timer = setTimeout(finish, 400);
        function finish() {{ map.off('move', again); done(true); }}
        function again() {{ clearTimeout(timer); timer = setTimeout(finish, 400); }}
        map.on('move', again);
    }})""")


def offered(page) -> list[str]:
    return page.eval_on_selector_all(".leaflet-popup .geogrid-move", "bs => bs.map(b => b.dataset.move)")


def act(page, move: str, note: str = "") -> str:
    page.click(f'.leaflet-popup .geogrid-move[data-move="{move}"]')
    page.wait_for_selector(".leaflet-popup .geogrid-action-go", state="visible", timeout=5_000)
    settle(page)  # the popup grew: it may pan the map again
    if note:
        page.fill(".leaflet-popup .geogrid-action-note", note)
    page.click(".leaflet-popup .geogrid-action-go")
    page.wait_for_function("() => { const m = document.querySelector('.leaflet-popup .geogrid-action-msg');"
                           " return m && m.textContent && !/正在提交|Sending/.test(m.textContent); }", timeout=20_000)
    return page.inner_text(".leaflet-popup .geogrid-action-msg")


def history_lines(page) -> list[str]:
    return page.eval_on_selector_all(".leaflet-popup .geogrid-card li", "ls => ls.map(l => l.textContent)")


def chinese_only(lines: list[str]) -> bool:
    return all(not re.search(r"[A-Za-z]", re.sub(r"^\S+ \S+ ", "", line)) for line in lines)


# --------------------------------------------------------------------------- actions


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_inspector_accepts_files_and_dispatches_from_the_popup(w, viewport):
    case = w.fresh[viewport]
    auth = bearer(w, "maps-inspector")
    watched = open_map(w, viewport)
    page = watched.page
    try:
        for move, state_zh in (("accepted", "受理"), ("filed", "立案"), ("dispatched", "派遣")):
            open_case(page, case["id"])
            before = w.http.get(f"/api/incidents/{case['id']}", headers=auth).json()
            # An inspector may enter every state: the moves offered are the API's legal ones, and
            # escalation (the case's authority has a parent).
            assert offered(page) == before["allowed"] + ["escalate"]
            message = act(page, move, note=f"地图办理{move}")
            assert message == f"已办理：{state_zh}"
            after = w.http.get(f"/api/incidents/{case['id']}", headers=auth)
            assert after.json()["state"] == move and after.headers["ETag"] == f'"{before["version"] + 1}"'
            lines = history_lines(page)
            assert lines[-1].endswith(f"状态变更 → {state_zh}") and chinese_only(lines), lines
            assert f"· {state_zh}" in page.inner_text(".leaflet-popup .geogrid-card > b")
        # The marker has the dispatched colour, and the last note is in the case's history.
        colour = page.evaluate(f"() => {CLUSTER_JS}.getLayers().find(m => m.geogridRow[5].id === {case['id']})"
                               ".options.fillColor")
        assert colour == views.STATE_COLOURS["dispatched"]
        history = w.http.get(f"/api/incidents/{case['id']}", headers=auth).json()["history"]
        assert [e["note"] for e in history[-3:]] == ["地图办理accepted", "地图办理filed", "地图办理dispatched"]
        page.screenshot(path=str(SHOTS / f"popup-acted-{viewport}.png"))
        assert watched.errors() == []
    finally:
        watched.close()


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_stale_version_is_reloaded_with_a_chinese_message(w, viewport):
    case = w.stale[viewport]
    watched = open_map(w, viewport)
    page = watched.page
    try:
        open_case(page, case["id"])
        # Meanwhile a planner accepts it.
        version = w.http.get(f"/api/incidents/{case['id']}", headers=bearer(w, "maps-planner")).json()["version"]
        r = w.http.post(f"/api/incidents/{case['id']}/transitions", json={"to": "accepted"},
                        headers={**bearer(w, "maps-planner"), "If-Match": f'"{version}"'})
        assert r.status_code == 200, r.text
        message = act(page, "void", note="重复")
        assert message == "该事件已被他人更新，已重新载入（当前状态：受理），请确认后再办理。"
        # Reloaded: the popup shows the new state and offers its moves; a move now succeeds.
        assert "· 受理" in page.inner_text(".leaflet-popup .geogrid-card > b")
        assert offered(page) == ["filed", "void", "escalate"]
        assert act(page, "filed") == "已办理：立案"
        assert w.http.get(f"/api/incidents/{case['id']}", headers=bearer(w, "maps-inspector")).json()["state"] == "filed"
        # The 412 was the only failed request.
        assert [e for e in watched.errors() if "412" not in e] == []
    finally:
        watched.close()


def test_void_needs_a_reason_and_forbidden_moves_answer_in_chinese(w):
    watched = open_map(w, "desktop", user="maps-worker")
    page = watched.page
    try:
        # A grid worker: no centre-only move on a reported case (only escalation), handling on a dispatched one.
        open_case(page, w.worker_reported["id"])
        assert offered(page) == ["escalate"]
        assert act(page, "escalate") == "请填写说明。"  # escalation needs a reason: nothing is sent
        auth = bearer(w, "maps-worker")
        assert w.http.post(f"/api/incidents/{w.worker_reported['id']}/transitions", json={"to": "accepted"},
                           headers=auth).status_code == 403
        open_case(page, w.worker_dispatched["id"])
        assert offered(page) == ["in_progress", "escalate"]
        assert w.http.post(f"/api/incidents/{w.worker_dispatched['id']}/transitions", json={"to": "parked"},
                           headers=auth).status_code == 403
        # Handled meanwhile by someone else (the page still shows it dispatched, with the
        # current version): the same move again is illegal, a 409 the page words in Chinese.
        r = w.http.post(f"/api/incidents/{w.worker_dispatched['id']}/transitions", json={"to": "in_progress"},
                        headers=bearer(w, "maps-planner"))
        assert r.status_code == 403  # a planner does not handle cases
        r = w.http.post(f"/api/incidents/{w.worker_dispatched['id']}/transitions", json={"to": "in_progress"},
                        headers=bearer(w, "maps-inspector"))
        assert r.status_code == 200, r.text
        page.evaluate(f"() => {{ const m = {CLUSTER_JS}.getLayers().find(m => m.geogridRow[5].id === "
                      f"{w.worker_dispatched['id']}); m.geogridRow[5].v = {r.json()['version']}; }}")
        message = act(page, "in_progress")
        assert message == "该事件当前为“处置”，不能办理“处置”。", message
        assert not re.search(r"[A-Za-z]{3}", message)
    finally:
        watched.close()


# --------------------------------------------------------------------------- clusters and filters


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_overdue_counts_in_cluster_bubbles_equal_the_api(w, viewport):
    expected = [c for c in api_cases(w, overdue="true") if c["lat"] is not None]
    assert len(expected) >= len(w.late)
    watched = open_map(w, viewport)
    page = watched.page
    try:
        for zoom in (11, 13):
            page.evaluate(f"() => {MAP_JS}.setZoom({zoom}, {{animate: false}})")
            page.wait_for_timeout(400)
            badges = page.eval_on_selector_all(".geogrid-case-cluster .geogrid-overdue-badge",
                                               "bs => bs.map(b => parseInt(b.textContent, 10))")
            single = page.evaluate(f"""() => {{ const c = {CLUSTER_JS};
                return c.getLayers().filter(m => {MAP_JS}.hasLayer(m) && m.geogridRow[3]).length; }}""")
            # Every overdue case is counted once: in a bubble's badge, or ringed on its own.
            assert badges and sum(badges) + single == len(expected), (zoom, badges, single)
        page.evaluate(f"() => {MAP_JS}.setZoom(11, {{animate: false}})")
        page.wait_for_timeout(300)
        page.screenshot(path=str(SHOTS / f"clusters-{viewport}.png"))
        assert watched.errors() == []
    finally:
        watched.close()


def shown_ids(page) -> set[int]:
    return set(page.evaluate(f"() => {CLUSTER_JS}.getLayers().map(m => m.geogridRow[5].id)"))


def open_filters(page) -> None:
    if not page.is_visible("#geogrid-filter-state"):
        page.click("#geogrid-tab-filters")


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_filters_show_exactly_the_cases_the_api_lists(w, viewport):
    watched = open_map(w, viewport)
    page = watched.page

    def placed(**params) -> set[int]:
        return {c["id"] for c in api_cases(w, **params) if c["lat"] is not None}

    try:
        everything = placed()
        assert shown_ids(page) == everything
        open_filters(page)
        page.select_option("#geogrid-filter-state", "reported")
        assert shown_ids(page) == placed(state="reported")
        page.select_option("#geogrid-filter-category", "sanitation")
        assert shown_ids(page) == placed(state="reported", category="sanitation") != set()
        n = len(shown_ids(page))
        assert f"({n})" in page.locator(".leaflet-control-layers").text_content()
        assert page.inner_text("#geogrid-filter-shown") == f"显示 {n} / {len(everything)} 件"
        page.click("#geogrid-filter-reset")
        page.check("#geogrid-filter-overdue")
        assert shown_ids(page) == placed(overdue="true")
        page.click("#geogrid-filter-reset")
        # Reported today (the service's day): the cases taken in weeks ago are left out.
        today = dt.datetime.now(ZoneInfo(w.settings.timezone)).date()
        page.fill("#geogrid-filter-from", today.isoformat())
        since = dt.datetime.combine(today, dt.time(), ZoneInfo(w.settings.timezone)).isoformat()
        assert shown_ids(page) == placed(since=since) and not {c["id"] for c in w.late} & shown_ids(page)
        page.click("#geogrid-filter-reset")
        # My cases: the ones naming the account's person responsible (or as owner).
        page.check("#geogrid-filter-mine")
        mine = {c["id"] for c in api_cases(w) if c["lat"] is not None and (
            c["owner_person_id"] == w.person or any(p["person_id"] == w.person for p in c["responsible"]))}
        assert shown_ids(page) == mine and w.late[0]["id"] in mine
        page.click("#geogrid-filter-reset")
        assert shown_ids(page) == everything
        page.screenshot(path=str(SHOTS / f"filters-{viewport}.png"))
        assert watched.errors() == []
    finally:
        watched.close()


def test_my_cases_is_hidden_without_a_person(w):
    watched = open_map(w, "desktop", user="maps-planner")
    try:
        assert watched.page.locator("#geogrid-filter-state").count() == 1
        assert watched.page.locator("#geogrid-filter-mine").count() == 0
    finally:
        watched.close()


# --------------------------------------------------------------------------- legend, nets, export


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_legend_and_choropleth_per_net(w, viewport):
    watched = open_map(w, viewport)
    page = watched.page
    try:
        page.click("#geogrid-tab-legend")
        legend = page.inner_text(".geogrid-legend")
        for label in ("上报", "超期事件（红圈）", "聚合点", "重点监管污染源", "其他污染源", "按期巡查", "巡查滞后", "热力图"):
            assert label in legend, label
        assert not page.is_visible("#geogrid-choropleth-legend")
        nets = page.eval_on_selector_all("#geogrid-choropleth-net option", "os => os.map(o => o.value)")
        assert nets[0] == "comprehensive" and "environment" in nets
        page.click("#geogrid-tab-layers")
        page.locator(".leaflet-control-layers label", has_text="网格事件数").locator("input").check()
        page.click("#geogrid-tab-legend")
        assert page.is_visible("#geogrid-choropleth-legend")
        # One net at a time: the group holds only the chosen net's grids.
        count = f"() => {{ let n = 0; {MAP_JS}.eachLayer(l => {{ if (l.feature && l.feature.properties.count !== undefined) n++; }}); return n; }}"
        comprehensive = page.evaluate(count)
        assert comprehensive == len(w.world.grid_codes)
        page.select_option("#geogrid-choropleth-net", "environment")
        with db.transaction(w.world.engine) as session:
            env = session.execute(text("SELECT count(*) FROM area a WHERE a.code LIKE :p AND a.layer_key = 'environment' "
                                       "AND a.retired_at IS NULL AND NOT EXISTS (SELECT 1 FROM area c WHERE "
                                       "c.parent_id = a.id AND c.layer_key = 'environment' AND c.retired_at IS NULL)"),
                                  {"p": TOWN + "%"}).scalar_one()
        assert page.evaluate(count) == env > 0
        page.screenshot(path=str(SHOTS / f"legend-choropleth-{viewport}.png"))
        page.click("#geogrid-tab-layers")
        page.locator(".leaflet-control-layers label", has_text="网格事件数").locator("input").uncheck()
        page.click("#geogrid-tab-legend")
        assert not page.is_visible("#geogrid-choropleth-legend")
        assert watched.errors() == []
    finally:
        watched.close()


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_sources_at_one_spot_are_spread_and_clickable(w, viewport):
    watched = open_map(w, viewport)
    page = watched.page
    try:
        assert "污染源 (3)" in page.locator(".leaflet-control-layers").text_content()
        page.evaluate(f"() => {MAP_JS}.setView([{w.spot.y}, {w.spot.x}], 19, {{animate: false}})")
        page.wait_for_timeout(400)
        # At the highest zoom the two still share one bubble; a click spreads them out.
        bubble = page.locator(".marker-cluster:not(.geogrid-case-cluster)")
        assert bubble.count() == 1 and bubble.inner_text() == "2"
        bubble.click()
        page.wait_for_timeout(600)
        pins = page.locator(".awesome-marker.leaflet-interactive")  # not their shadows
        assert pins.count() == 2
        names = set()
        for i in range(2):
            page.evaluate(f"() => {MAP_JS}.closePopup()")
            page.wait_for_selector(".leaflet-popup", state="detached", timeout=5_000)
            pins.nth(i).click()
            page.wait_for_selector(".leaflet-popup .geogrid-card")
            names.add(page.inner_text(".leaflet-popup .geogrid-card > b"))
        assert names == {"化工厂甲", "排污口乙"}
        page.screenshot(path=str(SHOTS / f"sources-{viewport}.png"))
        assert watched.errors() == []
    finally:
        watched.close()


def test_standalone_export_has_no_actions(w, tmp_path):
    html = render(w.world, "inspector", lang="zh")
    path = tmp_path / "inspector.html"
    path.write_text(html, encoding="utf-8")
    watched = Watched(w.world)
    try:
        watched.goto(path.as_uri())
        open_case(watched.page, w.late[0]["id"])
        assert watched.page.locator(".leaflet-popup .geogrid-card").count() == 1
        assert watched.page.locator(".geogrid-actions, .geogrid-move").count() == 0
        assert chinese_only(history_lines(watched.page))
        assert watched.errors() == []
    finally:
        watched.close()


# --------------------------------------------------------------------------- history names


def written_actions() -> set[str]:
    """Every action the code can write into a case's history: the calls of records.event and
    the SQL that inserts events directly (the bulk import, intake's one statement)."""
    found = set()
    for path in Path(geogrid.__file__).parent.rglob("*.py"):
        source = path.read_text(encoding="utf-8")
        found |= set(re.findall(r"\bevent\(\s*session,\s*\w+,\s*\"(\w+)\"", source))
        for insert in re.findall(r"INSERT INTO incident_event.*?(?:RETURNING|\"\"\")", source, re.DOTALL):
            found |= set(re.findall(r":actor, '(\w+)'", insert))
    return found


def test_every_history_action_has_a_name_in_both_languages(w):
    actions = written_actions()
    assert {"report", "transition", "escalate", "import", "note"} <= actions  # the scan finds them
    assert actions <= set(views.ACTION_NAMES)
    for lang in ("zh", "en"):
        names = views.action_names(lang)
        assert all(names[a] and names[a] != a for a in actions)
    assert all(re.search(r"[\u4e00-\u9fff]", views.action_names("zh")[a]) for a in actions)
    with db.transaction(w.world.engine) as session:
        stored = set(session.execute(text("SELECT DISTINCT action FROM incident_event")).scalars())
    assert stored and stored <= set(views.ACTION_NAMES)
