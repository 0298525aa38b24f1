"""Incident categories: their net (layer), department and time limits.
"""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import text
from sqlalchemy.orm import Session

from geogrid.access import audit, scopes
from geogrid.core.errors import GeogridError, Problem

EDITABLE = ("time_limits", "department", "public", "auto_escalate", "attributes")
# Open311 GeoReport v2 attribute data types.
DATATYPES = ("string", "number", "datetime", "text", "singlevaluelist", "multivaluelist")
LISTS = ("singlevaluelist", "multivaluelist")
MAX_ANSWER = 2000


def categories(session: Session) -> dict[str, dict]:
    """Every category by key, in group order."""
    rows = session.execute(text("SELECT * FROM category ORDER BY group_key, key")).mappings()
    return {r["key"]: dict(r) for r in rows}


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
        if any(v[0] < 0 for v in limits.values()):
            raise GeogridError("time limits must not be negative")
        changes["time_limits"] = json.dumps(limits)
    for column, value in changes.items():
        cast = "CAST(:v AS jsonb)" if column in ("time_limits", "attributes") else ":v"
        session.execute(text(f"UPDATE category SET {column} = {cast} WHERE key = :k"), {"v": value, "k": key})
    after = categories(session)[key]
    audit.record(session, "update", "category", key, before, after)
    return after


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
