"""Incident rows: storing a case (the one ``INSERT INTO incident``, used by intake and
bulk import alike), its history events, and reading cases within the caller's scope
(one case, lists, the public view, by receipt).

Routing asks :func:`geogrid.areas.lookup.locate`, so an incident goes exactly where
``GET /api/locate`` says: the category's net, the finest level, and on a shared boundary
the primary grid (the lowest code). A point in no grid of that net but inside the
jurisdiction is a blind-spot incident: it goes to the finest administrative area holding
it (属地兜底) and names the nearest grid and its distance. A point outside every area is
refused (422). The route is fixed when the incident is taken in; redrawing grids later
does not move it, moving the incident's point re-routes it, and both are in its history.

A request may have no point (placed by a household or an area code, see
:mod:`geogrid.incidents.intake`): its ``lon`` and ``lat`` read as None, and whatever draws
cases on a map leaves it out. Its household, address, request type, handling kind,
promise, co-departments and owner are staff fields: :func:`public_view` carries none.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.orm import Session

from geogrid.access import scopes
from geogrid.areas import lookup
from geogrid.core.errors import GeogridError, not_found
from geogrid.core.jsonenc import dumps_or_none
from geogrid.incidents import steps
from geogrid.incidents.states import CENTRE, HANDLERS, STATES, TRANSITIONS
from geogrid.incidents.workcal import WorkCalendar


def event(session: Session, incident_id: int, action: str, from_state, to_state, *, work: WorkCalendar,
          at: dt.datetime, note=None, data=None) -> None:
    """Add an event to a case's history (``incident_event``), by the session's actor, at
    ``at``, and bring its timed steps and assessment facts up to date (:mod:`steps`)."""
    actor = scopes.actor(session)
    session.execute(text("""
        INSERT INTO incident_event (incident_id, at, actor, action, from_state, to_state, note, data)
        VALUES (:i, :at, :actor, :action, :f, :t, :note, CAST(:data AS jsonb))
    """), {"i": incident_id, "at": at, "actor": actor, "action": action, "f": from_state, "t": to_state,
           "note": note, "data": dumps_or_none(data)})
    steps.advance(session, incident_id, action=action, from_state=from_state, to_state=to_state, at=at, actor=actor,
                  work=work)


# --------------------------------------------------------------------------- reading

def select_sql(source: str = "incident") -> str:
    """The SELECT of a case as every answer shows it, from ``source`` (the table, or the
    rows an INSERT ... RETURNING * just wrote) as ``i``."""
    return f"""
    SELECT i.id, i.receipt, i.category_key AS category, c.name_zh AS category_zh, c.name_en AS category_en,
           i.channel, i.description, i.attributes, i.occurred_at, i.reported_at, i.media_urls, i.reporter, i.original,
           ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat, i.route_kind, g.code AS grid, g.name AS grid_name,
           au.code AS authority, au.name AS authority_name, i.nearest_grid, i.responsible, i.department,
           i.state, i.escalation_level, i.due_at, i.closed_at, i.satisfaction, i.version, i.updated_at,
           (i.state NOT IN ('closed', 'void', 'parked') AND i.due_at < now()) AS overdue,
           i.address, i.request_type, rt.name_zh AS request_type_zh, rt.name_en AS request_type_en, i.handling,
           i.promised_at, i.co_departments, i.owner_person_id, op.name AS owner_name,
           CASE WHEN h.id IS NOT NULL THEN json_build_object(
               'id', h.id, 'ref', h.ref,
               'address', concat_ws(' ', h.town, h.village, h.street, h.number, h.building_no, h.unit, h.room))
           END AS household,
           -- What the public may see of where a case went: the grid and authority as published.
           (SELECT pa.code FROM published_area pa WHERE pa.area_id = i.grid_id AND upper_inf(pa.valid)) AS public_grid,
           (SELECT pa.code FROM published_area pa WHERE pa.area_id = i.authority_id AND upper_inf(pa.valid))
               AS public_authority
    FROM {source} i JOIN category c ON c.key = i.category_key
    LEFT JOIN area g ON g.id = i.grid_id JOIN area au ON au.id = i.authority_id
    LEFT JOIN request_type rt ON rt.key = i.request_type LEFT JOIN person op ON op.id = i.owner_person_id
    LEFT JOIN household h ON h.id = i.household_id
"""


_SELECT = select_sql()


def get_incident(session: Session, incident_id: int, *, check: bool = True, history: bool = False) -> dict:
    """One incident with the transitions allowed from its state (``history``: and its events).
    ``check`` refuses a caller who may not read it like an unknown id; without it (internal
    callers) only an unknown id is refused (404)."""
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
        out["steps"] = [dict(r) for r in session.execute(text(
            "SELECT s.step, a.code AS authority, s.started_at, s.due_at, s.ended_at, s.ended_by, s.outcome, s.late, "
            "s.working_hours FROM incident_step s JOIN area a ON a.id = s.authority_id "
            "WHERE s.incident_id = :id ORDER BY s.id"), {"id": incident_id}).mappings()]
    return out


def require_reader(session: Session) -> None:
    """401/403 unless the caller holds a staff role (cases are never public here)."""
    scopes.require_role(session, *scopes.STAFF)


def _scope_roots(p: scopes.Principal, roles) -> list[int | None]:
    return [g.area_id for g in p.grants if g.role in roles]


def in_reach(session: Session, incident: dict, roles, *, co_handling: bool = False) -> bool:
    """A case is in an account's reach when its grid or its current authority lies in the
    subtree of one of its grants of ``roles`` (department handlers: their department's cases;
    ``co_handling``: also the joint (联办) cases their department co-handles, for reading
    and comments, never for moving the case)."""
    p = scopes.principal_of(session)
    departments = {incident["department"]} | (set(incident.get("co_departments") or ()) if co_handling else set())
    if p is not None and any(g.role == "department_handler" and g.department and g.department in departments
                             for g in p.grants if g.role in roles):
        return True
    area_roles = tuple(r for r in roles if r != "department_handler") or tuple(roles)
    return scopes.in_scope(session, area_roles,
                           lookup.area_ids(session, [c for c in (incident["grid"], incident["authority"]) if c]).values())


def _require_readable(session: Session, incident_id: int, incident: dict | None) -> None:
    """Before anything about a case is revealed: unknown and out-of-reach cases answer alike."""
    readers = CENTRE + HANDLERS
    scopes.require_object(session, f"incident {incident_id}", readers, None if incident is None else [],
                          reachable=incident is not None and in_reach(session, incident, readers, co_handling=True))


def require_case_scope(session: Session, incident: dict, roles, doing: str) -> None:
    """The caller, who may read the case, must also reach it with one of ``roles`` to do this."""
    p = scopes.require_role(session, *roles)
    if not in_reach(session, incident, roles):
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
        require_reader(session)
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
    p = scopes.principal_of(session)
    everywhere = (public_only or bool(receipts) or p is None or p.is_admin
                  or None in _scope_roots(p, CENTRE + ("grid_worker",)))
    if not everywhere:
        # Staff see the cases of their jurisdiction; department handlers their department's.
        roots = [r for r in _scope_roots(p, CENTRE + ("grid_worker",)) if r is not None]
        departments = [g.department for g in p.grants if g.role == "department_handler" and g.department]
        where.append("""(i.department = ANY(:departments) OR i.co_departments && CAST(:departments AS varchar[])
            OR EXISTS (
            WITH RECURSIVE up(id) AS (SELECT i.authority_id UNION SELECT i.grid_id
                                      UNION SELECT a.parent_id FROM area a JOIN up ON a.id = up.id)
            SELECT 1 FROM up WHERE up.id = ANY(:roots)))""")
        params.update(departments=departments, roots=roots)
    cond = " AND ".join(where)
    total = session.execute(text(f"SELECT count(*) FROM ({_SELECT} WHERE {cond}) q"), params).scalar_one()
    rows = session.execute(text(f"{_SELECT} WHERE {cond} ORDER BY i.id DESC LIMIT :limit OFFSET :offset"), params)
    return [dict(r) for r in rows.mappings()], total


def public_view(incident: dict, lang: str = "zh") -> dict:
    """What anyone may see of an incident: never the reporter, notes or persons' details, and
    its grid and authority only as published (the view ``public_case`` says the same)."""
    return {"receipt": incident["receipt"], "category": incident["category"],
            "category_name": incident["category_en" if lang == "en" else "category_zh"],
            "state": incident["state"], "state_name": STATES[incident["state"]][1 if lang == "en" else 0],
            "reported_at": incident["reported_at"], "closed_at": incident["closed_at"],
            "grid": incident["public_grid"], "authority": incident["public_authority"]}


def by_receipt(session: Session, receipt: str) -> dict:
    """The incident with this receipt number, 404 if none. No scope check: callers show only
    :func:`public_view` of it."""
    row = session.execute(text(_SELECT + " WHERE i.receipt = :r"), {"r": receipt}).mappings().first()
    if row is None:
        raise not_found(f"report {receipt}")
    return dict(row)


# --------------------------------------------------------------------------- storing

# Each column of an incident row and the value :func:`incident_values` gives it.
_COLUMNS = {
    "receipt": ":receipt", "category_key": ":category", "channel": ":channel", "description": ":description",
    "occurred_at": ":occurred", "reported_at": ":reported", "media_urls": "CAST(:media AS jsonb)",
    "reporter": "CAST(:reporter AS jsonb)", "idempotency_key": ":key", "idempotency_scope": ":key_scope",
    "geom": "ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)", "original": "CAST(:original AS jsonb)",
    "route_kind": ":kind", "grid_id": ":grid_id", "authority_id": ":authority_id",
    "nearest_grid": "CAST(:nearest AS jsonb)", "responsible": "CAST(:responsible AS jsonb)",
    "department": ":department", "state": "CAST(:state AS varchar)",
    "closed_at": "CASE WHEN CAST(:state AS varchar) IN ('closed', 'void') THEN :occurred END", "due_at": ":due",
    "attributes": "CAST(:attributes AS jsonb)", "household_id": ":household_id", "address": ":address",
    "request_type": ":request_type", "handling": ":handling", "promised_at": ":promised_at",
    "co_departments": "CAST(:co_departments AS varchar[])", "owner_person_id": ":owner_person_id",
}
# The columns a route gives (see geogrid.incidents.intake.route).
ROUTE_COLUMNS = ("route_kind", "grid_id", "authority_id", "nearest_grid", "responsible")


def insert_sql(route_from: str | None = None) -> str:
    """The INSERT of an incident row (:func:`incident_values`); with ``route_from`` (a
    relation with the :data:`ROUTE_COLUMNS`) the route's columns come from it, the rest
    from the parameters: intake routes and inserts in one statement."""
    values = {k: (f"{route_from}.{k}" if route_from and k in ROUTE_COLUMNS else v) for k, v in _COLUMNS.items()}
    head = f"INSERT INTO incident ({', '.join(values)}) "
    if route_from:
        return head + f"SELECT {', '.join(values.values())} FROM {route_from}"
    return head + f"VALUES ({', '.join(values.values())})"


_INSERT_INCIDENT = insert_sql()


def new_receipt(moment: dt.datetime, tz: ZoneInfo) -> str:
    """A receipt number: ``GG`` + the local date of ``moment`` + ten random hex digits."""
    return f"GG{moment.astimezone(tz):%Y%m%d}-{secrets.token_hex(5).upper()}"


def incident_values(clean: dict, where: dict, *, receipt: str, reported_at: dt.datetime, key_scope: str | None,
                    state: str, due: dt.datetime | None) -> dict:
    """The row of a validated (``clean``) and routed (``where``) incident, for :func:`insert_incident`
    and :func:`insert_incidents`; a closed or void case is closed when it occurred. A case
    placed by a household or an area has no point (``geom`` NULL)."""
    return {"receipt": receipt, "category": clean["category"]["key"], "channel": clean["channel"],
            "description": clean["description"], "occurred": clean["occurred_at"], "reported": reported_at,
            "media": json.dumps(clean["media_urls"]), "reporter": dumps_or_none(clean["reporter"]),
            "attributes": json.dumps(clean.get("attributes") or {}, ensure_ascii=False),
            "key": clean["idempotency_key"], "key_scope": key_scope,
            "lon": clean["point"][0] if clean["point"] else None, "lat": clean["point"][1] if clean["point"] else None,
            "original": dumps_or_none(clean["original"]), "kind": where["kind"], "grid_id": where["grid_id"],
            "authority_id": where["authority_id"], "nearest": dumps_or_none(where["nearest_grid"]),
            "responsible": dumps_or_none(where["responsible"]), "department": clean["category"]["department"],
            "state": state, "due": due,
            "household_id": (clean.get("household") or {}).get("id"), "address": clean.get("address"),
            "request_type": clean.get("request_type"), "handling": clean.get("handling") or "standard",
            "promised_at": clean.get("promised_at"), "co_departments": clean.get("co_departments") or [],
            "owner_person_id": clean.get("owner_person_id")}


def insert_incident(session: Session, values: dict) -> int:
    """Store one incident row (:func:`incident_values`); its id."""
    return session.execute(text(_INSERT_INCIDENT + " RETURNING id"), values).scalar_one()


def insert_incidents(session: Session, rows: list[dict]) -> None:
    """Store many incident rows (:func:`incident_values`) in one round trip."""
    if rows:
        session.execute(text(_INSERT_INCIDENT), rows)


def events_of(session: Session, incident_ids: list[int]) -> dict[int, list[dict]]:
    """The history of each case (``at``, ``action``, ``to_state``), oldest first, by case id;
    for cases the caller has already read (the ids come from :func:`list_incidents`)."""
    if not incident_ids:
        return {}
    out: dict[int, list[dict]] = {}
    for r in session.execute(text("SELECT incident_id, at, action, to_state FROM incident_event "
                                  "WHERE incident_id = ANY(:ids) ORDER BY id"), {"ids": list(incident_ids)}).mappings():
        out.setdefault(r["incident_id"], []).append(dict(r))
    return out
