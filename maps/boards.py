"""Printable grid boards (网格公示牌): one A4 or A3 poster per grid, or a village booklet with
one poster per grid of the village, as PDF.

A poster shows what the public grid map shows of the grid and nothing more: its name and
code, its village and town, an inset map (the grid, its neighbours of the same net with their
names, the village boundary) drawn here from the stored boundaries as SVG, each responsible
person's published fields (``assignments.responsible_persons(public_only=True)``: the one
definition of what is public), the supervision hotline, a QR code to the grid on the public
map, and the day it was printed.

The PDF is laid out by WeasyPrint with a fetcher that loads nothing but ``data:`` URIs: a
poster never makes the service request an address (no SSRF through a person's photo URL).
Photos are embedded only from the hosts listed in ``settings.board_photo_hosts`` (fetched
here, with a short timeout, a size cap and image types only); everyone else gets a
placeholder silhouette. The database has no street geometries, so the inset has no streets.
"""

from __future__ import annotations

import base64
import math
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

import segno
import shapely
from shapely.geometry import shape
from sqlalchemy.orm import Session

from geogrid.areas import lookup
from geogrid.assessment.reports import MEDIA_TYPES, Export, download_name, font_stack, render_pdf
from geogrid.core.errors import GeogridError
from geogrid.core.settings import Settings
from geogrid.core.timeutil import local_today
from geogrid.db.schema import ADMIN_LAYER
from geogrid.people import assignments
from maps.base import esc

SIZES = {"A4": (210.0, 297.0), "A3": (297.0, 420.0)}  # portrait, millimetres
PHOTO_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp"}  # never SVG: it could reference addresses
PHOTO_MAX_BYTES = 2 * 1024 * 1024
PHOTO_TIMEOUT_S = 3.0
INSET_WIDTH = 178.0  # mm at A4 scale
INSET_MIN, INSET_MAX = 55.0, 125.0  # mm at A4 scale
CARDS = 6  # persons shown with photo and duties; the others in a compact list below

TEXTS = {
    "zh": {
        "title": "网格公示牌", "code": "网格编码", "persons": "网格责任人", "post": "职务", "phone": "电话",
        "duties": "职责", "hotline": "监督电话", "qr": "扫码查看本网格电子地图", "date": "公示日期：{date}",
        "date_format": "{y}年{m}月{d}日", "no_persons": "暂无公示责任人", "unpublished": "（未公示）",
        "more": "另有 {n} 人，详见电子地图", "legend_grid": "本网格", "legend_neighbours": "相邻网格",
        "legend_village": "村（社区）界", "north": "北", "note": "如有问题，请联系本网格责任人；对处理结果不满意，"
        "请拨打监督电话。", "file": "网格公示牌_{name}_{code}", "booklet_file": "网格公示牌_{name}_{code}_{n}个网格",
        "others": "其他责任人", "sep": "：", "list_sep": "、",
    },
    "en": {
        "title": "Grid board", "code": "Grid code", "persons": "Responsible persons", "post": "Post", "phone": "Phone",
        "duties": "Duties", "hotline": "Supervision hotline", "qr": "Scan for this grid on the public map",
        "date": "Published {date}", "date_format": "{y}-{m:02d}-{d:02d}", "no_persons":
        "No published responsible person yet", "unpublished": "(not published)", "more": "{n} more: see the map",
        "legend_grid": "This grid", "legend_neighbours": "Neighbouring grids", "legend_village": "Village boundary",
        "north": "N", "note": "Contact your grid's responsible persons with any problem; call the supervision "
        "hotline if you are not satisfied with how it was handled.", "file": "grid board {name} {code}",
        "booklet_file": "grid boards {name} {code} {n} grids", "others": "Other responsible persons",
        "sep": ": ", "list_sep": ", ",
    },
}


def words(lang: str) -> dict:
    """The poster's texts in ``lang`` (zh by default)."""
    return TEXTS["en" if lang == "en" else "zh"]


def public_base(settings: Settings) -> str:
    """The public address of the service printed in QR codes: ``public_url``, else host:port."""
    return (settings.public_url or f"http://{settings.host}:{settings.port}").rstrip("/")


def public_link(settings: Settings, *, town: str, grid: str, layer: str = "comprehensive", lang: str = "zh") -> str:
    """The public map opened on ``grid`` (the address a poster's QR code holds)."""
    query = {"area": town, "grid": grid}
    if layer != "comprehensive":
        query["layer"] = layer
    if lang == "en":
        query["lang"] = "en"
    return f"{public_base(settings)}/maps/public?{urllib.parse.urlencode(query)}"


# --------------------------------------------------------------------------- what a poster shows


@dataclass
class Poster:
    code: str
    name: str
    layer: str
    village: str | None
    town: str | None
    link: str
    persons: list[dict]
    inset: str = ""


def _feature(session: Session, code: str, lang: str) -> dict:
    # A retired area is withdrawn by the next publication: then it is not found.
    return lookup.get_area(session, code, lang=lang, published=True)


def _ancestors(session: Session, props: dict, lang: str) -> list[dict]:
    """The area's parents, nearest first (a few lookups: a hierarchy is 3 to 5 deep)."""
    out, parent = [], props.get("parent")
    while parent and len(out) < 8:
        found = lookup.get_area(session, parent, lang=lang, published=True)
        out.append(found)
        parent = found["properties"].get("parent")
    return out


def _place(chain: list[dict]) -> tuple[dict | None, dict | None]:
    """The village (first admin ancestor) and the town (the admin ancestor at level town,
    else the village's parent) of an area's ancestor chain."""
    admin = [a for a in chain if a["properties"]["layer"] == ADMIN_LAYER]
    village = admin[0] if admin else None
    town = next((a for a in admin if a["properties"]["level"] == "town"), admin[1] if len(admin) > 1 else village)
    return village, town


def _grids(session: Session, settings: Settings, *, grid: str | None, village: str | None, layer: str | None,
           lang: str) -> tuple[dict, list[dict], dict | None, dict | None]:
    """The printed area (the grid or the village), its grids' features in code order, the
    village and the town."""
    if (grid is None) == (village is None):
        raise GeogridError("give exactly one of grid (one poster) or village (a booklet of its grids)")
    if grid is not None:
        found = _feature(session, grid, lang)
        props = found["properties"]
        if props["layer"] == ADMIN_LAYER:
            raise GeogridError(f"{grid} ({props['name']}) is a {props['level']} of the administrative layer, not a "
                               "grid: print its grids with village=" + grid)
        if layer is not None and layer != props["layer"]:
            raise GeogridError(f"grid {grid} ({props['name']}) belongs to the {props['layer']} net, not to {layer}: "
                               f"use layer={props['layer']}")
        chain = _ancestors(session, props, lang)
        return found, [found], *_place(chain)
    found = _feature(session, village, lang)
    props = found["properties"]
    if props["layer"] != ADMIN_LAYER:
        raise GeogridError(f"{village} ({props['name']}) is a grid, not a village: print it with grid={village}")
    layer = layer or "comprehensive"
    frame = lookup.frame(session, lookup.AreaFilter(parent=village, layer=layer, published=True), with_notes=False)
    if not len(frame):
        raise GeogridError(f"village {village} ({props['name']}) has no current grid of the {layer} net", status=404)
    codes = sorted(frame["code"])
    grids = [lookup.get_area(session, c, lang=lang, published=True) for c in codes]
    chain = [found, *_ancestors(session, props, lang)]
    return found, grids, *_place(chain)


def posters(session: Session, settings: Settings, *, grid: str | None = None, village: str | None = None,
            layer: str | None = None, lang: str = "zh", size: str = "A4") -> tuple[dict, list[Poster]]:
    """The printed area and one poster's content per grid: published fields only."""
    if layer is not None:
        lookup.check_filter(session, lookup.AreaFilter(layer=layer))
        if layer == ADMIN_LAYER:
            raise GeogridError(f"layer {layer} holds administrative areas, not grids: choose a grid net")
    found, grids, vil, town = _grids(session, settings, grid=grid, village=village, layer=layer, lang=lang)
    net = grids[0]["properties"]["layer"]
    ids = lookup.frame(session, lookup.AreaFilter(layer=net, code_prefix=_common_prefix([g["id"] for g in grids]), published=True),
                       with_notes=False, with_ids=True)
    id_of = dict(zip(ids["code"], (int(i) for i in ids["area_id"])))
    day = local_today(settings)
    persons = assignments.responsible_persons(session, [id_of[g["id"]] for g in grids if g["id"] in id_of], day, lang,
                                              public_only=True)
    geoms = {g["id"]: shape(g["geometry"]) for g in grids}
    # The inset gives way to long lists of persons: its height is known before it is drawn.
    heights = {c: layout(persons.get(id_of.get(c, -1), []), words(lang)).inset_mm for c in geoms}
    boxes = {c: view_box(g, INSET_WIDTH / heights[c]) for c, g in geoms.items()}
    x0, y0 = min(b[0] for b in boxes.values()), min(b[1] for b in boxes.values())
    x1, y1 = max(b[2] for b in boxes.values()), max(b[3] for b in boxes.values())
    around = lookup.frame(session, lookup.AreaFilter(layer=net, bbox=(x0, y0, x1, y1), published=True), with_notes=False)
    neighbours = list(zip(around["code"], around["name"], around.geometry))
    village_geom = shape(vil["geometry"]) if vil else None
    out = []
    for g in grids:
        p = g["properties"]
        code = p["code"]
        box = boxes[code]
        near = [(n, geom) for c, n, geom in neighbours if c != code and geom.intersects(shapely.box(*box))]
        out.append(Poster(
            code=code, name=p["name"], layer=net, village=vil["properties"]["name"] if vil else None,
            town=town["properties"]["name"] if town and town is not vil else None,
            link=public_link(settings, town=(town or found)["properties"]["code"], grid=code, layer=net, lang=lang),
            persons=persons.get(id_of.get(code, -1), []),
            inset=inset_svg(geoms[code], near, village_geom, box, INSET_WIDTH, heights[code], words(lang),
                            label=p["name"], scale=SIZES[size][0] / SIZES["A4"][0])))
    return found, out


def _common_prefix(codes: list[str]) -> str:
    first, last = min(codes), max(codes)
    n = 0
    while n < min(len(first), len(last)) and first[n] == last[n]:
        n += 1
    return first[:n]


# --------------------------------------------------------------------------- the inset map


def view_box(geom: shapely.Geometry, aspect: float, margin: float = 0.45) -> tuple[float, float, float, float]:
    """A lon/lat box around ``geom`` with a margin (share of its size, for the neighbours)
    and the inset's aspect (width / height, in ground metres)."""
    x0, y0, x1, y1 = geom.bounds
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    k = math.cos(math.radians(cy))
    w, h = max((x1 - x0) * k, 1e-5), max(y1 - y0, 1e-5)  # in degrees of latitude
    w, h = w * (1 + 2 * margin), h * (1 + 2 * margin)
    if w / h < aspect:
        w = h * aspect
    else:
        h = w / aspect
    return cx - w / k / 2, cy - h / 2, cx + w / k / 2, cy + h / 2


class _Projection:
    """lon/lat to millimetres on the inset (local equirectangular: a grid is small)."""

    def __init__(self, box, width_mm: float, height_mm: float):
        self.x0, self.y0, self.x1, self.y1 = box
        self.k = math.cos(math.radians((self.y0 + self.y1) / 2))
        self.metres_per_degree = 111_320.0
        self.scale = width_mm / ((self.x1 - self.x0) * self.k * self.metres_per_degree)  # mm per metre
        self.height = height_mm

    def xy(self, lon: float, lat: float) -> tuple[float, float]:
        m = self.metres_per_degree
        return (lon - self.x0) * self.k * m * self.scale, self.height - (lat - self.y0) * m * self.scale

    def path(self, geom: shapely.Geometry) -> str:
        """SVG path data: one closed subpath (``M ... Z``) per ring of every polygon."""
        parts = []
        for poly in _polygons(geom):
            for ring in (poly.exterior, *poly.interiors):
                pts = [self.xy(x, y) for x, y in ring.coords[:-1]]
                if len(pts) >= 3:
                    parts.append("M" + " L".join(f"{x:.2f},{y:.2f}" for x, y in pts) + " Z")
        return " ".join(parts)


def _polygons(geom: shapely.Geometry) -> list:
    if geom.is_empty:
        return []
    if geom.geom_type == "Polygon":
        return [geom]
    if hasattr(geom, "geoms"):
        return [p for g in geom.geoms for p in _polygons(g)]
    return []


def _nice(length_m: float) -> float:
    """The largest 1, 2 or 5 × 10^n metres not above ``length_m``."""
    base = 10 ** math.floor(math.log10(max(length_m, 1)))
    return max(s * base for s in (1, 2, 5) if s * base <= length_m)


def inset_svg(grid: shapely.Geometry, neighbours: list[tuple[str, shapely.Geometry]], village: shapely.Geometry | None,
              box: tuple[float, float, float, float], width_mm: float, height_mm: float, t: dict, *,
              label: str, scale: float = 1.0) -> str:
    """The inset map as inline SVG in millimetres: neighbours (pale, named), the village
    boundary (dashed), the grid (highlighted, all its parts and holes), a scale bar and north.
    Drawn in millimetres of an A4 poster; ``scale`` enlarges it for bigger paper."""
    proj = _Projection(box, width_mm, height_mm)
    e = esc
    view = shapely.box(*box)
    fonts = e(font_stack())
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="inset" width="{width_mm * scale:.2f}mm" '
           f'height="{height_mm * scale:.2f}mm" '
           f'viewBox="0 0 {width_mm} {height_mm}" font-family="{fonts}">',
           f'<rect x="0" y="0" width="{width_mm}" height="{height_mm}" fill="#f7f7f2"/>']
    labels = []
    for name, geom in neighbours:
        clipped = shapely.clip_by_rect(geom, *box)
        d = proj.path(clipped)
        if not d:
            continue
        out.append(f'<path class="neighbour" d="{d}" fill="#e3eef7" stroke="#7a9cb8" stroke-width="0.25" '
                   'fill-rule="evenodd"/>')
        inner = clipped.intersection(view)
        if not inner.is_empty and inner.area > view.area * 0.01:
            labels.append((name, inner.representative_point(), 2.6, "#3d5a73", False))
    if village is not None:
        d = proj.path(shapely.clip_by_rect(village, *box))
        if d:
            out.append(f'<path class="village" d="{d}" fill="none" stroke="#333" stroke-width="0.6" '
                       'stroke-dasharray="2.4 1.2"/>')
    out.append(f'<path class="grid" d="{proj.path(grid)}" fill="#f6c46a" fill-opacity="0.75" stroke="#b22222" '
               'stroke-width="0.8" fill-rule="evenodd"/>')
    labels.insert(0, (label, grid.representative_point(), 3.6, "#7a1010", True))
    metres = _nice(width_mm * 0.25 / proj.scale)
    bar = metres * proj.scale
    # No name under the scale bar (bottom left) or the north arrow (top right).
    placed = [(0.0, height_mm - 10, bar + 14, height_mm), (width_mm - 14, 0.0, width_mm, 18.0)]
    for name, point, size, colour, bold in labels:
        x, y = proj.xy(point.x, point.y)
        half = len(name) * size * 0.5
        rect = (x - half, y - size, x + half, y + size * 0.3)
        if rect[0] < 1 or rect[2] > width_mm - 1 or rect[1] < 1 or rect[3] > height_mm - 1:
            continue
        if any(not (rect[2] < r[0] or rect[0] > r[2] or rect[3] < r[1] or rect[1] > r[3]) for r in placed):
            continue
        placed.append(rect)
        weight = ' font-weight="bold"' if bold else ""
        for stroke in ('stroke="#fff" stroke-width="0.7" ', ""):  # a white halo under the name
            out.append(f'<text x="{x:.2f}" y="{y:.2f}" font-size="{size}" text-anchor="middle" fill="{colour}" '
                       f'{stroke}{weight.strip()}>{e(name)}</text>')
    # Scale bar (bottom left) and north arrow (top right).
    label_m = f"{metres / 1000:g} km" if metres >= 1000 else f"{metres:g} m"
    y = height_mm - 4
    out += [f'<rect x="3" y="{y - 4.5:.2f}" width="{bar + 10:.2f}" height="7" fill="#fff" fill-opacity="0.8"/>',
            f'<path d="M5,{y - 1:.2f} L5,{y:.2f} L{5 + bar:.2f},{y:.2f} L{5 + bar:.2f},{y - 1:.2f}" fill="none" '
            'stroke="#111" stroke-width="0.4"/>',
            f'<text x="{5 + bar / 2:.2f}" y="{y - 1.6:.2f}" font-size="2.6" text-anchor="middle">{label_m}</text>',
            f'<path d="M{width_mm - 8:.2f},4 L{width_mm - 5.5:.2f},11 L{width_mm - 8:.2f},9.5 '
            f'L{width_mm - 10.5:.2f},11 Z" fill="#111"/>',
            f'<text x="{width_mm - 8:.2f}" y="15" font-size="3" text-anchor="middle">{e(t["north"])}</text>',
            "</svg>"]
    return "".join(out)


# --------------------------------------------------------------------------- QR code and photos


def qr_svg(link: str) -> str:
    """The QR code of ``link`` as inline SVG (sized by the page's CSS)."""
    return segno.make(link, error="m").svg_inline(scale=1, border=2, omitsize=True, dark="#000", light="#fff")


SILHOUETTE = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 30 40" class="photo placeholder">'
              '<rect width="30" height="40" fill="#e4e4e4"/><circle cx="15" cy="15" r="7" fill="#a9a9a9"/>'
              '<path d="M2,40 C2,28 8,24 15,24 C22,24 28,28 28,40 Z" fill="#a9a9a9"/></svg>')


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # a redirect could lead anywhere: not followed
        return None


def photo_data_uri(url: str | None, settings: Settings) -> str | None:
    """A published photo as a ``data:`` URI, or None (the placeholder is printed): only
    http(s) addresses on a host of ``settings.board_photo_hosts``, no redirect, a short
    timeout, at most :data:`PHOTO_MAX_BYTES`, and a raster image type."""
    if not url or not settings.board_photo_hosts:
        return None
    try:
        parts = urllib.parse.urlsplit(url)
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        return None
    allowed = {h.lower() for h in settings.board_photo_hosts}
    if parts.scheme not in ("http", "https") or not host or not (
            host in allowed or (port is not None and f"{host}:{port}" in allowed)):
        return None
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(urllib.request.Request(url, headers={"Accept": "image/*"}), timeout=PHOTO_TIMEOUT_S) as r:
            kind = r.headers.get_content_type()
            if r.status != 200 or kind not in PHOTO_TYPES:
                return None
            body = r.read(PHOTO_MAX_BYTES + 1)
    except (OSError, ValueError, urllib.error.URLError):
        return None
    if not body or len(body) > PHOTO_MAX_BYTES:
        return None
    return f"data:{kind};base64,{base64.b64encode(body).decode()}"


# --------------------------------------------------------------------------- the page


def _css(size: str) -> str:
    k = SIZES[size][0] / SIZES["A4"][0]  # A3 is A4 scaled by √2: every length scales with the page

    def mm(v: float) -> str:
        return f"{v * k:.2f}mm"

    def pt(v: float) -> str:
        return f"{v * k:.2f}pt"

    return f"""
@page {{ size: {size} portrait; margin: {mm(10)}; }}
html {{ font-family: {font_stack()}; font-size: {pt(9)}; line-height: 1.35; color: #111; }}
body {{ margin: 0; }}
section.poster {{ height: {mm(276)}; overflow: hidden; box-sizing: border-box; border: {pt(2)} solid #b22222;
                  padding: {mm(5)} {mm(6)}; position: relative; }}
section.poster + section.poster {{ break-before: page; }}
header {{ text-align: center; border-bottom: {pt(1)} solid #b22222; padding-bottom: {mm(2)}; margin-bottom: {mm(3)}; }}
h1 {{ font-size: {pt(26)}; color: #b22222; margin: 0; }}
h1:lang(zh) {{ letter-spacing: {pt(6)}; }}
h2 {{ font-size: {pt(17)}; margin: {mm(1)} 0 0; }}
p.where {{ margin: {mm(1)} 0 0; font-size: {pt(10)}; color: #333; }}
.map svg.inset {{ display: block; margin: 0 auto; border: {pt(0.6)} solid #999; }}
p.legend {{ font-size: {pt(7.5)}; color: #444; margin: {mm(1)} 0 {mm(2)}; text-align: center; }}
p.legend i {{ display: inline-block; width: {mm(4)}; height: {mm(2.5)}; vertical-align: middle;
              margin: 0 {mm(1)} 0 {mm(3)}; }}
h3 {{ font-size: {pt(12)}; color: #b22222; margin: {mm(2)} 0 {mm(1.5)}; border-left: {pt(3)} solid #b22222;
      padding-left: {mm(2)}; }}
table.cards {{ width: 100%; border-collapse: separate; border-spacing: {mm(1.5)}; table-layout: fixed; }}
td.card {{ vertical-align: top; border: {pt(0.6)} solid #ccc; border-radius: {mm(1.5)}; padding: {mm(1.5)};
           height: {mm(30)}; }}
td.empty {{ border: none; }}
.card .photo {{ float: left; width: {mm(19)}; height: {mm(25)}; margin-right: {mm(2)}; object-fit: cover; }}
.card .post {{ color: #b22222; font-weight: bold; font-size: {pt(8.5)}; }}
.card .name {{ font-size: {pt(12)}; font-weight: bold; }}
.card .phone {{ font-size: {pt(10)}; font-weight: bold; white-space: nowrap; }}
.card .phone small {{ font-size: {pt(7)}; font-weight: normal; color: #555; }}
.card .duties {{ font-size: {pt(7)}; color: #444; clear: left; margin-top: {mm(0.5)}; }}
div.others p {{ margin: 0 0 {mm(0.8)}; font-size: {pt(7.5)}; }}
p.none {{ color: #666; }}
footer {{ position: absolute; left: {mm(6)}; right: {mm(6)}; bottom: {mm(4)}; border-top: {pt(1)} solid #b22222;
          padding-top: {mm(2)}; }}
footer table {{ width: 100%; border-collapse: collapse; }}
footer td {{ vertical-align: middle; }}
.hotline {{ font-size: {pt(18)}; font-weight: bold; color: #b22222; }}
.note {{ font-size: {pt(8)}; color: #444; margin: {mm(1)} 0; }}
.date {{ font-size: {pt(9)}; }}
td.qr {{ width: {mm(34)}; text-align: center; }}
td.qr svg {{ width: {mm(28)}; height: {mm(28)}; display: block; margin: 0 auto; }}
.qrcap {{ font-size: {pt(6.5)}; color: #333; }}
.url {{ font-size: {pt(5.5)}; color: #555; word-break: break-all; }}
"""


def _em(text: str) -> float:
    """Width of ``text`` in ems: CJK characters are square, Latin letters and digits about half."""
    return sum(1.0 if ord(c) > 0x2E80 else 0.55 for c in text)


@dataclass
class Layout:
    cards: int  # persons shown as cards with photo and duties
    groups: list[tuple[str, list[str]]]  # the others by post: (post, ["name phone", ...])
    hidden: int  # persons left off for lack of room (the QR code's map lists them)
    inset_mm: float  # the inset's height at A4 scale


LIST_LINE_EM = 60.0  # ems of the compact list's font on one line of the poster, with a margin
LIST_LINE_MM = 3.9


def layout(persons: list[dict], t: dict) -> Layout:
    """How a poster shows its persons, and the inset's height (mm at A4 scale): the inset
    gives way to a long list of persons so that every poster stays one page."""
    cards = min(len(persons), CARDS)
    groups: dict[str, list[str]] = {}
    for r in persons[cards:]:
        groups.setdefault(r["role_name"] or "", []).append(
            " ".join(x for x in (r.get("name") or t["unpublished"], r.get("phone")) if x))
    # Page body 276 mm: header 35, legend 6, heading 8, card rows 37 each, footer 46, margin 4.
    free = 276 - 35 - 6 - 8 - 46 - 4 - math.ceil(cards / 3) * 37 - (8 if groups else 0)
    budget = max(0, int((free - INSET_MIN) // LIST_LINE_MM))
    shown: list[tuple[str, list[str]]] = []
    lines, hidden = 0, 0
    for post, entries in groups.items():
        width, kept = _em(post) + 5, []
        for entry in entries:
            need = math.ceil((width + _em(entry) + 1) / LIST_LINE_EM)
            if lines + need > budget - 1:  # one line kept for "n more"
                hidden += 1
                continue
            width += _em(entry) + 1
            kept.append(entry)
        if kept:
            shown.append((post, kept))
            lines += math.ceil(width / LIST_LINE_EM)
    if hidden:
        lines += 1
    return Layout(cards, shown, hidden, max(INSET_MIN, min(INSET_MAX, free - lines * LIST_LINE_MM)))


def board_html(items: list[Poster], *, size: str, lang: str, day_text: str, hotline: str,
               photos: dict[str, str | None]) -> str:
    """The posters as one HTML document for WeasyPrint, one page each."""
    t = words(lang)
    e = esc
    pages = []
    for p in items:
        plan = layout(p.persons, t)
        cards = plan.cards
        where = " · ".join(x for x in (p.town, p.village) if x)
        parts = [f"<section class='poster'><header><h1>{e(t['title'])}</h1><h2>{e(p.name)}</h2>"
                 f"<p class='where'>{e(where)}{'　' if where else ''}{e(t['code'])}{e(t['sep'])}{e(p.code)}</p></header>",
                 f"<div class='map'>{p.inset}</div>",
                 f"<p class='legend'><i style='background:#f6c46a;border:1px solid #b22222'></i>{e(t['legend_grid'])}"
                 f"<i style='background:#e3eef7;border:1px solid #7a9cb8'></i>{e(t['legend_neighbours'])}"
                 f"<i style='border-top:2px dashed #333;height:0'></i>{e(t['legend_village'])}</p>",
                 f"<h3>{e(t['persons'])}</h3>"]
        if not p.persons:
            parts.append(f"<p class='none'>{e(t['no_persons'])}</p>")
        cells = []
        for person in p.persons[:cards]:
            uri = photos.get(person.get("photo_url") or "")
            photo = f"<img class='photo' src='{e(uri)}' alt=''>" if uri else SILHOUETTE
            name = person.get("name") or t["unpublished"]
            cells.append(f"<td class='card'>{photo}<div class='post'>{e(person['role_name'] or '')}</div>"
                         f"<div class='name'>{e(name)}</div>"
                         f"<div class='phone'><small>{e(t['phone'])}</small> {e(person.get('phone') or '—')}</div>"
                         f"<div class='duties'>{e(person.get('duties') or '')}</div></td>")
        if cells:
            cells += ["<td class='card empty'></td>"] * (-len(cells) % 3)
            rows = ["<tr>" + "".join(cells[i:i + 3]) + "</tr>" for i in range(0, len(cells), 3)]
            parts.append(f"<table class='cards'>{''.join(rows)}</table>")
        if plan.groups or plan.hidden:
            lines = [f"<p><b>{e(post)} ({len(entries)})</b>{e(t['sep'])}{e(t['list_sep'].join(entries))}</p>" for post, entries in plan.groups]
            if plan.hidden:
                lines.append(f"<p>{e(t['more'].format(n=plan.hidden))}</p>")
            parts.append(f"<h3>{e(t['others'])}</h3><div class='others'>{''.join(lines)}</div>")
        parts.append(f"<footer><table><tr><td><div class='hotline'>{e(t['hotline'])}{e(t['sep'])}{e(hotline)}</div>"
                     f"<p class='note'>{e(t['note'])}</p><div class='date'>{e(day_text)}</div></td>"
                     f"<td class='qr'>{qr_svg(p.link)}<div class='qrcap'>{e(t['qr'])}</div>"
                     f"<div class='url'>{e(p.link)}</div></td></tr></table></footer></section>")
        pages.append("".join(parts))
    return (f"<!DOCTYPE html><html lang='{'en' if lang == 'en' else 'zh-CN'}'><head><meta charset='utf-8'>"
            f"<title>{e(t['title'])}</title><style>{_css(size)}</style></head><body>{''.join(pages)}</body></html>")


def board_pdf(session: Session, settings: Settings, *, grid: str | None = None, village: str | None = None,
              layer: str | None = None, size: str = "A4", lang: str = "zh") -> Export:
    """A grid's poster, or a village's booklet (one poster per grid of ``layer``, code order),
    as a PDF download. The caller decides who may ask: only published fields are printed."""
    if size not in SIZES:
        raise GeogridError(f"size must be one of {', '.join(SIZES)}, not {size!r}")
    t = words(lang)
    found, items = posters(session, settings, grid=grid, village=village, layer=layer, lang=lang, size=size)
    photos = {u: photo_data_uri(u, settings) for u in {x.get("photo_url") for p in items for x in p.persons} if u}
    day = local_today(settings)
    day_text = t["date"].format(date=t["date_format"].format(y=day.year, m=day.month, d=day.day))
    page = board_html(items, size=size, lang=lang, day_text=day_text, hotline=settings.supervision_hotline,
                      photos=photos)
    content = render_pdf(page)
    props = found["properties"]
    if grid is not None:
        name = t["file"].format(name=props["name"], code=props["code"])
        fallback = f"geogrid-board-{props['code']}.pdf"
    else:
        name = t["booklet_file"].format(name=props["name"], code=props["code"], n=len(items))
        fallback = f"geogrid-boards-{props['code']}.pdf"
    return Export(content, f"{download_name(name)}.pdf", fallback, MEDIA_TYPES["pdf"])
