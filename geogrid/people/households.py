"""The household register (户情档案): households and their buildings, residents and their
special-group tags, the grid each household lies in (derived, with history), and the
counts per grid that size the grids.

**Derivation.** A household's grid is the grid of the comprehensive layer (综治网格) whose
current boundary covers its point, by the rule incidents are routed by
(:func:`geogrid.areas.lookup.locate`'s primary, the finest level first): a grid whose
interior holds the point, else the lowest code. :func:`rederive` is the one function that
(re)computes it: the register import (reason ``register``), every boundary write (area
imports, edits, retirement and the planner's editing operations: ``redraw``) and a
household's move (``moved``). It routes the candidates in bulk with
:class:`geogrid.geo.routing.PointRouter` (the same answers as ``locate``), then writes
set-based: ``household.grid_id`` and, only where the grid changes, the current
``household_grid`` row is closed and a new one opened.

**Privacy.** Residents and their tags are read only by callers holding ``resident_data``
on the household's place (its grid, else the administrative area holding its point);
every resident read leaves an audit row (action ``read``, resource ``resident``). An ID
number is kept as an HMAC-SHA256 of its normalised form (:func:`id_digest`) and its last
4 characters; it is never stored, logged, audited or echoed whole.

**For other modules** (contact links, visits, requests without a point):
:func:`household_place` (the area a household belongs to, unchecked) and
:func:`require_household` (a scope-checked brief record, the 403/404 rule of
:mod:`geogrid.access.scopes`).
"""

from __future__ import annotations

import datetime as dt
import hmac
import os
import secrets
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from geogrid.access import audit, scopes
from geogrid.core.errors import GeogridError, Problem, not_found
from geogrid.core.settings import Settings
from geogrid.db.schema import ADMIN_LAYER
from geogrid.geo.routing import PointRouter
from geogrid.people.due import refresh_due

COMPREHENSIVE = "comprehensive"  # the net households belong to (综治网格)
HOUSEHOLD_ROLES = ("planner", "grid_worker")  # who reads and imports the register
KINDS = {"registered": ("户籍", "Registered"), "floating": ("流动", "Floating"), "separated": ("人户分离", "Separated")}
REASONS = ("register", "redraw", "moved")
ID_KEY_FILE = "id-hash.key"
MASK = "*" * 14  # an 18-character ID number shown as its last 4 only

# A household's place for scope: its grid, else the finest administrative area holding its point.
ADMIN_PLACE_SQL = f"""(SELECT a.id FROM boundary b JOIN area a ON a.id = b.area_id JOIN level l ON l.key = a.level_key
    WHERE a.layer_key = '{ADMIN_LAYER}' AND upper_inf(b.valid) AND ST_Covers(b.geom, {{geom}})
    ORDER BY l.rank DESC, NOT ST_Contains(b.geom, {{geom}}), a.code LIMIT 1)"""
PLACE_SQL = "coalesce(h.grid_id, " + ADMIN_PLACE_SQL.format(geom="h.geom") + ")"


# --------------------------------------------------------------------------- ID numbers


def id_key(settings: Settings) -> bytes:
    """The secret key of the ID-number hash: ``settings.id_hash_key``, else a random 32-byte
    key created once in ``state_dir/id-hash.key`` (mode 0600) and read back afterwards."""
    if settings.id_hash_key:
        return settings.id_hash_key.encode()
    path = Path(settings.state_dir) / ID_KEY_FILE
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return bytes.fromhex(path.read_text().strip())
    key = secrets.token_bytes(32)
    with os.fdopen(fd, "w") as fh:
        fh.write(key.hex())
    return key


def normalise_id(number) -> str:
    """An ID number as compared: spaces stripped, upper case (the check letter X)."""
    return "".join(str(number or "").split()).upper()


def id_digest(normalised: str, key: bytes) -> str:
    """HMAC-SHA256 (hex) of a normalised ID number."""
    return hmac.digest(key, normalised.encode(), "sha256").hex()  # the one-shot C path: 1.4 M a register


def masked(last4: str | None) -> str | None:
    """An ID number as shown: its last 4 characters behind asterisks."""
    return MASK + last4 if last4 else None


# --------------------------------------------------------------------------- routing points to areas


def _layer_areas(session: Session, layer: str, bbox: tuple[float, float, float, float] | None) -> dict[int, list]:
    """Current areas of ``layer`` (within ``bbox``) by level rank: rank -> [(id, code, wkb)]."""
    params: dict = {"layer": layer}
    near = ""
    if bbox is not None:
        near = "AND b.geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)"
        params.update(zip(("x0", "y0", "x1", "y1"), bbox))
    rows = session.execute(text(f"""
        SELECT a.id, a.code, l.rank, ST_AsBinary(b.geom) AS wkb
        FROM area a JOIN boundary b ON b.area_id = a.id AND upper_inf(b.valid) JOIN level l ON l.key = a.level_key
        WHERE a.layer_key = :layer {near}
    """), params).all()
    out: dict[int, list] = {}
    for r in rows:
        out.setdefault(r.rank, []).append((r.id, r.code, r.wkb))
    return out


def route_points(session: Session, layer: str, x, y) -> np.ndarray:
    """The id of the area of ``layer`` holding each point (lon ``x``, lat ``y``), -1 where none:
    the finest level first, then by ``locate``'s rule (interior first, then lowest code)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    out = np.full(len(x), -1, dtype=np.int64)
    if len(x) == 0:
        return out
    margin = 1e-7
    bbox = (float(x.min()) - margin, float(y.min()) - margin, float(x.max()) + margin, float(y.max()) + margin)
    for rank, areas in sorted(_layer_areas(session, layer, bbox).items(), reverse=True):
        todo = np.flatnonzero(out < 0)
        if todo.size == 0:
            break
        ids = np.array([a[0] for a in areas], dtype=np.int64)
        router = PointRouter([a[1] for a in areas], shapely.from_wkb([bytes(a[2]) for a in areas]))
        found = router.route(x[todo], y[todo])
        hit = found >= 0
        out[todo[hit]] = ids[found[hit]]
    return out


def places_of_points(session: Session, x, y) -> tuple[np.ndarray, np.ndarray]:
    """(grid id, administrative area id) of each point, -1 where none."""
    return route_points(session, COMPREHENSIVE, x, y), route_points(session, ADMIN_LAYER, x, y)


# --------------------------------------------------------------------------- derivation


def copy_rows(session: Session, sql: str, rows: Iterable[Sequence]) -> None:
    """COPY ``rows`` in through the session's own connection (same transaction)."""
    raw = session.connection().connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur, cur.copy(sql) as copy:
        for row in rows:
            copy.write_row(row)


def apply_grids(session: Session, household_ids: Sequence[int], grid_ids: Sequence[int | None], reason: str, *,
                new: bool = False) -> dict:
    """Record that each household lies in the grid given (None or -1: in none), set-based:
    ``household.grid_id`` is updated where it differs, the current ``household_grid`` row is
    closed and a new one opened only where the grid changes (or none is open yet). A row
    opened earlier in the same transaction is corrected in place (a zero-length period
    would say nothing). ``new``: households just inserted with this very ``grid_id`` and no
    history yet (an import): their first rows are copied in directly.
    Returns ``{"changed": n, "opened": n}``."""
    if reason not in REASONS:
        raise ValueError(f"unknown derivation reason {reason!r}")
    if len(household_ids) == 0:
        return {"changed": 0, "opened": 0}
    if new:
        copy_rows(session, "COPY household_grid (household_id, grid_id, reason) FROM STDIN",
                  ((int(h), None if g is None or g < 0 else int(g), reason) for h, g in zip(household_ids, grid_ids)))
        return {"changed": 0, "opened": len(household_ids)}
    session.execute(text("CREATE TEMP TABLE IF NOT EXISTS tmp_derived (household_id integer PRIMARY KEY, "
                         "grid_id integer) ON COMMIT DROP"))
    session.execute(text("TRUNCATE tmp_derived"))
    copy_rows(session, "COPY tmp_derived (household_id, grid_id) FROM STDIN",
               zip((int(h) for h in household_ids), (None if g is None or g < 0 else int(g) for g in grid_ids)))
    session.execute(text("ANALYZE tmp_derived"))
    changed = session.execute(text("""
        UPDATE household h SET grid_id = d.grid_id, updated_at = now()
        FROM tmp_derived d WHERE h.id = d.household_id AND h.grid_id IS DISTINCT FROM d.grid_id
    """)).rowcount  # type: ignore[attr-defined]
    # Rows opened in this transaction: corrected in place.
    session.execute(text("""
        UPDATE household_grid g SET grid_id = d.grid_id, reason = :reason
        FROM tmp_derived d WHERE g.household_id = d.household_id AND upper_inf(g.valid)
          AND lower(g.valid) = now() AND g.grid_id IS DISTINCT FROM d.grid_id
    """), {"reason": reason})
    session.execute(text("""
        UPDATE household_grid g SET valid = tstzrange(lower(g.valid), now())
        FROM tmp_derived d WHERE g.household_id = d.household_id AND upper_inf(g.valid)
          AND lower(g.valid) < now() AND g.grid_id IS DISTINCT FROM d.grid_id
    """))
    opened = session.execute(text("""
        INSERT INTO household_grid (household_id, grid_id, reason)
        SELECT d.household_id, d.grid_id, :reason FROM tmp_derived d
        WHERE NOT EXISTS (SELECT 1 FROM household_grid g WHERE g.household_id = d.household_id AND upper_inf(g.valid))
    """), {"reason": reason}).rowcount  # type: ignore[attr-defined]
    return {"changed": changed, "opened": opened}


def rederive(session: Session, where: Sequence[int] | shapely.Geometry | None, reason: str, *,
             households: Sequence[int] | None = None) -> dict:
    """Derive again the grid of the live households concerned and record the changes
    (:func:`apply_grids`). ``where``: grid ids (their households and every household in
    their current boundaries: a redrawn grid's old and new geometry), a region (shapely,
    lon/lat), or None with ``households`` (ids) or for the whole register. Areas of other
    layers are ignored. Returns ``{"checked", "changed", "opened", "outside"}``."""
    params: dict = {}
    if households is not None:
        cond, params = "h.id = ANY(:hh)", {"hh": [int(h) for h in households]}
    elif isinstance(where, shapely.Geometry):
        cond, params = ("ST_Covers(ST_SetSRID(ST_GeomFromWKB(:region), 4326), h.geom)",
                        {"region": shapely.to_wkb(where)})
    elif where is not None:
        ids = session.execute(text("SELECT id FROM area WHERE id = ANY(:ids) AND layer_key = :layer"),
                              {"ids": [int(i) for i in where], "layer": COMPREHENSIVE}).scalars().all()
        if not ids:
            return {"checked": 0, "changed": 0, "opened": 0, "outside": 0}
        # Two index scans (the grid's households; the points its boundary covers): an OR of
        # the two would read the whole register.
        cond, params = ("""h.id IN (SELECT id FROM household WHERE grid_id = ANY(:grids)
                                   UNION
                                   SELECT x.id FROM boundary b JOIN household x ON ST_Covers(b.geom, x.geom)
                                   WHERE b.area_id = ANY(:grids) AND upper_inf(b.valid))""", {"grids": list(ids)})
    else:
        cond = "TRUE"
    rows = session.execute(text(f"SELECT h.id, ST_X(h.geom) AS x, ST_Y(h.geom) AS y FROM household h "
                                f"WHERE h.retired_at IS NULL AND {cond}"), params).all()
    if not rows:
        return {"checked": 0, "changed": 0, "opened": 0, "outside": 0}
    ids = [r.id for r in rows]
    grids = route_points(session, COMPREHENSIVE, [r.x for r in rows], [r.y for r in rows])
    out = apply_grids(session, ids, grids.tolist(), reason)
    return {"checked": len(ids), **out, "outside": int((grids < 0).sum())}


def rederive_after_boundary_write(session: Session, area_ids: Sequence[int]) -> None:
    """The hook of every boundary write (areas import, edit, retirement): households in the
    old or new geometry of changed comprehensive grids get their grid derived again."""
    if area_ids and session.execute(text("SELECT EXISTS (SELECT 1 FROM household)")).scalar_one():
        rederive(session, area_ids, "redraw")


# --------------------------------------------------------------------------- counts


def register_counts(session: Session, area_ids: Sequence[int]) -> dict[int, dict]:
    """Live households and residents per grid from the register: grid id -> counts (grids
    without households are left out)."""
    rows = session.execute(text("""
        SELECT h.grid_id, count(*) AS households, coalesce(sum(r.n), 0) AS residents
        FROM household h
        LEFT JOIN LATERAL (SELECT count(*) AS n FROM resident r WHERE r.household_id = h.id AND r.retired_at IS NULL) r
          ON TRUE
        WHERE h.retired_at IS NULL AND h.grid_id = ANY(:ids)
        GROUP BY h.grid_id
    """), {"ids": [int(i) for i in area_ids]}).all()
    return {r.grid_id: {"households": int(r.households), "residents": int(r.residents)} for r in rows}


def registered_parents(session: Session, parent_ids: Sequence[int]) -> set[int]:
    """The areas of ``parent_ids`` (villages) whose grids hold live households of the register:
    there the register's counts replace the typed ones."""
    return set(session.execute(text("""
        SELECT DISTINCT g.parent_id FROM household h JOIN area g ON g.id = h.grid_id
        WHERE h.retired_at IS NULL AND g.parent_id = ANY(:ids)
    """), {"ids": [int(i) for i in parent_ids]}).scalars().all())


def grid_sizes(session: Session, code: str) -> list[dict]:
    """The comprehensive grids under area ``code`` with their households and residents: from the
    register where it covers the grid's village (``source`` register), else the typed numbers
    (``source`` typed). Scope: planner or grid worker on the area."""
    area = _area(session, code)
    scopes.require_scope(session, HOUSEHOLD_ROLES, [area.id], strict=False, action="read the register of")
    grids = session.execute(text("""
        WITH RECURSIVE sub(id) AS (SELECT CAST(:root AS integer) UNION ALL
                                   SELECT a.id FROM area a JOIN sub ON a.parent_id = sub.id)
        SELECT a.id, a.code, a.name, a.parent_id, a.households, a.population FROM area a
        WHERE a.id IN (SELECT id FROM sub) AND a.layer_key = :layer AND a.retired_at IS NULL ORDER BY a.code
    """), {"root": area.id, "layer": COMPREHENSIVE}).all()
    counts = register_counts(session, [g.id for g in grids])
    registered = registered_parents(session, sorted({g.parent_id for g in grids if g.parent_id is not None}))
    out = []
    for g in grids:
        if g.parent_id in registered:
            c = counts.get(g.id, {"households": 0, "residents": 0})
            out.append({"code": g.code, "name": g.name, "households": c["households"], "population": c["residents"],
                        "source": "register", "typed_households": g.households, "typed_population": g.population})
        else:
            out.append({"code": g.code, "name": g.name, "households": g.households, "population": g.population,
                        "source": "typed", "typed_households": g.households, "typed_population": g.population})
    return out


# --------------------------------------------------------------------------- places and scope


def _area(session: Session, code: str):
    row = session.execute(text("SELECT id, code, name FROM area WHERE code = :c"), {"c": code}).first()
    if row is None:
        raise not_found(f"area {code}")
    return row


def household_place(session: Session, household_id: int) -> int | None:
    """The area a household belongs to: its grid, else the finest administrative area holding
    its point; None for an unknown household (or one outside every area). No scope check:
    callers check the caller's scope on the answer before revealing anything."""
    return session.execute(text(f"SELECT {PLACE_SQL} FROM household h WHERE h.id = :id"),
                           {"id": household_id}).scalar()


_BRIEF = f"""
    SELECT h.id, h.ref, h.town, h.village, h.street, h.number, h.building_no, h.unit, h.room, h.head_name, h.kind,
           h.rental, h.phone, h.located_by, h.version, h.retired_at, h.grid_id, g.code AS grid_code, g.name AS grid_name,
           bd.ref AS building, ST_X(h.geom) AS lon, ST_Y(h.geom) AS lat, {PLACE_SQL} AS place_id,
           (SELECT count(*) FROM resident r WHERE r.household_id = h.id AND r.retired_at IS NULL) AS members
    FROM household h LEFT JOIN area g ON g.id = h.grid_id LEFT JOIN building bd ON bd.id = h.building_id
"""


def address(r) -> str:
    """A household's address as one line (楼/单元/室 added to bare numbers)."""
    parts = [r.get("town"), r.get("village"), r.get("street"), r.get("number")]
    for value, suffix in ((r.get("building_no"), "幢"), (r.get("unit"), "单元"), (r.get("room"), "室")):
        if value:
            parts.append(value + suffix if str(value).isdigit() else value)
    return "".join(p for p in parts if p)


def mask_name(name: str | None) -> str:
    """A person's surname with the given name masked, one ``*`` per character: how a
    household head is shown to staff without resident_data, and on contact cards.

    >>> mask_name("张三丰"), mask_name("李四"), mask_name("")
    ('张**', '李*', '')
    """
    name = (name or "").strip()
    return name[:1] + "*" * (len(name) - 1) if name else ""


def _brief(row, *, personal: bool) -> dict:
    """A household as staff see it; ``personal`` (resident_data there): the head's whole name and the phone."""
    r = dict(row._mapping)
    out = {k: r[k] for k in ("id", "ref", "kind", "rental", "located_by", "building", "version",
                             "members", "town", "village", "street", "number", "building_no", "unit", "room")}
    out.update({
        "address": address(r), "lon": round(r["lon"], 7), "lat": round(r["lat"], 7),
        "grid": {"code": r["grid_code"], "name": r["grid_name"]} if r["grid_code"] else None,
        "grid_id": r["grid_id"], "place_id": r["place_id"], "retired": r["retired_at"] is not None,
        "head_name": r["head_name"] if personal else mask_name(r["head_name"]),
        "phone": r["phone"] if personal else None,
    })
    return out


def require_household(session: Session, household_id: int, roles: Sequence[str] = HOUSEHOLD_ROLES) -> dict:
    """A household's brief record (address, point, grid, head, kind, rental, members; its
    phone only for callers with ``resident_data`` there) after checking that the caller holds
    one of ``roles`` on its place: 403 out of scope or unknown (404 for callers who see
    everything)."""
    row = session.execute(text(_BRIEF + " WHERE h.id = :id"), {"id": household_id}).first()
    scopes.require_object(session, f"household {household_id}", tuple(roles),
                          None if row is None else [row.place_id])
    assert row is not None  # require_object raised otherwise
    return _brief(row, personal=scopes.in_scope(session, scopes.RESIDENT_DATA, [row.place_id]))


def _subtree_ids(session: Session, code: str) -> Sequence[int]:
    root = _area(session, code)
    return session.execute(text("""
        WITH RECURSIVE sub(id) AS (SELECT CAST(:root AS integer) UNION ALL
                                   SELECT a.id FROM area a JOIN sub ON a.parent_id = sub.id)
        SELECT id FROM sub"""), {"root": root.id}).scalars().all()


# --------------------------------------------------------------------------- reads


def list_households(session: Session, *, area: str | None = None, q: str | None = None, limit: int = 50,
                    offset: int = 0) -> tuple[list[dict], int]:
    """Live households in the caller's scope (planner or grid worker), optionally within area
    ``area``'s subtree and matching ``q`` (ref, head or address contains); one page and the
    total matched. Phones only where the caller holds resident_data."""
    scopes.require_role(session, *HOUSEHOLD_ROLES)
    cond, params = scopes.scope_filter(session, HOUSEHOLD_ROLES, PLACE_SQL)
    where = ["h.retired_at IS NULL", cond]
    if area:
        where.append(f"{PLACE_SQL} = ANY(:subtree)")
        params["subtree"] = _subtree_ids(session, area)
    if q:
        # The head's name is searched only where the caller may read it (resident_data), so
        # that a search cannot tell who heads a household elsewhere.
        personal, personal_params = scopes.scope_filter(session, scopes.RESIDENT_DATA, PLACE_SQL, "personal_roots")
        params.update(personal_params)
        where.append("(concat_ws(' ', h.ref, h.town, h.village, h.street, h.number, h.building_no, h.unit, h.room) "
                     f"ILIKE :q OR (h.head_name ILIKE :q AND {personal}))")
        params["q"] = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    cond_sql = " AND ".join(where)
    total = session.execute(text(f"SELECT count(*) FROM household h WHERE {cond_sql}"), params).scalar_one()
    rows = session.execute(text(f"{_BRIEF} WHERE {cond_sql} ORDER BY h.ref LIMIT :limit OFFSET :offset"),
                           {**params, "limit": limit, "offset": offset}).all()
    private = scopes.outside_scope(session, scopes.RESIDENT_DATA, {r.place_id for r in rows})
    return [_brief(r, personal=r.place_id not in private) for r in rows], total


def get_household(session: Session, household_id: int) -> dict:
    """One household (planner or grid worker on its place), with its member count."""
    return require_household(session, household_id, HOUSEHOLD_ROLES)


def _tags_of(session: Session, resident_ids: list[int], lang: str) -> dict[int, list[dict]]:
    label = "name_en" if lang == "en" else "name_zh"
    out: dict[int, list[dict]] = {}
    for t in session.execute(text(f"""
            SELECT t.id, t.resident_id, t.group_key, g.{label} AS group_name, t.start_date, t.end_date, t.note
            FROM resident_tag t JOIN special_group g ON g.key = t.group_key
            WHERE t.resident_id = ANY(:ids) ORDER BY t.start_date, t.id"""), {"ids": resident_ids}).mappings():
        out.setdefault(t["resident_id"], []).append({k: t[k] for k in ("id", "group_key", "group_name", "start_date",
                                                                       "end_date", "note")})
    return out


_RESIDENT = """
    SELECT r.id, r.household_id, h.ref AS household_ref, r.name, r.relation, r.gender, r.birth_date, r.id_last4,
           r.phone, r.version, r.retired_at
    FROM resident r JOIN household h ON h.id = r.household_id
"""


def _residents(session: Session, rows, lang: str) -> list[dict]:
    """Resident records as shown (ID masked), with tags; one audit row per resident read."""
    ids = [r.id for r in rows]
    tags = _tags_of(session, ids, lang)
    audit.record_many(session, "read", "resident", [(i, None, None) for i in ids])
    return [{"id": r.id, "household_id": r.household_id, "household_ref": r.household_ref, "name": r.name,
             "relation": r.relation, "gender": r.gender, "birth_date": r.birth_date,
             "id_number": masked(r.id_last4), "phone": r.phone, "version": r.version,
             "retired": r.retired_at is not None, "tags": tags.get(r.id, [])} for r in rows]


def household_residents(session: Session, household_id: int, *, lang: str = "zh",
                        include_retired: bool = False) -> list[dict]:
    """The members of a household (resident_data on its place); each read is audited."""
    require_household(session, household_id, scopes.RESIDENT_DATA)
    rows = session.execute(text(_RESIDENT + " WHERE r.household_id = :h" +
                                ("" if include_retired else " AND r.retired_at IS NULL") +
                                " ORDER BY r.relation <> '户主', r.id"), {"h": household_id}).all()
    return _residents(session, rows, lang)


def list_residents(session: Session, settings: Settings, *, area: str | None = None, tag: str | None = None,
                   lang: str = "zh", limit: int = 50, offset: int = 0) -> tuple[list[dict], int]:
    """Live residents in the caller's resident_data scope, within ``area``'s subtree, with a
    tag ``tag`` (a special group's key) current today in the jurisdiction; each one
    returned is audited."""
    scopes.require_role(session, *scopes.RESIDENT_DATA)
    cond, params = scopes.scope_filter(session, scopes.RESIDENT_DATA, PLACE_SQL)
    where = ["r.retired_at IS NULL", "h.retired_at IS NULL", cond]
    if area:
        where.append(f"{PLACE_SQL} = ANY(:subtree)")
        params["subtree"] = _subtree_ids(session, area)
    if tag:
        if session.execute(text("SELECT 1 FROM special_group WHERE key = :k"), {"k": tag}).first() is None:
            raise GeogridError(f"unknown special group {tag!r}", problems=[Problem("unknown special group", field="tag")])
        where.append("EXISTS (SELECT 1 FROM resident_tag t WHERE t.resident_id = r.id AND t.group_key = :tag "
                     "AND t.start_date <= :today AND (t.end_date IS NULL OR t.end_date >= :today))")
        params.update(tag=tag, today=today_local(settings))
    cond_sql = " AND ".join(where)
    total = session.execute(text(f"SELECT count(*) FROM resident r JOIN household h ON h.id = r.household_id "
                                 f"WHERE {cond_sql}"), params).scalar_one()
    rows = session.execute(text(f"{_RESIDENT} WHERE {cond_sql} ORDER BY h.ref, r.id LIMIT :limit OFFSET :offset"),
                           {**params, "limit": limit, "offset": offset}).all()
    return _residents(session, rows, lang), total


def household_history(session: Session, household_id: int) -> list[dict]:
    """The grids a household lay in, newest period first (planner or grid worker on its place)."""
    require_household(session, household_id, HOUSEHOLD_ROLES)
    rows = session.execute(text("""
        SELECT g.id, a.code, a.name, lower(g.valid) AS valid_from, upper(g.valid) AS valid_to, g.reason
        FROM household_grid g LEFT JOIN area a ON a.id = g.grid_id
        WHERE g.household_id = :h ORDER BY lower(g.valid) DESC, g.id DESC
    """), {"h": household_id}).mappings().all()
    return [{"grid": {"code": r["code"], "name": r["name"]} if r["code"] else None,
             "valid_from": r["valid_from"], "valid_to": r["valid_to"], "reason": r["reason"]} for r in rows]


# --------------------------------------------------------------------------- a household moves


def move_household(session: Session, household_id: int, *, lon: float | None = None, lat: float | None = None,
                   building: str | None = None, expected_version: int | None = None) -> dict:
    """Give a household a new point (its own, or its building's): the old and the new place
    must be in the caller's scope (planner or grid worker); the grid is derived again
    (reason ``moved``)."""
    from geogrid.core.versioning import check_version

    before = require_household(session, household_id, HOUSEHOLD_ROLES)
    check_version("household", household_id, current=before["version"], expected=expected_version)
    if (building is None) == (lon is None or lat is None):
        raise GeogridError("give either lon and lat or a building", problems=[Problem("a point or a building", field="lon")])
    assert building is not None or (lon is not None and lat is not None)
    building_id = None
    if building is not None:
        b = session.execute(text("SELECT id, ST_X(geom) AS x, ST_Y(geom) AS y FROM building WHERE ref = :r"),
                            {"r": building}).first()
        if b is None:
            raise GeogridError(f"unknown building {building}", problems=[Problem("unknown building", field="building")])
        building_id, lon, lat = b.id, b.x, b.y
    assert lon is not None and lat is not None
    grid, admin = places_of_points(session, [lon], [lat])
    if admin[0] < 0:
        raise GeogridError(f"point {lon:.7f}, {lat:.7f} is outside the jurisdiction: no area contains it",
                           problems=[Problem("outside the jurisdiction", field="location", location=(lon, lat))])
    new_place = int(grid[0] if grid[0] >= 0 else admin[0])
    scopes.require_scope(session, HOUSEHOLD_ROLES, [new_place], strict=False, action="move a household into")
    session.execute(text("""
        UPDATE household SET geom = ST_SetSRID(ST_MakePoint(:x, :y), 4326), building_id = coalesce(:b, building_id),
               located_by = CASE WHEN :b IS NULL THEN 'own' ELSE 'building' END,
               version = version + 1, updated_at = now() WHERE id = :id
    """), {"x": lon, "y": lat, "b": building_id, "id": household_id})
    rederive(session, None, "moved", households=[household_id])
    after = require_household(session, household_id, HOUSEHOLD_ROLES)
    keep = ("lon", "lat", "building", "grid", "located_by", "version")
    audit.record(session, "move", "household", before["ref"], {k: before[k] for k in keep}, {k: after[k] for k in keep})
    return after


# --------------------------------------------------------------------------- special groups and tags


def special_groups(session: Session) -> list[dict]:
    """The configurable list of special groups (staff)."""
    scopes.require_role(session, *scopes.STAFF)
    return [dict(r) for r in session.execute(text(
        "SELECT key, name_zh, name_en, visit_every_days, rank FROM special_group ORDER BY rank, key")).mappings()]


def add_special_group(session: Session, data: dict) -> dict:
    """Add a special group (admin only); 409 when the key exists."""
    scopes.require_role(session, "admin")
    if session.execute(text("SELECT 1 FROM special_group WHERE key = :key"), data).first():
        raise GeogridError(f"special group {data['key']} exists already", status=409)
    rank = data.get("rank") or session.execute(text("SELECT coalesce(max(rank), 0) + 10 FROM special_group")).scalar_one()
    session.execute(text("INSERT INTO special_group (key, name_zh, name_en, visit_every_days, rank) "
                         "VALUES (:key, :name_zh, :name_en, :visit_every_days, :rank)"), {**data, "rank": rank})
    out = {**data, "rank": rank}
    audit.record(session, "create", "special_group", data["key"], None, out)
    return out


TAG_WRITERS = ("planner", "grid_worker")


def _resident_place(session: Session, resident_id: int):
    return session.execute(text(f"SELECT r.id, r.household_id, {PLACE_SQL} AS place_id FROM resident r "
                                "JOIN household h ON h.id = r.household_id WHERE r.id = :id"), {"id": resident_id}).first()


def _check_tag_writer(session: Session, what: str, place_id: int | None) -> None:
    """resident_data and a planner or grid-worker grant, both over the resident's place."""
    scopes.require_object(session, what, scopes.RESIDENT_DATA, None if place_id is None else [place_id])
    scopes.require_object(session, what, TAG_WRITERS, None if place_id is None else [place_id])


def _tag_out(session: Session, tag_id: int, lang: str = "zh") -> dict:
    row = session.execute(text("SELECT resident_id FROM resident_tag WHERE id = :id"), {"id": tag_id}).scalar_one()
    return next(t for t in _tags_of(session, [row], lang)[row] if t["id"] == tag_id)


def _valid_group(session: Session, key) -> None:
    if session.execute(text("SELECT 1 FROM special_group WHERE key = :k"), {"k": key}).first() is None:
        raise GeogridError(f"unknown special group {key!r}", problems=[Problem("unknown special group", field="group_key")])


def add_tag(session: Session, resident_id: int, data: dict) -> dict:
    """Tag a resident with a special group from ``start_date`` (to ``end_date``, inclusive)."""
    r = _resident_place(session, resident_id)
    _check_tag_writer(session, f"resident {resident_id}", None if r is None else r.place_id)
    _valid_group(session, data["group_key"])
    if data.get("end_date") and data["end_date"] < data["start_date"]:
        raise GeogridError("end_date is before start_date", problems=[Problem("before start_date", field="end_date")])
    tag_id = session.execute(text("INSERT INTO resident_tag (resident_id, group_key, start_date, end_date, note) "
                                  "VALUES (:r, :group_key, :start_date, :end_date, :note) RETURNING id"),
                             {"r": resident_id, "end_date": None, "note": None, **data}).scalar_one()
    refresh_due(session, [r.household_id] if r is not None else [])
    out = _tag_out(session, tag_id)
    audit.record(session, "create", "resident_tag", tag_id, None, {**out, "resident_id": resident_id})
    return out


def update_tag(session: Session, tag_id: int, changes: dict) -> dict:
    """End (``end_date``) or correct a tag (``start_date``, ``note``)."""
    row = session.execute(text("SELECT t.*, r.id AS rid FROM resident_tag t JOIN resident r ON r.id = t.resident_id "
                               "WHERE t.id = :id"), {"id": tag_id}).first()
    place = _resident_place(session, row.rid).place_id if row is not None else None
    _check_tag_writer(session, f"resident tag {tag_id}", place if row is not None else None)
    assert row is not None  # refused above otherwise
    before = _tag_out(session, tag_id)
    changes = {k: v for k, v in changes.items() if k in ("start_date", "end_date", "note")}
    start, end = changes.get("start_date", row.start_date), changes.get("end_date", row.end_date)
    if end is not None and end < start:
        raise GeogridError("end_date is before start_date", problems=[Problem("before start_date", field="end_date")])
    if changes:
        sets = ", ".join(f"{k} = :{k}" for k in changes)
        session.execute(text(f"UPDATE resident_tag SET {sets} WHERE id = :id"), {**changes, "id": tag_id})
        refresh_due(session, [_resident_place(session, row.rid).household_id])
    out = _tag_out(session, tag_id)
    audit.record(session, "update", "resident_tag", tag_id, before, out)
    return out


# --------------------------------------------------------------------------- progress


Progress = Callable[[int, int], None]


def no_progress(done: int, total: int) -> None:
    """The default progress callback: nothing."""


def today_local(settings: Settings) -> dt.date:
    """Today in the service's time zone (tag start dates default to it)."""
    from geogrid.core.timeutil import local_today

    return local_today(settings)
