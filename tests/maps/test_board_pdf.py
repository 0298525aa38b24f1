"""Printable grid boards (网格公示牌, maps/boards.py): the PDF route and the command line on
test_maps' demo world, read back with poppler's pdftotext and pdfinfo.

What is checked: a poster lists the grid's published persons (names, posts, phones, as
the database flags them public) with the hotline, the grid's name and code and the QR
code's address, and none of the private values (private phones, notes, an unpublished
name); A4 and A3 page sizes; English labels; a village booklet has one page per grid of
the village, in code order; the inset draws every part and hole of a grid (a demo grid
is cut in two and holed first: the demo's grids are single polygons); the route's 4xx
answers; WeasyPrint requests no address and photos come only from allowed hosts; the
command line writes the file and fails cleanly on a bad code.
"""

from __future__ import annotations

import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import shapely
from sqlalchemy import text
from test_maps import (  # noqa: F401  (world: test_maps' fixture, used through w below)
    PIXEL,
    TOWN,
    VILLAGE,
    private_texts,
    world,
)

from geogrid.areas import lookup, versions
from geogrid.assessment.reports import render_pdf
from geogrid.core import timeutil
from geogrid.db import engine as db
from geogrid.publication import generations
from maps import boards

pytestmark = pytest.mark.skipif(shutil.which("pdftotext") is None or shutil.which("pdfinfo") is None,
                                reason="needs poppler-utils (pdftotext, pdfinfo)")

OTHER_VILLAGE = "339901100005"  # its first grid gets holes and a second part
RETIRED_VILLAGE = "339901100009"  # its last grid is retired


@pytest.fixture(scope="module")
def w(world):  # noqa: F811
    """test_maps' world (demo database, live server), built once for this module, plus the
    changes this module needs: an unpublished name, a multipart grid with a hole, a retired grid."""
    day = timeutil.local_today(world.settings)
    with db.transaction(world.engine) as session:
        # The poster's grid: one of VILLAGE with 3 to 6 persons, one of them with a private phone.
        world.board_grid = session.execute(text("""
            SELECT a.code FROM area a JOIN area v ON v.id = a.parent_id
            JOIN assignment s ON s.area_id = a.id AND s.period @> CAST(:day AS date) JOIN person p ON p.id = s.person_id
            WHERE v.code = :v AND a.layer_key = 'comprehensive' AND a.retired_at IS NULL
            GROUP BY a.code HAVING count(*) BETWEEN 3 AND 6 AND bool_or(NOT p.phone_public) ORDER BY a.code LIMIT 1
        """), {"v": VILLAGE, "day": day}).scalar_one()
        # Its last person's name is unpublished from now on.
        world.hidden_name = session.execute(text("""
            UPDATE person SET name_public = false WHERE id = (
                SELECT p.id FROM assignment s JOIN person p ON p.id = s.person_id JOIN area a ON a.id = s.area_id
                WHERE a.code = :g AND s.period @> CAST(:day AS date) ORDER BY p.id DESC LIMIT 1)
            RETURNING name"""), {"g": world.board_grid, "day": day}).scalar_one()
        # A grid cut in two by a strip, with a hole in one part.
        world.cut_grid = session.execute(text(
            "SELECT min(a.code) FROM area a JOIN area v ON v.id = a.parent_id WHERE v.code = :v "
            "AND a.layer_key = 'comprehensive' AND a.retired_at IS NULL"), {"v": OTHER_VILLAGE}).scalar_one()
        geom = lookup.current_geometries(session, [world.cut_grid])[world.cut_grid]
        x0, y0, x1, y1 = geom.bounds
        cx = (x0 + x1) / 2
        strip = shapely.box(cx - (x1 - x0) * 0.02, y0 - 1, cx + (x1 - x0) * 0.02, y1 + 1)
        parts = geom.difference(strip)
        west = max((p for p in parts.geoms if p.centroid.x < cx), key=lambda p: p.area)
        hole = west.representative_point().buffer(min(west.bounds[2] - west.bounds[0],
                                                     west.bounds[3] - west.bounds[1]) * 0.08)
        assert west.contains(hole)
        versions.update_area(session, world.cut_grid, world.settings, geometry=parts.difference(hole), note="test")
        world.retired_grid = session.execute(text(
            "SELECT max(a.code) FROM area a JOIN area v ON v.id = a.parent_id WHERE v.code = :v "
            "AND a.layer_key = 'comprehensive' AND a.retired_at IS NULL"), {"v": RETIRED_VILLAGE}).scalar_one()
        versions.retire_area(session, world.retired_grid, world.settings)
        # The public sees these changes once a planner publishes them.
        generations.publish(session, world.cut_grid)
        generations.publish(session, RETIRED_VILLAGE, layer="comprehensive")
    return world


def pdf_text(tmp_path: Path, content: bytes, name: str = "board.pdf") -> tuple[str, str]:
    """The PDF's text (pages separated by form feeds) and pdfinfo's report."""
    path = tmp_path / name
    path.write_bytes(content)
    found = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True, timeout=60).stdout
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True, timeout=60).stdout
    return found, info


def flat(s: str) -> str:
    return "".join(s.split())


def published(w, code: str) -> list[dict]:
    """The grid's persons today with their flags, straight from the tables."""
    with db.transaction(w.engine) as session:
        return [dict(r) for r in session.execute(text("""
            SELECT p.name, p.phone, p.notes, p.name_public, p.phone_public, r.name_zh AS post
            FROM assignment s JOIN person p ON p.id = s.person_id JOIN role r ON r.key = s.role_key
            JOIN area a ON a.id = s.area_id WHERE a.code = :c AND s.period @> CAST(:day AS date)
        """), {"c": code, "day": timeutil.local_today(w.settings)}).mappings()]


def scalar(w, sql: str, **params):
    with db.transaction(w.engine) as session:
        return session.execute(text(sql), params).scalar_one()


# --------------------------------------------------------------------------- the poster


def test_poster_lists_the_published_persons_and_nothing_private(w, tmp_path):
    g = w.board_grid
    r = w.http.get("/maps/public/board.pdf", params={"grid": g})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf" and r.content.startswith(b"%PDF-")
    assert r.headers["content-disposition"].startswith("attachment;")
    assert f'filename="geogrid-board-{g}.pdf"' in r.headers["content-disposition"]
    assert "max-age" in r.headers["cache-control"] or "no-store" in r.headers["cache-control"]
    found, info = pdf_text(tmp_path, r.content)
    assert re.search(r"Pages:\s+1\b", info)
    assert re.search(r"Page size:\s+595\.\d+ x 841\.\d+ pts", info)  # A4 portrait
    page = flat(found)
    name = scalar(w, "SELECT name FROM area WHERE code = :c", c=g)
    village = scalar(w, "SELECT name FROM area WHERE code = :c", c=VILLAGE)
    for expected in ("网格公示牌", name, g, village, "监督电话", w.settings.supervision_hotline, "网格责任人"):
        assert expected in page, expected
    persons = published(w, g)
    assert any(not p["phone_public"] for p in persons) and any(not p["name_public"] for p in persons)
    for p in persons:
        assert p["post"] in page
        if p["name_public"]:
            assert p["name"] in page
        if p["phone_public"]:
            assert p["phone"] in page
    assert "（未公示）" in page
    # Nothing private: no private phone or note of the demo, no grid note, no unpublished name.
    leaks = {what: [v for v in values if flat(v) in page] for what, values in private_texts(w).items()}
    assert {k: v for k, v in leaks.items() if v} == {}
    assert w.hidden_name not in page
    # The QR code's address, printed under it, opens the grid on the public map.
    link = f"http://{w.settings.host}:{w.settings.port}/maps/public?area={TOWN}&grid={g}"
    assert link in page
    # The inset names at least one neighbour of the same net (PostGIS finds them).
    neighbours = set(scalar(w, """
        SELECT array_agg(n.name) FROM area a JOIN boundary b ON b.area_id = a.id AND upper_inf(b.valid)
        JOIN boundary nb ON upper_inf(nb.valid) AND ST_Intersects(nb.geom, b.geom) AND nb.area_id <> a.id
        JOIN area n ON n.id = nb.area_id AND n.layer_key = a.layer_key WHERE a.code = :c""", c=g))
    assert neighbours and any(n in page for n in neighbours)
    today = timeutil.local_today(w.settings)
    assert f"公示日期：{today.year}年{today.month}月{today.day}日" in page


def test_a3_and_english(w, tmp_path):
    r = w.http.get("/maps/public/board.pdf", params={"grid": w.board_grid, "size": "A3", "lang": "en"})
    assert r.status_code == 200, r.text
    found, info = pdf_text(tmp_path, r.content)
    assert re.search(r"Pages:\s+1\b", info)
    assert re.search(r"Page size:\s+841\.\d+ x 1190\.\d+ pts", info)  # A3 portrait
    for expected in ("Grid board", "Supervision hotline", "Responsible persons", w.board_grid):
        assert expected in found, expected
    assert "网格公示牌" not in found and "监督电话" not in found


def test_village_booklet_has_one_page_per_grid_in_code_order(w, tmp_path):
    codes = scalar(w, """
        SELECT array_agg(a.code ORDER BY a.code) FROM area a JOIN area v ON v.id = a.parent_id
        WHERE v.code = :v AND a.layer_key = 'comprehensive' AND a.retired_at IS NULL""", v=VILLAGE)
    r = w.http.get("/maps/public/board.pdf", params={"village": VILLAGE})
    assert r.status_code == 200, r.text
    assert f'filename="geogrid-boards-{VILLAGE}.pdf"' in r.headers["content-disposition"]
    found, info = pdf_text(tmp_path, r.content)
    assert re.search(rf"Pages:\s+{len(codes)}\b", info)
    pages = [p for p in found.split("\f") if p.strip()]
    assert len(pages) == len(codes) > 1
    for code, page in zip(codes, pages):
        assert code in flat(page)
    # The village with the most persons on one grid (58) still gets one page per grid.
    busiest = scalar(w, """
        SELECT v.code FROM assignment s JOIN area a ON a.id = s.area_id JOIN area v ON v.id = a.parent_id
        WHERE a.layer_key = 'comprehensive' AND s.period @> CAST(:day AS date) AND v.code LIKE :t
        GROUP BY v.code, a.code ORDER BY count(*) DESC LIMIT 1""", day=timeutil.local_today(w.settings), t=TOWN + "%")
    n = scalar(w, "SELECT count(*) FROM area a JOIN area v ON v.id = a.parent_id WHERE v.code = :v "
                  "AND a.layer_key = 'comprehensive' AND a.retired_at IS NULL", v=busiest)
    r = w.http.get("/maps/public/board.pdf", params={"village": busiest})
    assert r.status_code == 200, r.text
    assert re.search(rf"Pages:\s+{n}\b", pdf_text(tmp_path, r.content)[1])


def test_inset_draws_every_part_and_hole(w, tmp_path):
    g = w.cut_grid
    rings = scalar(w, """
        SELECT ST_NumGeometries(b.geom) + (SELECT sum(ST_NumInteriorRings(d.geom)) FROM ST_Dump(b.geom) d)
        FROM boundary b JOIN area a ON a.id = b.area_id WHERE a.code = :c AND upper_inf(b.valid)""", c=g)
    assert rings >= 3  # two parts and a hole: the edit above made them
    with db.transaction(w.engine) as session:
        _, items = boards.posters(session, w.settings, grid=g)
    svg = items[0].inset
    paths = re.findall(r'<path class="grid" d="([^"]+)"', svg)
    assert len(paths) == 1 and paths[0].count("M") == rings and paths[0].count("Z") == rings
    width, height = map(float, re.search(r'viewBox="0 0 ([\d.]+) ([\d.]+)"', svg).groups())
    xs = [float(v) for v in re.findall(r"(-?[\d.]+),", paths[0])]
    ys = [float(v) for v in re.findall(r",(-?[\d.]+)", paths[0])]
    assert 0 < min(xs) < max(xs) < width and 0 < min(ys) < max(ys) < height
    # The village boundary and at least one neighbour are drawn too.
    assert '<path class="village"' in svg and '<path class="neighbour"' in svg
    r = w.http.get("/maps/public/board.pdf", params={"grid": g})
    assert r.status_code == 200, r.text
    assert g in flat(pdf_text(tmp_path, r.content)[0])


# --------------------------------------------------------------------------- bad requests


def test_bad_requests_are_clear_4xx(w):
    env_grid = scalar(w, "SELECT min(code) FROM area WHERE layer_key = 'environment' AND code LIKE :t", t=TOWN + "%")
    cases = [
        ({}, 422, "exactly one"),
        ({"grid": w.board_grid, "village": VILLAGE}, 422, "exactly one"),
        ({"grid": TOWN + "999999"}, 404, "not found"),
        ({"grid": w.retired_grid}, 404, "not found"),  # withdrawn by the last publication
        ({"village": TOWN + "999"}, 404, "not found"),
        ({"grid": env_grid, "layer": "comprehensive"}, 422, "environment"),
        ({"grid": VILLAGE}, 422, "not a grid"),
        ({"village": w.board_grid}, 422, "not a village"),
        ({"grid": w.board_grid, "layer": "nope"}, 422, "unknown layer"),
        ({"village": VILLAGE, "layer": "admin"}, 422, "not grids"),
        ({"grid": w.board_grid, "size": "A5"}, 422, "size"),
    ]
    for params, status, words in cases:
        r = w.http.get("/maps/public/board.pdf", params=params)
        assert r.status_code == status, (params, r.status_code, r.text)
        assert words in r.text, (params, r.text)
    # An environment grid prints on its own net without being told.
    r = w.http.get("/maps/public/board.pdf", params={"grid": env_grid})
    assert r.status_code == 200 and r.content.startswith(b"%PDF-")


def test_boards_are_rate_limited_per_client(w):
    from fastapi.testclient import TestClient

    from api.app import create_app

    app = create_app(w.settings.model_copy(update={"board_pdfs_per_minute": 2}))
    with TestClient(app, client=("198.51.100.7", 5000)) as client:
        answers = [client.get("/maps/public/board.pdf", params={"grid": w.board_grid}) for _ in range(3)]
    assert [r.status_code for r in answers] == [200, 200, 429]
    assert int(answers[2].headers["retry-after"]) > 0


# --------------------------------------------------------------------------- nothing is fetched


class _Counting(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []
    answers: dict[str, tuple[str, bytes]] = {}

    def do_GET(self):  # noqa: N802 (http.server's name)
        type(self).hits.append(self.path)
        kind, body = type(self).answers.get(self.path, ("text/plain", b"no"))
        if kind == "redirect":
            self.send_response(302)
            self.send_header("Location", body.decode())
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def local_server():
    _Counting.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counting)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_pdf_renderer_requests_no_address(local_server):
    base = f"http://{local_server}"
    page = (f"<html><head><link rel='stylesheet' href='{base}/style.css'><style>@import url({base}/more.css); "
            f"body {{ background: url({base}/bg.png) }}</style></head><body><p>公示</p>"
            f"<img src='{base}/photo.png'><img src='file:///etc/passwd'>"
            f"<svg><image href='{base}/in-svg.png' width='10' height='10'/></svg></body></html>")
    content = render_pdf(page)  # every PDF of the service: posters, monthly reports, contact cards
    assert content.startswith(b"%PDF-")
    assert _Counting.hits == []


def test_photos_only_from_allowed_hosts(w, local_server):
    _Counting.answers = {"/p.png": ("image/png", PIXEL), "/page.html": ("text/html", b"<html>"),
                         "/big.png": ("image/png", b"\x89PNG" + b"0" * (boards.PHOTO_MAX_BYTES + 10)),
                         "/moved.png": ("redirect", b"/p.png")}
    none = w.settings
    allowed = w.settings.model_copy(update={"board_photo_hosts": [local_server]})
    base = f"http://{local_server}"
    assert boards.photo_data_uri(f"{base}/p.png", none) is None and _Counting.hits == []  # no host allowed: placeholder
    other = w.settings.model_copy(update={"board_photo_hosts": ["photos.example.gov.cn"]})
    assert boards.photo_data_uri(f"{base}/p.png", other) is None and _Counting.hits == []
    uri = boards.photo_data_uri(f"{base}/p.png", allowed)
    assert uri is not None and uri.startswith("data:image/png;base64,")
    assert boards.photo_data_uri(f"{base}/page.html", allowed) is None
    assert boards.photo_data_uri(f"{base}/big.png", allowed) is None
    assert boards.photo_data_uri(f"{base}/moved.png", allowed) is None
    assert _Counting.hits == ["/p.png", "/page.html", "/big.png", "/moved.png"]  # the redirect was not followed
    assert boards.photo_data_uri(f"ftp://{local_server}/p.png", allowed) is None


def test_public_url_setting_is_the_qr_address(w):
    s = w.settings.model_copy(update={"public_url": "https://grid.example.gov.cn/"})
    assert boards.public_link(s, town=TOWN, grid="339901100003001") == \
        f"https://grid.example.gov.cn/maps/public?area={TOWN}&grid=339901100003001"
    assert boards.public_link(s, town=TOWN, grid="339901100003901", layer="environment", lang="en") == \
        f"https://grid.example.gov.cn/maps/public?area={TOWN}&grid=339901100003901&layer=environment&lang=en"


# --------------------------------------------------------------------------- command line


def cli(w, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "GEOGRID_DATABASE_URL": w.url, "GEOGRID_MAP_TILES": "none",
           "GEOGRID_STATE_DIR": str(w.settings.state_dir)}
    exe = Path(sys.executable).with_name("geogrid")
    return subprocess.run([str(exe), "map", "board", *args], env=env, capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)


def test_cli_writes_posters_and_fails_cleanly(w, tmp_path):
    out = tmp_path / "board.pdf"
    done = cli(w, tmp_path, "--grid", w.board_grid, "--size", "A3", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert f"wrote {out}" in done.stdout
    found, info = pdf_text(tmp_path, out.read_bytes(), "cli.pdf")
    assert re.search(r"Page size:\s+841\.\d+ x 1190\.\d+ pts", info) and w.board_grid in flat(found)
    booklet = tmp_path / "booklet.pdf"
    done = cli(w, tmp_path, "--village", VILLAGE, "--lang", "en", "--out", str(booklet))
    assert done.returncode == 0, done.stderr
    n = scalar(w, "SELECT count(*) FROM area a JOIN area v ON v.id = a.parent_id WHERE v.code = :v "
                  "AND a.layer_key = 'comprehensive' AND a.retired_at IS NULL", v=VILLAGE)
    assert re.search(rf"Pages:\s+{n}\b", pdf_text(tmp_path, booklet.read_bytes(), "b.pdf")[1])
    for args, words in ((("--grid", TOWN + "999999"), "not found"), ((), "exactly one"),
                        (("--grid", w.board_grid, "--size", "B5"), "size")):
        bad = tmp_path / "bad.pdf"
        done = cli(w, tmp_path, *args, "--out", str(bad))
        assert done.returncode == 1 and words in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert not bad.exists()
