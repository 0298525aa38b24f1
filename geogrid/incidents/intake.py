"""Taking an incident in: validation, routing to the grid and person responsible, and the
stored receipt.
"""

from __future__ import annotations

import datetime as dt
import math
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from geogrid.access import scopes
from geogrid.areas import lookup
from geogrid.core.errors import GeogridError, Problem
from geogrid.core.settings import Settings
from geogrid.db.schema import ADMIN_LAYER
from geogrid.geo import coords
from geogrid.incidents.categories import check_answers, resolve_category
from geogrid.incidents.records import (
    event,
    get_incident,
    in_reach,
    incident_values,
    insert_incident,
    new_receipt,
)
from geogrid.incidents.states import CENTRE, HANDLERS, calendar

CHANNELS = {
    "patrol": ("网格员巡查", "Grid worker patrol"),
    "hotline_12345": ("12345热线", "12345 hotline"),
    "wechat": ("微信", "WeChat"),
    "walk_in": ("来访", "Walk-in"),
    "public_web": ("网上公众", "Public web"),
    "department": ("部门交办", "Other department"),
    "lower_level": ("下级上报", "Lower level"),
    "open311": ("Open311", "Open311 client"),
}
# GeoReport v2 makes the description optional: its clients may send a category and a place only.
DESCRIPTION_OPTIONAL = {"open311"}
MAX_DESCRIPTION = 5000
MAX_MEDIA = 10
CLOCK_SKEW = dt.timedelta(minutes=5)


# --------------------------------------------------------------------------- routing


def route(session: Session, lon: float, lat: float, category: dict, *, at: dt.datetime | None,
          day: dt.date, lang: str = "zh") -> dict:
    """Where an incident at (lon, lat) of ``category`` goes (see the module docstring)."""
    found = lookup.locate(session, lon, lat, at=at, day=day, lang=lang, internal=True)
    layer = category["layer_key"]
    grids = [r for r in found if r["primary"] and r["layer"] == layer]
    admin = [r for r in found if r["primary"] and r["layer"] == ADMIN_LAYER]
    if grids:
        grid = grids[-1]  # locate orders by level rank: the last is the finest
        return {"kind": "grid", "grid": _brief(grid), "authority": _brief(grid), "nearest_grid": None,
                "grid_id": grid["id"], "authority_id": grid["id"], "responsible": snapshot(grid["persons"])}
    if not admin:
        raise GeogridError(f"point {lon:.7f}, {lat:.7f} is outside the jurisdiction: no area contains it",
                           problems=[Problem("outside the jurisdiction", field="location", location=(lon, lat))])
    authority = admin[-1]
    # The index finds candidates by distance in degrees; metres decide (a degree of
    # longitude is shorter than one of latitude away from the equator).
    nearest = session.execute(text("""
        SELECT code, name, ST_Distance(geom::geography, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography) AS m
        FROM (SELECT a.code, a.name, b.geom FROM boundary b JOIN area a ON a.id = b.area_id
              WHERE a.layer_key = :layer AND """ + lookup.valid_clause(at) + """
              ORDER BY b.geom <-> ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) LIMIT 16) candidates
        ORDER BY m, code LIMIT 1
    """), {"lon": lon, "lat": lat, "layer": layer, "at": at}).first()
    return {"kind": "blind_spot", "grid": None, "authority": _brief(authority), "grid_id": None,
            "authority_id": authority["id"],
            "nearest_grid": {"code": nearest.code, "name": nearest.name, "distance_m": round(nearest.m, 1)}
            if nearest else None,
            "responsible": snapshot(authority["persons"])}


def _brief(found: dict) -> dict:
    return {k: found[k] for k in ("code", "name", "level", "layer")}


def snapshot(posts: list[dict]) -> list[dict]:
    """What an incident keeps of the persons responsible when it was routed (internal)."""
    return [{k: p[k] for k in ("person_id", "name", "phone", "role", "role_name")} for p in posts if p["responsible"]]


# --------------------------------------------------------------------------- intake


def validate(session: Session, data: dict, settings: Settings, now: dt.datetime,
              known: dict | None = None) -> tuple[dict, list[Problem]]:
    """Check and normalise one incident (category, channel, point and its CRS, text
    limits, times); the cleaned record and the problems found, nothing raised."""
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
    lon, lat = data.get("lon"), data.get("lat")
    point = None
    x0, y0, x1, y1 = settings.extent
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in (lon, lat)):
        problems.append(Problem("lon and lat are required numbers", field="location"))
    elif not (-180 <= lon <= 180 and -90 <= lat <= 90):
        hint = " (lat and lon look swapped)" if x0 <= lat <= x1 and y0 <= lon <= y1 else ""
        problems.append(Problem(f"lon {lon}, lat {lat} out of range (lon -180..180, lat -90..90){hint}",
                                field="location"))
    elif crs:
        x, y = coords.to_wgs84([lon], [lat], crs)
        point = (round(float(x[0]), 7), round(float(y[0]), 7))
        if not (x0 <= point[0] <= x1 and y0 <= point[1] <= y1):
            hint = " (lat and lon look swapped)" if x0 <= lat <= x1 and y0 <= lon <= y1 else ""
            problems.append(Problem(f"outside the service extent {settings.extent}{hint}", field="location",
                                    location=point))
            point = None
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
    clean = {"category": category, "channel": channel, "description": description, "media_urls": [str(u) for u in media],
             "attributes": answers,
             "crs": crs, "original": {"lon": lon, "lat": lat, "crs": data.get("crs") or "wgs84"}, "point": point,
             "occurred_at": occurred, "reporter": data.get("reporter") or None,
             "idempotency_key": data.get("idempotency_key")}
    return clean, problems


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
    when it was received; default now."""
    now = at or dt.datetime.now(dt.UTC)
    clean, problems = validate(session, data, settings, now)
    key = clean["idempotency_key"]
    key_scope = idempotency_scope(session, clean["channel"])
    if key:
        existing = session.execute(text("SELECT receipt FROM incident WHERE idempotency_scope = :s "
                                        "AND idempotency_key = :k"), {"s": key_scope, "k": key}).scalar()
        if existing and (public or key_scope.endswith(":anonymous")):
            raise GeogridError("duplicate submission: this idempotency key was used before", status=409)
        if existing:
            raise GeogridError(f"duplicate submission: idempotency key {key!r} was used for {existing}", status=409,
                               extra={"receipt": existing})
    if problems:
        raise GeogridError("incident rejected; nothing was stored", problems=problems)
    tz = ZoneInfo(settings.timezone)
    occurred = clean["occurred_at"]
    where = route(session, *clean["point"], clean["category"], at=occurred, day=occurred.astimezone(tz).date(), lang=lang)
    if not public:
        place = {"grid": where["grid"] and where["grid"]["code"], "authority": where["authority"]["code"],
                 "department": clean["category"]["department"]}
        if not in_reach(session, place, CENTRE + HANDLERS):
            raise GeogridError(f"{scopes.actor(session)} may not take in an incident at {place['authority']}: "
                               "outside their scope", status=403)
    work = calendar(settings)
    due = work.add(now, *clean["category"]["time_limits"]["accept"])
    values = incident_values(clean, where, receipt=new_receipt(now, tz), reported_at=now,
                             key_scope=key_scope if key else None, state="reported", due=due)
    try:
        with session.begin_nested():
            incident_id = insert_incident(session, values)
    except IntegrityError:
        raise GeogridError(f"duplicate submission: idempotency key {key!r} was just used", status=409) from None
    event(session, incident_id, "report", None, "reported", data={"route": route_summary(where)}, work=work, at=now)
    return get_incident(session, incident_id, check=False)


def idempotency_scope(session: Session, channel: str) -> str:
    """The namespace of a caller's idempotency keys: ``channel:account`` (``anonymous``
    without an account, ``cli:USER`` on the command line)."""
    p = scopes.principal_of(session)
    return f"{channel}:{p.username if p is not None and p.authenticated else 'anonymous' if p else scopes.actor(session)}"


def route_summary(where: dict) -> dict:
    """The part of a route stored in the case's history: kind, grid, authority, nearest grid."""
    return {"kind": where["kind"], "grid": where["grid"] and where["grid"]["code"],
            "authority": where["authority"]["code"], "nearest_grid": where["nearest_grid"]}
