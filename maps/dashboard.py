"""The assessment dashboard (考核看板): one area and one month at a glance, for its staff.

Indicator cards (上报数, 结案率, 按期结案率, 当前超期数, 平均处置时长, 满意率, 巡查完成率)
from :func:`geogrid.assessment.indicators.indicators`, a trend of the last twelve months
and a bar chart of 按期结案率 by unit (ECharts), a choropleth of 按期结案率 by town,
village or grid on a Leaflet map, and the units' ranking with the bottom three marked.

The page is rendered here with its figures: cards and the ranking table as HTML (every
text through :func:`maps.base.esc`), what the charts and the map draw as one JSON block
(``<script type="application/json">``, no raw ``<``, ``>`` or ``&``) that
``maps/static/dashboard.js`` reads and shows as text. Libraries come from this machine
(:mod:`maps.assets`), never from a CDN.

>>> rate_colour(0.97), rate_colour(0.5), rate_colour(None)
('#1a9641', '#d7191c', '#d9d9d9')
>>> percent(0.5833), percent(None)
('58.3%', '—')
>>> parse_month("2026-11", dt.date(2026, 1, 5))
datetime.date(2026, 11, 1)
>>> shift_month(dt.date(2026, 1, 1), -2)
datetime.date(2025, 11, 1)
"""

from __future__ import annotations

import datetime as dt
import json
import re
import urllib.parse

import folium
import numpy as np
from sqlalchemy.orm import Session

from geogrid.areas import lookup, reference
from geogrid.assessment import indicators as ind
from geogrid.core import timeutil
from geogrid.core.errors import GeogridError, Problem
from geogrid.core.settings import Settings
from geogrid.db.schema import ADMIN_LAYER
from maps import assets
from maps.base import esc, feature_collection, for_display, stamp_nonce

# Library addresses as folium writes them: maps.assets.localize points them at the local copies.
LEAFLET_CSS = "https://cdn.jsdelivr.net/npm/leaflet@1.9.3/dist/leaflet.css"
LEAFLET_JS = "https://cdn.jsdelivr.net/npm/leaflet@1.9.3/dist/leaflet.js"
ECHARTS_JS = "https://cdn.jsdelivr.net/npm/echarts@6.1.0/dist/echarts.common.min.js"

READERS = ind.READERS  # planner, inspector, grid worker: who may read an area's indicators
CARDS = ("received", "closure_rate", "on_time_rate", "overdue_now", "avg_hours", "satisfaction_rate", "patrol_rate")
# The figure under each card's value: (indicator, indicator) shown as "name value[ / name value]".
CARD_NOTES = {"received": ("accepted",), "closure_rate": ("closed",), "on_time_rate": ("closed_on_time",),
              "overdue_now": ("overdue_ever",), "avg_hours": ("p90_hours",), "satisfaction_rate": ("satisfaction_mean",),
              "patrol_rate": ("patrols_done", "patrols_due")}
TABLE = ("received", "closed", "closure_rate", "on_time_rate", "overdue_now", "satisfaction_rate")
TREND_MONTHS = 12
UNITS = ("town", "village", "grid")  # coarsest first
GRID_LAYER = "comprehensive"  # the grids a unit "grid" means: the comprehensive net (综合网格)
# 按期结案率 classes, best first: (lowest rate of the class, colour). Red to green, grey for no cases.
RATE_CLASSES = ((0.95, "#1a9641"), (0.90, "#a6d96a"), (0.80, "#ffffbf"), (0.60, "#fdae61"), (0.0, "#d7191c"))
NO_CASES = "#d9d9d9"
BOTTOM = 3  # the bottom three (末三位) are marked in the ranking
_MONTH = re.compile(r"(\d{4})-(\d{2})")

LABELS = {
    "zh": {
        "title": "考核看板", "month": "月份", "unit": "统计单位", "show": "查看", "previous": "上月", "next": "下月",
        "trend": "近12个月趋势", "by_unit": "按期结案率（按{unit}）", "map": "按期结案率分布（按{unit}）",
        "ranking": "{unit}排名（按期结案率）", "rank": "名次", "name": "名称", "code": "编码", "bottom": "末三位",
        "no_cases": "本月无案件", "rest": "另有 {n} 个{unit}本月无案件。",
        "outside": "另有 {n} 件案件不在当前{unit}内（盲区、已撤销或其他图层的网格），已计入合计。",
        "none": "本月没有案件。", "hours": "小时", "cases": "件", "download": "下载月度通报",
        "pdf": "PDF", "xlsx": "Excel", "logout": "退出登录", "other_lang": "English", "legend": "按期结案率",
        "downloading": "正在生成……", "download_failed": "下载失败", "download_401": "登录已失效：请重新登录",
        "download_403": "无权下载该区域的报表", "download_404": "报表服务暂不可用", "offline": "无法连接服务",
        "no_map": "该区域下没有可显示的{unit}边界。", "forbidden": "无权查看", "not_found": "未找到",
        "error": "无法显示看板", "back": "重新登录",
        "scores": "考核得分排名", "score": "得分", "deductions": "扣分", "bonuses": "加分",
        "states": {"computed": "已计算，待审核", "reviewed": "已审核", "frozen": "已定稿"},
    },
    "en": {
        "title": "Assessment dashboard", "month": "Month", "unit": "Unit", "show": "Show", "previous": "Previous month",
        "next": "Next month", "trend": "Last 12 months", "by_unit": "On-time closure rate by {unit}",
        "map": "On-time closure rate by {unit}", "ranking": "Ranking of {unit}s (on-time closure rate)",
        "rank": "Rank", "name": "Name", "code": "Code", "bottom": "bottom three", "no_cases": "no cases this month",
        "rest": "{n} more {unit}(s) had no cases this month.",
        "outside": "{n} case(s) lie outside the current {unit}s (blind spots, retired grids or other nets); "
                   "they count in the totals.",
        "none": "No cases this month.", "hours": "h", "cases": "cases", "download": "Monthly report",
        "pdf": "PDF", "xlsx": "Excel", "logout": "Log out", "other_lang": "中文", "legend": "On-time closure rate",
        "downloading": "Preparing…", "download_failed": "Download failed",
        "download_401": "Your session has ended: log in again", "download_403": "Not allowed for this area",
        "download_404": "The report service is not available", "offline": "The service cannot be reached",
        "no_map": "No {unit} boundaries to show in this area.", "forbidden": "Not allowed", "not_found": "Not found",
        "error": "The dashboard cannot be shown", "back": "Log in again",
        "scores": "Score ranking", "score": "Score", "deductions": "Deductions", "bonuses": "Bonuses",
        "states": {"computed": "computed, not reviewed", "reviewed": "reviewed", "frozen": "frozen"},
    },
}


def _lang(lang: str) -> str:
    return "en" if lang == "en" else "zh"


def parse_month(value: str | None, today: dt.date) -> dt.date:
    """The first day of the month ``value`` (YYYY-MM), or of ``today``'s month; 422 otherwise."""
    if value is None or value == "":
        return today.replace(day=1)
    m = _MONTH.fullmatch(value.strip())
    if m is None or not (1 <= int(m.group(2)) <= 12) or not (2000 <= int(m.group(1)) <= 2100):
        raise GeogridError(f"month {value!r} is not a month: write YYYY-MM, e.g. 2026-11",
                           problems=[Problem("expected YYYY-MM between 2000-01 and 2100-12", field="month")])
    return dt.date(int(m.group(1)), int(m.group(2)), 1)


def shift_month(first: dt.date, months: int) -> dt.date:
    """The first day of the month ``months`` after (or before) ``first``'s."""
    index = first.year * 12 + first.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def rate_colour(rate: float | None) -> str:
    """The choropleth's colour of a 按期结案率 (0..1; None: no case due to close)."""
    if rate is None:
        return NO_CASES
    return next(colour for lowest, colour in RATE_CLASSES if rate >= lowest)


def legend_items(t: dict) -> list[list[str]]:
    """[colour, label] of each class, best first, then "no cases"."""
    out, upper = [], None
    for lowest, colour in RATE_CLASSES:
        low = f"{lowest * 100:g}%"
        out.append([colour, f"≥ {low}" if upper is None else f"{low} – {upper}"])
        upper = low
    return out + [[NO_CASES, t["no_cases"]]]


def percent(rate: float | None) -> str:
    """A 0..1 rate as a percentage with one decimal, or a dash."""
    return "—" if rate is None else f"{rate * 100:.1f}%"


def figure(key: str, value, t: dict) -> str:
    """An indicator's value as the page shows it (rates as %, hours with one decimal)."""
    if value is None:
        return "—"
    unit = ind.by_key()[key].unit
    if unit == "rate":
        return percent(value)
    if unit == "hours":
        return f"{value:.1f} {t['hours']}"
    if unit == "score":
        return f"{value:.1f}"
    return str(int(value))


def unit_choices(session: Session, level: str) -> list[str]:
    """The units an area of ``level`` is broken into, coarsest first (a grid: itself)."""
    ranks = {k: v["rank"] for k, v in reference.levels(session).items()}
    below = [u for u in UNITS if u in ranks and level in ranks and ranks[u] > ranks[level]]
    return below or ["grid"]


def render(session: Session, settings: Settings, *, area: str, month: str | None = None, unit: str | None = None,
           lang: str = "zh", nonce: str | None = None, now: dt.datetime | None = None) -> str:
    """The dashboard of ``area`` for ``month`` (YYYY-MM; default: this month) broken into
    ``unit`` (town, village or grid; default: the level just below the area). The caller
    needs a planner, inspector or grid worker scope on the area (403 otherwise, before
    anything is read). ``nonce``: the response's Content-Security-Policy nonce."""
    lang = _lang(lang)
    t = LABELS[lang]
    first = parse_month(month, timeutil.local_today(settings))
    root = ind.resolve_area(session, area)  # the scope check, before anything is read
    choices = unit_choices(session, root["level"])
    unit = unit or choices[0]
    if unit not in choices:
        raise GeogridError(f"unit {unit!r} does not break down area {area}; use {', '.join(choices)}",
                           problems=[Problem(f"expected one of {', '.join(choices)}", field="unit")])
    end = shift_month(first, 1)
    now = now or dt.datetime.now(dt.UTC)
    current = ind.indicators(session, settings, area=area, start=first, end=end, by=[unit], now=now)
    trend = ind.indicators(session, settings, area=area, start=shift_month(first, 1 - TREND_MONTHS), end=end,
                           by=["month"], now=now)
    units = _units(session, settings, area, unit, current["rows"])
    scores = score_ranking(session, area, first, end)
    unit_name = ind.GROUP_NAMES[unit][1 if lang == "en" else 0]
    unit_word = unit_name.lower() if lang == "en" else unit_name
    data = {
        "lang": lang,
        "t": {**{k: t[k] for k in ("legend", "cases", "downloading", "download_failed", "download_401",
                                   "download_403", "download_404", "offline", "code", "name")},
              "by_unit": t["by_unit"].format(unit=unit_word), "trend": t["trend"],
              "indicators": {k: ind.by_key()[k].name(lang) for k in ("received", "closed", "on_time_rate",
                                                                     "closure_rate", "overdue_now")}},
        "trend": _trend(trend["rows"], first),
        "bars": _bars(units["rows"]),
        "map": units["features"],
        "legend": legend_items(t),
        "tiles": _tiles(settings),
    }
    body = _body(root, current["total"], units, data, t, lang=lang, first=first, unit=unit, choices=choices,
                 unit_word=unit_word, scores=scores)
    title = f"{root['name']} · {t['title']} · {first:%Y-%m}"
    html = f"""<!doctype html>
<html lang="{'en' if lang == 'en' else 'zh-CN'}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="geogrid-lang" content="{lang}">
<title>{esc(title)}</title>
<link rel="stylesheet" href="{LEAFLET_CSS}"/>
<style>{STYLE}</style>
</head>
<body>
{body}
<script type="application/json" id="geogrid-dashboard-data">{_json(data)}</script>
<script src="{LEAFLET_JS}"></script>
<script src="{ECHARTS_JS}"></script>
<script src="{assets.static_url('geogrid.js')}"></script>
<script src="{assets.static_url('dashboard.js')}"></script>
</body>
</html>
"""
    # User text reaches the page through esc() or the JSON block only: so the page holds
    # exactly the five script tags written above, and any other would get the nonce.
    if html.count("<script") != 5 or html.count("</script") != 5:
        raise RuntimeError("the dashboard holds a script tag it did not write")
    html = assets.localize(html, settings, inline=False)
    return stamp_nonce(html, nonce) if nonce is not None else html


def _json(data) -> str:
    """JSON safe inside a script element: no raw ``<``, ``>`` or ``&`` (as Jinja's tojson)."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str).replace(
        "<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _tiles(settings: Settings) -> dict | None:
    if settings.map_tiles.lower() == "none":
        return None
    layer = folium.TileLayer(settings.map_tiles, attr=settings.map_attribution)
    return {"url": layer.tiles, "attribution": layer.options.get("attribution", ""),
            "maxZoom": layer.options.get("max_zoom", 19), "subdomains": layer.options.get("subdomains", "abc")}


def _trend(rows: list[dict], first: dt.date) -> dict:
    """Twelve months ending with ``first``'s, months without a case as zero (rates as null)."""
    by_month = {r["month"]: r for r in rows}
    months = [shift_month(first, k) for k in range(1 - TREND_MONTHS, 1)]
    picked = [by_month.get(m.isoformat(), {}) for m in months]
    return {"months": [f"{m:%Y-%m}" for m in months],
            "received": [r.get("received", 0) for r in picked], "closed": [r.get("closed", 0) for r in picked],
            "on_time_rate": [None if r.get("on_time_rate") is None else round(r["on_time_rate"] * 100, 1)
                             for r in picked]}


def _units(session: Session, settings: Settings, area: str, unit: str, rows: list[dict]) -> dict:
    """The units on the map (current boundaries in the area) with their month's figures,
    ranked; and the cases of places that are not such a unit (blind spots, retired grids)."""
    f = (lookup.AreaFilter(code_prefix=area, layer=GRID_LAYER) if unit == "grid"
         else lookup.AreaFilter(code_prefix=area, layer=ADMIN_LAYER, level=unit))
    frame = lookup.frame(session, f, with_notes=False)
    figures = {r[unit]: r for r in rows}
    known = set(frame["code"]) if len(frame) else set()
    outside = sum(r["received"] for code, r in figures.items() if code not in known)
    ranked = []
    for code, name in zip(frame["code"] if len(frame) else [], frame["name"] if len(frame) else []):
        r = figures.get(code, {})
        ranked.append({"code": code, "name": name, **{k: r.get(k, 0 if ind.by_key()[k].unit == "count" else None)
                                                       for k in TABLE}})
    ranked.sort(key=lambda u: (u["on_time_rate"] is None, -(u["on_time_rate"] or 0), -u["received"], u["code"]))
    rank, previous = 0, object()
    for i, u in enumerate(ranked):
        if u["on_time_rate"] is None:
            u["rank"] = None
            continue
        if u["on_time_rate"] != previous:
            rank, previous = i + 1, u["on_time_rate"]
        u["rank"] = rank
    rated = [u for u in ranked if u["rank"] is not None]
    for u in rated[-BOTTOM:] if len(rated) > BOTTOM else []:
        u["bottom"] = True
    features = {"type": "FeatureCollection", "features": []}
    if len(frame):
        by_code = {u["code"]: u for u in ranked}
        props = [{"code": code, "name": name, "rate": by_code[code]["on_time_rate"],
                  "rate_text": percent(by_code[code]["on_time_rate"]), "received": by_code[code]["received"],
                  "colour": rate_colour(by_code[code]["on_time_rate"])}
                 for code, name in zip(frame["code"], frame["name"])]
        features = feature_collection(for_display(np.asarray(frame.geometry.array, dtype=object),
                                                  settings.map_simplify_m), props)
    return {"rows": ranked, "features": features, "outside": outside, "count": len(frame)}


def _bars(ranked: list[dict]) -> dict:
    """按期结案率 of the units that had cases due to close, best first."""
    rated = [u for u in ranked if u["on_time_rate"] is not None]
    return {"names": [u["name"] for u in rated], "codes": [u["code"] for u in rated],
            "rates": [round(u["on_time_rate"] * 100, 1) for u in rated],
            "colours": [rate_colour(u["on_time_rate"]) for u in rated]}


def _link(area: str, month: dt.date, unit: str, lang: str) -> str:
    query = {"area": area, "month": f"{month:%Y-%m}", "unit": unit}
    if lang == "en":
        query["lang"] = "en"
    return "/maps/dashboard?" + urllib.parse.urlencode(query)


def _body(root: dict, total: dict, units: dict, data: dict, t: dict, *, lang: str, first: dt.date, unit: str,
          choices: list[str], unit_word: str, scores: dict | None) -> str:
    code = root["code"]
    names = ind.by_key()
    cards = []
    for key in CARDS:
        note = " / ".join(f"{names[k].name(lang)} {figure(k, total.get(k), t)}" for k in CARD_NOTES[key])
        cards.append(f'<div class="card" data-key="{key}" title="{esc(names[key].definition(lang))}">'
                     f'<div class="label">{esc(names[key].name(lang))}</div>'
                     f'<div class="value">{esc(figure(key, total.get(key), t))}</div>'
                     f'<div class="note">{esc(note)}</div></div>')
    options = "".join(f'<option value="{u}"{" selected" if u == unit else ""}>'
                      f'{esc(ind.GROUP_NAMES[u][1 if lang == "en" else 0])}</option>' for u in choices)
    other = {"area": code, "month": f"{first:%Y-%m}", "unit": unit, **({} if lang == "en" else {"lang": "en"})}
    reports = {fmt: "/api/reports/monthly?" + urllib.parse.urlencode(
        {"area": code, "month": f"{first:%Y-%m}", "format": fmt, **({"lang": "en"} if lang == "en" else {})})
        for fmt in ("pdf", "xlsx")}
    downloads = "".join(f'<a class="download" id="geogrid-report-{fmt}" href="{esc(url)}" '
                        f'data-file="{esc(f"report-{code}-{first:%Y-%m}.{fmt}")}">{esc(t[fmt])}</a>'
                        for fmt, url in reports.items())
    return f"""<header>
<h1><span id="geogrid-area-name">{esc(root['name'])}</span> · {esc(t['title'])} · {first:%Y-%m}</h1>
<nav>
<span class="step"><a id="geogrid-previous" href="{esc(_link(code, shift_month(first, -1), unit, lang))}">‹ {esc(t['previous'])}</a>
<a id="geogrid-next" href="{esc(_link(code, shift_month(first, 1), unit, lang))}">{esc(t['next'])} ›</a></span>
<form method="get" action="/maps/dashboard" id="geogrid-picker">
<input type="hidden" name="area" value="{esc(code)}">{'<input type="hidden" name="lang" value="en">' if lang == "en" else ""}
<label>{esc(t['month'])} <input type="month" name="month" value="{first:%Y-%m}" required></label>
<label>{esc(t['unit'])} <select name="unit">{options}</select></label>
<button type="submit">{esc(t['show'])}</button>
</form>
<span class="downloads">{esc(t['download'])}: {downloads} <span id="geogrid-download-status" role="status"></span></span>
<span class="end"><a id="geogrid-lang" href="/maps/dashboard?{esc(urllib.parse.urlencode(other))}">{esc(t['other_lang'])}</a>
<form method="post" action="/maps/logout" class="logout"><button type="submit">{esc(t['logout'])}</button></form></span>
</nav>
</header>
<main>
<section class="cards" id="geogrid-cards">{"".join(cards)}</section>
<section class="panel wide"><h2>{esc(t['trend'])}</h2><div class="chart" id="geogrid-chart-trend"></div></section>
<section class="panel"><h2>{esc(t['map'].format(unit=unit_word))}</h2>
<div id="geogrid-dashboard-map" class="map"></div>
{"" if units["count"] else f'<p class="note">{esc(t["no_map"].format(unit=unit_word))}</p>'}</section>
<section class="panel"><h2>{esc(t['by_unit'].format(unit=unit_word))}</h2>
<div class="chart" id="geogrid-chart-units"></div></section>
<section class="panel wide"><h2>{esc(t['ranking'].format(unit=unit_word))}</h2>
{_table(units, t, lang, unit_word)}</section>
{_score_table(scores, t, lang) if scores else ""}
</main>"""


def _table(units: dict, t: dict, lang: str, unit_word: str) -> str:
    names = ind.by_key()
    rated = [u for u in units["rows"] if u["received"]]
    head = "".join(f"<th>{esc(names[k].name(lang))}</th>" for k in TABLE)
    rows = "".join(
        f'<tr data-code="{esc(u["code"])}"{" class=bottom" if u.get("bottom") else ""}>'
        f'<td>{"—" if u["rank"] is None else u["rank"]}{" <small>" + esc(t["bottom"]) + "</small>" if u.get("bottom") else ""}</td>'
        f'<td class="name">{esc(u["name"])}<br><small>{esc(u["code"])}</small></td>'
        + "".join(f"<td>{esc(figure(k, u[k], t))}</td>" for k in TABLE) + "</tr>"
        for u in rated)
    notes = []
    if not rated:
        notes.append(t["none"])
    elif len(units["rows"]) > len(rated):
        notes.append(t["rest"].format(n=len(units["rows"]) - len(rated), unit=unit_word))
    if units["outside"]:
        notes.append(t["outside"].format(n=units["outside"], unit=unit_word))
    table = (f'<div class="table"><table id="geogrid-ranking"><thead><tr><th>{esc(t["rank"])}</th>'
             f'<th>{esc(t["name"])}</th>{head}</tr></thead><tbody>{rows}</tbody></table></div>') if rated else ""
    return table + "".join(f'<p class="note">{esc(n)}</p>' for n in notes)


def score_ranking(session: Session, area: str, start: dt.date, end: dt.date) -> dict | None:
    """The score sheet's ranking of the month (``geogrid.assessment.scoring``, where the
    area or an ancestor has a scheme with that period), or None."""
    try:
        from geogrid.assessment import scoring
    except ImportError:  # score sheets are optional: the dashboard stands on the indicators
        return None
    latest = getattr(scoring, "latest_ranking", None)
    return None if latest is None else latest(session, area, start, end)


def points(value) -> str:
    """Points as written on a score sheet: 95, 97.5."""
    return "—" if value is None else f"{float(value):.2f}".rstrip("0").rstrip(".")


def _score_table(ranking: dict, t: dict, lang: str) -> str:
    scheme, period = ranking["scheme"], ranking["period"]
    bottom = {r["target"] for r in ranking.get("bottom", [])}
    kind = ind.GROUP_NAMES.get(scheme.get("target_kind"), (scheme.get("target_kind"), scheme.get("target_kind")))
    state = t["states"].get(period.get("state"), period.get("state"))
    caption = f"{t['scores']} · {scheme['name']} · {period['name']} · {kind[1 if lang == 'en' else 0]} · {state}"
    rows = "".join(
        f'<tr data-target="{esc(r["target"])}"{" class=bottom" if r["target"] in bottom else ""}>'
        f'<td>{esc(r["rank"])}{" <small>" + esc(t["bottom"]) + "</small>" if r["target"] in bottom else ""}</td>'
        f'<td class="name">{esc(r["name"])}</td><td>{esc(points(r["score"]))}</td>'
        f'<td>{esc(points(r["deductions"]))}</td><td>{esc(points(r["bonuses"]))}</td></tr>'
        for r in ranking["rows"])
    return (f'<section class="panel wide" id="geogrid-scores"><h2>{esc(caption)}</h2>'
            f'<div class="table scroll"><table id="geogrid-score-ranking"><thead><tr><th>{esc(t["rank"])}</th>'
            f'<th>{esc(t["name"])}</th><th>{esc(t["score"])}</th><th>{esc(t["deductions"])}</th>'
            f'<th>{esc(t["bonuses"])}</th></tr></thead><tbody>{rows}</tbody></table></div></section>')


def error_page(exc: GeogridError, lang: str, login: str) -> str:
    """A refused dashboard (403, 404, 422) as a page a person can read: the reason, and a
    link to log in as someone else. No script."""
    t = LABELS[_lang(lang)]
    heading = {403: t["forbidden"], 404: t["not_found"]}.get(exc.status, t["error"])
    return (f'<!doctype html><html lang="{"en" if lang == "en" else "zh-CN"}"><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{esc(heading)}</title>'
            f'<body style="font:15px sans-serif;margin:2em auto;max-width:40em;padding:0 1em">'
            f'<h1 id="geogrid-error">{exc.status} · {esc(heading)}</h1><p>{esc(exc.message)}</p>'
            + "".join(f"<p>{esc(p.message)}</p>" for p in exc.problems[:5])
            + f'<p><a href="/maps/login?next={esc(urllib.parse.quote(login, safe="/"))}">{esc(t["back"])}</a></p>'
            "</body></html>")


STYLE = """
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 -apple-system,"PingFang SC","Microsoft YaHei","Noto Sans CJK SC",sans-serif;
 color:#222;background:#f3f5f7}
header{background:#1f4e79;color:#fff;padding:10px 16px}
header h1{margin:0 0 6px;font-size:20px;font-weight:600;overflow-wrap:anywhere}
header a{color:#fff}
nav{display:flex;flex-wrap:wrap;gap:8px 14px;align-items:center}
nav form{display:flex;flex-wrap:wrap;gap:6px;align-items:center;margin:0}
nav input,nav select,nav button{font:inherit;padding:2px 6px;max-width:100%}
nav .step a{margin-right:12px}
nav .end{margin-left:auto;display:flex;gap:12px;align-items:center}
.downloads a{margin-right:6px}
#geogrid-download-status{font-size:12px}
main{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:14px;padding:14px 16px;max-width:1600px;margin:0 auto}
.cards{grid-column:1/-1;display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:10px}
.card{background:#fff;border-radius:6px;padding:10px 12px;box-shadow:0 1px 3px rgba(0,0,0,.12);min-width:0}
.card .label{color:#555;font-size:13px}
.card .value{font-size:26px;font-weight:600;color:#1f4e79;white-space:nowrap}
.card .note{color:#777;font-size:12px;overflow-wrap:anywhere}
.panel{background:#fff;border-radius:6px;padding:10px 12px;box-shadow:0 1px 3px rgba(0,0,0,.12);min-width:0}
.panel.wide{grid-column:1/-1}
.panel h2{margin:0 0 8px;font-size:16px;font-weight:600;overflow-wrap:anywhere}
.chart{width:100%;height:340px}
.map{width:100%;height:420px}
.table{overflow-x:auto;max-width:100%}
.table.scroll{max-height:480px;overflow-y:auto}
table{border-collapse:collapse;width:100%;min-width:560px}
th,td{border-bottom:1px solid #e4e4e4;padding:5px 8px;text-align:right;white-space:nowrap}
th:nth-child(2),td.name{text-align:left;white-space:normal;overflow-wrap:anywhere;min-width:8em}
td.name small{white-space:nowrap;overflow-wrap:normal}
tr.bottom td{background:#fdecea}
tr.bottom small{color:#b00020}
.note{color:#666;font-size:13px}
.geogrid-dashboard-legend{background:#fff;padding:6px 8px;border-radius:4px;box-shadow:0 1px 4px rgba(0,0,0,.3);
 font-size:12px;line-height:18px}
.geogrid-dashboard-legend i{display:inline-block;width:14px;height:14px;margin-right:6px;vertical-align:middle;
 border:1px solid #999}
@media (max-width:760px){
 main{grid-template-columns:minmax(0,1fr);padding:10px}
 .cards{grid-template-columns:repeat(2,minmax(0,1fr))}
 .card .value{font-size:22px}
 .chart{height:300px}
 .map{height:360px}
 nav .step{order:1}
 nav .end{order:2}
 nav #geogrid-picker{order:3;width:100%}
 nav .downloads{order:4}
 nav input[type=month]{width:10.5em}
}
"""
