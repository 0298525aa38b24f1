"""Exports of the assessment: indicator workbooks and CSV, the monthly report (月度通报) as
PDF and XLSX, the ``geogrid report`` command.

The cases run through the real workflow at chosen moments in November 2026 (as in
test_assessment_indicators.py). The expected figures were worked out by hand from the
category time limits (sanitation: accept 1 working hour, dispatch 1, handle 4, verify 1
working day; working day 08:30-17:30):

* on time (W1 twice, W2 once, E1 once): reported 09:00, accepted 09:30, dispatched 10:00,
  handled 13:00, closed the next day 11:00: 0.5 + 0.5 + 3 + 7 = 11.0 working hours;
* late (W2 once, W4 once): handled 15:00 (handling due 14:00), closed the next day 12:00:
  0.5 + 0.5 + 5 + 6 = 12.0 working hours;
* W3: reported 10 November 09:00 and never accepted: overdue since 10:00.

West village in November: 6 received, 5 closed (83.3 %), 3 on time (50.0 %), 1 overdue
now, 3 ever overdue, mean 11.4 hours, ratings 9 8 5 7 7 (mean 7.2, 4 of 5 at or above 6:
80.0 %). By grid, on-time rates W1 100 %, W2 50 %, W3 0 % (1 overdue now), W4 0 % (none
overdue now): ranked by rate the bottom three, worst first, are W3, W4, W2.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from conftest import COUNTY, E1, ENV_W, TOWN, VW, W1, W2, W3, W4

from geogrid.assessment import indicators as ind
from geogrid.assessment import reports
from geogrid.core.errors import GeogridError
from geogrid.db import engine as db
from geogrid.environment import patrols
from geogrid.incidents import intake as intake_mod
from geogrid.incidents import workflow

TZ = ZoneInfo("Asia/Shanghai")
GEOGRID = str(Path(sys.executable).with_name("geogrid"))
POINT = {W1: (120.005, 30.03), W2: (120.015, 30.03), W3: (120.005, 30.01), W4: (120.015, 30.01),
         E1: (120.025, 30.01)}
NOW = dt.datetime(2026, 11, 30, 16, 30, tzinfo=TZ)
NAMES = {W1: "西村一格", W2: "西村二格", W3: "西村三格", W4: "西村四格"}
# The month's totals for the west village, by hand (see the module docstring).
WEST = {"received": 6, "accepted": 5, "closed": 5, "closure_rate": 0.8333, "closed_on_time": 3, "on_time_rate": 0.5,
        "overdue_now": 1, "overdue_ever": 3, "avg_hours": 11.4, "satisfaction_mean": 7.2, "satisfaction_rate": 0.8,
        "callbacks": 5}
RATES = {W1: 1.0, W2: 0.5, W3: 0.0, W4: 0.0}
BOTTOM_BY_RATE = [W3, W4, W2]


def at(day: int, hh: int, mm: int = 0, month: int = 11) -> dt.datetime:
    return dt.datetime(2026, month, day, hh, mm, tzinfo=TZ)


def pdf_text(data: bytes, tmp_path: Path) -> str:
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed; ./dev test installs it")
    path = tmp_path / "report.pdf"
    path.write_bytes(data)
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True,
                          timeout=60).stdout


def pdf_fonts(data: bytes, tmp_path: Path) -> str:
    path = tmp_path / "fonts.pdf"
    path.write_bytes(data)
    return subprocess.run(["pdffonts", str(path)], capture_output=True, text=True, check=True, timeout=60).stdout


@pytest.fixture
def s(settings):
    return settings.model_copy(update={"satisfied_from": 6})


def _case(session, s, grid, when, path, satisfaction=None, channel="hotline_12345"):
    lon, lat = POINT[grid]
    case = intake_mod.intake(session, {"category": "sanitation", "description": "测试案件", "lon": lon, "lat": lat,
                                       "channel": channel, "occurred_at": when}, s, at=when)
    for n, (state, moment) in enumerate(path):
        workflow.transition(session, case["id"], state, s, at=moment,
                            satisfaction=satisfaction if n == len(path) - 1 else None)
    return case["id"]


def on_time(day: int, month: int = 11):
    return [("accepted", at(day, 9, 30, month)), ("filed", at(day, 9, 40, month)),
            ("dispatched", at(day, 10, month=month)), ("in_progress", at(day, 10, 10, month)),
            ("handled", at(day, 13, month=month)), ("verified", at(day + 1, 10, month=month)),
            ("closed", at(day + 1, 11, month=month))]


def late(day: int):
    return [("accepted", at(day, 9, 30)), ("filed", at(day, 9, 40)), ("dispatched", at(day, 10)),
            ("in_progress", at(day, 10, 10)), ("handled", at(day, 15)), ("verified", at(day + 1, 10)),
            ("closed", at(day + 1, 12))]


@pytest.fixture
def november(world, engine, s):
    """Seven cases in November (six in the west village, one in E1), one in October, patrols."""
    with db.transaction(engine) as session:
        _case(session, s, W1, at(2, 9), on_time(2), 9, channel="patrol")
        _case(session, s, W1, at(3, 9), on_time(3), 8)
        _case(session, s, W2, at(4, 9), on_time(4), 5)
        _case(session, s, W2, at(9, 9), late(9), 7)
        _case(session, s, W3, at(10, 9), [])
        _case(session, s, W4, at(11, 9), late(11), 7)
        _case(session, s, E1, at(5, 9), on_time(5), 10)
        _case(session, s, W1, at(13, 9, month=10), on_time(13, month=10), 9)
        for day in (3, 12, 21):
            patrols.record_patrol(session, {"grid": ENV_W, "at": at(day, 15)}, s)
    return s


def _indicators(engine, s, **kw):
    with db.transaction(engine) as session:
        return ind.indicators(session, s, now=NOW, **kw)


# --------------------------------------------------------------------------- indicator tables


def test_workbook_of_indicators(november, engine):
    s = november
    with db.transaction(engine) as session:
        out = reports.export_indicators(session, s, area=VW, start=dt.date(2026, 11, 1), end=dt.date(2026, 12, 1),
                                        tables=[["grid"], ["grid", "month"]], now=NOW.astimezone(dt.UTC))
    assert out.filename == "西村考核指标（2026-11-01至2026-11-30）.xlsx"
    assert out.fallback == f"geogrid-indicators-{VW}-2026-11-01-2026-11-30.xlsx"
    wb = openpyxl.load_workbook(io.BytesIO(out.content))
    assert wb.sheetnames == ["总体", "按网格", "按网格、月", "指标说明"]

    overall = wb["总体"]
    header = [c.value for c in overall[1]]
    assert header[:5] == ["区域编码", "区域", "开始日期", "结束日期（含）", "数据截至"]
    assert header[5:] == [i.zh for i in ind.INDICATORS]
    values = dict(zip(header, [c.value for c in overall[2]]))
    assert values["区域"] == "西村" and values["区域编码"] == VW
    assert values["结束日期（含）"] == dt.datetime(2026, 11, 30)
    assert values["数据截至"] == dt.datetime(2026, 11, 30, 16, 30)  # local time, though measured in UTC
    for key, want in WEST.items():
        got = values[ind.by_key()[key].zh]
        assert got == pytest.approx(want, abs=1e-4), key
    assert overall.freeze_panes == "C2"

    grids = wb["按网格"]
    header = [c.value for c in grids[1]]
    assert header[:2] == ["网格编码", "网格"] and "按期结案率" in header and "平均处置时长" in header
    assert grids.freeze_panes == "C2"
    rows = {r[0]: dict(zip(header, r)) for r in grids.iter_rows(min_row=2, values_only=True)}
    assert set(rows) == {W1, W2, W3, W4}
    assert {code: r["按期结案率"] for code, r in rows.items()} == RATES
    assert rows[W3]["网格"] == "西村三格" and rows[W3]["当前超期数"] == 1
    # Number formats by unit, on the cells themselves.
    col = {name: i + 1 for i, name in enumerate(header)}
    assert grids.cell(row=2, column=col["按期结案率"]).number_format == "0.0%"
    assert grids.cell(row=2, column=col["平均处置时长"]).number_format == "0.0"
    assert grids.cell(row=2, column=col["上报数"]).number_format == "0"
    assert grids.cell(row=2, column=col["网格编码"]).data_type == "s"  # codes stay text, leading digits kept
    assert grids.column_dimensions["B"].width >= 8 and grids.auto_filter.ref.startswith("A1:")
    # Every value equals the indicators' own.
    expected = _indicators(engine, s, area=VW, start=dt.date(2026, 11, 1), end=dt.date(2026, 12, 1), by=["grid"])
    for r in expected["rows"]:
        for i in ind.INDICATORS:
            assert rows[r["grid"]][i.zh] == r[i.key], (r["grid"], i.key)

    by_month = wb["按网格、月"]
    header = [c.value for c in by_month[1]]
    assert header[:3] == ["网格编码", "网格", "月"] and by_month.freeze_panes == "D2"
    first = next(by_month.iter_rows(min_row=2, values_only=True))
    assert first[2] == dt.datetime(2026, 11, 1) and by_month.cell(row=2, column=3).number_format == "yyyy-mm"

    definitions = wb["指标说明"]
    assert [c.value for c in definitions[1]] == ["代码", "指标", "单位", "定义"]
    listed = {r[0]: r for r in definitions.iter_rows(min_row=2, values_only=True)}
    assert listed["on_time_rate"][1] == "按期结案率" and listed["on_time_rate"][3] == ind.by_key()["on_time_rate"].definition_zh
    assert len(listed) == len(ind.INDICATORS)


def test_workbook_in_english(november, engine):
    with db.transaction(engine) as session:
        out = reports.export_indicators(session, november, area=VW, start=dt.date(2026, 11, 1),
                                        end=dt.date(2026, 12, 1), tables=[["town"]], lang="en", now=NOW)
    wb = openpyxl.load_workbook(io.BytesIO(out.content))
    assert wb.sheetnames == ["Overall", "By town", "Definitions"]
    header = [c.value for c in wb["By town"][1]]
    assert header[:2] == ["Town code", "Town"] and "On-time closure rate" in header


def test_csv_of_one_table(november, engine):
    s = november
    with db.transaction(engine) as session:
        out = reports.export_indicators(session, s, area=VW, start=dt.date(2026, 11, 1), end=dt.date(2026, 12, 1),
                                        tables=[["grid"]], format="csv", now=NOW)
        keyed = reports.export_indicators(session, s, area=TOWN, start=dt.date(2026, 10, 1),
                                          end=dt.date(2026, 12, 1), tables=[["month"]], format="csv",
                                          header="keys", now=NOW)
    assert out.content.startswith(b"\xef\xbb\xbf") and out.media_type.startswith("text/csv")
    assert out.filename.endswith(".csv")
    text = out.content.decode("utf-8-sig")
    assert "\r\n" in text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["网格编码"] for r in rows] == [W1, W2, W3, W4]
    by_code = {r["网格编码"]: r for r in rows}
    assert by_code[W3]["网格"] == "西村三格" and by_code[W3]["当前超期数"] == "1"
    assert {c: float(r["按期结案率"]) for c, r in by_code.items()} == RATES
    assert by_code[W1]["平均处置时长"] == "11.0" and by_code[W1]["巡查完成率"] == ""  # no patrols due there: empty

    months = list(csv.DictReader(io.StringIO(keyed.content.decode("utf-8-sig"))))
    assert list(months[0])[:3] == ["month", "received", "accepted"]
    assert [(m["month"], m["received"]) for m in months] == [("2026-10", "1"), ("2026-11", "7")]


def test_csv_holds_one_table_and_formats_are_checked(november, engine):
    s = november
    with db.transaction(engine) as session:
        with pytest.raises(GeogridError) as many:
            reports.export_indicators(session, s, area=VW, start=dt.date(2026, 11, 1), end=dt.date(2026, 12, 1),
                                      tables=[["grid"], ["month"]], format="csv")
        assert many.value.status == 422 and "one table" in str(many.value)
        with pytest.raises(GeogridError) as fmt:
            reports.export_indicators(session, s, area=VW, start=dt.date(2026, 11, 1), end=dt.date(2026, 12, 1),
                                      tables=[], format="ods")
        assert "xlsx or csv" in str(fmt.value)
        with pytest.raises(GeogridError) as month:
            reports.export_monthly(session, s, area=VW, month="2026-13")
        assert month.value.status == 422 and [p.field for p in month.value.problems] == ["month"]
        with pytest.raises(GeogridError) as quarter:
            reports.export_monthly(session, s, area=VW, month="2026-Q4")
        assert "2026-11" in str(quarter.value)


def test_names_typed_by_users_never_become_formulas(world, engine, s):
    from sqlalchemy import text

    with engine.begin() as conn:
        conn.execute(text("UPDATE area SET name = '=HYPERLINK(\"http://x\")' WHERE code = :c"), {"c": W1})
    with db.transaction(engine) as session:
        _case(session, s, W1, at(2, 9), on_time(2), 9)
        book = reports.export_indicators(session, s, area=VW, start=dt.date(2026, 11, 1), end=dt.date(2026, 12, 1),
                                         tables=[["grid"]], now=NOW)
        flat = reports.export_indicators(session, s, area=VW, start=dt.date(2026, 11, 1), end=dt.date(2026, 12, 1),
                                         tables=[["grid"]], format="csv", now=NOW)
    cell = openpyxl.load_workbook(io.BytesIO(book.content))["按网格"]["B2"]
    assert cell.value == '=HYPERLINK("http://x")' and cell.data_type == "s"
    row = next(csv.DictReader(io.StringIO(flat.content.decode("utf-8-sig"))))
    assert row["网格"] == "'=HYPERLINK(\"http://x\")"


# --------------------------------------------------------------------------- the monthly report


def test_monthly_report_content(november, engine):
    with db.transaction(engine) as session:
        report = reports.monthly_report(session, november, area=VW, month="2026-11", now=NOW)
    assert report["title"] == "西村网格化服务管理月度通报（2026年11月）"
    assert report["unit"] == "grid" and report["basis"] == "on_time_rate"
    assert [b["target"] for b in report["bottom"]] == BOTTOM_BY_RATE
    assert [r["target"] for r in report["ranking"]] == [W1, W2, W4, W3]
    for key, want in WEST.items():
        assert report["total"][key] == pytest.approx(want, abs=1e-4), key
    assert [m["month"] for m in report["trend"]] == ["2026-06", "2026-07", "2026-08", "2026-09", "2026-10", "2026-11"]
    assert [m["received"] for m in report["trend"]] == [0, 0, 0, 0, 1, 6]
    assert report["previous"]["received"] == 1 and report["previous"]["on_time_rate"] == 1.0


def test_monthly_pdf(november, engine, tmp_path):
    with db.transaction(engine) as session:
        started = time.perf_counter()
        out = reports.export_monthly(session, november, area=VW, month="2026-11", format="pdf", now=NOW)
        cold = time.perf_counter() - started  # the first in the process loads WeasyPrint and matplotlib
        started = time.perf_counter()
        reports.export_monthly(session, november, area=VW, month="2026-11", format="pdf", now=NOW)
        warm = time.perf_counter() - started
    assert out.content.startswith(b"%PDF-") and out.media_type == "application/pdf"
    assert out.filename == "西村月度通报（2026年11月）.pdf" and out.fallback == f"geogrid-monthly-{VW}-2026-11.pdf"
    text = pdf_text(out.content, tmp_path)
    flat = "".join(text.split())
    assert "西村网格化服务管理月度通报（2026年11月）" in flat
    assert f"统计范围：西村（{VW}）" in flat and "2026-11-01至2026-11-30" in flat
    # The headline figures, as printed.
    assert "共接收上报案件6件，已结案5件，结案率83.3%，按期结案率50.0%；当前超期未结1件；平均处置时长11.4工作小时；满意率80.0%" in flat
    # The table by grid, every grid's on-time rate.
    for code, name in NAMES.items():
        assert name in text
    lines: dict[str, list[str]] = {}
    for line in text.splitlines():  # the table's row comes first, the chart's label later
        if line.split() and line.split()[0] in NAMES.values():
            lines.setdefault(line.split()[0], line.split())
    assert lines["西村一格"][1:5] == ["2", "2", "100.0%", "100.0%"]
    assert lines["西村三格"][1:6] == ["1", "0", "0.0%", "0.0%", "1"]
    # The bottom three, worst first, by on-time rate (no score sheet for the month).
    section = flat[flat.index("三、末三位"):flat.index("四、图表")]
    assert "按按期结案率" in section
    assert [section.index(NAMES[c]) for c in BOTTOM_BY_RATE] == sorted(section.index(NAMES[c]) for c in BOTTOM_BY_RATE)
    assert NAMES[W1] not in section
    # The charts: their titles and axis labels are text drawn inside the SVG charts.
    charts = flat[flat.index("四、图表"):flat.index("五、指标说明")]
    assert "各网格按期结案率" in charts and "近六个月上报数与按期结案率" in charts
    assert "100%" in charts and "2026-06" in charts
    # The definitions.
    assert ind.by_key()["on_time_rate"].definition_zh.replace(" ", "") in flat
    # A CJK font is embedded (a subset), which is why the Chinese came back as text.
    fonts = pdf_fonts(out.content, tmp_path)
    embedded = [line for line in fonts.splitlines()[2:] if line.split() and " yes " in line]
    assert embedded, fonts
    print(f"\nmonthly PDF built in {cold:.2f} s (first in the process), {warm:.2f} s (again)")


def test_monthly_xlsx(november, engine):
    with db.transaction(engine) as session:
        started = time.perf_counter()
        out = reports.export_monthly(session, november, area=VW, month="2026-11", format="xlsx", now=NOW)
        took = time.perf_counter() - started
    assert out.filename == "西村月度通报（2026年11月）.xlsx"
    wb = openpyxl.load_workbook(io.BytesIO(out.content))
    assert wb.sheetnames == ["通报", "按网格", "末三位", "排名", "近六月", "指标说明"]
    summary = wb["通报"]
    assert summary["A1"].value == "西村网格化服务管理月度通报（2026年11月）"
    assert [c.value for c in summary[4]] == ["代码", "指标", "本月", "上月"] and summary.freeze_panes == "C5"
    figures = {r[0]: r for r in summary.iter_rows(min_row=5, max_row=12, values_only=True)}
    assert list(figures) == list(reports.HEADLINE)
    assert figures["received"][1:] == ("上报数", 6, 1)
    assert figures["on_time_rate"][2:] == (0.5, 1.0) and summary["C8"].number_format == "0.0%"
    assert figures["avg_hours"][2] == pytest.approx(11.4)
    assert "按按期结案率" in summary["A14"].value and summary["A16"].value == "西村三格、西村四格、西村二格"

    units = wb["按网格"]
    header = [c.value for c in units[1]]
    rows = {r[0]: dict(zip(header, r)) for r in units.iter_rows(min_row=2, values_only=True)}
    assert {c: r["按期结案率"] for c, r in rows.items()} == RATES
    assert units._charts, "the unit sheet carries a chart of the on-time rate"

    bottom = wb["末三位"]
    assert [c.value for c in bottom[1]][:3] == ["名次", "编码", "名称"]
    assert [r[1] for r in bottom.iter_rows(min_row=2, values_only=True)] == BOTTOM_BY_RATE
    ranking = [r[1] for r in wb["排名"].iter_rows(min_row=2, values_only=True)]
    assert ranking == [W1, W2, W4, W3]
    trend = list(wb["近六月"].iter_rows(min_row=2, values_only=True))
    assert [t[0] for t in trend] == ["2026-06", "2026-07", "2026-08", "2026-09", "2026-10", "2026-11"]
    assert [t[1] for t in trend] == [0, 0, 0, 0, 1, 6]
    assert wb["指标说明"].freeze_panes == "C2"
    print(f"\nmonthly XLSX built in {took:.2f} s")


def test_the_report_of_a_county_groups_by_town(november, engine, tmp_path):
    with db.transaction(engine) as session:
        report = reports.monthly_report(session, november, area=COUNTY, month="2026-11", now=NOW)
        pdf = reports.monthly_pdf(report)
    assert report["unit"] == "town" and [r["town"] for r in report["rows"]] == [TOWN]
    assert report["total"]["received"] == 7 and report["bottom"] == []  # one town ranked: no bottom three
    # Patrols of the two environment grids: 4 due each in November, 3 done in one.
    assert (report["total"]["patrols_due"], report["total"]["patrols_missed"]) == (8, 5)
    text = "".join(pdf_text(pdf, tmp_path).split())
    assert "演示县网格化服务管理月度通报（2026年11月）" in text and "二、各镇街情况" in text
    assert "巡查完成率37.5%" in text and "不列末三位" in text


def test_english_report(november, engine, tmp_path):
    with db.transaction(engine) as session:
        out = reports.export_monthly(session, november, area=VW, month="2026-11", lang="en", now=NOW)
    text = " ".join(pdf_text(out.content, tmp_path).split())
    assert "西村: grid management monthly report (November 2026)" in text
    assert "On-time closure rate" in text and "by on-time closure rate" in text
    assert out.fallback == f"geogrid-monthly-{VW}-2026-11.pdf"


def test_bottom_three_from_the_score_sheet(november, engine, tmp_path):
    """With a score sheet computed for the month, the bottom three are the ranking's: a
    grid scheme of the town (100 points; −5 per case closed late, −15 per case not
    closed). By hand: W1 100, W2 95, W3 85, W4 95 (and the town's other grids 100), so
    the last three places are W3 (85), then W2 and W4 (95, sharing a place)."""
    scoring = pytest.importorskip("geogrid.assessment.scoring")
    s = november
    with db.transaction(engine) as session:
        scheme = scoring.create_scheme(session, {
            "area": TOWN, "name": "网格月考核", "total": 100, "target_kind": "grid", "period_kind": "month",
            "items": [{"code": "late", "name": "逾期结案", "points": 20, "kind": "deduction",
                       "rule": {"indicator": "closed_late", "per": 1, "points": 5}},
                      {"code": "open", "name": "未结案", "points": 30, "kind": "deduction",
                       "rule": {"indicator": "unclosed", "per": 1, "points": 15}}]})
        scoring.compute_period(session, s, scheme["id"], "2026-11", now=NOW)
    with db.transaction(engine) as session:
        report = reports.monthly_report(session, s, area=VW, month="2026-11", now=NOW)
        pdf = reports.monthly_pdf(report)
        book = reports.monthly_xlsx(report)
    assert report["basis"] == "score"
    assert [(b["target"], float(b["score"])) for b in report["bottom"]] == [(W3, 85.0), (W2, 95.0), (W4, 95.0)]
    flat = "".join(pdf_text(pdf, tmp_path).split())
    section = flat[flat.index("三、末三位"):flat.index("四、图表")]
    assert "按考核得分" in section and "网格月考核" in section and "85.00" in section
    assert section.index("西村三格") < section.index("西村二格") < section.index("西村四格")
    wb = openpyxl.load_workbook(io.BytesIO(book))
    assert [c.value for c in wb["末三位"][1]] == ["名次", "编码", "名称", "得分", "扣分", "加分"]
    assert [r[1] for r in wb["末三位"].iter_rows(min_row=2, values_only=True)] == [W3, W2, W4]


def test_reports_need_scope_on_the_area(november, engine, make_user):
    from geogrid.access import accounts

    token = make_user("vw-worker", ("grid_worker", VW))["Authorization"].split()[1]
    with db.transaction(engine) as session:
        session.info["principal"] = accounts.principal_for_token(session, token)
        with pytest.raises(GeogridError) as refused:
            reports.export_monthly(session, november, area=TOWN, month="2026-11", now=NOW)
        assert refused.value.status == 403
        with pytest.raises(GeogridError) as table:
            reports.export_indicators(session, november, area=COUNTY, start=dt.date(2026, 11, 1),
                                      end=dt.date(2026, 12, 1), tables=[["town"]], now=NOW)
        assert table.value.status == 403
        mine = reports.monthly_report(session, november, area=VW, month="2026-11", now=NOW)
        assert mine["total"]["received"] == 6


# --------------------------------------------------------------------------- the command line


def _cli(*args, settings):
    env = {**os.environ, "GEOGRID_DATABASE_URL": settings.database_url}
    result = subprocess.run([GEOGRID, *args], capture_output=True, text=True, env=env, timeout=300)
    assert "Traceback" not in result.stderr + result.stdout
    return result


def test_cli_writes_the_monthly_report(november, settings, tmp_path):
    pdf, xlsx = tmp_path / "report.pdf", tmp_path / "通报.xlsx"
    done = _cli("report", "monthly", "--area", VW, "--month", "2026-11", "--out", str(pdf), settings=settings)
    assert done.returncode == 0, done.stderr
    assert pdf.read_bytes().startswith(b"%PDF-") and str(pdf) in done.stdout
    assert "西村网格化服务管理月度通报（2026年11月）" in "".join(pdf_text(pdf.read_bytes(), tmp_path).split())
    done = _cli("report", "monthly", "--area", VW, "--month", "2026-11", "--out", str(xlsx), "--lang", "en",
                settings=settings)
    assert done.returncode == 0, done.stderr
    assert openpyxl.load_workbook(xlsx).sheetnames[0] == "Report"

    bad = _cli("report", "monthly", "--area", VW, "--month", "2026-11", "--out", str(tmp_path / "r.docx"),
               settings=settings)
    assert bad.returncode == 2 and ".pdf or .xlsx" in bad.stderr
    month = _cli("report", "monthly", "--area", VW, "--month", "11/2026", "--out", str(pdf), settings=settings)
    assert month.returncode == 1 and month.stderr.startswith("error:") and "2026-11" in month.stderr
    unknown = _cli("report", "monthly", "--area", "999999", "--month", "2026-11", "--out", str(pdf), settings=settings)
    assert unknown.returncode == 1 and "999999" in unknown.stderr


def test_cli_exports_indicators(november, settings, tmp_path):
    out = tmp_path / "grids.csv"
    done = _cli("report", "indicators", "--area", VW, "--period", "2026-11", "--by", "grid", "--out", str(out),
                settings=settings)
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8-sig"))))
    assert [r["网格编码"] for r in rows] == [W1, W2, W3, W4]
    book = tmp_path / "all.xlsx"
    done = _cli("report", "indicators", "--area", VW, "--from", "2026-10-01", "--to", "2026-12-01", "--by", "grid",
                "--by", "month", "--out", str(book), settings=settings)
    assert done.returncode == 0, done.stderr
    assert openpyxl.load_workbook(book).sheetnames == ["总体", "按网格", "按月", "指标说明"]
