"""Cadre–household contact (联户): links from a cadre (a person) to a household with a kind
(中心户 central, 辐射户 radiating, 困难户 hardship, 一般户 ordinary) and dates, and the
check of the "1+1+n" structure (a cadre, a central household, a few radiating households).

A radiating household names its central household (``central_id``), which must have an
active central link of the same cadre on the radiating link's first day. End dates are
inclusive; a link is *active* on day D when ``start_date <= D`` and ``end_date`` is NULL
or ``>= D``.

Scope: a household's place is its derived grid (``household.grid_id``), or, when it lies
in no grid, the finest admin area holding its point (:data:`geogrid.people.households.PLACE_SQL`). Links are
written by planners and grid workers whose scope holds the household's place, and read by
them and inspectors. Persons named in a request must be persons the caller may see
(a post in their scope, see :func:`geogrid.people.persons.visibility`), else 422.

The check (:func:`check_structure`) reports, for an area's subtree on a day: households
with no active contact cadre, cadres linked to more than ``settings.households_per_cadre_max``
households, central households whose number of radiating households lies outside
``settings.radiating_per_central``, radiating households whose central link has ended,
and counts per grid and per village.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import text
from sqlalchemy.orm import Session

from geogrid.access import audit, scopes
from geogrid.assessment.indicators import resolve_area
from geogrid.core.errors import GeogridError, Problem, conflict, not_found
from geogrid.core.settings import Settings
from geogrid.core.timeutil import local_today
from geogrid.core.versioning import check_version
from geogrid.people.due import refresh_due
from geogrid.people.households import PLACE_SQL, address, household_place, require_household
from geogrid.people.persons import update_versioned, visibility

WRITERS = ("planner", "grid_worker")
READERS = ("planner", "grid_worker", "inspector")
CENTRAL, RADIATING = "central", "radiating"
FUTURE_DAYS = 366  # a link or visit may be planned this far ahead at most

# The subtree of the area :root (an id) with each row's own village (:root_village when the
# root lies below a village): the households of an area are those whose place is in it.
SUBTREE = """
    WITH RECURSIVE sub AS (
        SELECT a.id, a.code, a.name, a.level_key, 0 AS depth,
               CASE WHEN a.level_key = 'village' THEN a.id ELSE CAST(:root_village AS integer) END AS village_id
        FROM area a WHERE a.id = :root
        UNION ALL
        SELECT a.id, a.code, a.name, a.level_key, sub.depth + 1,
               CASE WHEN a.level_key = 'village' THEN a.id ELSE sub.village_id END
        FROM area a JOIN sub ON a.parent_id = sub.id WHERE sub.depth < 64
    )
"""


# The rows of :data:`SUBTREE` as a CTE ``sub(id, village_id)`` from arrays
# (:func:`area_subtree`): the planner then knows how many areas there are.
SUB_ROWS = ("sub AS (SELECT * FROM unnest(CAST(:sub_ids AS integer[]), CAST(:sub_villages AS integer[])) "
            "AS s(id, village_id))")

# The live households whose place lies in ``sub`` (a CTE ``hh``): id, ref, grid,
# place and village. Households in a grid are found by their grid (index); only those in
# none need the point-in-area lookup of their place.
def households_in_sub(name: str = "hh", where: str = "true") -> str:
    """:data:`HOUSEHOLDS_IN_SUB` as a CTE called ``name``, keeping only the households
    for which the SQL condition ``where`` on ``household h`` holds."""
    return f"""{name} AS MATERIALIZED (
    SELECT h.id, h.ref, h.grid_id, sub.id AS place, sub.village_id
    FROM household h JOIN sub ON sub.id = h.grid_id WHERE h.retired_at IS NULL AND {where}
    UNION ALL
    SELECT h.id, h.ref, h.grid_id, sub.id, sub.village_id
    FROM (SELECT h.id, h.ref, h.grid_id, {PLACE_SQL} AS place FROM household h
          WHERE h.grid_id IS NULL AND h.retired_at IS NULL AND {where}) h
    JOIN sub ON sub.id = h.place)"""


HOUSEHOLDS_IN_SUB = households_in_sub()
ADDRESS_COLUMNS = "h.town, h.village, h.street, h.number, h.building_no, h.unit, h.room"


def without_jit(session: Session) -> None:
    """Settings for an area-wide query, for the rest of the transaction: PostgreSQL's JIT off
    (compiling these large but quick queries took longer than running them: 3.3 s of 3.8 s
    for one grid of a 500,000-household county in bench/visits_bench.py) and memory enough
    to hash and sort a county's households without spilling to disk."""
    session.execute(text("SET LOCAL jit = off"))
    session.execute(text("SET LOCAL work_mem = '256MB'"))


def with_address(rows: list[dict]) -> list[dict]:
    """Rows carrying the address columns (:data:`ADDRESS_COLUMNS`) with one ``address`` line instead."""
    keys = [c.split(".")[1] for c in ADDRESS_COLUMNS.split(", ")]
    return [{**{k: v for k, v in r.items() if k not in keys}, "address": address(r)} for r in rows]


# --------------------------------------------------------------------------- households and persons


def household_places(session: Session, household_ids) -> dict[int, int | None]:
    """The place (see :data:`PLACE_SQL`) of each live household of ``household_ids``
    that exists; unknown and retired ones are left out."""
    rows = session.execute(text(f"SELECT h.id, {PLACE_SQL} AS place FROM household h "
                                "WHERE h.id = ANY(:ids) AND h.retired_at IS NULL"),
                           {"ids": [int(i) for i in household_ids]}).all()
    return {r.id: r.place for r in rows}


def require_households(session: Session, household_ids, roles) -> dict[int, int | None]:
    """Every household of ``household_ids`` must exist and lie in the caller's scope for
    ``roles``; their places by id. A caller who could see them anywhere gets a 422 naming
    the unknown ones; anyone else the same 403 for unknown and out-of-scope households."""
    p = scopes.require_role(session, *roles)
    ids = sorted({int(i) for i in household_ids})
    places = household_places(session, ids)
    unknown = [i for i in ids if i not in places]
    if scopes.sees_everything(p, roles):
        if unknown:
            raise GeogridError(f"unknown or retired households {unknown}",
                               problems=[Problem(f"unknown or retired household {i}", field="household_ids")
                                         for i in unknown])
        return places
    outside = scopes.outside_scope(session, roles, {pl for pl in places.values() if pl is not None})
    hidden = unknown + [i for i, pl in places.items() if pl is None or pl in outside]
    if hidden:
        raise scopes.hidden(f"household {', '.join(map(str, sorted(hidden)))}")
    return places


def visible_person(session: Session, person_id, field: str = "person_id") -> int:
    """``person_id`` if the caller may see that person (a post in their scope), else a 422
    that reads the same for unknown and hidden persons."""
    visible, _, params = visibility(session)
    pid = person_id if isinstance(person_id, int) and not isinstance(person_id, bool) else None
    if pid is None or session.execute(text(f"SELECT 1 FROM person p WHERE p.id = :id AND {visible}"),
                                      {**params, "id": pid}).first() is None:
        message = f"unknown person {person_id!r} (or outside your scope)"
        raise GeogridError(message, problems=[Problem(message, field=field)])
    return pid


def as_date(value, field: str, problems: list[Problem], *, required: bool = False) -> dt.date | None:
    """``value`` as a date (a date or YYYY-MM-DD), else a problem noted for ``field``."""
    if value is None:
        if required:
            problems.append(Problem(f"{field} is required", field=field))
        return None
    if isinstance(value, dt.datetime):
        problems.append(Problem(f"{field} must be a date YYYY-MM-DD, not a date-time", field=field))
        return None
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        problems.append(Problem(f"{field} must be a date YYYY-MM-DD, got {value!r}", field=field))
        return None


def area_subtree(session: Session, code: str) -> tuple[dict, dict]:
    """The area ``code`` after the caller's scope check for :data:`READERS` (403/404 as for
    any object) and the parameters of :data:`SUB_ROWS` for its subtree."""
    area = resolve_area(session, code)
    rows = session.execute(text(f"{SUBTREE} SELECT id, village_id FROM sub"),
                           {"root": area["id"], "root_village": area["village_id"]}).all()
    return area, {"sub_ids": [r.id for r in rows], "sub_villages": [r.village_id for r in rows]}


# --------------------------------------------------------------------------- links

LINK_SELECT = """
    SELECT l.id, l.person_id, p.name AS person_name, l.household_id, h.ref AS household_ref, l.kind,
           k.name_zh AS kind_name_zh, k.name_en AS kind_name_en, l.central_id, c.ref AS central_ref,
           l.start_date, l.end_date, l.version, l.created_at, g.code AS grid
    FROM contact_link l JOIN person p ON p.id = l.person_id JOIN household h ON h.id = l.household_id
    JOIN contact_kind k ON k.key = l.kind LEFT JOIN household c ON c.id = l.central_id
    LEFT JOIN area g ON g.id = h.grid_id CROSS JOIN LATERAL (SELECT """ + PLACE_SQL + """ AS place) hp
"""


def kinds(session: Session) -> dict[str, dict]:
    """The contact kinds by key, with their quotas."""
    rows = session.execute(text("SELECT key, name_zh, name_en, visit_every_days, visits_per_year, rank "
                                "FROM contact_kind ORDER BY rank, key"))
    return {r.key: r._asdict() for r in rows}


def _check_link(session: Session, link: dict, problems: list[Problem], *, link_id: int | None = None) -> None:
    """The rules of one link's kind, central household and dates (problems noted)."""
    known = kinds(session)
    if link["kind"] not in known:
        problems.append(Problem(f"unknown kind {link['kind']!r}; known: {', '.join(known)}", field="kind"))
    start, end = link["start_date"], link["end_date"]
    if start and end and end < start:
        problems.append(Problem(f"end_date {end} is before start_date {start}", field="end_date"))
    today = dt.date.today()
    if start and not dt.date(1949, 10, 1) <= start <= today + dt.timedelta(days=FUTURE_DAYS):
        problems.append(Problem(f"start_date {start} is not a plausible date", field="start_date"))
    if link["kind"] == RADIATING and link["central_id"] is None:
        problems.append(Problem("a radiating household (辐射户) names its central household: central_id",
                                field="central_id"))
    if link["kind"] != RADIATING and link["central_id"] is not None:
        problems.append(Problem("only a radiating household (辐射户) names a central household", field="central_id"))
    if link["kind"] == RADIATING and link["central_id"] is not None and start:
        if link["central_id"] == link["household_id"]:
            problems.append(Problem("a household cannot be its own central household", field="central_id"))
            return
        # Hidden and unknown households answer alike: "no active central link of this cadre".
        places = household_places(session, [link["central_id"]])
        central_place = places.get(link["central_id"])
        ok = central_place is not None and not scopes.outside_scope(session, READERS, {central_place}) and \
            session.execute(text("""
                SELECT 1 FROM contact_link WHERE household_id = :c AND person_id = :p AND kind = :central
                  AND start_date <= :d AND (end_date IS NULL OR end_date >= :d) AND id IS DISTINCT FROM :self
            """), {"c": link["central_id"], "p": link["person_id"], "central": CENTRAL, "d": start,
                   "self": link_id}).first() is not None
        if not ok:
            problems.append(Problem(f"household {link['central_id']} has no active central link (中心户) of person "
                                    f"{link['person_id']} on {start} (or is outside your scope)", field="central_id"))


def create_link(session: Session, data: dict) -> dict:
    """Link a cadre to a household (planners and grid workers whose scope holds the
    household). One person holds at most one link to a household over any day (409)."""
    scopes.require_role(session, *WRITERS)
    household_id = data.get("household_id")
    if not isinstance(household_id, int) or isinstance(household_id, bool):
        raise GeogridError("household_id is required",
                           problems=[Problem("household_id must be an id", field="household_id")])
    if require_household(session, household_id, WRITERS)["retired"]:
        raise GeogridError(f"household {household_id} is retired (moved away or merged): link its new household",
                           problems=[Problem("retired household", field="household_id")])
    problems: list[Problem] = []
    person_id = visible_person(session, data.get("person_id"))
    link = {"person_id": person_id, "household_id": household_id, "kind": data.get("kind"),
            "central_id": data.get("central_id"),
            "start_date": as_date(data.get("start_date"), "start_date", problems, required=True),
            "end_date": as_date(data.get("end_date"), "end_date", problems)}
    _check_link(session, link, problems)
    if problems:
        raise GeogridError("contact link rejected; nothing was stored", problems=problems)
    _no_overlap(session, link)
    link_id = session.execute(text("""
        INSERT INTO contact_link (person_id, household_id, kind, central_id, start_date, end_date)
        VALUES (:person_id, :household_id, :kind, :central_id, :start_date, :end_date) RETURNING id
    """), link).scalar_one()
    refresh_due(session, [household_id])
    out = _link(session, link_id)
    audit.record(session, "create", "contact_link", link_id, None, out)
    return out


def _no_overlap(session: Session, link: dict, link_id: int | None = None) -> None:
    clash = session.execute(text("""
        SELECT id FROM contact_link WHERE person_id = :person_id AND household_id = :household_id
          AND id IS DISTINCT FROM :self
          AND daterange(start_date, end_date, '[]') && daterange(:start_date, :end_date, '[]') LIMIT 1
    """), {**link, "self": link_id}).scalar()
    if clash is not None:
        raise conflict(f"person {link['person_id']} is already linked to household {link['household_id']} over "
                       f"overlapping dates (link {clash}): end that link first", link_id=clash)


def _link(session: Session, link_id: int) -> dict:
    return dict(session.execute(text(f"{LINK_SELECT} WHERE l.id = :id"), {"id": link_id}).mappings().one())


def get_link(session: Session, link_id: int, roles=READERS, *, for_update: bool = False) -> dict:
    """One link whose household lies in the caller's scope for ``roles``; unknown and hidden
    links answer alike."""
    row = session.execute(text("SELECT household_id FROM contact_link WHERE id = :id" +
                               (" FOR UPDATE" if for_update else "")), {"id": link_id}).first()
    place = household_place(session, row.household_id) if row else None
    scopes.require_object(session, f"contact link {link_id}", roles,
                          None if row is None else [place] if place is not None else [])
    return _link(session, link_id)


def update_link(session: Session, link_id: int, changes: dict, expected_version: int | None = None) -> dict:
    """End a link (``end_date``) or change its kind (and central household); the person and
    the household are fixed (another cadre is another link). 412 on a stale version."""
    current = get_link(session, link_id, WRITERS, for_update=True)
    check_version("contact link", link_id, current=current["version"], expected=expected_version)
    problems: list[Problem] = []
    values = {k: v for k, v in changes.items() if k in ("kind", "central_id", "end_date", "start_date")}
    for key in ("start_date", "end_date"):
        if key in values:
            values[key] = as_date(values[key], key, problems, required=key == "start_date")
    if values.get("kind") and values["kind"] != RADIATING and "central_id" not in values:
        values["central_id"] = None  # no longer radiating: no central household
    link = {k: current[k] for k in ("person_id", "household_id", "kind", "central_id", "start_date", "end_date")}
    link.update(values)
    if not problems:
        _check_link(session, link, problems, link_id=link_id)
    if problems:
        raise GeogridError(f"contact link {link_id} was not changed", problems=problems)
    if values:
        _no_overlap(session, link, link_id)
        update_versioned(session, "contact_link", link_id, values, "the change clashes with another link")
        refresh_due(session, [current["household_id"]])
        after = _link(session, link_id)
        audit.record(session, "update", "contact_link", link_id, current, after)
        return after
    return current


def list_links(session: Session, *, area: str | None = None, person: int | None = None,
               active_on: dt.date | None = None, limit: int = 1000, offset: int = 0) -> tuple[list[dict], int]:
    """Links whose household lies in the caller's scope (readers), filtered by area (its
    subtree), cadre and day; the page and the number matched."""
    scopes.require_role(session, *READERS)
    scope, params = scopes.scope_filter(session, READERS, "hp.place")
    where = [scope]
    params.update(limit=limit, offset=offset)
    sub = ""
    if area:
        row = session.execute(text("SELECT id FROM area WHERE code = :c"), {"c": area}).first()
        if row is None:
            raise not_found(f"area {area}")
        sub = SUBTREE
        params.update(root=row.id, root_village=None)
        where.append("hp.place IN (SELECT id FROM sub)")
    if person is not None:
        where.append("l.person_id = :person")
        params["person"] = person
    if active_on is not None:
        where.append("l.start_date <= :day AND (l.end_date IS NULL OR l.end_date >= :day)")
        params["day"] = active_on
    base = f"{sub} {LINK_SELECT} WHERE {' AND '.join(where)}"
    total = session.execute(text(f"SELECT count(*) FROM ({base}) q"), params).scalar_one()
    rows = session.execute(text(f"{base} ORDER BY l.household_id, l.start_date, l.id LIMIT :limit OFFSET :offset"),
                           params).mappings().all()
    return [dict(r) for r in rows], total


# --------------------------------------------------------------------------- the 1+1+n check


def check_structure(session: Session, settings: Settings, *, area: str, on: dt.date | None = None,
                    limit: int = 1000) -> dict:
    """The "1+1+n" check of ``area``'s subtree on ``on`` (default today): see the module
    docstring. Lists hold at most ``limit`` rows each; the counts are complete."""
    found, params = area_subtree(session, area)
    day = on or local_today(settings)
    lo, hi = settings.radiating_per_central
    without_jit(session)
    params.update(day=day, max=settings.households_per_cadre_max, lo=lo, hi=hi, limit=limit,
                  central=CENTRAL, radiating=RADIATING)
    active = "l.start_date <= :day AND (l.end_date IS NULL OR l.end_date >= :day)"
    row = session.execute(text(f"""
        WITH {SUB_ROWS},
        {HOUSEHOLDS_IN_SUB},
        links AS MATERIALIZED (
            SELECT l.* FROM contact_link l JOIN hh ON hh.id = l.household_id WHERE {active}),
        per_h AS MATERIALIZED (
            SELECT hh.id, hh.grid_id, hh.place, hh.village_id, count(l.id) AS links,
                   coalesce(bool_or(l.kind = :central), false) AS is_central,
                   coalesce(bool_or(l.kind = :radiating), false) AS is_radiating
            FROM hh LEFT JOIN links l ON l.household_id = hh.id
            GROUP BY hh.id, hh.grid_id, hh.place, hh.village_id),
        unlinked AS (SELECT * FROM per_h WHERE links = 0),
        cadres AS (
            SELECT p.id AS person_id, p.name, count(DISTINCT l.household_id) AS households
            FROM contact_link l JOIN person p ON p.id = l.person_id
            WHERE {active} AND l.person_id IN (SELECT person_id FROM links)
            GROUP BY p.id, p.name HAVING count(DISTINCT l.household_id) > :max),
        rad AS (
            SELECT l.central_id, l.person_id, count(DISTINCT l.household_id) AS n FROM contact_link l
            WHERE l.kind = :radiating AND {active}
              AND l.central_id IN (SELECT household_id FROM links WHERE kind = :central)
            GROUP BY l.central_id, l.person_id),
        bad_centrals AS MATERIALIZED (
            SELECT c.household_id, c.person_id, coalesce(rad.n, 0) AS radiating
            FROM links c LEFT JOIN rad ON rad.central_id = c.household_id AND rad.person_id = c.person_id
            WHERE c.kind = :central AND NOT coalesce(rad.n, 0) BETWEEN :lo AND :hi),
        orphans AS MATERIALIZED (
            SELECT r.* FROM links r WHERE r.kind = :radiating AND NOT EXISTS (
                SELECT 1 FROM contact_link c WHERE c.household_id = r.central_id AND c.person_id = r.person_id
                  AND c.kind = :central AND c.start_date <= :day AND (c.end_date IS NULL OR c.end_date >= :day))),
        per_place AS (
            SELECT ph.place, ph.village_id, count(*) AS households, count(*) FILTER (WHERE ph.links > 0) AS linked,
                   count(*) FILTER (WHERE ph.is_central) AS central,
                   count(*) FILTER (WHERE ph.is_radiating) AS radiating,
                   count(b.household_id) AS centrals_off, count(o.household_id) AS orphaned
            FROM per_h ph
            LEFT JOIN (SELECT DISTINCT household_id FROM bad_centrals) b ON b.household_id = ph.id
            LEFT JOIN (SELECT DISTINCT household_id FROM orphans) o ON o.household_id = ph.id
            GROUP BY ph.place, ph.village_id)
        SELECT
          (SELECT count(*) FROM unlinked) AS unlinked_count,
          (SELECT coalesce(json_agg(u ORDER BY u.ref), '[]') FROM (
              SELECT u.id, h.ref, {ADDRESS_COLUMNS}, g.code AS grid FROM unlinked u JOIN household h ON h.id = u.id
              LEFT JOIN area g ON g.id = u.grid_id
              ORDER BY h.ref LIMIT :limit) u) AS unlinked,
          (SELECT count(*) FROM cadres) AS overloaded_count,
          (SELECT coalesce(json_agg(c ORDER BY c.households DESC, c.person_id), '[]') FROM (
              SELECT * FROM cadres ORDER BY households DESC, person_id LIMIT :limit) c) AS overloaded,
          (SELECT count(*) FROM bad_centrals) AS centrals_count,
          (SELECT coalesce(json_agg(b ORDER BY b.ref), '[]') FROM (
              SELECT b.household_id AS id, h.ref, b.person_id, b.radiating FROM bad_centrals b
              JOIN household h ON h.id = b.household_id ORDER BY h.ref LIMIT :limit) b) AS centrals,
          (SELECT count(*) FROM orphans) AS orphans_count,
          (SELECT coalesce(json_agg(o ORDER BY o.ref), '[]') FROM (
              SELECT o.household_id AS id, h.ref, o.person_id, o.central_id, o.id AS link_id FROM orphans o
              JOIN household h ON h.id = o.household_id ORDER BY h.ref LIMIT :limit) o) AS orphans,
          (SELECT coalesce(json_agg(x), '[]') FROM (
              SELECT a.code, a.name, v.code AS village, pp.households, pp.linked,
                     pp.households - pp.linked AS unlinked, pp.central, pp.radiating, pp.centrals_off, pp.orphaned
              FROM per_place pp JOIN area a ON a.id = pp.place LEFT JOIN area v ON v.id = pp.village_id
              ORDER BY a.code) x) AS grids
    """), params).mappings().one()
    grids = row["grids"]
    return {"area": {"code": found["code"], "name": found["name"]}, "on": day,
            "limits": {"households_per_cadre_max": settings.households_per_cadre_max,
                       "radiating_per_central": [lo, hi]},
            "unlinked": {"count": row["unlinked_count"], "items": with_address(row["unlinked"])},
            "overloaded_cadres": {"count": row["overloaded_count"], "items": row["overloaded"]},
            "centrals_off": {"count": row["centrals_count"], "items": row["centrals"]},
            "orphaned_radiating": {"count": row["orphans_count"], "items": row["orphans"]},
            "grids": grids, "villages": villages_of(session, grids)}


COUNTS = ("households", "linked", "unlinked", "central", "radiating", "centrals_off", "orphaned", "behind")


def villages_of(session: Session, grids: list[dict]) -> list[dict]:
    """Per-grid rows (with their ``village`` code) summed per village."""
    sums: dict = {}
    for g in grids:
        v = sums.setdefault(g.get("village"), {"code": g.get("village")})
        for k in COUNTS:
            if k in g:
                v[k] = v.get(k, 0) + (g[k] or 0)
    names: dict[str, str] = dict(session.execute(text("SELECT code, name FROM area WHERE code = ANY(:c)"),
                                 {"c": [c for c in sums if c]}).all())
    return [{**v, "name": names.get(v["code"])} for _, v in sorted(sums.items(), key=lambda kv: kv[0] or "")]
