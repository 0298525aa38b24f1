"""Login throttling (issue 9, class 4): one throttle for every login path, per account name
and per client address, with a growing wait; unknown names answered like known ones, in
the same time; limits kept in PostgreSQL, so they hold across workers; the map session's
logout. Real PostgreSQL, real argon2, the real app: nothing is mocked."""

from __future__ import annotations

import re
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import pytest
from conftest import PASSWORD
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.app import create_app

NO_LIMITS = {"escalation_interval_s": 0, "login_per_minute": 1000, "login_failures_per_account": 1000,
             "login_failures_per_address": 1000, "public_reports_per_minute": 1000}
WRONG = "not the password"


def make_app(settings, **limits):
    return create_app(settings.model_copy(update={**NO_LIMITS, **limits}))


def second_worker(settings, **limits):
    """Another app on its own engine (its own connection pool), as another worker process
    or host would have: nothing but the database is shared."""
    url = settings.database_url + ("&" if "?" in settings.database_url else "?") + "application_name=worker2"
    return create_app(settings.model_copy(update={**NO_LIMITS, **limits, "database_url": url}))


def at(stack: ExitStack, app, host: str, **kwargs) -> TestClient:
    return stack.enter_context(TestClient(app, client=(host, 40000), **kwargs))


def api_login(c: TestClient, username: str, password: str = WRONG, **kwargs):
    return c.post("/api/token", data={"username": username, "password": password}, **kwargs)


def map_login(c: TestClient, username: str, password: str = WRONG, **fields):
    return c.post("/maps/login", data={"username": username, "password": password, **fields}, follow_redirects=False)


def wait_of(engine, kind: str, key: str) -> float | None:
    """Seconds the stored counter makes ``key`` wait after its last failure."""
    with engine.connect() as conn:
        return conn.execute(text("SELECT extract(epoch FROM blocked_until - last_at)::float FROM login_failure "
                                 "WHERE kind = :k AND key = :key"), {"k": kind, "key": key}).scalar()


def shape(r, name: str) -> tuple:
    """What a client can tell from an answer, seconds and the name it typed aside."""
    body = r.json() if r.headers["content-type"].startswith("application/json") else r.text
    return r.status_code, re.sub(r"\d+", "N", str(body).replace(name, "NAME")), "retry-after" in r.headers


# --------------------------------------------------------------------------- one throttle, per account


def test_every_login_path_shares_one_throttle_per_account(settings, make_user):
    make_user("worker", ("grid_worker", None))
    app = make_app(settings, login_failures_per_account=3, login_backoff_s=30)
    with ExitStack() as stack:
        # Each failure from another address: the account's counter follows the name, not the client.
        assert api_login(at(stack, app, "198.51.100.1"), "worker").status_code == 401
        r = map_login(at(stack, app, "198.51.100.2"), "worker")
        assert r.status_code == 401 and "用户名或密码错误" in r.text and "set-cookie" not in r.headers
        assert api_login(at(stack, app, "198.51.100.3"), "WORKER").status_code == 401  # names are counted lower-cased

        fresh = at(stack, app, "198.51.100.4")
        # Refused before the password is checked: the right one does not get through either.
        r = api_login(fresh, "worker", PASSWORD)
        assert r.status_code == 429, r.text
        assert 25 <= int(r.headers["retry-after"]) <= 30
        assert r.json()["detail"].startswith("too many failed logins for this account: try again in")
        r = map_login(fresh, "worker", PASSWORD, lang="en")
        assert r.status_code == 429 and "set-cookie" not in r.headers and 25 <= int(r.headers["retry-after"]) <= 30
        assert "Too many attempts: try again in" in r.text and '"detail"' not in r.text
        r = map_login(fresh, "worker", PASSWORD)
        assert r.status_code == 429 and "尝试次数过多" in r.text
        # Another account is not held up by this one.
        make_user("other")
        assert api_login(fresh, "other", PASSWORD).status_code == 200


def test_per_address_limit_across_usernames(settings, make_user):
    make_user("worker", ("grid_worker", None))
    app = make_app(settings, login_failures_per_account=100, login_failures_per_address=4, login_backoff_s=60)
    with ExitStack() as stack:
        attacker, office = at(stack, app, "203.0.113.9"), at(stack, app, "203.0.113.10")
        assert [api_login(attacker, f"guess{i}").status_code for i in range(4)] == [401] * 4
        r = api_login(attacker, "worker", PASSWORD)
        assert r.status_code == 429 and "address 203.0.113.9" in r.json()["detail"]
        assert map_login(attacker, "worker", PASSWORD).status_code == 429
        # The same account from another address: the address limit holds the attacker only.
        assert api_login(office, "worker", PASSWORD).status_code == 200


def test_forwarded_for_only_from_trusted_proxies(settings, make_user):
    make_user("worker", ("grid_worker", None))
    app = make_app(settings, login_failures_per_address=2, trusted_proxies=["10.0.0.0/8"])
    with ExitStack() as stack:
        proxy, direct = at(stack, app, "10.1.2.3"), at(stack, app, "192.0.2.50")
        # Behind the proxy each client is counted on its own address...
        for _ in range(2):
            assert api_login(proxy, "a", headers={"X-Forwarded-For": "198.51.100.77"}).status_code == 401
        r = api_login(proxy, "worker", PASSWORD, headers={"X-Forwarded-For": "198.51.100.77"})
        assert r.status_code == 429 and "198.51.100.77" in r.json()["detail"]
        # ... whatever a client puts in front of what the proxy appended.
        r = api_login(proxy, "worker", PASSWORD, headers={"X-Forwarded-For": "1.1.1.1, 198.51.100.77"})
        assert r.status_code == 429
        assert api_login(proxy, "worker", PASSWORD, headers={"X-Forwarded-For": "198.51.100.78"}).status_code == 200
        # A client that is no trusted proxy cannot pick a fresh address with the header.
        for i in range(2):
            assert api_login(direct, "b", headers={"X-Forwarded-For": f"192.0.2.{100 + i}"}).status_code == 401
        r = api_login(direct, "worker", PASSWORD, headers={"X-Forwarded-For": "192.0.2.200"})
        assert r.status_code == 429 and "192.0.2.50" in r.json()["detail"]


def test_backoff_doubles_up_to_the_maximum_and_success_resets(settings, engine, make_user):
    make_user("worker", ("grid_worker", None))
    app = make_app(settings, login_failures_per_account=2, login_backoff_s=0.25, login_backoff_max_s=1.0)
    with ExitStack() as stack:
        c = at(stack, app, "198.51.100.20")
        assert api_login(c, "worker").status_code == 401
        assert wait_of(engine, "account", "worker") is None  # one failure: no wait yet
        waits = []
        for _ in range(4):
            assert api_login(c, "worker").status_code == 401
            waits.append(wait_of(engine, "account", "worker"))
            assert api_login(c, "worker", PASSWORD).status_code == 429  # waiting, whatever the password
            time.sleep(waits[-1] + 0.05)
        assert waits == pytest.approx([0.25, 0.5, 1.0, 1.0])
        assert api_login(c, "worker", PASSWORD).status_code == 200
        assert wait_of(engine, "account", "worker") is None
        # After the success the count starts again: one failure does not block.
        assert api_login(c, "worker").status_code == 401
        assert api_login(c, "worker", PASSWORD).status_code == 200


def test_unknown_username_is_throttled_like_a_known_one(settings, engine, make_user):
    make_user("worker", ("grid_worker", None))
    make_user("retired")
    with engine.begin() as conn:
        conn.execute(text("UPDATE account SET active = false WHERE username = 'retired'"))
    app = make_app(settings, login_failures_per_account=3, login_backoff_s=30)
    seen = {}
    with ExitStack() as stack:
        for i, name in enumerate(("worker", "nobody-here", "retired")):
            c = at(stack, app, f"198.51.100.{30 + i}")
            answers = [api_login(c, name) for _ in range(4)] + [map_login(c, name) for _ in range(2)]
            answers += [map_login(c, name, lang="en")]
            seen[name] = [shape(r, name) for r in answers]
    assert [s[0] for s in seen["worker"]] == [401, 401, 401, 429, 429, 429, 429]
    assert seen["nobody-here"] == seen["worker"]
    assert seen["retired"] == seen["worker"]


# --------------------------------------------------------------------------- several workers


def test_limits_hold_across_two_workers(settings, make_user):
    make_user("worker", ("grid_worker", None))
    limits = {"login_failures_per_account": 4, "login_backoff_s": 30}
    one, two = make_app(settings, **limits), second_worker(settings, **limits)
    assert one.state.engine is not two.state.engine
    with ExitStack() as stack:
        a, b = at(stack, one, "198.51.100.40"), at(stack, two, "198.51.100.41")
        assert [api_login(c, "worker").status_code for c in (a, b, a, b)] == [401] * 4
        assert api_login(a, "worker", PASSWORD).status_code == 429
        assert map_login(b, "worker", PASSWORD).status_code == 429

    # Concurrent failures through both workers are all counted, none twice.
    one, two = make_app(settings), second_worker(settings)

    def attempt(i: int) -> int:
        with TestClient((one, two)[i % 2], client=("198.51.100.42", 40000 + i)) as c:
            return api_login(c, "crowd").status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(attempt, range(24)))
    assert codes == [401] * 24
    with one.state.engine.connect() as conn:
        counted = dict(conn.execute(text("SELECT kind, failures FROM login_failure WHERE key IN "
                                         "('crowd', '198.51.100.42')")).all())
    assert counted == {"account": 24, "address": 24}


def test_login_rate_per_address_across_two_workers(settings, make_user):
    make_user("worker", ("grid_worker", None))
    one, two = make_app(settings, login_per_minute=4), second_worker(settings, login_per_minute=4)
    with ExitStack() as stack:
        a, b = at(stack, one, "198.51.100.50"), at(stack, two, "198.51.100.50")
        assert [api_login(c, "worker", PASSWORD).status_code for c in (a, b, a, b)] == [200] * 4
        r = map_login(a, "worker", PASSWORD)
        assert r.status_code == 429 and 0 < int(r.headers["retry-after"]) <= 60
        r = api_login(b, "worker", PASSWORD)
        assert r.status_code == 429 and "at most 4 a minute" in r.json()["detail"]
        assert api_login(at(stack, two, "198.51.100.51"), "worker", PASSWORD).status_code == 200


def test_public_intake_limit_shared_across_two_workers(settings, town):
    one, two = make_app(settings, public_reports_per_minute=3), second_worker(settings, public_reports_per_minute=3)
    report = {"category": "sanitation", "lon": 120.01, "lat": 30.01, "description": "垃圾桶满了"}
    with ExitStack() as stack:
        a, b = at(stack, one, "198.51.100.60"), at(stack, two, "198.51.100.60")
        codes = [c.post("/api/public/reports", json=report).status_code for c in (a, b, a)]
        assert codes[0] != 429 and len(set(codes)) == 1, codes
        r = b.post("/api/public/reports", json=report)
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0 and "at most 3" in r.json()["detail"]
        r = a.post("/open311/v2/requests.json", data={"service_code": "sanitation", "lat": "30.01", "long": "120.01",
                                                      "description": "x"})
        assert r.status_code == 429
        other = at(stack, two, "198.51.100.61")
        assert other.post("/api/public/reports", json=report).status_code == codes[0]


# --------------------------------------------------------------------------- timing


def test_unknown_users_take_as_long_as_known_ones(settings, engine, make_user):
    make_user("worker", ("grid_worker", None))
    make_user("retired")
    with engine.begin() as conn:
        conn.execute(text("UPDATE account SET active = false WHERE username = 'retired'"))
    app = make_app(settings)
    times: dict[str, list[float]] = {"worker": [], "nobody-here": [], "retired": []}
    with ExitStack() as stack:
        c = at(stack, app, "198.51.100.70")
        api_login(c, "warm-up")
        for _ in range(9):
            for name, spent in times.items():
                start = time.perf_counter()
                assert api_login(c, name).status_code == 401
                spent.append(time.perf_counter() - start)
    known = statistics.median(times["worker"])
    for name in ("nobody-here", "retired"):
        ratio = statistics.median(times[name]) / known
        assert 0.5 <= ratio <= 2.0, (name, ratio, times)


# --------------------------------------------------------------------------- the map session


def test_map_logout_revokes_the_token_and_clears_the_cookie(settings, make_user):
    make_user("worker", ("grid_worker", None))
    app = make_app(settings)
    with ExitStack() as stack:
        c = at(stack, app, "198.51.100.80")
        r = map_login(c, "worker", PASSWORD, next="/maps/inspector?area=339901")
        assert r.status_code == 303 and r.headers["location"] == "/maps/inspector?area=339901"
        assert "secure" not in r.headers["set-cookie"].lower()  # plain HTTP: a Secure cookie would not come back
        token = c.cookies["geogrid_token"]
        bearer = {"Authorization": f"Bearer {token}"}
        assert c.get("/api/me", headers=bearer).json()["username"] == "worker"

        r = c.post("/maps/logout", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/maps/login"
        cleared = r.headers["set-cookie"]
        assert cleared.startswith('geogrid_token="";') or cleared.startswith("geogrid_token=;"), cleared
        assert "Max-Age=0" in cleared and "Path=/maps" in cleared and "HttpOnly" in cleared
        assert "samesite=strict" in cleared.lower()
        assert "geogrid_token" not in c.cookies
        assert c.get("/api/me", headers=bearer).status_code == 401  # revoked everywhere, not just forgotten
        assert c.get("/maps/login", follow_redirects=False).status_code == 200

        https = at(stack, app, "198.51.100.81", base_url="https://testserver")
        r = map_login(https, "worker", PASSWORD)
        assert r.status_code == 303 and "Secure" in r.headers["set-cookie"]
        r = https.post("/maps/logout", follow_redirects=False)
        assert "Secure" in r.headers["set-cookie"] and "Max-Age=0" in r.headers["set-cookie"]


EVIL = '"><script>window.__xss=1</script><img src=x onerror=alert(1)>'


def test_login_page_escapes_and_keeps_next_on_this_service(settings, make_user):
    make_user("worker", ("grid_worker", None))
    app = make_app(settings)
    with ExitStack() as stack:
        c = at(stack, app, "198.51.100.90")
        for bad in ("//evil.example/maps/", "https://evil.example/", "/api/accounts", "/maps/\\\\evil.example",
                    "javascript:alert(1)"):
            page = c.get("/maps/login", params={"next": bad}).text
            assert 'name="next" value="/maps/planner"' in page, bad
            r = map_login(c, "worker", PASSWORD, next=bad)
            assert r.status_code == 400 and "set-cookie" not in r.headers and "只能是 /maps/ 下的页面" in r.text
        page = c.get("/maps/login", params={"next": "/maps/public?area=1" + EVIL}).text
        assert "<script>" not in page and "<img" not in page
        assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in page and "&quot;&gt;" in page

        r = map_login(c, EVIL, next="/maps/public?area=1" + EVIL)
        assert r.status_code == 401 and "<script>" not in r.text and "用户名或密码错误" in r.text
        assert r.text.count("&lt;script&gt;") == 2  # the name typed and the page to open, both inert

        # English when asked, or when the page to open is English.
        assert "Wrong username or password." in map_login(c, "worker", lang="en").text
        page = c.get("/maps/login", params={"next": "/maps/planner?area=1&lang=en"}).text
        assert '<html lang="en">' in page and "Log in" in page and "登录" not in page
        assert "用户名" in c.get("/maps/login").text
