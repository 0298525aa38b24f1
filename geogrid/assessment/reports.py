"""Exports of the assessment (考核导出): indicator tables as Excel workbooks and CSV, and the
monthly report (月度通报) of an area as a PDF and an Excel workbook.

Every figure comes from :func:`geogrid.assessment.indicators.indicators`; nothing here
counts cases. Names and definitions of the indicators come from
:data:`~geogrid.assessment.indicators.INDICATORS` (Chinese by default, English with
``lang="en"``), so the exports say what the API and the dashboard say.

Formats:

* **Workbook** (openpyxl): one sheet per table, the header in row 1 (frozen, with the
  label columns), number formats by unit (rates ``0.0%``, hours ``0.0``, counts ``0``,
  scores ``0.00``), widths fitted to the text, an auto-filter, and a sheet of definitions.
* **CSV**: one table per file, UTF-8 with a byte-order mark (so that Excel opens Chinese
  correctly), comma-separated, CRLF. The header row holds the columns' names in the
  language asked for, or their keys (``header="keys"``: the field names of the JSON API,
  stable for scripts). Values are plain: rates as fractions 0..1 (as in the API), empty
  cells for "no data", months as ``2026-11``, quarters as ``2026-Q4``.
* **Monthly report**: title, headline figures against the month before, the table by the
  next level down (towns of a county, villages of a town, grids below a village), the
  bottom three (末三位) by the score sheet's ranking when one exists for the month, else by
  按期结案率, two charts (按期结案率 by unit, the six-month trend) and the definitions.
  PDF by WeasyPrint (A4, a CJK font embedded), workbook with the same tables.

Text a user typed (area names, categories) is written into cells as text, never as a
formula, and CSV cells starting with ``= + - @`` get a leading apostrophe (spreadsheet
formula injection).

>>> sheet_title(["town"]), sheet_title(["grid", "month"], "en")
('按镇街', 'By grid, month')
>>> display_width("西村a")
5
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import html
import importlib
import importlib.util
import io
import unicodedata
from dataclasses import dataclass
from urllib.parse import quote
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from geogrid.assessment import charts
from geogrid.assessment import indicators as ind
from geogrid.assessment.periods import Period, parse_period, previous
from geogrid.core.errors import GeogridError, Problem
from geogrid.core.settings import Settings

MEDIA_TYPES = {"xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
               "csv": "text/csv; charset=utf-8", "pdf": "application/pdf"}
TABLE_FORMATS = ("xlsx", "csv")
REPORT_FORMATS = ("pdf", "xlsx")
NUMBER_FORMATS = {"count": "0", "rate": "0.0%", "hours": "0.0", "score": "0.00", "code": "@", "text": "@",
                  "date": "yyyy-mm-dd", "month": "yyyy-mm", "year": "0", "datetime": "yyyy-mm-dd hh:mm"}
UNIT_NAMES = {"count": ("数量", "count"), "rate": ("比率（%）", "rate (%)"), "hours": ("工作小时", "working hours"),
              "score": ("分（0–10）", "score (0-10)")}
# Sheet names cannot hold / \ ? * [ ] : (nor exceed 31 characters), so not GROUP_NAMES' "镇/街道".
SHEET_WORDS = {"grid": ("网格", "grid"), "village": ("村社区", "village"), "town": ("镇街", "town"),
               "department": ("部门", "department"), "category": ("类别", "category"),
               "worker": ("网格员", "grid worker"), "day": ("日", "day"), "week": ("周", "week"),
               "month": ("月", "month"), "quarter": ("季度", "quarter"), "year": ("年", "year")}
# The next level down whose table a monthly report shows, by the area's level.
UNIT_BELOW = {"province": "town", "city": "town", "county": "town", "town": "village"}
HEADLINE = ("received", "closed", "closure_rate", "on_time_rate", "overdue_now", "avg_hours", "satisfaction_rate",
            "patrol_rate")
REPORT_COLUMNS = ("received", "closed", "closure_rate", "on_time_rate", "overdue_now", "overdue_ever", "avg_hours",
                  "satisfaction_rate", "patrol_rate")
TREND_MONTHS = 6
MONTHS_FROM, MONTHS_UNTIL = 1900, 9998  # years a report's month may fall in
CHART_UNITS = 40  # more bars than this would not be legible on A4: the lowest on-time rates are drawn
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
NUMERIC = frozenset({"count", "rate", "hours", "score"})  # printed right-aligned

TEXT = {
    "zh": {
        "overall": "总体", "definitions": "指标说明", "bottom": "末三位", "ranking": "排名", "trend": "近六月",
        "summary": "通报", "area_code": "区域编码", "area": "区域", "from": "开始日期", "to": "结束日期（含）",
        "as_of": "数据截至", "key": "代码", "indicator": "指标", "unit": "单位", "definition": "定义",
        "code": "编码", "name": "名称", "rank": "名次", "score": "得分", "deductions": "扣分", "bonuses": "加分",
        "this_month": "本月", "last_month": "上月", "change": "变化", "none": "（未归属）", "no_data": "—",
        "title": "{area}网格化服务管理月度通报（{month}）", "month": "{y}年{m}月",
        "meta": "统计范围：{area}（{code}）　统计期间：{start} 至 {end}　数据截至：{now}",
        "s1": "一、总体情况", "s2": "二、各{unit}情况", "s3": "三、末三位", "s4": "四、图表", "s5": "五、指标说明",
        "basis_score": "按考核得分", "basis_rate": "按按期结案率",
        "basis_score_note": "依据考核方案“{scheme}”{period}期的得分排名（{state}）。",
        "basis_rate_note": "本月尚无考核得分，按各{unit}按期结案率由低到高排列（相同时当前超期数多者在后），"
                           "未产生应结案件的{unit}不参加排名。",
        "no_bottom": "本月参加排名的{unit}不足两个，不列末三位。",
        "red": "红榜", "black": "黑榜",
        "chart_units": "各{unit}按期结案率", "chart_trend": "近六个月上报数与按期结案率",
        "chart_more": "（按期结案率最低的{n}个）",
        "sentence": "{month}，{area}共接收上报案件{received}件，已结案{closed}件，结案率{closure_rate}，"
                    "按期结案率{on_time_rate}；当前超期未结{overdue_now}件；平均处置时长{avg_hours}；"
                    "满意率{satisfaction_rate}；巡查完成率{patrol_rate}。",
        "hours": "{v}工作小时", "pieces": "{v}件", "published": "已发布", "unpublished": "未发布",
        "units_note": "表中为本月有案件或巡查任务的{unit}。", "footer": "第 {page} 页，共 {pages} 页",
        "indicators_file": "{area}考核指标（{start}至{end}）", "report_file": "{area}月度通报（{month}）",
    },
    "en": {
        "overall": "Overall", "definitions": "Definitions", "bottom": "Bottom three", "ranking": "Ranking",
        "trend": "Six months", "summary": "Report", "area_code": "Area code", "area": "Area", "from": "From",
        "to": "To (inclusive)", "as_of": "Data as of", "key": "Key", "indicator": "Indicator", "unit": "Unit",
        "definition": "Definition", "code": "Code", "name": "Name", "rank": "Rank", "score": "Score",
        "deductions": "Deductions", "bonuses": "Bonuses", "this_month": "This month", "last_month": "Last month",
        "change": "Change", "none": "(unassigned)", "no_data": "—",
        "title": "{area}: grid management monthly report ({month})", "month": "{name} {y}",
        "meta": "Area: {area} ({code})   Period: {start} to {end}   Data as of: {now}",
        "s1": "1. Overview", "s2": "2. By {unit}", "s3": "3. Bottom three", "s4": "4. Charts", "s5": "5. Definitions",
        "basis_score": "by assessment score", "basis_rate": "by on-time closure rate",
        "basis_score_note": "Ranked by the scores of scheme \u201c{scheme}\u201d, period {period} ({state}).",
        "basis_rate_note": "No assessment scores for the month: each {unit} ranked by on-time closure rate, lowest "
                           "last (ties: more cases overdue now ranks lower); a {unit} with no case due to close is "
                           "not ranked.",
        "no_bottom": "Fewer than two {unit}s were ranked this month: no bottom three.",
        "red": "Red list", "black": "Black list",
        "chart_units": "On-time closure rate by {unit}", "chart_trend": "Cases received and on-time closure rate, "
                                                                       "last six months",
        "chart_more": " (the {n} lowest)",
        "sentence": "In {month}, {area} received {received} cases and closed {closed}: closure rate {closure_rate}, "
                    "on-time closure rate {on_time_rate}; {overdue_now} open cases are overdue; average handling "
                    "time {avg_hours}; satisfaction rate {satisfaction_rate}; patrol completion {patrol_rate}.",
        "hours": "{v} working hours", "pieces": "{v}", "published": "published", "unpublished": "not published",
        "units_note": "Units with cases or patrols due this month.", "footer": "page {page} of {pages}",
        "indicators_file": "{area} indicators {start} to {end}", "report_file": "{area} monthly report {month}",
    },
}
MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
               "November", "December")


@dataclass(frozen=True)
class Export:
    """A file to hand over: its bytes, a file name (may hold Chinese), an ASCII fallback
    name for clients that cannot read RFC 5987 names, and its media type."""

    content: bytes
    filename: str
    fallback: str
    media_type: str

    def content_disposition(self) -> str:
        """The Content-Disposition header of a download of this file (RFC 6266 / RFC 5987)."""
        return f"attachment; filename=\"{self.fallback}\"; filename*=UTF-8''{quote(self.filename, safe='')}"


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    kind: str  # a key of NUMBER_FORMATS


# --------------------------------------------------------------------------- small helpers


def _t(lang: str) -> dict:
    return TEXT["en" if lang == "en" else "zh"]


def check_format(fmt: str, allowed: tuple[str, ...], field: str = "format") -> str:
    """``fmt`` lower-cased, or a 422 naming the formats ``allowed``."""
    value = (fmt or "").lower().lstrip(".")
    if value not in allowed:
        raise GeogridError(f"unknown format {fmt!r}; use {' or '.join(allowed)}",
                           problems=[Problem(f"expected one of {', '.join(allowed)}", field=field)])
    return value


def parse_month(text: str) -> Period:
    """The calendar month ``YYYY-MM`` names, or a 422 saying what a month looks like."""
    try:
        period = parse_period(text)
    except GeogridError:
        period = None
    # The report looks back six months, so its month needs a calendar around it.
    if period is None or period.kind != "month" or not MONTHS_FROM <= period.start.year <= MONTHS_UNTIL:
        raise GeogridError(f"month {text!r} is not a month such as 2026-11",
                           problems=[Problem("expected YYYY-MM, e.g. 2026-11", field="month")])
    return period


def display_width(text: str) -> int:
    """Columns ``text`` takes in a spreadsheet: two for each wide (CJK) character."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def sheet_title(by: list[str] | tuple[str, ...], lang: str = "zh") -> str:
    """The sheet name of a table grouped by ``by`` (``总体`` for none)."""
    if not by:
        return _t(lang)["overall"]
    words = [SHEET_WORDS[b][1 if lang == "en" else 0] for b in by]
    name = ("By " + ", ".join(words)) if lang == "en" else ("按" + "、".join(words))
    return name[:31]


def month_label(period: Period, lang: str) -> str:
    """``2026年11月`` or ``November 2026``."""
    return _t(lang)["month"].format(y=period.start.year, m=period.start.month,
                                    name=MONTH_NAMES[period.start.month - 1])


def _group_columns(by: list[str], lang: str) -> list[Column]:
    en = lang == "en"
    cols = []
    for b in by:
        zh_name, en_name = ind.GROUP_NAMES[b]
        name = en_name if en else zh_name
        if b in ("grid", "village", "town"):
            cols += [Column(b, f"{name} code" if en else f"{name}编码", "code"), Column(f"{b}_name", name, "text")]
        elif b == "worker":
            cols += [Column(b, "Worker id" if en else "网格员编号", "code"), Column(f"{b}_name", name, "text")]
        elif b == "category":
            cols += [Column(b, "Category key" if en else "类别代码", "code"), Column(f"{b}_name", name, "text")]
        elif b == "department":
            cols.append(Column(f"{b}_name", name, "text"))
        else:
            cols.append(Column(b, name, {"day": "date", "week": "date", "month": "month", "quarter": "text",
                                         "year": "year"}[b]))
    return cols


def _indicator_columns(lang: str, keys: tuple[str, ...] | None = None) -> list[Column]:
    known = ind.by_key()
    chosen = [known[k] for k in keys] if keys else list(ind.INDICATORS)
    return [Column(i.key, i.name(lang), i.unit) for i in chosen]


def _time_value(group: str, key, *, for_csv: bool):
    """A time group's key (ISO date of the period's first day) as a cell: a date for days,
    weeks and months (text ``2026-11`` for months in CSV), ``2026-Q4``, a year number."""
    if key is None:
        return None
    day = dt.date.fromisoformat(str(key))
    if group == "quarter":
        return f"{day.year}-Q{(day.month - 1) // 3 + 1}"
    if group == "year":
        return day.year
    if for_csv:
        return f"{day:%Y-%m}" if group == "month" else day.isoformat()
    return day


def _cells(columns: list[Column], rows: list[dict], lang: str, *, for_csv: bool = False) -> list[list]:
    out = []
    none = _t(lang)["none"]
    for row in rows:
        line = []
        for c in columns:
            value = row.get(c.key)
            if c.key in ind.TIMES:
                value = _time_value(c.key, value, for_csv=for_csv)
            elif c.key.endswith("_name") and value is None:
                value = none
            line.append(value)
        out.append(line)
    return out


def _csv_safe(value):
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


# --------------------------------------------------------------------------- workbook writing


def _workbook():
    from openpyxl import Workbook

    wb = Workbook()
    wb.remove(wb.active)
    return wb


def _unique_title(wb, title: str) -> str:
    for bad in "[]:*?/\\":
        title = title.replace(bad, " ")
    title = title[:31] or "Sheet"
    base, n = title, 2
    while title in wb.sheetnames:
        suffix = f"({n})"
        title, n = base[:31 - len(suffix)] + suffix, n + 1
    return title


def _set(cell, value, kind: str) -> None:
    cell.value = value
    if isinstance(value, str):
        cell.data_type = "s"  # text, even if it starts with "=": never a formula
    if value is not None and kind in NUMBER_FORMATS:
        cell.number_format = NUMBER_FORMATS[kind]


def _shown(value, kind: str) -> str:
    """How a cell will look, for the column width."""
    if value is None:
        return ""
    if kind == "rate" and isinstance(value, (int, float)):
        return f"{value:.1%}"
    if kind in ("hours",) and isinstance(value, (int, float)):
        return f"{value:.1f}"
    if isinstance(value, dt.datetime):
        return f"{value:%Y-%m-%d %H:%M}"
    if isinstance(value, dt.date):
        return f"{value:%Y-%m}" if kind == "month" else value.isoformat()
    return str(value)


def write_table(wb, title: str, columns: list[Column], cells: list[list], *, frozen_columns: int = 0,
                start_row: int = 1):
    """A sheet holding one table: a bold header row at ``start_row`` (frozen with the
    first ``frozen_columns`` columns), one row per item with each column's number format,
    widths fitted to the text, an auto-filter over the table. Returns the sheet."""
    from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
    from openpyxl.utils import get_column_letter

    ws = wb.create_sheet(_unique_title(wb, title))
    head_fill = PatternFill("solid", fgColor="DCE6F1")
    thin = Side(style="thin", color="A6A6A6")
    for j, c in enumerate(columns, start=1):
        cell = ws.cell(row=start_row, column=j, value=c.title)
        cell.font = Font(bold=True)
        cell.fill = head_fill
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
        cell.border = Border(bottom=thin)
    for i, line in enumerate(cells, start=start_row + 1):
        for j, (c, value) in enumerate(zip(columns, line), start=1):
            _set(ws.cell(row=i, column=j), value, c.kind)
    for j, c in enumerate(columns, start=1):
        widest = max([display_width(c.title)] + [display_width(_shown(line[j - 1], c.kind)) for line in cells[:2000]])
        ws.column_dimensions[get_column_letter(j)].width = min(max(widest + 2, 8), 48)
    ws.freeze_panes = ws.cell(row=start_row + 1, column=frozen_columns + 1).coordinate
    if columns:
        ws.auto_filter.ref = f"A{start_row}:{get_column_letter(len(columns))}{start_row + max(len(cells), 1)}"
    return ws


def write_definitions(wb, lang: str, keys: tuple[str, ...] | None = None):
    """The sheet of definitions (指标说明) of the indicators (all, or ``keys``)."""
    t = _t(lang)
    known = ind.by_key()
    chosen = [known[k] for k in keys] if keys else list(ind.INDICATORS)
    columns = [Column("key", t["key"], "text"), Column("name", t["indicator"], "text"),
               Column("unit", t["unit"], "text"), Column("definition", t["definition"], "text")]
    cells = [[i.key, i.name(lang), UNIT_NAMES[i.unit][1 if lang == "en" else 0], i.definition(lang)] for i in chosen]
    ws = write_table(wb, t["definitions"], columns, cells, frozen_columns=2)
    ws.column_dimensions["D"].width = 60
    return ws


def _save(wb) -> bytes:
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


# --------------------------------------------------------------------------- indicator tables


def indicator_table(result: dict, lang: str = "zh") -> tuple[list[Column], list[list]]:
    """The columns and cells of one :func:`~geogrid.assessment.indicators.indicators`
    result: the grouping's key and label columns, then every indicator."""
    columns = _group_columns(result["by"], lang) + _indicator_columns(lang)
    return columns, _cells(columns, result["rows"], lang)


def _overall(result: dict, lang: str, timezone: str) -> tuple[list[Column], list[list]]:
    t = _t(lang)
    columns = [Column("code", t["area_code"], "code"), Column("name", t["area"], "text"),
               Column("from", t["from"], "date"), Column("to", t["to"], "date"),
               Column("as_of", t["as_of"], "datetime")] + _indicator_columns(lang)
    now = result["now"]
    if isinstance(now, dt.datetime):  # Excel has no time zones: the service's local time
        now = (now.astimezone(ZoneInfo(timezone)) if now.tzinfo else now).replace(tzinfo=None)
    total = result["total"]
    line = [result["area"]["code"], result["area"]["name"], result["from"], result["to"] - dt.timedelta(days=1),
            now] + [total.get(c.key) for c in columns[5:]]
    return columns, [line]


def indicators_workbook(results: list[dict], lang: str = "zh", timezone: str = "Asia/Shanghai") -> bytes:
    """An .xlsx of indicator results of one area and period: the sheet 总体 (the total, and
    the moment the figures were read, in ``timezone``), one sheet per grouped result
    (``按网格``, ``按网格、月``...), and 指标说明."""
    if not results:
        raise GeogridError("nothing to export: no indicator table")
    wb = _workbook()
    first = results[0]
    t = _t(lang)
    wb.properties.title = f"{first['area']['name']} {t['indicator']} {first['from']}–{first['to']}"
    columns, cells = _overall(first, lang, timezone)
    write_table(wb, t["overall"], columns, cells, frozen_columns=2)
    for result in results:
        if result["by"]:
            columns, cells = indicator_table(result, lang)
            frozen = len(_group_columns(result["by"], lang))
            write_table(wb, sheet_title(result["by"], lang), columns, cells, frozen_columns=frozen)
    write_definitions(wb, lang)
    return _save(wb)


def indicators_csv(result: dict, lang: str = "zh", header: str = "names") -> bytes:
    """One indicator table as CSV (UTF-8 with BOM, CRLF): the grouped rows, or the total
    when the result is not grouped. ``header``: ``names`` (in ``lang``) or ``keys``."""
    if header not in ("names", "keys"):
        raise GeogridError(f"unknown header {header!r}; use names or keys",
                           problems=[Problem("expected names or keys", field="header")])
    if result["by"]:
        columns = _group_columns(result["by"], lang) + _indicator_columns(lang)
        rows = result["rows"]
    else:
        columns = [Column("area", _t(lang)["area_code"], "code"), Column("area_name", _t(lang)["area"], "text")]
        columns += _indicator_columns(lang)
        rows = [{"area": result["area"]["code"], "area_name": result["area"]["name"], **result["total"]}]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow([c.key if header == "keys" else c.title for c in columns])
    for line in _cells(columns, rows, lang, for_csv=True):
        writer.writerow([_csv_safe(v) for v in line])
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def download_name(name: str) -> str:
    """``name`` fit to be a downloaded file's name on every system (no path or reserved characters).

    >>> download_name('青禾镇/2026:11')
    '青禾镇_2026_11'
    """
    for bad in '/\\:*?"<>|\r\n':
        name = name.replace(bad, "_")
    return name


def _file_names(kind: str, lang: str, ext: str, **parts) -> tuple[str, str]:
    name = download_name(_t(lang)[kind].format(**parts))
    fallback = f"geogrid-{'indicators' if kind == 'indicators_file' else 'monthly'}-{parts['code']}-" + (
        f"{parts['start']}-{parts['end']}" if kind == "indicators_file" else parts["month_key"])
    return f"{name}.{ext}", f"{fallback}.{ext}"


def export_indicators(session: Session, settings: Settings, *, area: str, start: dt.date, end: dt.date,
                      tables: list[list[str]], format: str = "xlsx", lang: str = "zh", header: str = "names",
                      now: dt.datetime | None = None) -> Export:
    """The indicators of ``area`` from ``start`` to ``end`` (exclusive) as a download: an
    .xlsx with one sheet per grouping of ``tables`` (each a list of groupings, as
    ``by`` of :func:`~geogrid.assessment.indicators.indicators`), or a CSV of one table.
    The caller needs a staff role on the area (indicators' own check, made first)."""
    fmt = check_format(format, TABLE_FORMATS)
    tables = [list(t) for t in tables] or [[]]
    if fmt == "csv" and len(tables) > 1:
        raise GeogridError("a CSV file holds one table: give one grouping (by=grid,month), or ask for xlsx",
                           problems=[Problem(f"{len(tables)} tables asked for", field="by")])
    for t in tables:
        ind.check_request(t, start, end)
    now = now or dt.datetime.now(dt.UTC)
    results = [ind.indicators(session, settings, area=area, start=start, end=end, by=t, now=now) for t in tables]
    first = results[0]
    last_day = end - dt.timedelta(days=1)
    name, fallback = _file_names("indicators_file", lang, fmt, area=first["area"]["name"], code=first["area"]["code"],
                                 start=start.isoformat(), end=last_day.isoformat())
    if fmt == "csv":
        content = indicators_csv(first, lang, header)
    else:
        content = indicators_workbook(results, lang, settings.timezone)
    return Export(content, name, fallback, MEDIA_TYPES[fmt])


# --------------------------------------------------------------------------- the monthly report


def unit_grouping(level: str | None) -> str:
    """The grouping of a monthly report's table for an area of ``level``: towns of a
    county (or of a city), villages of a town, grids of anything below."""
    return UNIT_BELOW.get(level or "", "grid")


def _latest_ranking(session: Session, area: str, start: dt.date, end: dt.date) -> dict | None:
    """The score sheet's ranking of the period, when the scoring module exists (it is
    optional here: without it, and when it has no ranking, the report ranks by rate)."""
    if importlib.util.find_spec("geogrid.assessment.scoring") is None:
        return None
    scoring = importlib.import_module("geogrid.assessment.scoring")
    latest = getattr(scoring, "latest_ranking", None)
    return None if latest is None else latest(session, area, start, end)


def rate_ranking(rows: list[dict], unit: str) -> list[dict]:
    """Units ranked by 按期结案率, best first (ties: fewer cases overdue now, then fewer
    ever overdue, then code); units with no case due to close are not ranked.

    >>> rows = [{"g": "a", "g_name": "A", "on_time_rate": 0.5, "overdue_now": 0, "overdue_ever": 1},
    ...         {"g": "b", "g_name": "B", "on_time_rate": 0.0, "overdue_now": 2, "overdue_ever": 2},
    ...         {"g": "c", "g_name": "C", "on_time_rate": 0.0, "overdue_now": 1, "overdue_ever": 1},
    ...         {"g": "d", "g_name": "D", "on_time_rate": None, "overdue_now": 0, "overdue_ever": 0}]
    >>> [(r["rank"], r["name"]) for r in rate_ranking(rows, "g")]
    [(1, 'A'), (2, 'C'), (3, 'B')]
    """
    # Cases outside every unit (a blind spot of the area itself) are no unit to rank.
    ranked = sorted((r for r in rows if r.get("on_time_rate") is not None and r.get(unit) is not None),
                    key=lambda r: (-r["on_time_rate"], r["overdue_now"], r["overdue_ever"], str(r.get(unit) or "")))
    return [{"rank": n, "target": r.get(unit), "name": r.get(f"{unit}_name") or r.get(unit),
             "on_time_rate": r["on_time_rate"], "overdue_now": r["overdue_now"], "overdue_ever": r["overdue_ever"]}
            for n, r in enumerate(ranked, start=1)]


def bottom_of(ranking: list[dict]) -> list[dict]:
    """The bottom three (末三位) of a ranking (best first), worst first; never every unit
    ranked (of three units, two; of two, one; of one, none).

    >>> [r["rank"] for r in bottom_of([{"rank": n} for n in range(1, 6)])]
    [5, 4, 3]
    >>> [r["rank"] for r in bottom_of([{"rank": 1}, {"rank": 2}])]
    [2]
    """
    count = min(3, max(len(ranking) - 1, 0))
    return list(reversed(ranking[len(ranking) - count:])) if count else []


def monthly_report(session: Session, settings: Settings, *, area: str, month: str, lang: str = "zh",
                   now: dt.datetime | None = None) -> dict:
    """The content of the monthly report (月度通报) of ``area`` for ``month`` (``2026-11``):
    the month's indicators overall and by the next level down, the month before, the
    six-month trend, the ranking and its bottom three (by the score sheet's ranking for
    the month when there is one, else by 按期结案率), as plain data for :func:`monthly_pdf`
    and :func:`monthly_xlsx`. The caller needs a staff role on the area (checked first)."""
    period = parse_month(month)
    root = ind.resolve_area(session, area)  # the scope check, before anything is read
    now = now or dt.datetime.now(dt.UTC)
    unit = unit_grouping(root["level"])
    main = ind.indicators(session, settings, area=area, start=period.start, end=period.end, by=[unit], now=now)
    months = previous(period, TREND_MONTHS)
    by_month = ind.indicators(session, settings, area=area, start=months[0].start, end=period.end, by=["month"],
                              now=now)
    found = {r["month"]: r for r in by_month["rows"]}
    trend = []
    for p in months:
        row = found.get(p.start.isoformat())
        trend.append({"month": p.name, **({k: row[k] for k in ind.by_key()} if row else
                                          {i.key: (0 if i.unit == "count" else None) for i in ind.INDICATORS})})
    previous_total = found.get(months[-2].start.isoformat()) if len(months) > 1 else None

    ranking_out = _latest_ranking(session, area, period.start, period.end)
    if ranking_out:
        basis = "score"
        ranking = list(ranking_out.get("rows") or [])
        # Worst first, as the fallback lists them (the ranking lists them best first).
        bottom = sorted(ranking_out.get("bottom") or bottom_of(ranking), key=lambda r: r.get("rank") or 0,
                        reverse=True)
    else:
        basis = "on_time_rate"
        ranking = rate_ranking(main["rows"], unit)
        bottom = bottom_of(ranking)
    t = _t(lang)
    return {
        "area": {**main["area"], "level": root["level"]}, "month": period.name, "start": period.start,
        "end": period.end, "now": now, "lang": lang, "timezone": settings.timezone,
        "title": t["title"].format(area=main["area"]["name"], month=month_label(period, lang)),
        "unit": unit, "total": main["total"], "previous": previous_total, "rows": main["rows"],
        "trend": trend, "basis": basis, "ranking": ranking, "bottom": bottom,
        "scheme": (ranking_out or {}).get("scheme"), "scored_period": (ranking_out or {}).get("period"),
        "red": list((ranking_out or {}).get("red") or []), "black": list((ranking_out or {}).get("black") or []),
    }


def _fmt(value, unit: str, lang: str) -> str:
    """A figure as the report prints it: rates as percentages, hours to one decimal."""
    if value is None:
        return _t(lang)["no_data"]
    if unit == "rate":
        return f"{value:.1%}"
    if unit in ("hours", "score"):
        return f"{value:.1f}" if unit == "hours" else f"{value:.2f}"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _change(now, before, unit: str, lang: str) -> str:
    if now is None or before is None:
        return _t(lang)["no_data"]
    diff = now - before
    if unit == "rate":
        return f"{diff * 100:+.1f}" + ("个百分点" if lang != "en" else " pts")
    if unit in ("hours", "score"):
        return f"{diff:+.1f}"
    return f"{diff:+d}" if isinstance(diff, int) else f"{diff:+g}"


def _unit_word(report: dict, lang: str) -> str:
    return SHEET_WORDS[report["unit"]][1 if lang == "en" else 0]


def _local(report: dict) -> dt.datetime:
    now = report["now"]
    return now.astimezone(ZoneInfo(report["timezone"])) if now.tzinfo else now


def _basis_note(report: dict, lang: str) -> str:
    t = _t(lang)
    if report["basis"] == "score":
        scheme = report.get("scheme") or {}
        period = report.get("scored_period") or {}
        state = t["published"] if period.get("published") else (period.get("state") or t["unpublished"])
        return t["basis_score_note"].format(scheme=scheme.get("name", ""), period=period.get("name", ""), state=state)
    return t["basis_rate_note"].format(unit=_unit_word(report, lang))


def _bottom_table(report: dict, lang: str) -> tuple[list[Column], list[list]]:
    t = _t(lang)
    if report["basis"] == "score":
        columns = [Column("rank", t["rank"], "count"), Column("target", t["code"], "code"),
                   Column("name", t["name"], "text"), Column("score", t["score"], "score"),
                   Column("deductions", t["deductions"], "score"), Column("bonuses", t["bonuses"], "score")]
    else:
        known = ind.by_key()
        columns = [Column("rank", t["rank"], "count"), Column("target", t["code"], "code"),
                   Column("name", t["name"], "text")] + [
            Column(k, known[k].name(lang), known[k].unit) for k in ("on_time_rate", "overdue_now", "overdue_ever")]
    return columns, [[_plain_number(r.get(c.key)) for c in columns] for r in report["bottom"]]


def _ranking_table(report: dict, lang: str) -> tuple[list[Column], list[list]]:
    columns, _ = _bottom_table(report, lang)
    return columns, [[_plain_number(r.get(c.key)) for c in columns] for r in report["ranking"]]


def _plain_number(value):
    # Score sheets may answer Decimals; a list of deductions counts by its sum.
    if isinstance(value, (list, tuple)):
        total = 0.0
        for v in value:
            total += float(v.get("points", 0) if isinstance(v, dict) else v or 0)
        return total
    if value is not None and not isinstance(value, (int, float, str, dt.date)):
        try:
            return float(value)
        except (TypeError, ValueError):
            return str(value)
    return value


def _unit_label(row: dict, unit: str, lang: str) -> str:
    return row.get(f"{unit}_name") or row.get(unit) or _t(lang)["none"]


# --------------------------------------------------------------------------- PDF


CSS = """
@page { size: A4; margin: 18mm 15mm 18mm 15mm;
        @bottom-center { content: "%(footer)s"; font-size: 8pt; color: #666; } }
html { font-family: %(fonts)s; font-size: 10pt; line-height: 1.5; color: #111; }
h1 { font-size: 17pt; text-align: center; margin: 0 0 2mm; letter-spacing: 0.5pt; }
p.meta { text-align: center; color: #444; font-size: 8.5pt; margin: 0 0 5mm; }
h2 { font-size: 12.5pt; margin: 6mm 0 2mm; padding-left: 2mm; border-left: 3pt solid #2f6fb0; }
p { margin: 1.5mm 0; text-indent: 2em; }
p.note { font-size: 8.5pt; color: #555; text-indent: 0; }
table { width: 100%%; border-collapse: collapse; font-size: 8.8pt; margin: 2mm 0; }
th, td { border: 0.5pt solid #9a9a9a; padding: 1mm 1.4mm; }
th { background: #e4ecf6; font-weight: bold; text-align: center; }
td.num { text-align: right; white-space: nowrap; }
tr { break-inside: avoid; }
tr.low td { color: #b03020; }
table.cards td { width: 25%%; text-align: center; padding: 2mm 1mm; }
table.cards .v { font-size: 14pt; font-weight: bold; color: #1d4f86; display: block; }
table.cards .k { font-size: 8.5pt; color: #444; display: block; }
table.cards .d { font-size: 7.5pt; color: #777; display: block; }
figure { margin: 3mm 0; text-align: center; break-inside: avoid; }
figure img { width: 100%%; }
dl { font-size: 8.8pt; margin: 0; }
dt { font-weight: bold; float: left; width: 28mm; clear: left; }
dd { margin: 0 0 1mm 30mm; }
"""


def font_stack() -> str:
    """The CSS ``font-family`` list of the PDFs: the CJK font found on this host first (WeasyPrint
    embeds it), then the usual CJK families; 503 without one (see :func:`charts.require_cjk_font`)."""
    font = charts.require_cjk_font()
    return ", ".join(f'"{f}"' for f in dict.fromkeys([font.family, "Noto Sans CJK SC", "WenQuanYi Zen Hei"])) + \
        ", sans-serif"


def render_pdf(page: str) -> bytes:
    """An HTML page rendered to PDF by WeasyPrint, with a fetcher that loads ``data:`` URIs
    only: the page holds everything (images as data: URIs), and an address in it (a photo
    URL, a stylesheet, an image a user's text might name) is never requested."""
    import weasyprint

    fetcher_class = getattr(weasyprint.urls, "URLFetcher", None)
    if fetcher_class is not None:  # WeasyPrint 67 and later
        fetcher = fetcher_class(allowed_protocols={"data"}, allow_redirects=False, timeout=1)
    else:
        def fetcher(url: str):
            if not url.startswith("data:"):
                raise ValueError(f"not loaded: {url[:60]} (the PDFs embed everything as data: URIs)")
            return weasyprint.default_url_fetcher(url)
    return weasyprint.HTML(string=page, base_url=None, url_fetcher=fetcher).write_pdf()


def _img(svg: str) -> str:
    return f'<img src="data:image/svg+xml;base64,{base64.b64encode(svg.encode()).decode()}">'


def _chart_units(report: dict, lang: str) -> str | None:
    unit = report["unit"]
    rows = report["rows"]
    if not rows:
        return None
    t = _t(lang)
    title = t["chart_units"].format(unit=_unit_word(report, lang))
    if len(rows) > CHART_UNITS:  # keep the lowest: they are what the notice is about
        ranked = sorted(rows, key=lambda r: (r["on_time_rate"] is None, r["on_time_rate"] or 0))
        rows = ranked[:CHART_UNITS]
        title += t["chart_more"].format(n=CHART_UNITS)
    low = {b.get("target") for b in report["bottom"]}
    labels = [_unit_label(r, unit, lang) for r in rows]
    highlight = {i for i, r in enumerate(rows) if r.get(unit) in low}
    return charts.rate_bars(labels, [r["on_time_rate"] for r in rows], title=title, highlight=highlight,
                            none_label=t["no_data"])


def _chart_trend(report: dict, lang: str) -> str:
    known = ind.by_key()
    return charts.trend([m["month"] for m in report["trend"]], [m["received"] for m in report["trend"]],
                        [m["on_time_rate"] for m in report["trend"]], title=_t(lang)["chart_trend"],
                        count_label=known["received"].name(lang), rate_label=known["on_time_rate"].name(lang))


def monthly_html(report: dict, lang: str | None = None) -> str:
    """The monthly report as an HTML page for WeasyPrint (A4, the CJK font first)."""
    lang = lang or report.get("lang", "zh")
    t = _t(lang)
    e = html.escape
    known = ind.by_key()
    fonts = font_stack()
    total, before = report["total"], report["previous"] or {}
    unit, word = report["unit"], _unit_word(report, lang)
    local = _local(report)
    last_day = report["end"] - dt.timedelta(days=1)
    period = parse_month(report["month"])
    parts = [f"<h1>{e(report['title'])}</h1>",
             "<p class='meta'>" + e(t["meta"].format(area=report["area"]["name"], code=report["area"]["code"],
                                                     start=report["start"].isoformat(), end=last_day.isoformat(),
                                                     now=f"{local:%Y-%m-%d %H:%M}")) + "</p>"]

    # 1. Overview: one sentence, then the headline cards with the month before.
    shown = {k: _fmt(total.get(k), known[k].unit, lang) for k in HEADLINE}
    shown["avg_hours"] = t["hours"].format(v=shown["avg_hours"]) if total.get("avg_hours") is not None else t["no_data"]
    shown["overdue_now"] = str(total.get("overdue_now", 0))
    parts.append(f"<h2>{e(t['s1'])}</h2>")
    parts.append("<p>" + e(t["sentence"].format(month=month_label(period, lang), area=report["area"]["name"],
                                               **shown)) + "</p>")
    cards = []
    for k in HEADLINE:
        i = known[k]
        cards.append(f"<td><span class='v'>{e(_fmt(total.get(k), i.unit, lang))}</span>"
                     f"<span class='k'>{e(i.name(lang))}</span>"
                     f"<span class='d'>{e(t['last_month'])} {e(_fmt(before.get(k), i.unit, lang))}"
                     f"（{e(_change(total.get(k), before.get(k), i.unit, lang))}）</span></td>")
    parts.append("<table class='cards'><tr>" + "".join(cards[:4]) + "</tr><tr>" + "".join(cards[4:]) +
                 "</tr></table>")

    # 2. The table by unit.
    parts.append(f"<h2>{e(t['s2'].format(unit=word))}</h2>")
    low = {b.get("target") for b in report["bottom"]} if report["basis"] == "on_time_rate" else set()
    head = "".join(f"<th>{e(h)}</th>" for h in [t["name"]] + [known[k].name(lang) for k in REPORT_COLUMNS])
    body = []
    for r in report["rows"]:
        cls = " class='low'" if r.get(unit) in low else ""
        body.append(f"<tr{cls}><td>{e(_unit_label(r, unit, lang))}</td>" + "".join(
            f"<td class='num'>{e(_fmt(r.get(k), known[k].unit, lang))}</td>" for k in REPORT_COLUMNS) + "</tr>")
    body.append(f"<tr><th>{e(t['overall'])}</th>" + "".join(
        f"<td class='num'><b>{e(_fmt(total.get(k), known[k].unit, lang))}</b></td>" for k in REPORT_COLUMNS) + "</tr>")
    parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")
    parts.append(f"<p class='note'>{e(t['units_note'].format(unit=word))}</p>")

    # 3. Bottom three.
    basis_label = t["basis_score"] if report["basis"] == "score" else t["basis_rate"]
    parts.append(f"<h2>{e(t['s3'])}（{e(basis_label)}）</h2>")
    if report["bottom"]:
        columns, cells = _bottom_table(report, lang)
        head = "".join(f"<th>{e(c.title)}</th>" for c in columns)
        rows_html = "".join("<tr>" + "".join(
            f"<td class='num'>{e(_fmt(v, c.kind, lang))}</td>" if c.kind in NUMERIC else f"<td>{e(_fmt(v, c.kind, lang))}</td>"
            for c, v in zip(columns, line)) + "</tr>" for line in cells)
        parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows_html}</tbody></table>")
    else:
        parts.append(f"<p>{e(t['no_bottom'].format(unit=word))}</p>")
    parts.append(f"<p class='note'>{e(_basis_note(report, lang))}</p>")
    for key in ("red", "black"):
        if report.get(key):
            names = "、".join(str(r.get("name") or r.get("target") or "") for r in report[key])
            parts.append(f"<p class='note'>{e(t[key])}：{e(names)}</p>")

    # 4. Charts.
    parts.append(f"<h2>{e(t['s4'])}</h2>")
    bars = _chart_units(report, lang)
    if bars:
        parts.append(f"<figure>{_img(bars)}</figure>")
    parts.append(f"<figure>{_img(_chart_trend(report, lang))}</figure>")

    # 5. Definitions of what the report shows.
    parts.append(f"<h2>{e(t['s5'])}</h2><dl>")
    for k in dict.fromkeys(HEADLINE + REPORT_COLUMNS):
        parts.append(f"<dt>{e(known[k].name(lang))}</dt><dd>{e(known[k].definition(lang))}</dd>")
    parts.append("</dl>")
    footer = t["footer"].format(page='" counter(page) "', pages='" counter(pages) "')
    css = CSS % {"fonts": fonts, "footer": footer}
    return (f"<!DOCTYPE html><html lang='{'en' if lang == 'en' else 'zh-CN'}'><head><meta charset='utf-8'>"
            f"<title>{e(report['title'])}</title><style>{css}</style></head><body>{''.join(parts)}</body></html>")


def monthly_pdf(report: dict, lang: str | None = None) -> bytes:
    """The monthly report as a PDF (WeasyPrint: A4, the CJK font embedded, charts as SVG)."""
    return render_pdf(monthly_html(report, lang))


def monthly_xlsx(report: dict, lang: str | None = None) -> bytes:
    """The monthly report as an .xlsx: 通报 (title and headline figures against the month
    before), the table by unit with a bar chart of 按期结案率, 末三位, 排名, 近六月, 指标说明."""
    from openpyxl.chart import BarChart, Reference
    from openpyxl.styles import Alignment, Font

    lang = lang or report.get("lang", "zh")
    t = _t(lang)
    known = ind.by_key()
    unit, word = report["unit"], _unit_word(report, lang)
    wb = _workbook()
    wb.properties.title = report["title"]
    total, before = report["total"], report["previous"] or {}

    # 通报: the title above a table of the headline figures.
    columns = [Column("key", t["key"], "text"), Column("name", t["indicator"], "text"),
               Column("this", t["this_month"], "text"), Column("last", t["last_month"], "text")]
    ws = write_table(wb, t["summary"], columns, [], frozen_columns=2, start_row=4)
    ws.auto_filter.ref = None
    ws["A1"] = report["title"]
    ws["A1"].font = Font(bold=True, size=14)
    last_day = report["end"] - dt.timedelta(days=1)
    ws["A2"] = t["meta"].format(area=report["area"]["name"], code=report["area"]["code"],
                                start=report["start"].isoformat(), end=last_day.isoformat(),
                                now=f"{_local(report):%Y-%m-%d %H:%M}")
    ws["A2"].data_type = "s"
    for n, k in enumerate(HEADLINE, start=5):
        i = known[k]
        for j, (value, kind) in enumerate(((k, "text"), (i.name(lang), "text"), (total.get(k), i.unit),
                                           (before.get(k), i.unit)), start=1):
            _set(ws.cell(row=n, column=j), value, kind)
    basis_label = t["basis_score"] if report["basis"] == "score" else t["basis_rate"]
    note_row = 5 + len(HEADLINE) + 1
    ws.cell(row=note_row, column=1, value=f"{t['bottom']}（{basis_label}）").font = Font(bold=True)
    _set(ws.cell(row=note_row + 1, column=1), _basis_note(report, lang), "text")
    names = "、".join(str(b.get("name") or b.get("target") or "") for b in report["bottom"]) or \
        t["no_bottom"].format(unit=word)
    _set(ws.cell(row=note_row + 2, column=1), names, "text")
    for r in (1, 2, note_row + 1, note_row + 2):
        ws.cell(row=r, column=1).alignment = Alignment(wrap_text=False)
    ws.column_dimensions["A"].width = 20
    ws.column_dimensions["B"].width = 16
    ws.column_dimensions["C"].width = 14
    ws.column_dimensions["D"].width = 14

    # The table by unit, with a native bar chart of the on-time rate (it follows the data).
    columns = _group_columns([unit], lang) + _indicator_columns(lang)
    cells = _cells(columns, report["rows"], lang)
    units = write_table(wb, sheet_title([unit], lang), columns, cells, frozen_columns=2)
    if cells:
        col = next(j for j, c in enumerate(columns, start=1) if c.key == "on_time_rate")
        chart = BarChart()
        chart.type = "bar"
        chart.title = t["chart_units"].format(unit=word)
        chart.y_axis.number_format = "0%"
        chart.y_axis.scaling.min, chart.y_axis.scaling.max = 0, 1
        chart.legend = None
        chart.add_data(Reference(units, min_col=col, min_row=1, max_row=len(cells) + 1), titles_from_data=True)
        chart.set_categories(Reference(units, min_col=2, min_row=2, max_row=len(cells) + 1))
        chart.height, chart.width = max(6.0, 0.6 * len(cells) + 3), 16
        units.add_chart(chart, f"B{len(cells) + 4}")

    columns, cells = _bottom_table(report, lang)
    write_table(wb, t["bottom"], columns, cells, frozen_columns=1)
    columns, cells = _ranking_table(report, lang)
    write_table(wb, t["ranking"], columns, cells, frozen_columns=1)
    columns = [Column("month", ind.GROUP_NAMES["month"][1 if lang == "en" else 0], "text")] + _indicator_columns(lang)
    write_table(wb, t["trend"], columns, [[m.get(c.key) for c in columns] for m in report["trend"]], frozen_columns=1)
    write_definitions(wb, lang)
    return _save(wb)


def export_monthly(session: Session, settings: Settings, *, area: str, month: str, format: str = "pdf",
                   lang: str = "zh", now: dt.datetime | None = None) -> Export:
    """The monthly report of ``area`` for ``month`` as a PDF or an .xlsx download (see
    :func:`monthly_report`; the caller needs a staff role on the area)."""
    fmt = check_format(format, REPORT_FORMATS)
    report = monthly_report(session, settings, area=area, month=month, lang=lang, now=now)
    content = monthly_pdf(report, lang) if fmt == "pdf" else monthly_xlsx(report, lang)
    period = parse_month(month)
    name, fallback = _file_names("report_file", lang, fmt, area=report["area"]["name"], code=report["area"]["code"],
                                 month=month_label(period, lang), month_key=period.name)
    return Export(content, name, fallback, MEDIA_TYPES[fmt])
