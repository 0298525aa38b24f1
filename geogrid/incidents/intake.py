"""Taking an incident in: validation, routing to the grid and person responsible, and the
stored receipt.

A case is placed by exactly one of: a point (``lon``/``lat``), a household of the register
(``household_id``: staff only; routed to the household's derived grid when that grid is
on the category's net, else by the household's point like any point) or an area code
(``area``: a grid of the category's net, or an administrative area whose office takes it;
``route_kind`` 'area' either way: placed by a named area), with an optional free-text
``address`` (private, like the reporter). Cases placed by a household or an area have no point (``geom`` NULL): a
household's location never reaches a map through a case.

Handling kinds: ``standard``; ``immediate`` (即办: answered on the spot; the one call takes
it in and closes it through the workflow's own moves, with a ``resolution``); ``promised``
(承诺: ``promised_at`` is the handling deadline); ``joint`` (联办: ``co_departments`` read and
comment on the case, the category's department leads). ``owner_person_id`` names the
leader who owns the case (包案).
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.orm import Session

from geogrid.access import scopes
from geogrid.areas import lookup
from geogrid.core.errors import GeogridError, Problem
from geogrid.core.jsonenc import dumps_or_none
from geogrid.core.settings import Settings
from geogrid.db.engine import use_generic_plans
from geogrid.db.schema import ADMIN_LAYER
from geogrid.geo import coords
from geogrid.incidents import steps
from geogrid.incidents.categories import cached_categories, check_answers, request_type_keys, resolve_category
from geogrid.incidents.records import (
    incident_values,
    insert_sql,
    new_receipt,
    require_case_scope,
    select_sql,
)
from geogrid.incidents.states import CENTRE, HANDLERS, STEP_IN, TRANSITIONS, calendar
from geogrid.people.assignments import responsible_persons
from geogrid.people.persons import visibility

CHANNELS = {
    "patrol": ("网格员巡查", "Grid worker patrol"),
    "hotline_12345": ("12345热线", "12345 hotline"),
    "wechat": ("微信", "WeChat"),
    "walk_in": ("来访", "Walk-in"),
    "public_web": ("网上公众", "Public web"),
    "department": ("部门交办", "Other department"),
    "lower_level": ("下级上报", "Lower level"),
    "open311": ("Open311", "Open311 client"),
    "mailbox": ("信箱", "Mailbox"),
    "visit": ("走访", "Visit"),
}
HANDLING = {"standard": ("一般", "Standard"), "immediate": ("即办", "Immediate"),
            "promised": ("承诺", "Promised"), "joint": ("联办", "Joint")}
# GeoReport v2 makes the description optional: its clients may send a category and a place only.
DESCRIPTION_OPTIONAL = {"open311"}
MAX_DESCRIPTION = 5000
MAX_MEDIA = 10
CLOCK_SKEW = dt.timedelta(minutes=5)
MAX_ADDRESS = 500
MAX_RESOLUTION = 2000
MAX_CO_DEPARTMENTS = 10
# A promise further out than a year is no handling deadline but a plan.
MAX_PROMISE = dt.timedelta(days=366)


# --------------------------------------------------------------------------- routing


def route_sql(at: dt.datetime | None, lang: str = "zh") -> str:
    """The CTEs (without ``WITH``) that route a point ``:lon``, ``:lat`` of a category's net
    ``:layer`` among the areas in force at ``at``, with the posts of ``:day``, ending in the
    one-row relation ``route``: route_kind, grid_id, authority_id, nearest_grid,
    responsible (the columns an incident stores), grid and authority (code, name, level,
    layer) and summary (what the case's history keeps). No row: outside the jurisdiction.

    The finest grid of the net holding the point takes it (its persons responsible); where
    no grid holds it, a blind spot, the finest administrative area holding it (its office)
    with the nearest grid of the net named. Per level the area whose interior holds the
    point wins over one it only touches, then the lowest code: the same ``primary`` rule
    as :func:`geogrid.areas.lookup.locate`."""
    valid = lookup.valid_clause(at)
    label = "name_en" if lang == "en" else "name_zh"
    return f"""
    pt AS (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS g),
    hit AS (
        SELECT a.id, a.code, a.name, a.level_key, a.layer_key, lv.rank, NOT ST_Contains(b.geom, pt.g) AS on_boundary
        FROM area a JOIN boundary b ON b.area_id = a.id JOIN level lv ON lv.key = a.level_key CROSS JOIN pt
        WHERE {valid} AND a.layer_key IN (:layer, '{ADMIN_LAYER}') AND ST_Covers(b.geom, pt.g)
    ),
    grid AS (SELECT * FROM hit WHERE layer_key = :layer ORDER BY rank DESC, on_boundary, code LIMIT 1),
    office AS (SELECT * FROM hit WHERE layer_key = '{ADMIN_LAYER}' AND NOT EXISTS (SELECT 1 FROM grid)
               ORDER BY rank DESC, on_boundary, code LIMIT 1),
    place AS (SELECT *, true AS is_grid FROM grid UNION ALL SELECT *, false FROM office),
    near AS (
        -- The index finds candidates by distance in degrees; metres decide (a degree of
        -- longitude is shorter than one of latitude away from the equator).
        SELECT c.code, c.name, ST_Distance(c.geom::geography, pt.g::geography) AS m
        FROM (SELECT a.code, a.name, b.geom FROM boundary b JOIN area a ON a.id = b.area_id CROSS JOIN pt
              WHERE NOT EXISTS (SELECT 1 FROM grid) AND a.layer_key = :layer AND {valid}
              ORDER BY b.geom <-> pt.g LIMIT 16) c CROSS JOIN pt
        ORDER BY m, c.code LIMIT 1
    ),
    posts AS (
        SELECT coalesce(jsonb_agg(jsonb_build_object('person_id', p.id, 'name', p.name, 'phone', p.phone,
                                                     'role', s.role_key, 'role_name', r.{label})
                                  ORDER BY r.rank, p.id), '[]') AS persons
        FROM assignment s JOIN person p ON p.id = s.person_id JOIN role r ON r.key = s.role_key
        WHERE s.area_id = (SELECT id FROM place) AND s.period @> CAST(:day AS date) AND r.responsible
    ),
    route AS (
        SELECT CASE WHEN p.is_grid THEN 'grid' ELSE 'blind_spot' END AS route_kind,
               CASE WHEN p.is_grid THEN p.id END AS grid_id, p.id AS authority_id,
               (SELECT jsonb_build_object('code', code, 'name', name, 'distance_m', round(m::numeric, 1)) FROM near)
                   AS nearest_grid,
               posts.persons AS responsible,
               CASE WHEN p.is_grid THEN jsonb_build_object('code', p.code, 'name', p.name, 'level', p.level_key,
                                                           'layer', p.layer_key) END AS grid,
               jsonb_build_object('code', p.code, 'name', p.name, 'level', p.level_key, 'layer', p.layer_key)
                   AS authority,
               jsonb_build_object('kind', CASE WHEN p.is_grid THEN 'grid' ELSE 'blind_spot' END,
                                  'grid', CASE WHEN p.is_grid THEN p.code END, 'authority', p.code,
                                  'nearest_grid', (SELECT jsonb_build_object('code', code, 'name', name, 'distance_m',
                                                                             round(m::numeric, 1)) FROM near))
                   AS summary
        FROM place p CROSS JOIN posts
    )"""


def route(session: Session, lon: float, lat: float, category: dict, *, at: dt.datetime | None,
          day: dt.date, lang: str = "zh") -> dict:
    """Where an incident at (lon, lat) of ``category`` goes (:func:`route_sql`); 422 outside
    the jurisdiction."""
    row = session.execute(text(f"WITH {route_sql(at, lang)} SELECT * FROM route"),
                          {"lon": lon, "lat": lat, "layer": category["layer_key"], "at": at, "day": day}).mappings().first()
    if row is None:
        raise outside(lon, lat)
    return _from_route_row(row)


def outside(lon: float, lat: float) -> GeogridError:
    """The answer for a point no area of the jurisdiction holds."""
    return GeogridError(f"point {lon:.7f}, {lat:.7f} is outside the jurisdiction: no area contains it",
                        problems=[Problem("outside the jurisdiction", field="location", location=(lon, lat))])


def _from_route_row(row) -> dict:
    nearest = row["nearest_grid"]
    if nearest is not None:
        nearest = {**nearest, "distance_m": float(nearest["distance_m"])}
    return {"kind": row["route_kind"], "grid": row["grid"], "authority": row["authority"], "nearest_grid": nearest,
            "grid_id": row["grid_id"], "authority_id": row["authority_id"], "responsible": row["responsible"]}


def route_place(session: Session, clean: dict, *, at: dt.datetime | None, day: dt.date, lang: str = "zh") -> dict:
    """Where a validated case goes (:func:`validate`'s ``clean``): by its point
    (:func:`route`), its household (the household's derived grid when it is on the
    category's net, else the household's point through :func:`route`) or its area code
    (:func:`route_to_area`). The areas in force at ``at``."""
    category = clean["category"]
    if clean["point"]:
        return route(session, *clean["point"], category, at=at, day=day, lang=lang)
    if clean["household"]:
        household = clean["household"]
        grid = area_at(session, at, area_id=household["grid_id"]) if household["grid_id"] else None
        if grid is not None and grid["layer"] == category["layer_key"]:
            return route_to_area(session, grid, category, day=day, lang=lang, kind="grid")
        try:
            return route(session, *household["point"], category, at=at, day=day, lang=lang)
        except GeogridError:  # the message would name the household's point
            raise GeogridError(f"household {household['id']} lies outside the jurisdiction", problems=[
                Problem("outside the jurisdiction", field="household_id")]) from None
    area = area_at(session, at, code=clean["area"])
    if area is None:
        when = f" at {at.isoformat()}" if at else ""
        raise GeogridError(f"unknown area {clean['area']}{when}", problems=[
            Problem(f"no area has the code {clean['area']}{when}", field="area")])
    return route_to_area(session, area, category, day=day, lang=lang)


def area_at(session: Session, at: dt.datetime | None, *, code: str | None = None,
            area_id: int | None = None) -> dict | None:
    """The area with this code (or id) if it had a boundary at ``at`` (now: current):
    id, code, name, level, layer."""
    row = session.execute(text(f"""
        SELECT a.id, a.code, a.name, a.level_key AS level, a.layer_key AS layer
        FROM area a JOIN boundary b ON b.area_id = a.id
        WHERE {"a.code = :code" if code is not None else "a.id = :id"} AND {lookup.valid_clause(at)}
        LIMIT 1
    """), {"code": code, "id": area_id, "at": at}).mappings().first()
    return dict(row) if row else None


def route_to_area(session: Session, area: dict, category: dict, *, day: dt.date, lang: str = "zh",
                  kind: str = "area") -> dict:
    """A case placed in a named area (:func:`area_at`): a grid of the category's net takes
    it like a point in it would (grid and authority, its persons responsible); an
    administrative area takes it at its office (the area is its authority, the persons in
    post there are responsible, no grid). A grid of another net is refused (422).
    ``kind`` is the route kind stored: 'area' (placed by an area code, so the case has no
    point), 'grid' for a household's derived grid."""
    is_grid = area["layer"] == category["layer_key"]
    if not is_grid and area["layer"] != ADMIN_LAYER:
        raise GeogridError(f"area {area['code']} is a grid of the {area['layer']} net; {category['key']} cases go to "
                           f"grids of the {category['layer_key']} net or to an administrative area",
                           problems=[Problem(f"{area['code']} is on another net ({area['layer']})", field="area")])
    posts = responsible_persons(session, [area["id"]], day, lang=lang, public_only=False)
    brief = _brief(area)
    return {"kind": kind, "grid": brief if is_grid else None, "authority": brief,
            "nearest_grid": None, "grid_id": area["id"] if is_grid else None, "authority_id": area["id"],
            "responsible": snapshot(posts.get(area["id"], []))}


def _brief(found: dict) -> dict:
    return {k: found[k] for k in ("code", "name", "level", "layer")}


def snapshot(posts: list[dict]) -> list[dict]:
    """What an incident keeps of the persons responsible when it was routed (internal)."""
    return [{k: p[k] for k in ("person_id", "name", "phone", "role", "role_name")} for p in posts if p["responsible"]]


# --------------------------------------------------------------------------- intake


def validate(session: Session, data: dict, settings: Settings, now: dt.datetime,
             known: dict | None = None, *, public: bool = False) -> tuple[dict, list[Problem]]:
    """Check and normalise one incident (category, channel, its place: a point and its CRS,
    a household or an area code; text limits, times, request type, handling kind, owner);
    the cleaned record and the problems found, nothing raised. A household is named only
    by staff who reach it (``public``: never)."""
    problems: list[Problem] = []
    category = resolve_category(session, data.get("category"), problems, known)
    channel = data.get("channel") or "public_web"
    if channel not in CHANNELS:
        problems.append(Problem(f"unknown channel {channel!r}; known: {', '.join(CHANNELS)}", field="channel"))
    description = (data.get("description") or "").strip()
    if not description and channel not in DESCRIPTION_OPTIONAL:
        problems.append(Problem("description is required", field="description"))
    elif len(description) > MAX_DESCRIPTION:
        problems.append(Problem(f"description has {len(description)} characters; at most {MAX_DESCRIPTION}",
                                field="description"))
    media = data.get("media_urls") or []
    if len(media) > MAX_MEDIA or any(not str(u).startswith(("http://", "https://")) or len(str(u)) > 500 for u in media):
        problems.append(Problem(f"media_urls: at most {MAX_MEDIA} http(s) URLs of 500 characters", field="media_urls"))
    try:
        crs = coords.normalise_crs(data.get("crs") or "wgs84")
    except ValueError as exc:
        problems.append(Problem(str(exc), field="crs"))
        crs = None
    given = _places_given(data)
    point = household = area = None
    if not given:
        problems.append(Problem("lon and lat are required numbers (or, instead of a point, a household_id or an "
                                "area code)", field="location"))
    elif len(given) > 1:
        problems.append(Problem(f"give one place, not {' and '.join(given)}: lon/lat, household_id or area",
                                field="location"))
    elif given == ["point"]:
        point = _checked_point(data.get("lon"), data.get("lat"), crs, settings, problems)
    elif given == ["household_id"]:
        household = _checked_household(session, data.get("household_id"), problems, public=public)
    else:
        area = str(data.get("area")).strip()
        if not area.isdigit() or len(area) > 32:
            problems.append(Problem(f"area {area[:40]!r} is not an area code", field="area"))
    address = (data.get("address") or "").strip() or None
    if address and len(address) > MAX_ADDRESS:
        problems.append(Problem(f"address has {len(address)} characters; at most {MAX_ADDRESS}", field="address"))
    request_type = data.get("request_type") or None
    if request_type is not None:
        known_types = request_type_keys(session)
        if request_type not in known_types:
            problems.append(Problem(f"unknown request_type {request_type!r}; known: {', '.join(known_types)}",
                                    field="request_type"))
    occurred = data.get("occurred_at") or now
    if isinstance(occurred, str):
        try:
            occurred = dt.datetime.fromisoformat(occurred)
        except ValueError:
            problems.append(Problem(f"occurred_at {occurred!r} is not an ISO date-time", field="occurred_at"))
            occurred = now
    if occurred.tzinfo is None:
        occurred = occurred.replace(tzinfo=ZoneInfo(settings.timezone))
    if occurred > now + CLOCK_SKEW:
        problems.append(Problem(f"occurred_at {occurred.isoformat()} is in the future", field="occurred_at"))
    answers = check_answers(category, data.get("attributes"), problems) if category else {}
    handling = _checked_handling(data, category, settings, now, problems)
    if public and (handling["handling"] != "standard" or data.get("owner_person_id") is not None):
        problems.append(Problem("a public report is taken in as a standard case", field="handling"))
    owner = data.get("owner_person_id")
    if owner is not None:
        owner = checked_owner(session, owner, problems)
    original = ({"lon": data.get("lon"), "lat": data.get("lat"), "crs": data.get("crs") or "wgs84"} if point or not given
                else {"household_id": data.get("household_id")} if household else {"area": area})
    clean = {"category": category, "channel": channel, "description": description, "media_urls": [str(u) for u in media],
             "attributes": answers,
             "crs": crs, "original": original, "point": point, "household": household, "area": area,
             "address": address, "request_type": request_type, "owner_person_id": owner, **handling,
             "occurred_at": occurred, "reporter": data.get("reporter") or None,
             "idempotency_key": data.get("idempotency_key")}
    return clean, problems


def _places_given(data: dict) -> list[str]:
    """Which of the three ways to place a case ``data`` uses (a half point counts as a point)."""
    return [name for name, present in (
        ("point", data.get("lon") is not None or data.get("lat") is not None),
        ("household_id", data.get("household_id") is not None),
        ("area", data.get("area") not in (None, ""))) if present]


def _checked_point(lon, lat, crs: str | None, settings: Settings, problems: list[Problem]) -> tuple[float, float] | None:
    """The point in WGS84, rounded to 7 decimals, or None with the problems found."""
    x0, y0, x1, y1 = settings.extent
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in (lon, lat)):
        problems.append(Problem("lon and lat are required numbers", field="location"))
        return None
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        hint = " (lat and lon look swapped)" if x0 <= lat <= x1 and y0 <= lon <= y1 else ""
        problems.append(Problem(f"lon {lon}, lat {lat} out of range (lon -180..180, lat -90..90){hint}",
                                field="location"))
        return None
    if not crs:
        return None
    x, y = coords.to_wgs84([lon], [lat], crs)
    point = (round(float(x[0]), 7), round(float(y[0]), 7))
    if not (x0 <= point[0] <= x1 and y0 <= point[1] <= y1):
        hint = " (lat and lon look swapped)" if x0 <= lat <= x1 and y0 <= lon <= y1 else ""
        problems.append(Problem(f"outside the service extent {settings.extent}{hint}", field="location",
                                location=point))
        return None
    return point


# Who may tie a case to a household: staff with an area in their scope (a department's
# grant reaches its cases, not the register).
HOUSEHOLD_ROLES = CENTRE + ("grid_worker",)


def _checked_household(session: Session, household_id, problems: list[Problem], *, public: bool) -> dict | None:
    """The household a case is tied to (id, derived grid, point), checked against the
    caller's scope before anything about it is revealed; None with a problem otherwise.
    Unknown and out-of-scope households get the same answer (422: it is named in the body)."""
    if public:
        problems.append(Problem("a public report cannot name a household: give lon/lat or an area code",
                                field="household_id"))
        return None
    if not isinstance(household_id, int) or isinstance(household_id, bool):
        problems.append(Problem(f"household_id {household_id!r} is not a number", field="household_id"))
        return None
    row = session.execute(text("""
        SELECT h.id, h.grid_id, ST_X(h.geom) AS lon, ST_Y(h.geom) AS lat, h.retired_at,
               CASE WHEN h.grid_id IS NOT NULL THEN ARRAY[h.grid_id] ELSE ARRAY(
                   SELECT b.area_id FROM boundary b JOIN area a ON a.id = b.area_id
                   WHERE a.layer_key = :admin AND upper_inf(b.valid) AND ST_Covers(b.geom, h.geom)) END AS places
        FROM household h WHERE h.id = :id
    """), {"id": household_id, "admin": ADMIN_LAYER}).mappings().first()
    if row is None or not scopes.in_scope(session, HOUSEHOLD_ROLES, row["places"]):
        seen_all = scopes.sees_everything(scopes.principal_of(session), HOUSEHOLD_ROLES)
        problems.append(Problem(f"household {household_id} does not exist" if seen_all and row is None
                                else f"household {household_id} is outside your scope or does not exist",
                                field="household_id"))
        return None
    if row["retired_at"] is not None:
        problems.append(Problem(f"household {household_id} has left the register (retired)", field="household_id"))
        return None
    return {"id": row["id"], "grid_id": row["grid_id"], "point": (row["lon"], row["lat"])}


def _checked_handling(data: dict, category: dict | None, settings: Settings, now: dt.datetime,
                      problems: list[Problem]) -> dict:
    """The handling kind and what it needs: 即办 a resolution, 承诺 a promised date in the
    future (within a year), 联办 the co-handling departments (not the lead one). A field
    of another kind is refused rather than ignored."""
    handling = data.get("handling") or "standard"
    resolution = (data.get("resolution") or "").strip() or None
    promised, co = data.get("promised_at"), data.get("co_departments")
    out = {"handling": handling, "resolution": resolution, "promised_at": None, "co_departments": []}
    if handling not in HANDLING:
        problems.append(Problem(f"unknown handling {handling!r}; known: {', '.join(HANDLING)}", field="handling"))
        return out
    for field, value, kind in (("resolution", resolution, "immediate"), ("promised_at", promised, "promised"),
                               ("co_departments", co, "joint")):
        if value not in (None, "", []) and handling != kind:
            problems.append(Problem(f"{field} belongs to handling {kind!r}, not {handling!r}", field=field))
    if handling == "immediate":
        if not resolution:
            problems.append(Problem("an immediate (即办) request needs the resolution given on the spot",
                                    field="resolution"))
        elif len(resolution) > MAX_RESOLUTION:
            problems.append(Problem(f"resolution has {len(resolution)} characters; at most {MAX_RESOLUTION}",
                                    field="resolution"))
    elif handling == "promised":
        out["promised_at"] = _checked_promise(promised, settings, now, problems)
    elif handling == "joint":
        names = [str(d).strip() for d in co] if isinstance(co, list) else []
        names = list(dict.fromkeys(n for n in names if n))
        lead = category["department"] if category else None
        if not names:
            problems.append(Problem("a joint (联办) case needs co_departments: a list of department names",
                                    field="co_departments"))
        elif len(names) > MAX_CO_DEPARTMENTS or any(len(n) > 100 for n in names):
            problems.append(Problem(f"co_departments: at most {MAX_CO_DEPARTMENTS} names of 100 characters",
                                    field="co_departments"))
        elif lead in names:
            problems.append(Problem(f"{lead} leads this category's cases: it is no co-department",
                                    field="co_departments"))
        out["co_departments"] = names
    return out


def _checked_promise(value, settings: Settings, now: dt.datetime, problems: list[Problem]) -> dt.datetime | None:
    """A promised date-time (a date alone: the end of that working day), later than now and
    at most a year ahead."""
    if value in (None, ""):
        problems.append(Problem("a promised (承诺) case needs promised_at, an ISO date or date-time",
                                field="promised_at"))
        return None
    tz = ZoneInfo(settings.timezone)
    try:
        if isinstance(value, dt.datetime):
            promised = value
        elif isinstance(value, dt.date) or (isinstance(value, str) and len(value) == 10):
            day = value if isinstance(value, dt.date) else dt.date.fromisoformat(value)
            promised = dt.datetime.combine(day, settings.work_day_end)
        else:
            promised = dt.datetime.fromisoformat(str(value))
    except ValueError:
        problems.append(Problem(f"promised_at {value!r} is not an ISO date or date-time", field="promised_at"))
        return None
    if promised.tzinfo is None:
        promised = promised.replace(tzinfo=tz)
    if promised <= now:
        problems.append(Problem(f"promised_at {promised.isoformat()} is not in the future", field="promised_at"))
    elif promised > now + MAX_PROMISE:
        problems.append(Problem(f"promised_at {promised.isoformat()} is more than {MAX_PROMISE.days} days ahead",
                                field="promised_at"))
    return promised


def checked_owner(session: Session, person_id, problems: list[Problem]) -> int | None:
    """The leader who owns the case (包案): a person the caller may see (unknown and hidden
    persons answer alike); None with a problem added to ``problems`` otherwise."""
    if not isinstance(person_id, int) or isinstance(person_id, bool):
        problems.append(Problem(f"owner_person_id {person_id!r} is not a number", field="owner_person_id"))
        return None
    visible, _, params = visibility(session)
    seen = session.execute(text(f"SELECT {visible} FROM person p WHERE p.id = :id"), {**params, "id": person_id}).scalar()
    if not seen:
        problems.append(Problem(f"person {person_id} is outside your scope or does not exist", field="owner_person_id"))
        return None
    return person_id


def intake(session: Session, data: dict, settings: Settings, *, lang: str = "zh", public: bool = False,
           at: dt.datetime | None = None) -> dict:
    """Take in one incident: validate, convert its coordinates, route it, store it with its
    first time limit. Nothing is stored when anything is wrong.

    Idempotency keys belong to their channel and account (:func:`idempotency_scope`): a
    key used by one reporter never blocks another. A duplicate names the first receipt
    only to an account (the same one, since the key is looked up in its scope), never to
    the ``public``, who share one anonymous scope. Anyone may report anywhere as the
    public (``public``, a channel of its own); staff take in cases only where they may act
    on them (the routed grid or authority in their reach). ``at`` (replays and tests) is
    when it was received; default now.

    A case placed by a point is checked in Python against the cached reference data, then
    routed, checked against the caller's reach, stored with its first event and step, and
    read back in ONE statement (:func:`_store`): the unique idempotency key decides
    duplicates (``ON CONFLICT DO NOTHING``), so concurrent retries store it once. Its
    assessment facts follow (:func:`geogrid.incidents.steps.catch_up`)."""
    now = at or dt.datetime.now(dt.UTC)
    clean, problems = validate(session, data, settings, now, cached_categories(session), public=public)
    key = clean["idempotency_key"]
    key_scope = idempotency_scope(session, clean["channel"])
    if problems:
        if key:  # a retry of a stored case is a duplicate, whatever else is wrong with it
            _refuse_duplicate(session, key_scope, key, public)
        raise GeogridError("incident rejected; nothing was stored", problems=problems)
    tz = ZoneInfo(settings.timezone)
    occurred = clean["occurred_at"]
    day = occurred.astimezone(tz).date()
    category = clean["category"]
    params = {"layer": category["layer_key"], "at": occurred, "day": day}
    if clean["point"]:
        routing = route_sql(occurred, lang)
        params.update(lon=clean["point"][0], lat=clean["point"][1])
        where = None
    else:  # a household or an area code: looked up first (staff only, a few a minute)
        where = route_place(session, clean, at=occurred, day=day, lang=lang)
        routing = """route AS (SELECT CAST(:r_kind AS varchar) AS route_kind, CAST(:r_grid_id AS int) AS grid_id,
                                      CAST(:r_authority_id AS int) AS authority_id,
                                      CAST(:r_nearest AS jsonb) AS nearest_grid, CAST(:r_responsible AS jsonb) AS responsible,
                                      CAST(:r_grid AS jsonb) AS grid, CAST(:r_authority AS jsonb) AS authority,
                                      CAST(:r_summary AS jsonb) AS summary)"""
        params.update(r_kind=where["kind"], r_grid_id=where["grid_id"], r_authority_id=where["authority_id"],
                      r_nearest=dumps_or_none(where["nearest_grid"]), r_responsible=dumps_or_none(where["responsible"]),
                      r_grid=dumps_or_none(where["grid"]), r_authority=dumps_or_none(where["authority"]),
                      r_summary=dumps_or_none(route_summary(where)))
    work = calendar(settings)
    due = work.add(now, *category["time_limits"]["accept"])
    values = incident_values(clean, {"kind": None, "grid_id": None, "authority_id": None, "nearest_grid": None,
                                     "responsible": None}, receipt=new_receipt(now, tz), reported_at=now,
                             key_scope=key_scope if key else None, state="reported", due=due)
    row = _store(session, routing, {**values, **params}, category, public=public, at=now)
    if row["route_kind_"] is None:
        raise outside(*clean["point"])
    place = {"grid": row["grid_"] and row["grid_"]["code"], "authority": row["authority_"]["code"],
             "department": category["department"]}
    if not row["allowed_"]:
        raise GeogridError(f"{scopes.actor(session)} may not take in an incident at {place['authority']}: "
                           "outside their scope", status=403)
    if row["id"] is None:  # the key was taken, by an earlier request or one committed meanwhile
        _refuse_duplicate(session, key_scope, key, public)
        raise GeogridError(f"duplicate submission: idempotency key {key!r} was just used", status=409)
    case = {k: v for k, v in row.items() if not k.endswith("_")}
    if clean["handling"] == "immediate":
        # Answered on the spot means the taker runs the whole case: a centre role there.
        require_case_scope(session, {**place, "receipt": case["receipt"]}, CENTRE, "close at once (即办)")
        return close_at_once(session, case["id"], clean["resolution"], settings, at=now)
    case["allowed"] = list(TRANSITIONS[case["state"]])
    return case


def _store(session: Session, routing: str, params: dict, category: dict, *, public: bool,
           at: dt.datetime) -> dict:
    """Route (``routing``: CTEs ending in ``route``, :func:`route_sql`), check the caller's
    reach, insert the case unless its idempotency key is taken, write its first event
    ('report'), open its first step, mark its facts behind, and read it back: one
    statement, one round trip. The row has the case's columns (:func:`select_sql`; ``id``
    NULL when nothing was inserted), and the route's ``route_kind_`` (NULL: outside the
    jurisdiction), ``grid_`` and ``authority_`` (code, name, level, layer) and ``allowed_``
    (in the caller's reach)."""
    reach, reach_params = _reach_sql(session, category, public=public)
    # Planning this statement costs PostgreSQL twice what running it does, and its
    # parameters never change the best plan: the generic plan of the prepared statement.
    use_generic_plans(session)
    row = session.execute(_statement(f"""
        WITH {routing},
        checked AS (SELECT route.*, {reach} AS allowed FROM route),
        ins AS (
            {insert_sql("checked")} WHERE checked.allowed
            ON CONFLICT (idempotency_scope, idempotency_key) DO NOTHING
            RETURNING *
        ),
        ev AS (
            INSERT INTO incident_event (incident_id, at, actor, action, from_state, to_state, data)
            SELECT ins.id, :event_at, :actor, 'report', NULL, 'reported', jsonb_build_object('route', checked.summary)
            FROM ins CROSS JOIN checked
        ),
        step AS (
            INSERT INTO incident_step (incident_id, step, authority_id, started_at, due_at)
            SELECT ins.id, :first_step, ins.authority_id, :event_at, ins.due_at FROM ins
        ),
        behind AS (INSERT INTO case_fact_stale (incident_id) SELECT id FROM ins),
        answer AS ({select_sql("ins")})
        SELECT answer.*, checked.route_kind AS route_kind_, checked.grid AS grid_, checked.authority AS authority_,
               coalesce(checked.allowed, false) AS allowed_
        FROM (SELECT 1) one LEFT JOIN checked ON true LEFT JOIN answer ON true
    """), {**params, **reach_params, "event_at": at, "actor": scopes.actor(session),
           "first_step": STEP_IN["reported"]}).mappings().one()
    if row["id"] is not None:
        steps.marked(session)  # its facts are behind until a catch-up
    return dict(row)


# The few distinct intake statements, each parsed once (text() parses its bind parameters
# with a regular expression every time it is built: a third of the request's own CPU).
_statement = functools.lru_cache(maxsize=64)(text)


def _reach_sql(session: Session, category: dict, *, public: bool) -> tuple[str, dict]:
    """A SQL condition on ``route`` true when the caller may take a case in there
    (:func:`geogrid.incidents.records.in_reach` for a new case: its grid or authority in
    the subtree of a grant of a centre or handler role, or a department handler of the
    category's department); anyone reporting as the public may report anywhere."""
    if public:
        return "TRUE", {}
    roles = CENTRE + HANDLERS
    p = scopes.principal_of(session)
    if p is not None and any(g.role == "department_handler" and g.department == category["department"]
                             for g in p.grants if g.role in roles):
        return "TRUE", {}
    area_roles = tuple(r for r in roles if r != "department_handler")
    grid, params = scopes.scope_filter(session, area_roles, "route.grid_id", name="reach_roots")
    authority, _ = scopes.scope_filter(session, area_roles, "route.authority_id", name="reach_roots")
    return f"(({grid}) OR ({authority}))", params


def _refuse_duplicate(session: Session, key_scope: str, key: str, public: bool) -> None:
    """409 when ``key`` was used in ``key_scope`` before (naming the first receipt to an
    account, never to the public); nothing when it was not."""
    existing = session.execute(text("SELECT receipt FROM incident WHERE idempotency_scope = :s "
                                    "AND idempotency_key = :k"), {"s": key_scope, "k": key}).scalar()
    if existing and (public or key_scope.endswith(":anonymous")):
        raise GeogridError("duplicate submission: this idempotency key was used before", status=409)
    if existing:
        raise GeogridError(f"duplicate submission: idempotency key {key!r} was used for {existing}", status=409,
                           extra={"receipt": existing})


def close_at_once(session: Session, incident_id: int, resolution: str, settings: Settings, *,
                  at: dt.datetime) -> dict:
    """即办: take a request just taken in through every move of the workflow to closed (the
    history, steps and facts are those of any closed case), the resolution given on the
    spot as the note of its handling. The caller must hold a centre role where it lies
    (checked by :func:`intake`); each move is made with that role."""
    # The workflow imports this module (routing, validation): imported here, not above.
    from geogrid.incidents.workflow import transition

    for to in ON_THE_SPOT[:-1]:
        transition(session, incident_id, to, settings, note=resolution if to == "handled" else "即办", at=at,
                   roles=CENTRE)
    return transition(session, incident_id, ON_THE_SPOT[-1], settings, note="即办", at=at, roles=CENTRE)


# The moves of a case answered on the spot (即办), in order.
ON_THE_SPOT = ("accepted", "filed", "dispatched", "in_progress", "handled", "verified", "closed")


def idempotency_scope(session: Session, channel: str) -> str:
    """The namespace of a caller's idempotency keys: ``channel:account`` (``anonymous``
    without an account, ``cli:USER`` on the command line)."""
    p = scopes.principal_of(session)
    return f"{channel}:{p.username if p is not None and p.authenticated else 'anonymous' if p else scopes.actor(session)}"


def route_summary(where: dict) -> dict:
    """The part of a route stored in the case's history: kind, grid, authority, nearest grid."""
    return {"kind": where["kind"], "grid": where["grid"] and where["grid"]["code"],
            "authority": where["authority"]["code"], "nearest_grid": where["nearest_grid"]}
