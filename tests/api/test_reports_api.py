"""Downloads of the assessment through the API: indicator tables (XLSX, CSV) and the
monthly report (PDF, XLSX) as attachments, bad requests, and the scope rule.

Three cases in the west village in November 2026, run through the real workflow: W1's
closed on time, W2's closed late (handled 15:00, due 14:00), W3's never accepted
(overdue). By grid the on-time rates are 100 %, 0 %, 0 %; ranked by rate the bottom two
(of three grids ranked: never all of them) are W3 (overdue now) then W2.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import shutil
import subprocess
from urllib.parse import quote
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from conftest import TOWN, VW, W1, W2, W3

from geogrid.db import engine as db
from geogrid.incidents import intake as intake_mod
from geogrid.incidents import workflow

TZ = ZoneInfo("Asia/Shanghai")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
POINT = {W1: (120.005, 30.03), W2: (120.015, 30.03), W3: (120.005, 30.01)}


def at(day: int, hh: int, mm: int = 0) -> dt.datetime:
    return dt.datetime(2026, 11, day, hh, mm, tzinfo=TZ)


def walk(day: int, handled: int) -> list:
    return [("accepted", at(day, 9, 30)), ("filed", at(day, 9, 40)), ("dispatched", at(day, 10)),
            ("in_progress", at(day, 10, 10)), ("handled", at(day, handled)), ("verified", at(day + 1, 10)),
            ("closed", at(day + 1, 11))]


@pytest.fixture
def cases(world, engine, settings):
    with db.transaction(engine) as session:
        for grid, day, path in ((W1, 2, walk(2, 13)), (W2, 3, walk(3, 15)), (W3, 4, [])):
            lon, lat = POINT[grid]
            case = intake_mod.intake(session, {"category": "sanitation", "description": "测试", "lon": lon, "lat": lat,
                                               "channel": "hotline_12345", "occurred_at": at(day, 9)}, settings,
                                     at=at(day, 9))
            for state, moment in path:
                workflow.transition(session, case["id"], state, settings, at=moment,
                                    satisfaction=8 if state == "closed" else None)
    return world


def disposition(name: str, fallback: str) -> str:
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def test_indicator_workbook_download(cases):
    r = cases.get("/api/stats/export", params={"area": VW, "period": "2026-11", "by": ["grid", "grid,month"]})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == XLSX
    assert r.headers["content-disposition"] == disposition("西村考核指标（2026-11-01至2026-11-30）.xlsx",
                                                           f"geogrid-indicators-{VW}-2026-11-01-2026-11-30.xlsx")
    assert "no-store" in r.headers["cache-control"]
    wb = openpyxl.load_workbook(io.BytesIO(r.content))
    assert wb.sheetnames == ["总体", "按网格", "按网格、月", "指标说明"]
    header = [c.value for c in wb["按网格"][1]]
    rates = {row[0]: row[header.index("按期结案率")] for row in wb["按网格"].iter_rows(min_row=2, values_only=True)}
    assert rates == {W1: 1.0, W2: 0.0, W3: 0.0}
    assert wb["按网格"].freeze_panes == "C2"


def test_indicator_csv_download(cases):
    r = cases.get("/api/stats/export", params={"area": VW, "from": "2026-11-01", "to": "2026-12-01", "by": "grid",
                                                "format": "csv", "header": "keys", "lang": "en"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/csv; charset=utf-8" and r.content.startswith(b"\xef\xbb\xbf")
    assert r.headers["content-disposition"] == disposition("西村 indicators 2026-11-01 to 2026-11-30.csv",
                                                           f"geogrid-indicators-{VW}-2026-11-01-2026-11-30.csv")
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert [(x["grid"], x["grid_name"], x["received"], x["overdue_now"]) for x in rows] == [
        (W1, "西村一格", "1", "0"), (W2, "西村二格", "1", "0"), (W3, "西村三格", "1", "1")]


def test_monthly_report_downloads(cases, tmp_path):
    r = cases.get("/api/reports/monthly", params={"area": VW, "month": "2026-11"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf" and r.content.startswith(b"%PDF-")
    assert r.headers["content-disposition"] == disposition("西村月度通报（2026年11月）.pdf",
                                                           f"geogrid-monthly-{VW}-2026-11.pdf")
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed; ./dev test installs it")
    path = tmp_path / "r.pdf"
    path.write_bytes(r.content)
    text = "".join(subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True,
                                  timeout=60).stdout.split())
    assert "西村网格化服务管理月度通报（2026年11月）" in text
    bottom = text[text.index("三、末三位"):text.index("四、图表")]
    assert bottom.index("西村三格") < bottom.index("西村二格") and "西村一格" not in bottom

    x = cases.get("/api/reports/monthly", params={"area": VW, "month": "2026-11", "format": "xlsx"})
    assert x.status_code == 200 and x.headers["content-type"] == XLSX
    assert x.headers["content-disposition"].endswith(quote("西村月度通报（2026年11月）.xlsx", safe=""))
    wb = openpyxl.load_workbook(io.BytesIO(x.content))
    assert [r[1] for r in wb["末三位"].iter_rows(min_row=2, values_only=True)] == [W3, W2]


@pytest.mark.parametrize("params, field, words", [
    ({"area": VW, "month": "2026-13"}, "month", "2026-11"),
    ({"area": VW, "month": "2026-Q4"}, "month", "2026-11"),
    ({"area": VW, "month": "9999-12"}, "month", "2026-11"),  # its end, or six months back, is off the calendar
    ({"area": VW, "month": "0001-02"}, "month", "2026-11"),
    ({"area": VW, "month": "2026-11", "format": "docx"}, "format", "pdf"),
])
def test_bad_monthly_requests(cases, params, field, words):
    r = cases.get("/api/reports/monthly", params=params)
    assert r.status_code == 422, r.text
    assert words in r.text and field in r.text


@pytest.mark.parametrize("params, words", [
    ({"area": VW, "period": "2026-11", "by": ["grid", "month"], "format": "csv"}, "one table"),
    ({"area": VW, "period": "2026-11", "from": "2026-11-01"}, "either period or from/to"),
    ({"area": VW}, "period is missing"),
    ({"area": VW, "period": "2026-11", "by": "colour"}, "unknown grouping"),
    ({"area": VW, "period": "2026-11", "format": "ods"}, "xlsx"),
    ({"area": VW, "period": "0000-01"}, "outside the years 1900 to 9998"),
])
def test_bad_export_requests(cases, params, words):
    r = cases.get("/api/stats/export", params=params)
    assert r.status_code == 422, r.text
    assert words in r.text


def test_scope(cases, make_user, anon):
    worker = make_user("w-vw", ("grid_worker", VW))
    mine = anon.get("/api/reports/monthly", params={"area": VW, "month": "2026-11", "format": "xlsx"},
                    headers=worker)
    assert mine.status_code == 200
    for path, params in (("/api/reports/monthly", {"area": TOWN, "month": "2026-11"}),
                         ("/api/stats/export", {"area": TOWN, "period": "2026-11", "by": "grid"}),
                         ("/api/reports/monthly", {"area": "999999", "month": "2026-11"})):
        refused = anon.get(path, params=params, headers=worker)
        assert refused.status_code == 403, refused.text
        assert "content-disposition" not in refused.headers
        assert anon.get(path, params=params).status_code == 401
    assert cases.get("/api/reports/monthly", params={"area": "999999", "month": "2026-11"}).status_code == 404
