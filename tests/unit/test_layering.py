"""The layering of the code, checked on its source (no database, nothing imported):

api → maps → geogrid (the domain packages) → geogrid/db, with geogrid/core under all of
them and geogrid/geo pure. Arrows only point down: geogrid never imports api or maps,
geo/ imports no database library, routes and maps run no SQL (they call a domain
function), and no module imports another's private (``_x``) name.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS = ROOT / "geogrid" / "db" / "migrations"


def sources(*dirs: str) -> list[Path]:
    return sorted(p for d in dirs for p in (ROOT / d).rglob("*.py") if MIGRATIONS not in p.parents)


def imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(module, names, line) of every import in ``path``, at any depth."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, [a.name for a in node.names], node.lineno))
    return out


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def test_geo_is_pure():
    """geogrid/geo: geometry, coordinates, codes, routing, the coverage engine; no SQL."""
    found = [f"{rel(p)}:{line} imports {mod}" for p in sources("geogrid/geo") for mod, _, line in imports(p)
             if mod.split(".")[0] in {"sqlalchemy", "psycopg", "psycopg2", "geoalchemy2", "alembic"}
             or mod.startswith("geogrid.") and not mod.startswith(("geogrid.geo", "geogrid.core"))]
    assert not found, found


def test_core_imports_no_other_part_of_geogrid():
    found = [f"{rel(p)}:{line} imports {mod}" for p in sources("geogrid/core") for mod, _, line in imports(p)
             if mod.startswith("geogrid.") and not mod.startswith("geogrid.core")]
    assert not found, found


# The command line is the one composition root inside geogrid: `geogrid serve` starts the
# API and `geogrid map` renders a map, so geogrid/cli may import api and maps (inside the
# commands that need them); nothing else in geogrid may.
COMPOSITION_ROOT = ROOT / "geogrid" / "cli"


def test_geogrid_never_imports_api_or_maps():
    found = [f"{rel(p)}:{line} imports {mod}" for p in sources("geogrid") if COMPOSITION_ROOT not in p.parents
             for mod, _, line in imports(p) if mod.split(".")[0] in {"api", "maps"}]
    assert not found, found


def test_maps_never_import_api():
    found = [f"{rel(p)}:{line} imports {mod}" for p in sources("maps") for mod, _, line in imports(p)
             if mod.split(".")[0] == "api"]
    assert not found, found


SQL = re.compile(r"\btext\(|\.execute\(|\bsql\(|\bselect\(|\binsert\(|\bupdate\(|\bdelete\(")


@pytest.mark.parametrize("folder", ["api/routers", "maps"])
def test_no_sql_in_routes_or_maps(folder):
    """Routes and maps call domain functions; the SQL lives in geogrid's packages."""
    found = []
    for p in sources(folder):
        tree = ast.parse(p.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
                base = f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else ""
                if name == "execute" or (name == "text" and base in {"", "sa", "sqlalchemy"} and _sqlalchemy_text(tree)):
                    found.append(f"{rel(p)}:{node.lineno} {ast.unparse(node)[:80]}")
        found += [f"{rel(p)}:{line} imports {mod}" for mod, _, line in imports(p) if mod.split(".")[0] == "sqlalchemy"
                  and mod not in {"sqlalchemy.orm"}]
    assert not found, found


def _sqlalchemy_text(tree: ast.Module) -> bool:
    """Whether ``text`` in this module is SQLAlchemy's (maps have a ``text(lang)`` of their own)."""
    return any(isinstance(n, ast.ImportFrom) and n.module == "sqlalchemy" and any(a.name == "text" for a in n.names)
               for n in ast.walk(tree))


def test_no_private_name_is_imported_across_modules():
    found = [f"{rel(p)}:{line} from {mod} import {name}"
             for p in sources("geogrid", "api", "maps", "tests", "bench")
             for mod, names, line in imports(p) for name in names
             if name.startswith("_") and not name.startswith("__") and mod != "__future__"]
    assert not found, found


PROJECT_MODULES = ("geogrid", "api", "maps")


def test_no_private_attribute_of_a_project_module_is_used():
    """``areas._valid_clause``-style reach-ins: a module alias bound by an import of one of
    the project's modules, followed by a private attribute."""
    found = []
    for p in sources("geogrid", "api", "maps", "tests", "bench"):
        tree = ast.parse(p.read_text(encoding="utf-8"))
        aliases = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PROJECT_MODULES:
                aliases |= {a.asname or a.name for a in node.names}
            elif isinstance(node, ast.Import):
                aliases |= {(a.asname or a.name).split(".")[0] for a in node.names
                            if a.name.split(".")[0] in PROJECT_MODULES}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                found.append(f"{rel(p)}:{node.lineno} {node.value.id}.{node.attr}")
    assert not found, found


def test_packages_say_what_they_hold_and_re_export_nothing():
    """Each package's __init__ has a docstring and no imports (call sites import from the
    module that defines a name); the command line's builds its app from its groups."""
    for init in sources("geogrid"):
        if init.name != "__init__.py" or init.parent == COMPOSITION_ROOT:
            continue
        tree = ast.parse(init.read_text(encoding="utf-8"))
        assert ast.get_docstring(tree), rel(init)
        assert not [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))
                    and not (isinstance(n, ast.ImportFrom) and n.module == "__future__")], rel(init)
