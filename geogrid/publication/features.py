"""OGC API - Features (Part 1 Core, Part 2 CRS) over what is published, and nothing else.

The collections:

- one per published layer (``admin``, ``comprehensive``, ...): the areas of its public
  generation (``published_area``), feature id = area code;
- ``boards``: every published grid (non-admin layers) with its public board, the persons
  in post today as ``public_post`` shows them (fields a person did not allow are left out);
- ``sources``: ``public_source``, the pollution sources listed publicly;
- ``cases``: ``public_case`` rows with a point (public categories, public fields only).

Every feature is built by PostGIS (``ST_AsGeoJSON``, ``json_build_object``, ``json_agg``)
and served as the bytes PostgreSQL returns: no per-feature Python, so a page of 1,000
grids costs one query. Pages are keyset pages (``after``/``before`` a cursor made of the
ordering key), never big OFFSETs, so the 500th page of a 50,000-grid layer costs what the
first does; ``numberMatched`` is given only when it is cheap (the whole result on the first
page, or the index count of an unfiltered current layer).

``datetime`` on an area collection (and ``boards``) selects the generation(s) the public
saw: at an instant, ``valid @> t``; over an interval, every generation overlapping it (a
grid changed within the interval appears once per generation, with id ``code@generation``).
On ``cases`` it filters ``reported_at``; ``sources`` have no time and ignore it.

``crs``: CRS84 (lon/lat, the default and the storage CRS), EPSG:4326 and EPSG:4490
(CGCS2000) in their authority axis order (lat, lon). The stored coordinates are WGS84;
CGCS2000 agrees with WGS84 to within about a metre (see README), so EPSG:4490 is the same
numbers with the axes swapped.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.orm import Session

from geogrid.core.errors import GeogridError, Problem
from geogrid.db.schema import ADMIN_LAYER
from geogrid.environment.sources import KINDS
from geogrid.incidents.states import STATES
from geogrid.publication.generations import published_from, published_layers

DEFAULT_LIMIT = 10
MAX_LIMIT = 10_000

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG4326 = "http://www.opengis.net/def/crs/EPSG/0/4326"
EPSG4490 = "http://www.opengis.net/def/crs/EPSG/0/4490"
CRS_LIST = [CRS84, EPSG4326, EPSG4490]
STORAGE_CRS = CRS84
LAT_LON = frozenset({EPSG4326, EPSG4490})  # authority axis order: latitude first
TRS = "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"
# Short spellings clients use for the CRS URIs.
CRS_ALIASES = {
    "crs84": CRS84, "ogc:crs84": CRS84, "[ogc:crs84]": CRS84,
    "epsg:4326": EPSG4326, "[epsg:4326]": EPSG4326, "epsg/0/4326": EPSG4326,
    "epsg:4490": EPSG4490, "[epsg:4490]": EPSG4490, "epsg/0/4490": EPSG4490,
}

FEATURES_CORE = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/"
TILES = "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/"
CONFORMANCE = [
    FEATURES_CORE + "core", FEATURES_CORE + "geojson", FEATURES_CORE + "html", FEATURES_CORE + "oas30",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
    TILES + "core", TILES + "tileset", TILES + "tilesets-list", TILES + "geodata-tilesets", TILES + "mvt",
]

BOARDS, SOURCES, CASES = "boards", "sources", "cases"
FIXED = (BOARDS, SOURCES, CASES)


# --------------------------------------------------------------------------- query parameters


def bad(message: str, param: str) -> GeogridError:
    """A 400 naming the query parameter that is wrong."""
    return GeogridError(message, status=400, problems=[Problem(message, field=f"query.{param}")])


def parse_crs(value: str | None, param: str = "crs") -> str:
    """The CRS URI of a ``crs``/``bbox-crs`` value (URI, ``EPSG:4490`` or ``[EPSG:4490]``);
    CRS84 when absent; 400 for any other CRS."""
    if value is None or value == "":
        return CRS84
    v = value.strip()
    if v in CRS_LIST:
        return v
    alias = CRS_ALIASES.get(v.lower()) or CRS_ALIASES.get(v.lower().removeprefix("http://www.opengis.net/def/crs/"))
    if alias:
        return alias
    raise bad(f"{param} {value!r} is not supported; use one of {', '.join(CRS_LIST)}", param)


def parse_limit(value: str | None) -> int:
    """``limit``: 1 to ``MAX_LIMIT``, ``DEFAULT_LIMIT`` when absent."""
    if value is None or value == "":
        return DEFAULT_LIMIT
    if not re.fullmatch(r"\s*\d+\s*", value) or not 1 <= int(value) <= MAX_LIMIT:
        raise bad(f"limit must be a whole number from 1 to {MAX_LIMIT}, got {value!r}", "limit")
    return int(value)


def parse_bbox(value: str | None, crs: str) -> tuple[float, float, float, float] | None:
    """``bbox`` (4 numbers, or 6 with heights, which are ignored) in ``crs``'s axis order,
    as lon/lat ``(x0, y0, x1, y1)``."""
    if value is None:
        return None
    try:
        numbers = [float(v) for v in value.split(",")]
    except ValueError:
        numbers = []
    if len(numbers) == 6:
        numbers = numbers[0:2] + numbers[3:5]
    order = "minlat,minlon,maxlat,maxlon" if crs in LAT_LON else "minlon,minlat,maxlon,maxlat"
    if len(numbers) != 4 or any(n != n or abs(n) == float("inf") for n in numbers):
        raise bad(f"bbox must be four numbers {order}, got {value!r}", "bbox")
    a, b, c, d = numbers
    x0, y0, x1, y1 = (b, a, d, c) if crs in LAT_LON else (a, b, c, d)
    if not (-180 <= x0 <= x1 <= 180 and -90 <= y0 <= y1 <= 90):
        raise bad(f"bbox {value!r} is not {order} in degrees (lower corner first, in bbox-crs {crs})", "bbox")
    return x0, y0, x1, y1


@dataclass(frozen=True)
class Period:
    """A ``datetime`` value: an instant (``start == end``, ``instant``) or an interval with
    inclusive ends, None for an open end."""

    start: dt.datetime | None
    end: dt.datetime | None
    instant: bool = False


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _moment(value: str, tz: ZoneInfo, *, end: bool) -> dt.datetime:
    # A date alone is that whole day in the service's time zone: its first instant as a
    # start, its last as an end. A time without an offset is the service's local time.
    try:
        if _DATE.match(value):
            day = dt.date.fromisoformat(value)
            start = dt.datetime.combine(day, dt.time.min, tzinfo=tz)
            return start + dt.timedelta(days=1, microseconds=-1) if end else start
        # An unencoded "+08:00" in a URL arrives as " 08:00": take it as meant.
        moment = dt.datetime.fromisoformat(re.sub(r" (\d\d:?\d\d)$", r"+\1", value).replace("z", "Z"))
    except ValueError:
        raise bad(f"datetime {value!r} is not an RFC 3339 date-time (e.g. 2026-11-24T08:00:00Z) or date",
                  "datetime") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=tz)


def parse_datetime(value: str | None, tz: ZoneInfo) -> Period | None:
    """``datetime``: an RFC 3339 instant (a date: that day), or an interval ``a/b`` with
    ``..`` (or nothing) for an open end."""
    if value is None or value == "":
        return None
    value = value.strip()
    if "/" not in value:
        if _DATE.match(value):
            return Period(_moment(value, tz, end=False), _moment(value, tz, end=True))
        moment = _moment(value, tz, end=False)
        return Period(moment, moment, instant=True)
    parts = value.split("/")
    if len(parts) != 2:
        raise bad(f"datetime {value!r}: an interval is start/end", "datetime")
    start = None if parts[0] in ("", "..") else _moment(parts[0], tz, end=False)
    end = None if parts[1] in ("", "..") else _moment(parts[1], tz, end=True)
    if start is None and end is None:
        raise bad(f"datetime {value!r}: an interval needs at least one end", "datetime")
    if start and end and start > end:
        raise bad(f"datetime {value!r}: the start is after the end", "datetime")
    return Period(start, end)


# --------------------------------------------------------------------------- collections


@dataclass(frozen=True)
class Queryable:
    sql: str
    type: str  # JSON schema type: string, integer, boolean
    title_zh: str
    title_en: str


AREA_QUERYABLES = {
    "code": Queryable("pa.code", "string", "代码", "Code"),
    "name": Queryable("pa.name", "string", "名称", "Name"),
    "level": Queryable("pa.level_key", "string", "层级", "Level"),
    "parent": Queryable("pa.parent_code", "string", "上级代码", "Parent code"),
    "boundary_version": Queryable("pa.version", "integer", "边界版本", "Boundary version"),
}
BOARD_QUERYABLES = {
    "code": Queryable("pa.code", "string", "网格代码", "Grid code"),
    "name": Queryable("pa.name", "string", "网格名称", "Grid name"),
    "layer": Queryable("pa.layer_key", "string", "网格类别", "Net (layer)"),
}
SOURCE_QUERYABLES = {
    "name": Queryable("s.name", "string", "名称", "Name"),
    "kind": Queryable("s.kind", "string", "类型", "Kind"),
    "grid": Queryable("s.grid", "string", "所在网格", "Grid"),
    "permit_no": Queryable("s.permit_no", "string", "排污许可证号", "Permit number"),
    "key_supervision": Queryable("s.key_supervision", "boolean", "重点监管", "Key supervision"),
}
CASE_QUERYABLES = {
    "receipt": Queryable("c.receipt", "string", "受理号", "Receipt"),
    "category": Queryable("c.category_key", "string", "类别", "Category"),
    "state": Queryable("c.state", "string", "状态", "State"),
    "grid": Queryable("c.grid", "string", "所在网格", "Grid"),
    "authority": Queryable("c.authority", "string", "责任主体", "Authority"),
}


@dataclass(frozen=True)
class Collection:
    """What a collection id resolves to: its kind (``areas``, ``boards``, ``sources``,
    ``cases``) and, for areas, the layer."""

    id: str
    kind: str
    layer: str | None = None

    @property
    def queryables(self) -> dict[str, Queryable]:
        return {"areas": AREA_QUERYABLES, BOARDS: BOARD_QUERYABLES, SOURCES: SOURCE_QUERYABLES,
                CASES: CASE_QUERYABLES}[self.kind]

    @property
    def temporal(self) -> bool:
        return self.kind != SOURCES


def resolve(session: Session, collection_id: str) -> Collection:
    """The collection ``collection_id``, or 404: a layer is a collection while it has a
    current published generation (``published_layer``, one row by its key)."""
    if collection_id in FIXED:
        return Collection(collection_id, collection_id)
    found = session.execute(text("SELECT 1 FROM published_layer WHERE layer_key = :layer"),
                            {"layer": collection_id}).first()
    if found is None:
        raise GeogridError(f"collection {collection_id!r} not found: it is not a published layer nor one of "
                           f"{', '.join(FIXED)} (the list is at /ogc/collections)", status=404)
    return Collection(collection_id, "areas", collection_id)


def _bbox(x0, y0, x1, y1) -> list[list[float]] | None:
    return None if x0 is None else [[float(x0), float(y0), float(x1), float(y1)]]


def _interval(start, end) -> list[list[str | None]] | None:
    return None if start is None else [[start.isoformat(), end.isoformat() if end else None]]


def _extent(bbox, interval) -> dict | None:
    out: dict = {}
    if bbox:
        out["spatial"] = {"bbox": bbox, "crs": CRS84}
    if interval:
        out["temporal"] = {"interval": interval, "trs": TRS}
    return out or None


TEXTS = {
    BOARDS: (("网格公示牌", "Grid boards"),
             ("每个已公示网格的公示牌：网格边界与当前在岗的负责人（仅本人同意公开的姓名、电话、照片）。",
              "The public board of each published grid: its boundary and the persons in post today "
              "(only the names, phones and photos they allowed to be published).")),
    SOURCES: (("公开污染源", "Public pollution sources"),
              ("公开名录中的污染源：名称、类型、污染物、排污许可证号、地址与所在网格。",
               "Pollution sources listed publicly: name, kind, pollutants, permit, address and grid.")),
    CASES: (("公开事件", "Public cases"),
            ("公开类别的事件：受理号、类别、状态、上报与结案时间、所在网格（不含描述和举报人信息）。",
             "Cases of public categories: receipt, category, state, when reported and closed, grid "
             "(no description, no reporter data).")),
}


def describe_collections(session: Session, lang: str = "zh") -> list[dict]:
    """Every collection with its title, description, extent and kind (the router adds the
    links): the published layers first (admin first), then boards, sources and cases."""
    en = lang == "en"
    layers = published_layers(session)
    out = []
    now = None
    for ly in layers:
        name = ly["name_en"] if en else ly["name_zh"]
        out.append({
            "id": ly["key"], "kind": "areas", "title": name,
            "description": (f"{name}: the {ly['areas']} areas of the current published generation"
                            if en else f"{name}：当前公示版本的 {ly['areas']} 个区域"),
            "extent": _extent(_bbox(ly["x0"], ly["y0"], ly["x1"], ly["y1"]),
                              _interval(ly["first_published_at"], now)),
        })
    grids = [ly for ly in layers if ly["key"] != ADMIN_LAYER]
    boards_bbox = _bbox(min(g["x0"] for g in grids), min(g["y0"] for g in grids),
                        max(g["x1"] for g in grids), max(g["y1"] for g in grids)) if grids else None
    boards_time = _interval(min(g["first_published_at"] for g in grids), None) if grids else None
    src = session.execute(text("SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
                               "(SELECT ST_Extent(geom) AS e FROM public_source) s")).one()
    cas = session.execute(text("SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e), t0, t1 FROM "
                               "(SELECT ST_Extent(geom) AS e, min(reported_at) AS t0, max(reported_at) AS t1 "
                               "FROM public_case WHERE geom IS NOT NULL) c")).one()
    extents = {BOARDS: _extent(boards_bbox, boards_time), SOURCES: _extent(_bbox(*src), None),
               CASES: _extent(_bbox(*cas[:4]), None if cas[4] is None else [[cas[4].isoformat(), cas[5].isoformat()]])}
    for key in FIXED:
        (title, description) = TEXTS[key]
        out.append({"id": key, "kind": key, "title": title[en], "description": description[en],
                    "extent": extents[key]})
    return out


def describe_collection(session: Session, collection_id: str, lang: str = "zh") -> dict:
    """One collection as :func:`describe_collections` lists it, or 404."""
    resolve(session, collection_id)
    return next(c for c in describe_collections(session, lang) if c["id"] == collection_id)


def queryables_schema(collection: Collection, lang: str = "zh") -> dict:
    """The JSON schema of the properties ``items`` filters on (``?name=value``)."""
    en = lang == "en"
    return {
        "$schema": "https://json-schema.org/draft/2019-09/schema",
        "type": "object",
        "title": collection.id,
        "properties": {name: {"title": q.title_en if en else q.title_zh, "type": q.type}
                       for name, q in collection.queryables.items()},
        "additionalProperties": False,
    }


# --------------------------------------------------------------------------- the SQL of a collection


@dataclass
class ItemQuery:
    """An items request, checked: see :func:`item_query`."""

    limit: int = DEFAULT_LIMIT
    after: str | None = None
    before: str | None = None
    bbox: tuple[float, float, float, float] | None = None
    period: Period | None = None
    filters: dict[str, object] = field(default_factory=dict)
    crs: str = CRS84

    @property
    def filtered(self) -> bool:
        return bool(self.bbox or self.period or self.filters)


def _mode(collection: Collection, period: Period | None) -> str:
    if collection.kind not in ("areas", BOARDS) or period is None:
        return "current"
    return "instant" if period.instant else "interval"


@dataclass
class Plan:
    """The SQL pieces of a collection for one request."""

    alias: str
    source: str
    where: list[str]
    params: dict
    keys: list[str]            # ordering key, also the paging cursor
    key_types: list[type]
    fid: str                   # the feature id (JSON value)
    properties: str            # a json_build_object(...) over the alias
    geom: str


def _plan(collection: Collection, period: Period | None, crs: str, lang: str, today: dt.date) -> Plan:
    en = lang == "en"
    mode = _mode(collection, period)
    params: dict = {}
    where: list[str]
    key_types: list[type]
    if collection.kind in ("areas", BOARDS):
        if mode == "interval":
            assert period is not None
            source = ("(SELECT * FROM published_area WHERE valid && tstzrange(CAST(:t0 AS timestamptz), "
                      "CAST(:t1 AS timestamptz), '[]')) pa")
            params.update(t0=period.start, t1=period.end)
            where = []
        elif mode == "instant":
            assert period is not None
            source, where = published_from(period.start), []
            params["at"] = period.start
        else:
            # Spelled out so that the current-generation partial indexes apply.
            source, where = "published_area pa", ["upper_inf(pa.valid)"]
        if collection.kind == "areas":
            where.append("pa.layer_key = :layer")
            params["layer"] = collection.layer
            keys, key_types = ["pa.code"], [str]
            properties = """json_build_object('code', pa.code, 'name', pa.name, 'level', pa.level_key,
                'layer', pa.layer_key, 'parent', pa.parent_code, 'boundary_version', pa.version,
                'area_m2', pa.area_m2, 'published_at', lower(pa.valid), 'replaced_at', upper(pa.valid))"""
        else:
            where.append("pa.layer_key <> :admin")
            params.update(admin=ADMIN_LAYER, today=today)
            # (layer, code): the order of the current generation's (layer_key, code) index
            keys, key_types = ["pa.layer_key", "pa.code"], [str, str]
            role_name = "r.name_en" if en else "r.name_zh"
            properties = f"""json_build_object('code', pa.code, 'name', pa.name, 'layer', pa.layer_key,
                'persons', (SELECT coalesce(json_agg(json_strip_nulls(json_build_object(
                        'role', pp.role_key, 'role_name', {role_name}, 'name', pp.name, 'phone', pp.phone,
                        'photo_url', pp.photo_url, 'duties', pp.duties))
                        ORDER BY r.rank, pp.start_date, pp.person_id), '[]'::json)
                    FROM public_post pp JOIN role r ON r.key = pp.role_key
                    WHERE pp.area_id = pa.area_id AND pp.period @> CAST(:today AS date)))"""
        if mode == "interval":  # one feature per generation: the generation's number makes the id unique
            keys, key_types = [*keys, "pa.id"], [*key_types, int]
            fid = "pa.code || '@' || pa.id"
        else:
            fid = "pa.code"
        return Plan("pa", source, where, params, keys, key_types, fid, properties,
                    "ST_FlipCoordinates(pa.geom)" if crs in LAT_LON else "pa.geom")
    if collection.kind == SOURCES:
        params["kinds"] = json.dumps({k: v[1 if en else 0] for k, v in KINDS.items()}, ensure_ascii=False)
        properties = """json_build_object('name', s.name, 'kind', s.kind,
            'kind_name', CAST(:kinds AS jsonb) ->> s.kind, 'pollutants', s.pollutants, 'permit_no', s.permit_no,
            'key_supervision', s.key_supervision, 'address', s.address, 'grid', s.grid)"""
        return Plan("s", "public_source s", [], params, ["s.id"], [int], "s.id", properties,
                    "ST_FlipCoordinates(s.geom)" if crs in LAT_LON else "s.geom")
    params["states"] = json.dumps({k: v[1 if en else 0] for k, v in STATES.items()}, ensure_ascii=False)
    where = ["c.geom IS NOT NULL"]
    if period is not None:
        if period.start is not None:
            where.append("c.reported_at >= CAST(:t0 AS timestamptz)")
            params["t0"] = period.start
        if period.end is not None:
            where.append("c.reported_at <= CAST(:t1 AS timestamptz)")
            params["t1"] = period.end
    properties = f"""json_build_object('receipt', c.receipt, 'category', c.category_key,
        'category_name', {"c.category_en" if en else "c.category_zh"}, 'state', c.state,
        'state_name', CAST(:states AS jsonb) ->> c.state, 'reported_at', c.reported_at,
        'closed_at', c.closed_at, 'grid', c.grid, 'authority', c.authority)"""
    return Plan("c", "public_case c", where, params, ["c.receipt"], [str], "c.receipt", properties,
                "ST_FlipCoordinates(c.geom)" if crs in LAT_LON else "c.geom")


def _feature_sql(plan: Plan, links: str | None = None) -> str:
    extra = ", 'links', CAST(:links AS json)" if links else ""
    return (f"json_build_object('type', 'Feature', 'id', {plan.fid}, 'geometry', ST_AsGeoJSON({plan.geom})::json, "
            f"'properties', {plan.properties}{extra})")


def item_query(collection: Collection, params: dict[str, str], tz: ZoneInfo) -> ItemQuery:
    """The checked items request from its query parameters (other than ``f``/``lang``):
    400 naming the parameter for a bad value, and for a parameter the collection does not
    know (a mistyped filter must not silently return everything)."""
    known = {"limit", "bbox", "bbox-crs", "datetime", "crs", "after", "before"}
    unknown = sorted(set(params) - known - set(collection.queryables))
    if unknown:
        takes = ", ".join(sorted(known | set(collection.queryables)))
        raise GeogridError(f"unknown query parameter {', '.join(unknown)}; items of {collection.id} take: {takes}, "
                           f"f, lang", status=400,
                           problems=[Problem(f"unknown query parameter {n!r}", field=f"query.{n}") for n in unknown])
    if params.get("after") and params.get("before"):
        raise bad("give after or before, not both", "before")
    q = ItemQuery(limit=parse_limit(params.get("limit")), after=params.get("after") or None,
                  before=params.get("before") or None, crs=parse_crs(params.get("crs")),
                  period=parse_datetime(params.get("datetime"), tz))
    if "bbox-crs" in params and "bbox" not in params:
        raise bad("bbox-crs without bbox", "bbox-crs")
    q.bbox = parse_bbox(params.get("bbox"), parse_crs(params.get("bbox-crs"), "bbox-crs"))
    for name, queryable in collection.queryables.items():
        if name not in params:
            continue
        value: object = params[name]
        if queryable.type == "boolean":
            if str(value).lower() not in ("true", "false"):
                raise bad(f"{name} must be true or false, got {value!r}", name)
            value = str(value).lower() == "true"
        elif queryable.type == "integer":
            if not re.fullmatch(r"-?\d{1,9}", str(value)):
                raise bad(f"{name} must be a whole number, got {value!r}", name)
            value = int(str(value))
        q.filters[name] = value
    return q


def _cursor(plan: Plan, token: str, param: str) -> list:
    parts = token.split("~")
    try:
        if len(parts) != len(plan.keys):
            raise ValueError
        return [t(p) for t, p in zip(plan.key_types, parts, strict=True)]
    except ValueError:
        raise bad(f"{param} {token!r} is not a cursor of this collection (use the next/prev links)", param) from None


def _token(values: list | None) -> str | None:
    return None if values is None else "~".join(str(v) for v in values)


@dataclass
class ItemsPage:
    """One page of features: the JSON array text of the features as PostgreSQL wrote it,
    how many, cursors for the neighbouring pages (None: no such page), and numberMatched
    where it was cheap (else None)."""

    features: str
    returned: int
    next_after: str | None
    prev_before: str | None
    matched: int | None


def items(session: Session, collection: Collection, q: ItemQuery, *, lang: str = "zh",
          today: dt.date) -> ItemsPage:
    """A page of ``collection``'s features for ``q``, in one query."""
    plan = _plan(collection, q.period, q.crs, lang, today)
    where, params = list(plan.where), {**plan.params, "limit": q.limit, "fetch": q.limit + 1}
    if q.bbox:
        where.append(f"ST_Intersects({plan.alias}.geom, ST_MakeEnvelope(:bx0, :by0, :bx1, :by1, 4326))")
        params.update(bx0=q.bbox[0], by0=q.bbox[1], bx1=q.bbox[2], by1=q.bbox[3])
    for name, value in q.filters.items():
        where.append(f"{collection.queryables[name].sql} = :q_{name}")
        params[f"q_{name}"] = value
    keys = ", ".join(plan.keys)
    casts = ["bigint" if t is int else "text" for t in plan.key_types]
    cursor = q.after or q.before
    if cursor:
        values = _cursor(plan, cursor, "after" if q.after else "before")
        marks = ", ".join(f"CAST(:k{i} AS {c})" for i, c in enumerate(casts))
        where.append(f"({keys}) {'>' if q.after else '<'} ({marks})" if len(plan.keys) > 1
                     else f"{keys} {'>' if q.after else '<'} {marks}")
        params.update({f"k{i}": v for i, v in enumerate(values)})
    backwards = q.before is not None
    order = ", ".join(f"{k} DESC" if backwards else k for k in plan.keys)
    order_asc = keys
    order_desc = ", ".join(f"{k} DESC" for k in plan.keys)
    key_text = ", ".join(f"CAST({k} AS text)" for k in plan.keys)
    a = plan.alias
    sql = f"""
        WITH hit AS MATERIALIZED (
            SELECT {a}.* FROM {plan.source} WHERE {" AND ".join(where) or "TRUE"} ORDER BY {order} LIMIT :fetch),
        page AS (SELECT * FROM hit {a} ORDER BY {order} LIMIT :limit)
        SELECT (SELECT count(*) FROM hit) AS fetched,
               (SELECT coalesce(json_agg({_feature_sql(plan)} ORDER BY {order_asc}), '[]'::json)::text
                FROM page {a}) AS features,
               (SELECT count(*) FROM page) AS returned,
               (SELECT ARRAY[{key_text}] FROM page {a} ORDER BY {order_asc} LIMIT 1) AS first,
               (SELECT ARRAY[{key_text}] FROM page {a} ORDER BY {order_desc} LIMIT 1) AS last"""
    row = session.execute(text(sql), params).one()
    more = row.fetched > q.limit
    if backwards:
        next_after = _token(row.last) if row.returned else None
        prev_before = _token(row.first) if more else None
    else:
        next_after = _token(row.last) if more else None
        prev_before = _token(row.first) if q.after and row.returned else None
    matched = None
    if not cursor:
        if not more:
            matched = row.returned
        elif not q.filtered:
            # Once per walk (first page, no filter), where an index or a small table answers:
            # clients (GDAL) read it as the feature count instead of paging through to count.
            matched = session.execute(text(COUNTS[collection.kind]),
                                      {"layer": collection.layer, "admin": ADMIN_LAYER}).scalar_one()
    return ItemsPage(row.features, row.returned, next_after, prev_before, matched)


COUNTS = {
    "areas": "SELECT coalesce((SELECT areas FROM published_layer WHERE layer_key = :layer), 0)",
    BOARDS: "SELECT count(*) FROM published_area WHERE upper_inf(valid) AND layer_key <> :admin",
    SOURCES: "SELECT count(*) FROM public_source",
    CASES: "SELECT count(*) FROM public_case WHERE geom IS NOT NULL",
}


def item(session: Session, collection: Collection, feature_id: str, *, crs: str = CRS84, lang: str = "zh",
         today: dt.date, links: list[dict] | None = None) -> str:
    """One feature as GeoJSON text (with ``links``), or 404. An area's id is its code (the
    current generation) or ``code@generation`` (any generation of that area, as an
    interval query lists it)."""
    period = None
    plan = _plan(collection, period, crs, lang, today)
    where, params = list(plan.where), dict(plan.params)
    missing = GeogridError(f"feature {feature_id!r} not found in collection {collection.id}", status=404)
    if collection.kind in ("areas", BOARDS):
        code, at, generation = feature_id.partition("@")
        if at:
            if not generation.isdigit():
                raise missing
            plan.source, where = "published_area pa", [w for w in where if w != "upper_inf(pa.valid)"]
            plan.fid = "pa.code || '@' || pa.id"
            where.append("pa.id = :gid")
            params["gid"] = int(generation)
        where.append("pa.code = :fid")
        params["fid"] = code
    elif collection.kind == SOURCES:
        if not feature_id.isdigit() or len(feature_id) > 9:
            raise missing
        where.append("s.id = :fid")
        params["fid"] = int(feature_id)
    else:
        where.append("c.receipt = :fid")
        params["fid"] = feature_id
    params["links"] = json.dumps(links or [], ensure_ascii=False)
    found = session.execute(text(f"SELECT CAST({_feature_sql(plan, links='yes')} AS text) FROM {plan.source} "
                                 f"WHERE {' AND '.join(where)} LIMIT 1"), params).scalar()
    if found is None:
        raise missing
    return found
