"""The map session as an API credential (issue 10): the cookie set by /maps/login lets the
map's own scripts save, and nothing else. The API takes it only with
``X-Requested-With: geogrid-map`` and, for writes, an ``Origin`` equal to the service's
own; a bearer token wins over it; logging out revokes it for the API too. Real
PostgreSQL, the real app and its real login: nothing is mocked."""

from __future__ import annotations

import re

import shapely
from conftest import PASSWORD, collection, feature, square
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.app import create_app

VILLAGE = "339901100001"
MAP = {"X-Requested-With": "geogrid-map"}


def state(engine, code: str) -> tuple:
    """What a refused write must leave alone: the grid's version, its boundary versions,
    its current area on the spheroid, and the audit log's length."""
    with engine.connect() as conn:
        return conn.execute(text("""
            SELECT a.version, (SELECT count(*) FROM boundary b WHERE b.area_id = a.id),
                   (SELECT b.area_m2 FROM boundary b WHERE b.area_id = a.id AND upper_inf(b.valid)),
                   (SELECT count(*) FROM audit)
            FROM area a WHERE a.code = :c"""), {"c": code}).one()


def map_login(c: TestClient, username: str):
    r = c.post("/maps/login", data={"username": username, "password": PASSWORD, "next": "/maps/planner?area=1"},
               follow_redirects=False)
    assert r.status_code == 303, r.text
    return r


def a_grid(client) -> str:
    r = client.post("/api/grids", json=collection(feature(square(120.0, 30.0, 0.01), name="一格")),
                    params={"parent": VILLAGE})
    assert r.status_code == 201, r.text
    return r.json()["codes"][0]


def shrunk(code_geometry: dict, share: float) -> dict:
    """The grid's boundary with its east edge pulled in by ``share`` of its width."""
    geom = shapely.geometry.shape(code_geometry)
    x0, y0, x1, y1 = geom.bounds
    return shapely.geometry.mapping(shapely.box(x0, y0, x1 - share * (x1 - x0), y1))


def test_map_session_saves_only_from_the_maps_own_scripts(client, town, make_user, settings, engine):
    code = a_grid(client)
    worker = make_user("worker", ("grid_worker", None))
    make_user("planner", ("planner", "339901100"))
    with TestClient(create_app(settings)) as c:
        map_login(c, "planner")
        here = {"Origin": "http://testserver"}

        def patch(headers: dict, share: float = 0.2):
            current = client.get(f"/api/grids/{code}")  # the draft and its ETag, read by an admin
            return c.patch(f"/api/grids/{code}", headers={"If-Match": current.headers["etag"], **headers},
                           json={"geometry": shrunk(current.json()["geometry"], share), "note": "地图保存"})

        # Refused, and nothing written: no header (any site can make a browser send the
        # cookie), a foreign Origin, no Origin at all.
        before = state(engine, code)
        r = patch({})
        assert r.status_code == 401, r.text
        r = patch({**MAP, "Origin": "https://evil.example"})
        assert r.status_code == 403 and "Origin" in r.json()["detail"], r.text
        r = patch(MAP)
        assert r.status_code == 403, r.text
        r = c.patch(f"/api/grids/{code}?lang=en", headers={**MAP, "Origin": "http://evil.example"},
                    json={"properties": {"households": 1}})
        assert r.status_code == 403 and "own pages" in r.json()["detail"], r.text
        assert state(engine, code) == before

        # The map's own request: saved as a new boundary version, audited, under the planner's name.
        r = patch({**MAP, **here})
        assert r.status_code == 200, r.text
        version, boundaries, area_m2, audits = state(engine, code)
        assert (version, boundaries) == (before[0] + 1, before[1] + 1) and audits > before[3]
        assert abs(area_m2 - 0.8 * before[2]) < 0.01 * before[2]  # shrunk by a fifth, as sent
        with engine.connect() as conn:
            assert conn.execute(text("SELECT actor FROM audit ORDER BY id DESC LIMIT 1")).scalar() == "planner"

        # Reads need the header too, but no Origin.
        assert c.get("/api/me").json()["authenticated"] is False
        assert c.get("/api/me", headers=MAP).json()["username"] == "planner"
        # A bearer token wins over the cookie.
        assert c.get("/api/me", headers={**MAP, **worker}).json()["username"] == "worker"
        r = c.patch(f"/api/grids/{code}", headers={**MAP, **here, **worker}, json={"properties": {"households": 1}})
        assert r.status_code == 403, r.text  # the worker's token, not the planner's cookie

        # Logging out revokes the session for the API as well.
        assert c.post("/maps/logout", follow_redirects=False).status_code == 303
        assert "geogrid_token" not in c.cookies
        token_left = state(engine, code)
        kept = cookie_token(map_login(c, "planner"))  # a copy kept from before the logout
        assert c.get("/api/me", headers=MAP).status_code == 200
        c.post("/maps/logout", follow_redirects=False)
        c.cookies.set("geogrid_token", kept)
        r = c.get("/api/me", headers=MAP)
        assert r.status_code == 401 and "/maps/login" in r.json()["detail"], r.text
        assert patch({**MAP, **here}).status_code == 401
        assert state(engine, code) == token_left


def cookie_token(login) -> str:
    return re.search(r"geogrid_token=([^;]+)", login.headers["set-cookie"]).group(1)


def test_map_cookie_attributes(town, make_user, settings):
    make_user("planner", ("planner", "339901100"))
    app = create_app(settings)
    for base, secure in (("http://testserver", False), ("https://testserver", True)):
        with TestClient(app, base_url=base) as c:
            cookie = map_login(c, "planner").headers["set-cookie"]
            parts = [p.strip().lower() for p in cookie.split(";")]
            assert "httponly" in parts and "samesite=strict" in parts and "path=/" in parts, cookie
            assert ("secure" in parts) is secure, cookie
            cleared = c.post("/maps/logout", follow_redirects=False).headers.get_list("set-cookie")
            assert sorted(p for h in cleared for p in h.split("; ") if p.startswith("Path=")) == ["Path=/", "Path=/maps"]
            assert all("Max-Age=0" in h and "HttpOnly" in h and ("Secure" in h) is secure for h in cleared), cleared


def test_map_session_behind_a_trusted_proxy_takes_the_forwarded_scheme(client, town, make_user, settings, engine):
    code = a_grid(client)
    make_user("planner", ("planner", "339901100"))
    app = create_app(settings.model_copy(update={"trusted_proxies": ["127.0.0.1"]}))
    with TestClient(app, client=("127.0.0.1", 40000), headers={"X-Forwarded-Proto": "https"}) as c:
        login = map_login(c, "planner")
        assert "Secure" in login.headers["set-cookie"]
        c.cookies.clear()  # the test client itself speaks plain HTTP: hand it the cookie the browser keeps
        c.cookies.set("geogrid_token", cookie_token(login))
        before = state(engine, code)
        r = c.patch(f"/api/grids/{code}", headers={**MAP, "Origin": "http://testserver"},
                    json={"properties": {"households": 321}})
        assert r.status_code == 403, r.text  # the page came over HTTPS: plain http is another origin
        assert state(engine, code) == before
        r = c.patch(f"/api/grids/{code}", headers={**MAP, "Origin": "https://testserver"},
                    json={"properties": {"households": 321}})
        assert r.status_code == 200 and r.json()["properties"]["households"] == 321, r.text
