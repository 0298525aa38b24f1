"""The contact, visit and day-list routes (issue 12), and the contact-card PDF read back
with pdftotext."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
from zoneinfo import ZoneInfo

import pytest
from conftest import E1, VW, W1, W2
from sqlalchemy import text

TODAY = dt.datetime.now(ZoneInfo("Asia/Shanghai")).date()


def sql(engine, statement: str, **params):
    with engine.begin() as conn:
        return conn.execute(text(statement), params)


@pytest.fixture
def register(world, engine):
    """Households in W1 (3), W2 (2) and E1 (1); cadre 周明 (grid leader of W1, phone
    13700001234) and cadre 吴亮 (E1); a resident with an ID's last 4 and a phone."""
    ids = {}
    for ref, grid, head, x in (("H1", W1, "欧阳娜娜", 120.005), ("H2", W1, "陈大文", 120.006),
                               ("H3", W1, "林小", 120.007), ("H4", W2, "郑建国", 120.015),
                               ("H5", W2, "冯一", 120.016), ("H6", E1, "何二", 120.025)):
        ids[ref] = sql(engine, """
            INSERT INTO household (ref, geom, located_by, head_name, kind, grid_id, village, street, number, phone)
            VALUES (:ref, ST_SetSRID(ST_MakePoint(:x, 30.03), 4326), 'own', :head, 'registered',
                    (SELECT id FROM area WHERE code = :grid), '西村', '幸福路', :n, '13911112222') RETURNING id
        """, ref=ref, x=x, head=head, grid=grid, n=f"{ref[1]}号").scalar_one()
    sql(engine, "INSERT INTO resident (household_id, name, id_hash, id_last4, phone) "
                "VALUES (:h, '欧阳娜娜', repeat('a', 64), '123X', '13955556666')", h=ids["H1"])
    for name, phone, grid in (("周明", "13700001234", W1), ("吴亮", "13700005678", E1)):
        ids[name] = sql(engine, "INSERT INTO person (name, phone) VALUES (:n, :p) RETURNING id",
                        n=name, p=phone).scalar_one()
        sql(engine, "INSERT INTO assignment (person_id, area_id, role_key, start_date) "
                    "VALUES (:p, (SELECT id FROM area WHERE code = :g), 'grid_leader', '2020-01-01')", p=ids[name], g=grid)
    return ids


def test_links_check_and_scope(client, register, make_user, engine):
    ids = register
    worker = make_user("worker-w1", ("grid_worker", W1))
    start = str(TODAY - dt.timedelta(days=40))
    r = client.post("/api/contacts", json={"person_id": ids["周明"], "household_id": ids["H1"], "kind": "central",
                                           "start_date": start}, headers=worker)
    assert r.status_code == 201, r.text
    assert (r.json()["kind"], r.json()["grid"], r.json()["person_name"]) == ("central", W1, "周明")
    for ref in ("H2", "H3"):
        r = client.post("/api/contacts", json={"person_id": ids["周明"], "household_id": ids[ref], "kind": "radiating",
                                               "central_id": ids["H1"], "start_date": start}, headers=worker)
        assert r.status_code == 201, r.text
    link = r.json()
    # Out of the worker's scope (H4 lies in W2): 403, nothing stored.
    before = sql(engine, "SELECT count(*) FROM contact_link").scalar_one()
    r = client.post("/api/contacts", json={"person_id": ids["周明"], "household_id": ids["H4"], "kind": "ordinary",
                                           "start_date": start}, headers=worker)
    assert r.status_code == 403 and "outside your scope" in r.json()["detail"]
    r = client.post("/api/contacts", json={"person_id": ids["周明"], "household_id": ids["H1"], "kind": "central",
                                           "start_date": start, "extra": 1}, headers=worker)
    assert r.status_code == 422
    assert sql(engine, "SELECT count(*) FROM contact_link").scalar_one() == before
    # End a link with If-Match.
    r = client.patch(f"/api/contacts/{link['id']}", json={"end_date": str(TODAY)}, headers={**worker, "If-Match": '"1"'})
    assert r.status_code == 200 and r.json()["end_date"] == str(TODAY) and r.json()["version"] == 2
    r = client.patch(f"/api/contacts/{link['id']}", json={"end_date": str(TODAY)}, headers={**worker, "If-Match": '"1"'})
    assert r.status_code == 412

    r = client.get("/api/contacts", params={"area": VW})
    assert r.status_code == 200 and r.json()["numberMatched"] == 3
    r = client.get("/api/contacts/check", params={"area": VW})
    body = r.json()
    assert r.status_code == 200, r.text
    # W1: H1 central with 2 radiating (below 3); W2: H4, H5 without a cadre.
    assert [u["ref"] for u in body["unlinked"]["items"]] == ["H4", "H5"]
    assert [(c["ref"], c["radiating"]) for c in body["centrals_off"]["items"]] == [("H1", 2)]
    assert {g["code"]: g["unlinked"] for g in body["grids"]} == {W1: 0, W2: 2}
    r = client.get("/api/contacts/check", params={"area": VW}, headers=worker)
    assert r.status_code == 403
    r = client.get("/api/contacts/check", params={"area": "339901999999"})
    assert r.status_code == 404


def test_visits_behind_and_day_list(client, register, make_user, engine):
    ids = register
    worker = make_user("worker-w1", ("grid_worker", W1))
    sql(engine, "UPDATE account SET person_id = :p WHERE username = 'worker-w1'", p=ids["周明"])
    # H1 central since 14 days ago, with a resident living alone (visited every 14 days) since
    # then and no visit since: due today. H2 ordinary since 400 days ago, never visited:
    # overdue. H3 hardship since yesterday: due in 31 days.
    since = TODAY - dt.timedelta(days=14)
    rid = sql(engine, "INSERT INTO resident (household_id, name) VALUES (:h, '林阿婆') RETURNING id",
              h=ids["H1"]).scalar_one()
    sql(engine, "INSERT INTO resident_tag (resident_id, group_key, start_date) VALUES (:r, 'living_alone', :s)",
        r=rid, s=since)
    for ref, kind, days in (("H1", "central", 14), ("H2", "ordinary", 400), ("H3", "hardship", 1)):
        r = client.post("/api/contacts", json={"person_id": ids["周明"], "household_id": ids[ref], "kind": kind,
                                               "start_date": str(TODAY - dt.timedelta(days=days))}, headers=worker)
        assert r.status_code == 201, r.text
    visited = TODAY - dt.timedelta(days=31)
    r = client.post("/api/visits", json={"visited_on": str(visited), "person_id": ids["周明"],
                                         "household_ids": [ids["H1"]], "findings": "家中老人身体尚好",
                                         "photo_urls": ["https://img.example/a.jpg"]}, headers=worker)
    assert r.status_code == 201, r.text
    visit = r.json()
    assert visit["area"] == W1 and visit["households"] == [{"id": ids["H1"], "ref": "H1"}]
    assert client.get(f"/api/visits/{visit['id']}", headers=worker).json()["findings"] == "家中老人身体尚好"
    r = client.get("/api/visits", params={"from": str(visited), "to": str(visited + dt.timedelta(days=1))},
                   headers=worker)
    assert r.json()["numberMatched"] == 1
    # A household of another grid: refused, nothing stored.
    r = client.post("/api/visits", json={"visited_on": str(TODAY), "person_id": ids["周明"],
                                         "household_ids": [ids["H1"], ids["H4"]]}, headers=worker)
    assert r.status_code == 403
    assert sql(engine, "SELECT count(*) FROM visit").scalar_one() == 1
    r = client.post("/api/visits", json={"visited_on": str(TODAY), "person_id": ids["周明"],
                                         "household_ids": [ids["H1"]], "photo_urls": ["javascript:alert(1)"]},
                    headers=worker)
    assert r.status_code == 422

    r = client.get("/api/visits/behind", params={"area": W1}, headers=worker)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [h["ref"] for h in body["households"]["items"]] == ["H2"]
    assert body["households"]["items"][0]["reasons"][0]["rule"] == "gap"
    assert body["cadres"]["items"] == [{"person_id": ids["周明"], "name": "周明", "behind": 1, "households": ["H2"]}]

    r = client.get("/api/me/today", headers=worker)
    assert r.status_code == 200, r.text
    day = r.json()
    assert {v["ref"]: v["status"] for v in day["visits"]["items"]} == {"H2": "overdue", "H1": "due_today"}
    assert day["summary"].startswith("今日：走访到期 2 户")
    en = client.get("/api/me/today", params={"lang": "en"}, headers=worker).json()
    assert re.match(r"today: 2 visits due, \d+ patrols due", en["summary"])
    # The environment grids of the worker's scope never patrolled are due.
    assert day["patrols"]["count"] == len(day["patrols"]["items"])
    nobody = make_user("inspector-x", ("inspector", W1))
    alone = client.get("/api/me/today", headers=nobody).json()
    assert alone["person"] is None and alone["visits"]["count"] == 0


def pdf_text(tmp_path, content: bytes, *args: str) -> str:
    path = tmp_path / "cards.pdf"
    path.write_bytes(content)
    return subprocess.run(["pdftotext", *args, str(path), "-"], capture_output=True, text=True, check=True,
                          timeout=60).stdout


def test_contact_cards_pdf(client, register, tmp_path, settings):
    ids = register
    for ref, who, kind, central in (("H1", "周明", "central", None), ("H2", "周明", "radiating", "H1"),
                                    ("H6", "吴亮", "ordinary", None)):
        r = client.post("/api/contacts", json={"person_id": ids[who], "household_id": ids[ref], "kind": kind,
                                               "central_id": ids[central] if central else None,
                                               "start_date": "2026-01-01"})
        assert r.status_code == 201, r.text
    r = client.get("/api/contacts/cards.pdf", params={"area": W1})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf" and r.content.startswith(b"%PDF-")
    assert f"geogrid-contact-cards-{W1}-{TODAY.year}.pdf" in r.headers["content-disposition"]
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed; ./dev test installs it")
    pages = pdf_text(tmp_path, r.content).split("\f")
    pages = [p for p in pages if p.strip()]
    assert len(pages) == 2  # H1 and H2; H3 has no cadre, H6 lies in another village
    info = subprocess.run(["pdfinfo", str(tmp_path / "cards.pdf")], capture_output=True, text=True, check=True).stdout
    assert re.search(r"Pages:\s+2\b", info)
    assert re.search(r"Page size:\s+29[78]\.\d+ x 419\.\d+ pts", info)  # A6
    for page in pages:
        flat = "".join(page.split())
        for expected in ("民情联系卡", "周明", "13700001234", "西村一格", W1, settings.supervision_hotline,
                         f"{TODAY.year}年度", "网格长"):
            assert expected in flat, (expected, flat)
    flat = ["".join(p.split()) for p in pages]
    assert "户主：欧**" in flat[0] and "户主：陈**" in flat[1]
    whole = "".join(flat)
    for secret in ("娜娜", "大文", "123X", "13955556666", "13911112222"):
        assert secret not in whole
    r = client.get("/api/contacts/cards.pdf", params={"area": VW, "lang": "en"})
    assert r.status_code == 200
    assert "Contact card" in pdf_text(tmp_path, r.content)
    r = client.get("/api/contacts/cards.pdf", params={"area": W2})
    assert r.status_code == 404
