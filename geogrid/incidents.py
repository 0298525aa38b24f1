"""Incidents: intake, routing to the grid and person responsible, the case workflow with
its time limits, escalation, and bulk import of historical incidents.

Routing asks :func:`geogrid.areas.locate`, so an incident goes exactly where
``GET /api/locate`` says: the category's net, the finest level, and on a shared boundary
the primary grid (the lowest code). A point in no grid of that net but inside the
jurisdiction is a blind-spot incident: it goes to the finest administrative area holding
it (属地兜底) and names the nearest grid and its distance. A point outside every area is
refused (422). The route is fixed when the incident is taken in; redrawing grids later
does not move it, moving the incident's point re-routes it, and both are in its history.

All SQL touching incidents lives in this module.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import secrets
from zoneinfo import ZoneInfo

import numpy as np
import shapely
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from geogrid import access, areas, coords, people
from geogrid.errors import GeogridError, Problem, conflict, not_found
from geogrid.models import ADMIN_LAYER
from geogrid.settings import Settings
from geogrid.workcal import WorkCalendar

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
STATES = {
    "reported": ("上报", "Reported"), "accepted": ("受理", "Accepted"), "filed": ("立案", "Filed"),
    "dispatched": ("派遣", "Dispatched"), "in_progress": ("处置", "In progress"), "handled": ("反馈", "Handled"),
    "verified": ("核查", "Verified"), "closed": ("结案", "Closed"), "void": ("作废", "Void"),
    "parked": ("挂账", "Parked"),
}
TRANSITIONS = {
    "reported": ("accepted", "void"),
    "accepted": ("filed", "void"),
    "filed": ("dispatched", "void"),
    "dispatched": ("in_progress", "parked"),
    "in_progress": ("handled", "parked"),
    "handled": ("verified", "in_progress"),
    "verified": ("closed",),
    "parked": ("in_progress", "void"),
    "closed": (),
    "void": (),
}
TERMINAL = ("closed", "void")
# Who may move a case into each state: the centre (inspectors, planners) runs the case;
# the grid worker or the department handles it.
CENTRE = ("inspector", "planner")
HANDLERS = ("grid_worker", "department_handler", "inspector")
MAY_ENTER = {"accepted": CENTRE, "filed": CENTRE, "dispatched": CENTRE, "void": CENTRE, "parked": CENTRE,
             "in_progress": HANDLERS, "handled": HANDLERS, "verified": CENTRE, "closed": CENTRE}
# The time limit that starts when a case enters a state (the step it must finish next).
STEP_OF = {"reported": "accept", "accepted": "dispatch", "dispatched": "handle", "handled": "verify"}
# The step a case is in, whichever state of it: what an imported open case is timed on.
STEP_IN = {"reported": "accept", "accepted": "dispatch", "filed": "dispatch", "dispatched": "handle",
           "in_progress": "handle", "handled": "verify", "verified": "verify"}
MAX_DESCRIPTION = 5000
MAX_MEDIA = 10
CLOCK_SKEW = dt.timedelta(minutes=5)


def calendar(settings: Settings) -> WorkCalendar:
    return WorkCalendar(holidays=settings.holidays, workdays=settings.extra_workdays,
                        day_start=settings.work_day_start, day_end=settings.work_day_end,
                        tz=ZoneInfo(settings.timezone))


def categories(session: Session) -> dict[str, dict]:
    rows = session.execute(text("SELECT * FROM category ORDER BY group_key, key")).mappings()
    return {r["key"]: dict(r) for r in rows}


def _category(session: Session, key: str | None, problems: list[Problem], known: dict | None = None) -> dict | None:
    known = known if known is not None else categories(session)
    if key not in known:
        problems.append(Problem(f"unknown category {key!r}; known: {', '.join(known)}", field="category"))
        return None
    return known[key]


# --------------------------------------------------------------------------- routing


def route(session: Session, lon: float, lat: float, category: dict, *, at: dt.datetime | None,
          day: dt.date, lang: str = "zh") -> dict:
    """Where an incident at (lon, lat) of ``category`` goes (see the module docstring)."""
    found = areas.locate(session, lon, lat, at=at, day=day, lang=lang, internal=True)
    layer = category["layer_key"]
    grids = [r for r in found if r["primary"] and r["layer"] == layer]
    admin = [r for r in found if r["primary"] and r["layer"] == ADMIN_LAYER]
    if grids:
        grid = grids[-1]  # locate orders by level rank: the last is the finest
        return {"kind": "grid", "grid": _brief(grid), "authority": _brief(grid), "nearest_grid": None,
                "grid_id": grid["id"], "authority_id": grid["id"], "responsible": _snapshot(grid["persons"])}
    if not admin:
        raise GeogridError(f"point {lon:.7f}, {lat:.7f} is outside the jurisdiction: no area contains it",
                           problems=[Problem("outside the jurisdiction", field="location", location=(lon, lat))])
    authority = admin[-1]
    # The index finds candidates by distance in degrees; metres decide (a degree of
    # longitude is shorter than one of latitude away from the equator).
    nearest = session.execute(text("""
        SELECT code, name, ST_Distance(geom::geography, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography) AS m
        FROM (SELECT a.code, a.name, b.geom FROM boundary b JOIN area a ON a.id = b.area_id
              WHERE a.layer_key = :layer AND """ + areas._valid_clause(at) + """
              ORDER BY b.geom <-> ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) LIMIT 16) candidates
        ORDER BY m, code LIMIT 1
    """), {"lon": lon, "lat": lat, "layer": layer, "at": at}).first()
    return {"kind": "blind_spot", "grid": None, "authority": _brief(authority), "grid_id": None,
            "authority_id": authority["id"],
            "nearest_grid": {"code": nearest.code, "name": nearest.name, "distance_m": round(nearest.m, 1)}
            if nearest else None,
            "responsible": _snapshot(authority["persons"])}


def _brief(found: dict) -> dict:
    return {k: found[k] for k in ("code", "name", "level", "layer")}


def _ids(session: Session, codes: list[str]) -> dict[str, int]:
    return dict(session.execute(text("SELECT code, id FROM area WHERE code = ANY(:c)"), {"c": codes}).all())


def _snapshot(posts: list[dict]) -> list[dict]:
    """What an incident keeps of the persons responsible when it was routed (internal)."""
    return [{k: p[k] for k in ("person_id", "name", "phone", "role", "role_name")} for p in posts if p["responsible"]]


# --------------------------------------------------------------------------- intake


def _validate(session: Session, data: dict, settings: Settings, now: dt.datetime,
              known: dict | None = None) -> tuple[dict, list[Problem]]:
    problems: list[Problem] = []
    category = _category(session, data.get("category"), problems, known)
    channel = data.get("channel") or "public_web"
    if channel not in CHANNELS:
        problems.append(Problem(f"unknown channel {channel!r}; known: {', '.join(CHANNELS)}", field="channel"))
    description = (data.get("description") or "").strip()
    if not description:
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
    clean = {"category": category, "channel": channel, "description": description, "media_urls": [str(u) for u in media],
             "crs": crs, "original": {"lon": lon, "lat": lat, "crs": data.get("crs") or "wgs84"}, "point": point,
             "occurred_at": occurred, "reporter": data.get("reporter") or None,
             "idempotency_key": data.get("idempotency_key")}
    return clean, problems


def intake(session: Session, data: dict, settings: Settings, *, lang: str = "zh", public: bool = False) -> dict:
    """Take in one incident: validate, convert its coordinates, route it, store it with its
    first time limit. Nothing is stored when anything is wrong.

    Idempotency keys belong to their channel and account (:func:`idempotency_scope`): a
    key used by one reporter never blocks another. A duplicate names the first receipt
    only to an account (the same one, since the key is looked up in its scope), never to
    the ``public``, who share one anonymous scope. Anyone may report anywhere as the
    public (``public``, a channel of its own); staff take in cases only where they may act
    on them (the routed grid or authority in their reach)."""
    now = dt.datetime.now(dt.UTC)
    clean, problems = _validate(session, data, settings, now)
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
        if not _in_reach(session, place, CENTRE + HANDLERS):
            raise GeogridError(f"{access.actor(session)} may not take in an incident at {place['authority']}: "
                               "outside their scope", status=403)
    receipt = f"GG{now.astimezone(tz):%Y%m%d}-{secrets.token_hex(5).upper()}"
    due = calendar(settings).add(now, *clean["category"]["time_limits"]["accept"])
    try:
        with session.begin_nested():
            incident_id = session.execute(text("""
                INSERT INTO incident (receipt, category_key, channel, description, occurred_at, reported_at, media_urls,
                    reporter, idempotency_key, idempotency_scope, geom, original, route_kind, grid_id, authority_id,
                    nearest_grid, responsible, department, due_at)
                VALUES (:receipt, :category, :channel, :description, :occurred, :now, CAST(:media AS jsonb),
                    CAST(:reporter AS jsonb), :key, :key_scope, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), CAST(:original AS jsonb),
                    :kind, :grid_id, :authority_id, CAST(:nearest AS jsonb), CAST(:responsible AS jsonb), :department, :due)
                RETURNING id
            """), {"receipt": receipt, "category": clean["category"]["key"], "channel": clean["channel"],
                   "description": clean["description"], "occurred": occurred, "now": now,
                   "media": json.dumps(clean["media_urls"]), "reporter": _json(clean["reporter"]), "key": key,
                   "key_scope": key_scope if key else None, "lon": clean["point"][0], "lat": clean["point"][1], "original": _json(clean["original"]),
                   "kind": where["kind"], "grid_id": where["grid_id"], "authority_id": where["authority_id"],
                   "nearest": _json(where["nearest_grid"]), "responsible": _json(where["responsible"]),
                   "department": clean["category"]["department"], "due": due}).scalar_one()
    except IntegrityError:
        raise GeogridError(f"duplicate submission: idempotency key {key!r} was just used", status=409) from None
    _event(session, incident_id, "report", None, "reported", data={"route": _route_summary(where)})
    return get_incident(session, incident_id, check=False)


def idempotency_scope(session: Session, channel: str) -> str:
    """The namespace of a caller's idempotency keys: ``channel:account`` (``anonymous``
    without an account, ``cli:USER`` on the command line)."""
    p = access.principal_of(session)
    return f"{channel}:{p.username if p is not None and p.authenticated else 'anonymous' if p else access.actor(session)}"


def _json(value) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, default=str)


def _route_summary(where: dict) -> dict:
    return {"kind": where["kind"], "grid": where["grid"] and where["grid"]["code"],
            "authority": where["authority"]["code"], "nearest_grid": where["nearest_grid"]}


def _event(session: Session, incident_id: int, action: str, from_state, to_state, *, note=None, data=None) -> None:
    session.execute(text("""
        INSERT INTO incident_event (incident_id, actor, action, from_state, to_state, note, data)
        VALUES (:i, :actor, :action, :f, :t, :note, CAST(:data AS jsonb))
    """), {"i": incident_id, "actor": access.actor(session), "action": action, "f": from_state, "t": to_state,
           "note": note, "data": _json(data)})


# --------------------------------------------------------------------------- reading

_SELECT = """
    SELECT i.id, i.receipt, i.category_key AS category, c.name_zh AS category_zh, c.name_en AS category_en,
           i.channel, i.description, i.occurred_at, i.reported_at, i.media_urls, i.reporter, i.original,
           ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat, i.route_kind, g.code AS grid, g.name AS grid_name,
           au.code AS authority, au.name AS authority_name, i.nearest_grid, i.responsible, i.department,
           i.state, i.escalation_level, i.due_at, i.closed_at, i.satisfaction, i.version, i.updated_at,
           (i.state NOT IN ('closed', 'void', 'parked') AND i.due_at < now()) AS overdue
    FROM incident i JOIN category c ON c.key = i.category_key
    LEFT JOIN area g ON g.id = i.grid_id JOIN area au ON au.id = i.authority_id
"""


def get_incident(session: Session, incident_id: int, *, check: bool = True, history: bool = False) -> dict:
    row = session.execute(text(_SELECT + " WHERE i.id = :id"), {"id": incident_id}).mappings().first()
    out = None if row is None else dict(row)
    if check:
        _require_readable(session, incident_id, out)
    elif out is None:
        raise not_found(f"incident {incident_id}")
    out["allowed"] = list(TRANSITIONS[out["state"]])
    if history:
        out["history"] = [dict(r) for r in session.execute(text(
            "SELECT at, actor, action, from_state, to_state, note, data FROM incident_event "
            "WHERE incident_id = :id ORDER BY id"), {"id": incident_id}).mappings()]
    return out


def _require_reader(session: Session) -> None:
    access.require_role(session, *access.STAFF)


def _scope_roots(p: access.Principal, roles) -> list[int | None]:
    return [g.area_id for g in p.grants if g.role in roles]


def _in_reach(session: Session, incident: dict, roles) -> bool:
    """A case is in an account's reach when its grid or its current authority lies in the
    subtree of one of its grants of ``roles`` (department handlers: their department's cases)."""
    p = access.principal_of(session)
    if p is not None and any(g.role == "department_handler" and g.department and g.department == incident["department"]
                             for g in p.grants if g.role in roles):
        return True
    area_roles = tuple(r for r in roles if r != "department_handler") or tuple(roles)
    return access.in_scope(session, area_roles,
                           _ids(session, [c for c in (incident["grid"], incident["authority"]) if c]).values())


def _require_readable(session: Session, incident_id: int, incident: dict | None) -> None:
    """Before anything about a case is revealed: unknown and out-of-reach cases answer alike."""
    readers = CENTRE + HANDLERS
    access.require_object(session, f"incident {incident_id}", readers, None if incident is None else [],
                          reachable=incident is not None and _in_reach(session, incident, readers))


def _require_case_scope(session: Session, incident: dict, roles, doing: str) -> None:
    """The caller, who may read the case, must also reach it with one of ``roles`` to do this."""
    p = access.require_role(session, *roles)
    if not _in_reach(session, incident, roles):
        raise GeogridError(f"{p.username} may not {doing} incident {incident['receipt']}: outside their scope",
                           status=403)


def list_incidents(session: Session, *, state=None, category=None, area=None, overdue=None, blind_spot=None,
                   since=None, until=None, reported_since=None, reported_until=None, closed=None,
                   receipts=None, public_only=False, limit=100, offset=0) -> tuple[list[dict], int]:
    """Incidents matching the filters, newest first, and how many match.

    Staff see the cases of their jurisdiction. ``public_only`` (public maps, Open311)
    needs no account and keeps to categories marked public; ``receipts`` are their
    holders' handles and reach any category. Callers showing the result to the public
    must pass it through :func:`public_view`."""
    if not (public_only or receipts):
        _require_reader(session)
    where, params = ["TRUE"], {"limit": limit, "offset": offset}
    if receipts:
        where.append("i.receipt = ANY(:receipts)")
        params["receipts"] = list(receipts)
    elif public_only:
        where.append("c.public")
    if reported_since:
        where.append("i.reported_at >= :reported_since")
        params["reported_since"] = reported_since
    if reported_until:
        where.append("i.reported_at < :reported_until")
        params["reported_until"] = reported_until
    if closed is not None:
        where.append(("" if closed else "NOT ") + "(i.state IN ('closed', 'void'))")
    if state:
        where.append("i.state = :state")
        params["state"] = state
    if category:
        where.append("i.category_key = :category")
        params["category"] = category
    if area:
        where.append("(g.code LIKE :prefix OR au.code LIKE :prefix)")
        params["prefix"] = area + "%"
    if overdue is not None:
        where.append(("" if overdue else "NOT ") + "(i.state NOT IN ('closed', 'void', 'parked') AND i.due_at < now())")
    if blind_spot is not None:
        where.append("i.route_kind " + ("=" if blind_spot else "<>") + " 'blind_spot'")
    if since:
        where.append("i.occurred_at >= :since")
        params["since"] = since
    if until:
        where.append("i.occurred_at < :until")
        params["until"] = until
    p = access.principal_of(session)
    everywhere = (public_only or bool(receipts) or p is None or p.is_admin
                  or None in _scope_roots(p, CENTRE + ("grid_worker",)))
    if not everywhere:
        # Staff see the cases of their jurisdiction; department handlers their department's.
        roots = [r for r in _scope_roots(p, CENTRE + ("grid_worker",)) if r is not None]
        departments = [g.department for g in p.grants if g.role == "department_handler" and g.department]
        where.append("""(i.department = ANY(:departments) OR EXISTS (
            WITH RECURSIVE up(id) AS (SELECT i.authority_id UNION SELECT i.grid_id
                                      UNION SELECT a.parent_id FROM area a JOIN up ON a.id = up.id)
            SELECT 1 FROM up WHERE up.id = ANY(:roots)))""")
        params.update(departments=departments, roots=roots)
    cond = " AND ".join(where)
    total = session.execute(text(f"SELECT count(*) FROM ({_SELECT} WHERE {cond}) q"), params).scalar_one()
    rows = session.execute(text(f"{_SELECT} WHERE {cond} ORDER BY i.id DESC LIMIT :limit OFFSET :offset"), params)
    return [dict(r) for r in rows.mappings()], total


def public_view(incident: dict, lang: str = "zh") -> dict:
    """What anyone may see of an incident: never the reporter, notes or persons' details."""
    return {"receipt": incident["receipt"], "category": incident["category"],
            "category_name": incident["category_en" if lang == "en" else "category_zh"],
            "state": incident["state"], "state_name": STATES[incident["state"]][1 if lang == "en" else 0],
            "reported_at": incident["reported_at"], "closed_at": incident["closed_at"],
            "grid": incident["grid"], "authority": incident["authority"]}


def by_receipt(session: Session, receipt: str) -> dict:
    row = session.execute(text(_SELECT + " WHERE i.receipt = :r"), {"r": receipt}).mappings().first()
    if row is None:
        raise not_found(f"report {receipt}")
    return dict(row)


# --------------------------------------------------------------------------- workflow


def _locked(session: Session, incident_id: int, expected_version: int | None, *, check: bool = True) -> dict:
    """The case, locked, once the caller's reach is checked (``check``), then its version."""
    session.execute(text("SELECT id FROM incident WHERE id = :id FOR UPDATE"), {"id": incident_id})
    case = get_incident(session, incident_id, check=check)
    if expected_version is not None and expected_version != case["version"]:
        raise GeogridError(f"incident {incident_id} is at version {case['version']}, not {expected_version}: reload it",
                           status=412, extra={"current_version": case["version"]})
    return case


def transition(session: Session, incident_id: int, to: str, settings: Settings, *, note: str | None = None,
               satisfaction: int | None = None, expected_version: int | None = None) -> dict:
    """Move a case to state ``to``; an illegal move is a 409 listing the allowed ones."""
    _require_reader(session)
    case = _locked(session, incident_id, expected_version)
    if to not in STATES:
        raise GeogridError(f"unknown state {to!r}; states: {', '.join(STATES)}")
    allowed = TRANSITIONS[case["state"]]
    if to not in allowed:
        raise GeogridError(f"incident {case['receipt']} is {case['state']}: it cannot go to {to}", status=409,
                           extra={"state": case["state"], "allowed": list(allowed)})
    _require_case_scope(session, case, MAY_ENTER[to], f"move to {to}")
    if satisfaction is not None and to != "closed":
        raise GeogridError("satisfaction is given when a case is closed")
    now = dt.datetime.now(dt.UTC)
    step = STEP_OF.get(to)
    due = case["due_at"]
    if step:
        due = calendar(settings).add(now, *_limits(session, case["category"])[step])
    elif to in TERMINAL or to == "parked":
        due = None
    elif to == "in_progress" and case["state"] in ("parked", "handled"):
        # Back from the parked list, or sent back by verification: handling starts again.
        due = calendar(settings).add(now, *_limits(session, case["category"])["handle"])
    session.execute(text("""
        UPDATE incident SET state = CAST(:to AS varchar), due_at = :due, version = version + 1, updated_at = now(),
               closed_at = CASE WHEN CAST(:to AS varchar) IN ('closed', 'void') THEN now() ELSE closed_at END,
               satisfaction = coalesce(CAST(:satisfaction AS integer), satisfaction)
        WHERE id = :id
    """), {"to": to, "due": due, "id": incident_id, "satisfaction": satisfaction})
    _event(session, incident_id, "transition", case["state"], to, note=note,
           data={"satisfaction": satisfaction} if satisfaction is not None else None)
    return get_incident(session, incident_id, check=False, history=True)


def _limits(session: Session, category: str) -> dict:
    return session.execute(text("SELECT time_limits FROM category WHERE key = :k"), {"k": category}).scalar_one()


def escalate(session: Session, incident_id: int, settings: Settings, *, note: str | None = None,
             expected_version: int | None = None, automatic: bool = False) -> dict:
    """Hand the case one level up ("村呼镇应、镇呼县应"): its authority becomes the parent
    area, and the current step's time limit starts again there."""
    if not automatic:
        _require_reader(session)
    case = _locked(session, incident_id, expected_version, check=not automatic)
    if case["state"] in TERMINAL:
        raise GeogridError(f"incident {case['receipt']} is {case['state']}", status=409)
    parent = session.execute(text("SELECT p.id, p.code FROM area a JOIN area p ON p.id = a.parent_id WHERE a.code = :c"),
                             {"c": case["authority"]}).first()
    if parent is None:
        raise conflict(f"incident {case['receipt']} is already with the top level ({case['authority']})")
    step = STEP_OF.get(case["state"]) or ("handle" if case["state"] in ("filed", "in_progress", "parked") else "verify")
    due = calendar(settings).add(dt.datetime.now(dt.UTC), *_limits(session, case["category"])[step])
    session.execute(text("""
        UPDATE incident SET authority_id = :p, escalation_level = escalation_level + 1, due_at = :due,
               version = version + 1, updated_at = now() WHERE id = :id
    """), {"p": parent.id, "due": due, "id": incident_id})
    _event(session, incident_id, "escalate", case["state"], case["state"], note=note,
           data={"from": case["authority"], "to": parent.code, "automatic": automatic})
    return get_incident(session, incident_id, check=False, history=True)


def escalate_overdue(session: Session, settings: Settings, *, now: dt.datetime | None = None) -> list[str]:
    """Escalate every overdue open case whose category escalates automatically; returns
    their receipts. Each escalation restarts the step's time limit, so a case climbs one
    level per missed limit."""
    rows = session.execute(text("""
        SELECT i.id FROM incident i JOIN category c ON c.key = i.category_key
        WHERE c.auto_escalate AND i.state NOT IN ('closed', 'void', 'parked') AND i.due_at < :now
        ORDER BY i.due_at FOR UPDATE OF i SKIP LOCKED
    """), {"now": now or dt.datetime.now(dt.UTC)}).scalars().all()
    done = []
    for incident_id in rows:
        try:
            with session.begin_nested():
                done.append(escalate(session, incident_id, settings, note="time limit exceeded",
                                     automatic=True)["receipt"])
        except GeogridError:
            continue  # already at the top level: stays on the overdue list
    return done


def move(session: Session, incident_id: int, lon: float, lat: float, crs: str, settings: Settings, *,
         note: str | None = None, expected_version: int | None = None) -> dict:
    """Correct an incident's location: it is routed again, and the old route stays in its history."""
    _require_reader(session)
    case = _locked(session, incident_id, expected_version)
    if case["state"] in TERMINAL:
        raise GeogridError(f"incident {case['receipt']} is {case['state']}: its location is final", status=409)
    problems: list[Problem] = []
    clean, problems = _validate(session, {"category": case["category"], "description": case["description"],
                                          "lon": lon, "lat": lat, "crs": crs, "channel": case["channel"],
                                          "occurred_at": case["occurred_at"]}, settings,
                                dt.datetime.now(dt.UTC))
    if problems:
        raise GeogridError(f"incident {case['receipt']} was not moved", problems=problems)
    tz = ZoneInfo(settings.timezone)
    category = categories(session)[case["category"]]
    where = route(session, *clean["point"], category, at=case["occurred_at"],
                  day=case["occurred_at"].astimezone(tz).date())
    moved_to = {**case, "grid": where["grid"] and where["grid"]["code"], "authority": where["authority"]["code"]}
    _require_case_scope(session, moved_to, CENTRE + HANDLERS, f"move to {moved_to['authority']}")  # the new place too
    session.execute(text("""
        UPDATE incident SET geom = ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), original = CAST(:original AS jsonb),
               route_kind = :kind, grid_id = :grid_id, authority_id = :authority_id, nearest_grid = CAST(:nearest AS jsonb),
               responsible = CAST(:responsible AS jsonb), escalation_level = 0, version = version + 1, updated_at = now()
        WHERE id = :id
    """), {"lon": clean["point"][0], "lat": clean["point"][1], "original": _json(clean["original"]),
           "kind": where["kind"], "grid_id": where["grid_id"], "authority_id": where["authority_id"],
           "nearest": _json(where["nearest_grid"]), "responsible": _json(where["responsible"]), "id": incident_id})
    _event(session, incident_id, "move", case["state"], case["state"], note=note,
           data={"from": {"lon": case["lon"], "lat": case["lat"], "grid": case["grid"], "authority": case["authority"]},
                 "to": {"lon": clean["point"][0], "lat": clean["point"][1], **_route_summary(where)}})
    return get_incident(session, incident_id, check=False, history=True)


# --------------------------------------------------------------------------- bulk import


def import_incidents(session: Session, records: list[dict], settings: Settings, *, progress=None) -> dict:
    """Take in historical incidents, all or nothing. Points are routed in bulk with a
    :class:`geogrid.routing.PointRouter` per category net (the boundaries in force when
    each incident happened); blind spots fall back to :func:`route`. ``progress(n)`` is
    called as records are done. Returns counts; raises 422 listing every rejected row."""
    from geogrid.routing import PointRouter

    access.require_role(session, *CENTRE)
    if not records:
        raise GeogridError("no incidents to import")
    now = dt.datetime.now(dt.UTC)
    known = categories(session)  # once, not once a row
    cleaned, problems = [], []
    keys = set()
    for i, data in enumerate(records):
        clean, found = _validate(session, data, settings, now, known)
        for p in found:
            p.index, p.unit = i, "row"
        problems += found
        clean["state"] = data.get("state") or "closed"
        if clean["state"] not in STATES:
            problems.append(Problem(f"unknown state {clean['state']!r}; states: {', '.join(STATES)}", field="state",
                                    index=i, unit="row"))
        key = clean["idempotency_key"]
        clean["key_scope"] = idempotency_scope(session, clean["channel"]) if key else None
        if key and (clean["key_scope"], key) in keys:
            problems.append(Problem(f"idempotency key {key!r} repeats in the file", field="idempotency_key", index=i,
                                    unit="row"))
        keys.add((clean["key_scope"], key))
        cleaned.append(clean)
    taken = {tuple(r) for r in session.execute(text(
        "SELECT idempotency_scope, idempotency_key FROM incident WHERE idempotency_key = ANY(:k) "
        "AND idempotency_scope = ANY(:s)"),
        {"k": [k for _, k in keys if k], "s": sorted({s for s, k in keys if k})})}
    for i, c in enumerate(cleaned):
        if (c["key_scope"], c["idempotency_key"]) in taken:
            problems.append(Problem(f"idempotency key {c['idempotency_key']!r} was imported before",
                                    field="idempotency_key", index=i, unit="row"))
    if problems:
        raise GeogridError(f"{len({p.index for p in problems})} of {len(records)} rows rejected; nothing was imported",
                           problems=problems)
    tz = ZoneInfo(settings.timezone)
    routes: list[dict | None] = [None] * len(cleaned)
    by_layer: dict[str, list[int]] = {}
    for i, c in enumerate(cleaned):
        by_layer.setdefault(c["category"]["layer_key"], []).append(i)
    for layer, members in by_layer.items():
        for instant, group in _by_generation(session, layer, [cleaned[i]["occurred_at"] for i in members], members):
            rows = _finest_grids(session, layer, instant)
            if not rows:
                continue
            router = PointRouter([r.code for r in rows], shapely.from_wkb([bytes(r.wkb) for r in rows]))
            xy = np.array([cleaned[i]["point"] for i in group])
            hit = router.route(xy[:, 0], xy[:, 1])
            ids = {r.code: r.id for r in rows}
            for i, h in zip(group, hit):
                if h >= 0:
                    code = router.codes[h]
                    routes[i] = {"kind": "grid", "grid_id": ids[code], "authority_id": ids[code], "nearest_grid": None,
                                 "grid": {"code": code}, "authority": {"code": code}}
    done = 0
    by_day: dict[dt.date, list[int]] = {}
    for i, c in enumerate(cleaned):
        day = c["occurred_at"].astimezone(tz).date()
        if routes[i] is None:
            try:
                routes[i] = route(session, *c["point"], c["category"], at=c["occurred_at"], day=day)
            except GeogridError as exc:
                problems.append(Problem(exc.message, field="location", index=i, location=c["point"], unit="row"))
        else:
            by_day.setdefault(day, []).append(i)
        done += 1
        if progress and done % 1000 == 0:
            progress(1000)
    for day, members in by_day.items():  # one query a day for the persons in post, not one a row
        posts = people.responsible_persons(session, sorted({routes[i]["grid_id"] for i in members}), day,
                                           public_only=False)
        for i in members:
            routes[i]["responsible"] = _snapshot(posts.get(routes[i]["grid_id"], []))
    # Every row must land in the importer's jurisdiction: a history is not written into another town.
    outside = access.outside_scope(session, CENTRE, {a for w in routes if w for a in (w["grid_id"], w["authority_id"])})
    foreign = [Problem(f"routed to {where['authority']['code']}, outside your scope", field="location", index=i,
                       location=cleaned[i]["point"], unit="row")
               for i, where in enumerate(routes)
               if where and where["authority_id"] in outside and (where["grid_id"] is None or where["grid_id"] in outside)]
    if foreign:
        raise GeogridError(f"{len(foreign)} of {len(records)} rows lie outside your scope; nothing was imported",
                           status=403, problems=foreign)
    if problems:
        raise GeogridError(f"{len(problems)} of {len(records)} rows rejected; nothing was imported", problems=problems)
    params = []
    work = calendar(settings)
    for c, where in zip(cleaned, routes):
        step = STEP_IN.get(c["state"])
        due = work.add(c["occurred_at"], *c["category"]["time_limits"][step]) if step else None
        params.append({
            "receipt": f"GG{c['occurred_at'].astimezone(tz):%Y%m%d}-{secrets.token_hex(5).upper()}",
            "category": c["category"]["key"], "channel": c["channel"], "description": c["description"],
            "occurred": c["occurred_at"], "media": json.dumps(c["media_urls"]), "reporter": _json(c["reporter"]),
            "key": c["idempotency_key"], "key_scope": c["key_scope"], "lon": c["point"][0], "lat": c["point"][1], "original": _json(c["original"]),
            "kind": where["kind"], "grid_id": where["grid_id"], "authority_id": where["authority_id"],
            "nearest": _json(where["nearest_grid"]), "responsible": _json(where["responsible"]),
            "department": c["category"]["department"], "state": c["state"], "due": due})
    session.execute(text("""
        INSERT INTO incident (receipt, category_key, channel, description, occurred_at, reported_at, media_urls, reporter,
            idempotency_key, idempotency_scope, geom, original, route_kind, grid_id, authority_id, nearest_grid,
            responsible, department, state, closed_at, due_at)
        VALUES (:receipt, :category, :channel, :description, :occurred, :occurred, CAST(:media AS jsonb),
            CAST(:reporter AS jsonb), :key, :key_scope, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), CAST(:original AS jsonb), :kind,
            :grid_id, :authority_id, CAST(:nearest AS jsonb), CAST(:responsible AS jsonb), :department,
            CAST(:state AS varchar), CASE WHEN CAST(:state AS varchar) IN ('closed', 'void') THEN :occurred END, :due)
    """), params)
    session.execute(text("""
        INSERT INTO incident_event (incident_id, actor, action, to_state, note)
        SELECT id, :actor, 'import', state, 'historical import' FROM incident WHERE receipt = ANY(:receipts)
    """), {"actor": access.actor(session), "receipts": [p["receipt"] for p in params]})
    if progress:
        progress(done % 1000)
    counts: dict[str, int] = {}
    for where in routes:
        counts[where["kind"]] = counts.get(where["kind"], 0) + 1
    return {"imported": len(params), "by_route": counts}


def _by_generation(session: Session, layer: str, instants: list[dt.datetime], members: list[int]):
    """Group records by the boundary generation in force when they happened: the
    instants at which any boundary of the layer changed cut time into generations."""
    cuts = sorted(session.execute(text("""
        SELECT DISTINCT t FROM (SELECT lower(b.valid) AS t FROM boundary b JOIN area a ON a.id = b.area_id
                                WHERE a.layer_key = :layer
                                UNION SELECT upper(b.valid) FROM boundary b JOIN area a ON a.id = b.area_id
                                WHERE a.layer_key = :layer AND NOT upper_inf(b.valid)) q WHERE t IS NOT NULL
    """), {"layer": layer}).scalars().all())
    groups: dict[int, list[int]] = {}
    sample: dict[int, dt.datetime] = {}
    for i, when in zip(members, instants):
        generation = int(np.searchsorted(np.array(cuts, dtype=object), when, side="right")) if cuts else 0
        groups.setdefault(generation, []).append(i)
        sample.setdefault(generation, when)
    for generation, group in groups.items():
        yield (sample[generation] if generation < len(cuts) else None), group


def _finest_grids(session: Session, layer: str, at: dt.datetime | None) -> list:
    """The grids of the finest level present in ``layer`` at ``at`` (None: now)."""
    return session.execute(text(f"""
        WITH g AS (
            SELECT a.id, a.code, lv.rank, ST_AsBinary(b.geom) AS wkb
            FROM area a JOIN boundary b ON b.area_id = a.id JOIN level lv ON lv.key = a.level_key
            WHERE a.layer_key = :layer AND {areas._valid_clause(at)}
              AND NOT EXISTS (SELECT 1 FROM area c WHERE c.parent_id = a.id AND c.layer_key = :layer
                              AND c.retired_at IS NULL)
        )
        SELECT id, code, wkb FROM g
    """), {"layer": layer, "at": at}).all()
