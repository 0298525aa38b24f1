"""Contact cards (连心卡/民情联系卡): one A6 page per household with an active contact link,
for a grid or a village, in one PDF.

A card names the household by its address and its head's surname only (张**: the given
name masked), and prints what the household needs to reach its cadre: the cadre's name,
post (the role of their assignment), work phone (printed on purpose: it is the point of
the card), the grid's name and code, the supervision hotline and the year. Nothing else of
the household or its residents is printed (no ID number, no resident's phone).
"""

from __future__ import annotations

import datetime as dt
import html

from sqlalchemy import text
from sqlalchemy.orm import Session

from geogrid.assessment.reports import MEDIA_TYPES, Export, download_name, font_stack, render_pdf
from geogrid.core.errors import GeogridError
from geogrid.core.settings import Settings
from geogrid.core.timeutil import local_today
from geogrid.people.contacts import ADDRESS_COLUMNS, HOUSEHOLDS_IN_SUB, SUB_ROWS, area_subtree, with_address
from geogrid.people.households import mask_name

TEXT = {
    "zh": {"title": "民情联系卡", "year": "{year}年度", "household": "住　　户", "head": "户主：{name}",
           "cadre": "联系干部", "post": "职　　务", "phone": "联系电话", "grid": "所在网格", "hotline": "监督电话",
           "note": "有事请联系您的联户干部；对服务不满意，请拨打监督电话。", "file": "连心卡_{area}_{year}",
           "none": "—"},
    "en": {"title": "Contact card", "year": "{year}", "household": "Household", "head": "Head: {name}",
           "cadre": "Contact cadre", "post": "Post", "phone": "Phone", "grid": "Grid", "hotline": "Supervision hotline",
           "note": "Call your contact cadre for anything you need; call the supervision hotline if the service "
                   "falls short.", "file": "contact cards {area} {year}", "none": "-"},
}

CSS = """
@page { size: A6; margin: 8mm 7mm; }
html { font-family: %(fonts)s; font-size: 9.5pt; line-height: 1.45; color: #111; }
section.card { border: 1.2pt solid #b22222; border-radius: 3mm; padding: 4mm 4mm 3mm; height: 126mm;
               box-sizing: border-box; }
section.card + section.card { break-before: page; }
h1 { font-size: 16pt; text-align: center; color: #b22222; margin: 0 0 1mm; letter-spacing: 2pt; }
p.year { text-align: center; font-size: 8.5pt; color: #555; margin: 0 0 3mm; }
table { width: 100%%; border-collapse: collapse; }
th { text-align: left; font-weight: bold; width: 19mm; vertical-align: top; padding: 1mm 0; white-space: nowrap; }
td { padding: 1mm 0 1mm 1mm; vertical-align: top; }
td.big { font-size: 12pt; font-weight: bold; }
tr.cadre th, tr.cadre td { border-top: 0.5pt dashed #b22222; }
p.note { font-size: 7.5pt; color: #444; margin: 3mm 0 0; }
"""


def card_rows(session: Session, settings: Settings, *, area: str, on: dt.date | None = None,
              lang: str = "zh") -> tuple[dict, dt.date, list[dict]]:
    """The area (after the caller's scope check: readers of the area), the day and one
    entry per household of its subtree with a contact link active on that day: address,
    masked head, grid, and its cadres (name, post, phone)."""
    found, params = area_subtree(session, area)
    day = on or local_today(settings)
    label = "name_en" if lang == "en" else "name_zh"
    rows = session.execute(text(f"""
        WITH {SUB_ROWS}, {HOUSEHOLDS_IN_SUB}
        SELECT hh.id, hh.ref, h.head_name, {ADDRESS_COLUMNS}, g.code AS grid, g.name AS grid_name,
               p.name AS cadre, p.phone, k.{label} AS kind, post.role_name AS post
        FROM hh JOIN household h ON h.id = hh.id JOIN contact_link l ON l.household_id = hh.id
        JOIN person p ON p.id = l.person_id JOIN contact_kind k ON k.key = l.kind
        JOIN area g ON g.id = hh.place
        LEFT JOIN LATERAL (
            SELECT r.{label} AS role_name FROM assignment s JOIN role r ON r.key = s.role_key
            WHERE s.person_id = l.person_id AND s.period @> CAST(:day AS date)
            ORDER BY s.area_id = hh.place DESC, s.area_id = hh.village_id DESC, r.rank, s.id LIMIT 1) post ON TRUE
        WHERE l.start_date <= :day AND (l.end_date IS NULL OR l.end_date >= :day)
        ORDER BY g.code, hh.ref, k.rank, p.id
    """), {**params, "day": day}).mappings().all()
    cards: dict[int, dict] = {}
    for r in with_address([dict(r) for r in rows]):
        card = cards.setdefault(r["id"], {"address": r["address"], "head": mask_name(r["head_name"]),
                                          "grid": r["grid"], "grid_name": r["grid_name"], "cadres": []})
        card["cadres"].append({"name": r["cadre"], "post": r["post"], "phone": r["phone"], "kind": r["kind"]})
    return found, day, list(cards.values())


def cards_html(cards: list[dict], *, year: int, hotline: str, lang: str = "zh") -> str:
    """The cards as one HTML document for WeasyPrint: one A6 page each."""
    t = TEXT["en" if lang == "en" else "zh"]
    e = html.escape
    pages = []
    for c in cards:
        lines = [f"<tr><th>{e(t['household'])}</th><td>{e(c['address'] or t['none'])}<br>"
                 f"{e(t['head'].format(name=c['head']))}</td></tr>"]
        for cadre in c["cadres"]:
            lines += [f"<tr class='cadre'><th>{e(t['cadre'])}</th><td class='big'>{e(cadre['name'])}"
                      f"<small>（{e(cadre['kind'])}）</small></td></tr>",
                      f"<tr><th>{e(t['post'])}</th><td>{e(cadre['post'] or t['none'])}</td></tr>",
                      f"<tr><th>{e(t['phone'])}</th><td class='big'>{e(cadre['phone'] or t['none'])}</td></tr>"]
        lines += [f"<tr class='cadre'><th>{e(t['grid'])}</th><td>{e(c['grid_name'])}<br>{e(c['grid'])}</td></tr>",
                  f"<tr><th>{e(t['hotline'])}</th><td class='big'>{e(hotline)}</td></tr>"]
        pages.append(f"<section class='card'><h1>{e(t['title'])}</h1>"
                     f"<p class='year'>{e(t['year'].format(year=year))}</p>"
                     f"<table>{''.join(lines)}</table><p class='note'>{e(t['note'])}</p></section>")
    css = CSS % {"fonts": font_stack()}
    return (f"<!DOCTYPE html><html lang='{'en' if lang == 'en' else 'zh-CN'}'><head><meta charset='utf-8'>"
            f"<title>{e(t['title'])}</title><style>{css}</style></head><body>{''.join(pages)}</body></html>")


def contact_cards(session: Session, settings: Settings, *, area: str, on: dt.date | None = None,
                  lang: str = "zh") -> Export:
    """The contact cards of ``area`` (a grid or a village; its whole subtree) as one PDF
    download; 404 when no household there has an active contact link."""
    found, day, cards = card_rows(session, settings, area=area, on=on, lang=lang)
    t = TEXT["en" if lang == "en" else "zh"]
    if not cards:
        raise GeogridError(f"no household of {found['code']} ({found['name']}) has a contact cadre on {day}: "
                           "no card to print", status=404)
    content = render_pdf(cards_html(cards, year=day.year, hotline=settings.supervision_hotline, lang=lang))
    name = download_name(t["file"].format(area=found["name"], year=day.year))
    return Export(content, f"{name}.pdf", f"geogrid-contact-cards-{found['code']}-{day.year}.pdf", MEDIA_TYPES["pdf"])
