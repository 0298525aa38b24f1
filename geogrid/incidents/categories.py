"""Incident categories: their net (layer), department and time limits.
"""

from __future__ import annotations

import datetime as dt
import json
import re

from sqlalchemy import text
from sqlalchemy.orm import Session

from geogrid.access import audit, scopes
from geogrid.core.errors import GeogridError, Problem
from geogrid.db import shared_cache

EDITABLE = ("time_limits", "department", "public", "auto_escalate", "attributes")
# Open311 GeoReport v2 attribute data types.
DATATYPES = ("string", "number", "datetime", "text", "singlevaluelist", "multivaluelist")
LISTS = ("singlevaluelist", "multivaluelist")
MAX_ANSWER = 2000


def categories(session: Session) -> dict[str, dict]:
    """Every category by key, in group order."""
    rows = session.execute(text("SELECT * FROM category ORDER BY group_key, key")).mappings()
    return {r["key"]: dict(r) for r in rows}


def cached_categories(session: Session) -> dict[str, dict]:
    """:func:`categories`, from this process's copy while no change has been notified
    (:mod:`geogrid.db.shared_cache`): what intake reads on every request."""
    return shared_cache.cached(session, "category", categories)


def resolve_category(session: Session, key: str | None, problems: list[Problem], known: dict | None = None) -> dict | None:
    """The category ``key`` names, or None with a problem added to ``problems``."""
    known = known if known is not None else categories(session)
    if key not in known:
        problems.append(Problem(f"unknown category {key!r}; known: {', '.join(known)}", field="category"))
        return None
    return known[key]


def update_category(session: Session, key: str, changes: dict) -> dict:
    """Change a category's time limits (merged step by step with the current ones),
    department, publicity or automatic escalation (admins only); audited. The category after."""
    scopes.require_role(session, "admin")
    before = categories(session).get(key)
    if before is None:
        raise GeogridError(f"category {key} not found", status=404)
    changes = {k: v for k, v in changes.items() if k in EDITABLE}
    if "attributes" in changes:
        changes["attributes"] = json.dumps(_checked_definitions(changes["attributes"] or []))
    if "time_limits" in changes:
        limits = {**before["time_limits"], **{k: list(v) for k, v in (changes["time_limits"] or {}).items()}}
        changes["time_limits"] = json.dumps(checked_limits(limits))
    for column, value in changes.items():
        cast = "CAST(:v AS jsonb)" if column in ("time_limits", "attributes") else ":v"
        session.execute(text(f"UPDATE category SET {column} = {cast} WHERE key = :k"), {"v": value, "k": key})
        shared_cache.written(session, "category")
    after = categories(session)[key]
    audit.record(session, "update", "category", key, before, after)
    return after


STEPS = ("accept", "dispatch", "handle", "verify")
UNITS = ("working_hours", "working_days", "hours", "days")


def checked_limits(limits: dict) -> dict:
    """A category's time limits, ``step -> [amount, unit]``: every step of the workflow, a
    known unit, an amount not negative; 422 naming each fault."""
    problems = [Problem(f"time limit of step {step} is missing", field=f"time_limits.{step}")
                for step in STEPS if step not in limits]
    for step, value in limits.items():
        field = f"time_limits.{step}"
        if step not in STEPS:
            problems.append(Problem(f"unknown step {step!r}; steps: {', '.join(STEPS)}", field=field))
        elif (not isinstance(value, list | tuple) or len(value) != 2 or isinstance(value[0], bool)
              or not isinstance(value[0], int | float) or value[1] not in UNITS):
            problems.append(Problem(f"{step}: [amount, unit] with a unit among {', '.join(UNITS)}", field=field))
        elif value[0] < 0:
            problems.append(Problem(f"{step}: time limits must not be negative", field=field))
    if problems:
        raise GeogridError("time limits must not be negative" if all("negative" in p.message for p in problems)
                           else "the time limits are not valid", problems=problems)
    return {step: list(limits[step]) for step in STEPS}


def create_category(session: Session, data: dict) -> dict:
    """A county's own category (admins only): its net (an existing layer), department,
    publicity, time limits for every step, automatic escalation and questions; 409 when the
    key is taken. Audited. The category created."""
    scopes.require_role(session, "admin")
    problems: list[Problem] = []
    if not session.execute(text("SELECT 1 FROM layer WHERE key = :k"), {"k": data.get("layer_key")}).first():
        known = ", ".join(session.execute(text("SELECT key FROM layer ORDER BY key")).scalars())
        problems.append(Problem(f"unknown layer {data.get('layer_key')!r}; known: {known}", field="layer_key"))
    try:
        limits = checked_limits(dict(data.get("time_limits") or {}))
    except GeogridError as exc:
        problems += exc.problems
    try:
        questions = _checked_definitions(data.get("attributes") or [])
    except GeogridError as exc:
        problems += exc.problems
    if problems:
        raise GeogridError(f"category {data.get('key')} was not created", problems=problems)
    if data["key"] in categories(session):
        raise GeogridError(f"category {data['key']} exists already", status=409)
    session.execute(text("""
        INSERT INTO category (key, name_zh, name_en, group_key, layer_key, department, public, time_limits,
                              auto_escalate, attributes)
        VALUES (:key, :name_zh, :name_en, :group_key, :layer_key, :department, :public, CAST(:limits AS jsonb),
                :auto_escalate, CAST(:questions AS jsonb))
    """), {**{k: data[k] for k in ("key", "name_zh", "name_en", "group_key", "layer_key", "department")},
           "public": bool(data.get("public")), "auto_escalate": bool(data.get("auto_escalate", True)),
           "limits": json.dumps(limits), "questions": json.dumps(questions, ensure_ascii=False)})
    shared_cache.written(session, "category")
    after = categories(session)[data["key"]]
    audit.record(session, "create", "category", data["key"], None, after)
    return after


# --------------------------------------------------------------------------- request types


def request_types(session: Session) -> list[dict]:
    """The request types (咨询, 意见建议, 投诉 and a county's own), in their order."""
    return [dict(r) for r in session.execute(text("SELECT key, name_zh, name_en, rank FROM request_type "
                                                  "ORDER BY rank, key")).mappings()]


def request_type_keys(session: Session) -> list[str]:
    """The keys of :func:`request_types`, from this process's copy while no change has been
    notified (intake checks them on every request)."""
    return shared_cache.cached(session, "request_type", lambda db: [t["key"] for t in request_types(db)])


def create_request_type(session: Session, data: dict) -> dict:
    """A county's own request type (admins only); 409 when the key is taken. Audited."""
    scopes.require_role(session, "admin")
    problems = [Problem(f"{field} is required (at most 64 characters)", field=field)
                for field in ("name_zh", "name_en") if not (data.get(field) or "").strip() or len(data[field]) > 64]
    if not re.fullmatch(r"[a-z][a-z0-9_]{1,31}", str(data.get("key") or "")):
        problems.insert(0, Problem(f"key {data.get('key')!r}: lower-case letters, digits and _, 2-32 characters",
                                   field="key"))
    if problems:
        raise GeogridError("the request type was not added", problems=problems)
    shared_cache.written(session, "request_type")
    row = session.execute(text("""
        INSERT INTO request_type (key, name_zh, name_en, rank) VALUES (:key, :name_zh, :name_en, :rank)
        ON CONFLICT (key) DO NOTHING RETURNING key, name_zh, name_en, rank
    """), {"key": data["key"], "name_zh": data["name_zh"], "name_en": data["name_en"],
           "rank": data.get("rank", 100)}).mappings().first()
    if row is None:
        raise GeogridError(f"request type {data['key']} exists already", status=409)
    audit.record(session, "create", "request_type", data["key"], None, dict(row))
    return dict(row)


def _checked_definitions(definitions: list[dict]) -> list[dict]:
    """A category's questions, checked (unique codes, known data types, lists with values)
    and numbered in order; 422 naming each fault."""
    problems: list[Problem] = []
    seen: set[str] = set()
    out = []
    for i, d in enumerate(definitions):
        code, datatype = d.get("code"), d.get("datatype")
        if not code or code in seen:
            problems.append(Problem(f"attribute code {code!r} is missing or repeated", field=f"attributes[{i}].code"))
        if datatype not in DATATYPES:
            problems.append(Problem(f"datatype {datatype!r}; one of {', '.join(DATATYPES)}", field=f"attributes[{i}].datatype"))
        values = [{"key": str(v["key"]), "name": str(v.get("name") or v["key"])} for v in d.get("values") or []]
        if datatype in LISTS and not values:
            problems.append(Problem(f"a {datatype} needs values", field=f"attributes[{i}].values"))
        seen.add(code)
        out.append({"code": code, "datatype": datatype, "required": bool(d.get("required")),
                    "description": d.get("description") or code, "datatype_description": d.get("datatype_description"),
                    "order": i + 1, "values": values if datatype in LISTS else []})
    if problems:
        raise GeogridError("the category's attributes were not changed", problems=problems)
    return out


def check_answers(category: dict, answers: dict | None, problems: list[Problem]) -> dict:
    """A reporter's answers to ``category``'s questions, checked against their definitions
    (required ones present, numbers, ISO date-times, list values among the keys; no
    question the category does not ask); problems added to ``problems``. The answers kept."""
    answers = dict(answers or {})
    kept: dict = {}
    for d in category.get("attributes") or []:
        code, field = d["code"], f"attributes.{d['code']}"
        value = answers.pop(code, None)
        if value in (None, "", []):
            if d["required"]:
                problems.append(Problem(f"{d['description']} ({code}) is required for {category['key']}", field=field))
            continue
        keys = {v["key"] for v in d["values"]}
        if d["datatype"] == "multivaluelist":
            value = [str(v) for v in (value if isinstance(value, list) else [value])]
            if set(value) - keys:
                problems.append(Problem(f"{code}: {', '.join(sorted(set(value) - keys))} not among {', '.join(sorted(keys))}",
                                        field=field))
        elif isinstance(value, (list, dict)):
            problems.append(Problem(f"{code} takes one value", field=field))
            continue
        elif d["datatype"] == "singlevaluelist" and str(value) not in keys:
            problems.append(Problem(f"{code}: {value!r} not among {', '.join(sorted(keys))}", field=field))
        elif d["datatype"] == "number":
            try:
                value = float(value)
            except (TypeError, ValueError):
                problems.append(Problem(f"{code} must be a number, got {value!r}", field=field))
                continue
        elif d["datatype"] == "datetime":
            try:
                dt.datetime.fromisoformat(str(value))
            except ValueError:
                problems.append(Problem(f"{code} must be an ISO date-time, got {value!r}", field=field))
                continue
        if isinstance(value, str) and len(value) > MAX_ANSWER:
            problems.append(Problem(f"{code} is longer than {MAX_ANSWER} characters", field=field))
            continue
        kept[code] = str(value) if d["datatype"] in ("string", "text", "singlevaluelist", "datetime") else value
    for code in sorted(answers):
        problems.append(Problem(f"{category['key']} asks no question {code!r}", field=f"attributes.{code}"))
    return kept
