"""Importing the household register from the form counties keep: one row per resident with
the household's columns repeated (Excel .xlsx or CSV), and buildings (CSV or .xlsx).

A file is opened only by the driver of its declared format (the csv module for .csv,
openpyxl for .xlsx): content that is not that format is a 422. Headers may be Chinese or
English (:data:`HEADERS`). Every row is validated and every bad row reported with its row
number (the header is row 1, as a spreadsheet numbers them) and field; one bad row and
nothing is stored. ID numbers never appear in a message: a duplicate is reported as
"duplicates row N" or "duplicates an existing resident".

**Re-import** (upsert by household ref): a household whose ref is already in the register
is replaced: its address, point, head and kind are updated in place (its id, contact links
and visits stay), its live residents are retired (kept, with their tags, for history) and
the file's residents added. Households absent from the file are left alone.

**Speed**: rows are parsed and checked in one pass in Python, points routed to grids in
bulk (:func:`geogrid.people.households.places_of_points`), and the rows written with
PostgreSQL ``COPY`` through the session's own connection, in the caller's transaction.
"""

from __future__ import annotations

import csv
import datetime as dt
import gc
import io
import itertools
import operator
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from geogrid.access import audit, scopes
from geogrid.core.errors import GeogridError, Problem
from geogrid.core.settings import Settings
from geogrid.geo import coords
from geogrid.people import households as hh
from geogrid.people.due import refresh_due

FORMATS = ("csv", "xlsx")
MAX_UNZIPPED_BYTES = 1 << 30
ARCHIVE_AND_DB_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"\x1f\x8b", b"7z\xbc\xaf", b"Rar!", b"BZh", b"SQLite format 3",
                        b"\xd0\xcf\x11\xe0")

# canonical column -> accepted headers (compared without spaces, case-insensitive)
HEADERS = {
    "ref": ("户编号", "户号", "household_ref", "household", "ref"),
    "head": ("户主", "户主姓名", "head", "head_name"),
    "town": ("乡镇", "乡镇街道", "镇街", "镇(街道)", "town"),
    "village": ("村社区", "村(社区)", "村", "社区", "village"),
    "street": ("街路巷", "街道路", "路", "street"),
    "number": ("门牌号", "number"),
    "building_no": ("楼幢", "楼号", "幢", "building_no"),
    "unit": ("单元", "unit"),
    "room": ("室", "房号", "室号", "room"),
    "building": ("楼栋编码", "楼栋", "building", "building_ref"),
    "lon": ("经度", "lon", "lng", "longitude"),
    "lat": ("纬度", "lat", "latitude"),
    "crs": ("坐标系", "crs"),
    "kind": ("户类型", "人口类型", "类型", "kind"),
    "rental": ("出租", "出租房", "是否出租", "rental"),
    "household_phone": ("户联系电话", "household_phone"),
    "name": ("姓名", "name"),
    "relation": ("与户主关系", "relation"),
    "gender": ("性别", "gender", "sex"),
    "birth_date": ("出生日期", "birth_date", "birthday"),
    "id_number": ("身份证号", "身份证号码", "公民身份号码", "id_number", "id"),
    "phone": ("电话", "联系电话", "phone"),
    "tags": ("特殊人群", "tags", "special_groups"),
}
BUILDING_HEADERS = {
    "ref": ("楼栋编码", "编码", "ref", "building", "building_ref"),
    "name": ("名称", "楼栋名称", "name"),
    **{k: HEADERS[k] for k in ("town", "village", "street", "number", "lon", "lat", "crs")},
}
HOUSEHOLD_COLUMNS = ("ref", "head", "town", "village", "street", "number", "building_no", "unit", "room", "building",
                     "lon", "lat", "crs", "kind", "rental", "household_phone")
KIND_WORDS = {"registered": "registered", "户籍": "registered", "户籍人口": "registered",
              "floating": "floating", "流动": "floating", "流动人口": "floating",
              "separated": "separated", "人户分离": "separated"}
YES = {"是", "y", "yes", "true", "1", "出租", "有"}
NO = {"", "否", "n", "no", "false", "0", "自住", "无"}
GENDERS = {"男": "M", "m": "M", "M": "M", "male": "M", "女": "F", "f": "F", "F": "F", "female": "F", "": None}
ID_RE = re.compile(r"^(\d{17}[\dX]|\d{15})$")
TAG_SPLIT = re.compile(r"[,，;；、]")
TAG_DATE = re.compile(r"^(.*?)\s*(?:[@:：]\s*|[(（]\s*)(\d{4}[-/.]\d{1,2}[-/.]\d{1,2})\s*[)）]?$")
LIMITS = {"ref": 64, "head": 100, "town": 100, "village": 100, "street": 200, "number": 32, "building_no": 32,
          "unit": 16, "room": 16, "name": 100, "relation": 32, "phone": 32, "household_phone": 32}


# --------------------------------------------------------------------------- reading a table


@dataclass
class Table:
    """A sheet read by its declared format: canonical column -> index, and the data rows with
    their row numbers (the header is row 1)."""

    label: str
    columns: dict[str, int]
    rows: list[tuple[int, list[str]]]  # cells as stripped-later text, padded to width + 1 (the last empty)
    width: int
    lossy: set[int] = field(default_factory=set)  # rows whose ID number came as a number (digits lost)

    def get(self, values: list, column: str) -> str:
        return values[self.columns.get(column, self.width)]

    def lossy_index(self, numbers: list[int]) -> list[int]:
        """Positions (in ``rows``) of the rows in ``lossy``."""
        return [i for i, r in enumerate(numbers) if r in self.lossy] if self.lossy else []


def _key(header) -> str:
    return re.sub(r"\s+", "", str(header or "")).lower()


def format_of(label: str, declared: str | None) -> str:
    """The declared format: ``declared`` (csv or xlsx), else the file name's extension."""
    fmt = (declared or Path(label).suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise GeogridError(f"{label}: unsupported file type {fmt!r}; use .csv or .xlsx (or declare format=csv|xlsx)",
                           problems=[Problem(f"unsupported file type {fmt!r}", field="format")])
    return fmt


def _csv_rows(data: bytes, label: str) -> list[list]:
    if b"\x00" in data[:65536] or any(data.startswith(m) for m in ARCHIVE_AND_DB_MAGIC):
        raise GeogridError(f"{label}: cannot read as csv: binary content (an Excel workbook? declare format=xlsx)")
    for encoding in ("utf-8-sig", "gb18030"):  # Excel in China saves CSV as GB18030 (GBK)
        try:
            decoded = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:  # pragma: no cover - gb18030 decodes nearly anything
        raise GeogridError(f"{label}: cannot read as csv: not UTF-8 or GB18030 text")
    try:
        return list(csv.reader(io.StringIO(decoded, newline="")))
    except csv.Error as exc:
        raise GeogridError(f"{label}: cannot read as csv: {exc}") from None


def _xlsx_rows(path: Path, label: str) -> list[list]:
    import zipfile

    from openpyxl import load_workbook

    with open(path, "rb") as fh:
        if fh.read(4) != b"PK\x03\x04":
            raise GeogridError(f"{label}: cannot read as xlsx: not an Excel workbook (a CSV? declare format=csv)")
    try:
        with zipfile.ZipFile(path) as zf:
            declared = sum(m.file_size for m in zf.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise GeogridError(f"{label}: cannot read as xlsx: broken archive ({exc})") from None
    if declared > MAX_UNZIPPED_BYTES:  # a zip bomb, or a register far beyond a county's
        raise GeogridError(f"{label}: refused: {declared:,} bytes once unzipped, more than {MAX_UNZIPPED_BYTES:,}",
                           status=413)
    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, TypeError) as exc:
        raise GeogridError(f"{label}: cannot read as xlsx (truncated or corrupt?): {str(exc)[:200]}") from None
    try:
        sheet = book.worksheets[0]
        return [list(r) for r in sheet.iter_rows(values_only=True)]
    except Exception as exc:  # openpyxl raises many kinds on broken sheets
        raise GeogridError(f"{label}: cannot read as xlsx (truncated or corrupt?): {str(exc)[:200]}") from None
    finally:
        book.close()


def read_table(path: Path, headers: dict[str, tuple], required: Sequence[str], *, name: str | None = None,
               fmt: str | None = None) -> Table:
    """Read ``path`` by its declared format into a :class:`Table` whose columns are mapped by
    ``headers``; 422 for another format's content, no rows, or missing ``required`` columns."""
    path = Path(path)
    label = name or path.name
    fmt = format_of(label, fmt)
    raw = _csv_rows(path.read_bytes(), label) if fmt == "csv" else _xlsx_rows(path, label)
    # Row numbers as the spreadsheet shows them (the header is row 1); blank rows are skipped
    # (a CSV row's cells are text: any() is the C-speed test).
    if fmt == "csv":
        numbered = [(n, r) for n, r in enumerate(raw, start=1) if any(r)]
    else:
        numbered = [(n, list(r)) for n, r in enumerate(raw, start=1) if any(v not in (None, "") for v in r)]
    if not numbered:
        raise GeogridError(f"{label}: the file is empty")
    lookup = {_key(alias): canon for canon, aliases in headers.items() for alias in aliases}
    columns: dict[str, int] = {}
    for i, h in enumerate(numbered[0][1]):
        canon = lookup.get(_key(h))
        if canon and canon not in columns:
            columns[canon] = i
    missing = [c for c in required if c not in columns]
    if missing:
        names = ", ".join(f"{c} ({headers[c][0]})" for c in missing)
        raise GeogridError(f"{label}: missing columns {names}; columns: {', '.join(str(h) for h in numbered[0][1])}"[:600],
                           problems=[Problem("missing column", field=c) for c in missing])
    width = len(numbered[0][1])
    lossy: set[int] = set()
    id_col = columns.get("id_number")
    rows = []
    for number, values in numbered[1:]:
        if fmt == "xlsx":
            raw_id = values[id_col] if id_col is not None and id_col < len(values) else None
            if isinstance(raw_id, (int, float)) and not isinstance(raw_id, bool) and abs(raw_id) >= 1e15:
                lossy.add(number)
            values = [cell(v) for v in values]
        # Every row as long as the header, plus the empty cell absent columns read.
        if len(values) != width:
            values = (values + [""] * width)[:width]
        values.append("")
        rows.append((number, values))
    if not rows:
        raise GeogridError(f"{label}: no data rows")
    return Table(label, columns, rows, width, lossy)


# --------------------------------------------------------------------------- cells


def cell(value) -> str:
    """A cell as text: numbers without a spurious '.0', dates as ISO dates, stripped."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value).strip()


def parse_date(value) -> dt.date | None:
    """A date from an Excel cell or text (2001-03-04, 2001/3/4, 2001.3.4, 20010304); ValueError."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return _date(cell(value))


def _number(value) -> float | None:
    s = cell(value)
    if not s:
        return None
    return float(s)


# --------------------------------------------------------------------------- buildings


@dataclass
class Buildings:
    """Validated buildings of a file: ref -> (row, record with WGS84 lon/lat)."""

    rows: dict[str, tuple[int, dict]] = field(default_factory=dict)


def _point(values: dict, row: int, settings: Settings, problems: list[Problem], label: str = "") -> tuple | None:
    """Validated lon/lat (and crs) of a row, converted to WGS84; None with problems added."""
    lon_s, lat_s = cell(values.get("lon")), cell(values.get("lat"))
    if not lon_s and not lat_s:
        return None
    try:
        lon, lat = float(lon_s), float(lat_s)
    except ValueError:
        problems.append(Problem(f"{label}lon/lat must be numbers in degrees", field="lon" if lon_s else "lat",
                                index=row, unit="row"))
        return None
    try:
        crs = coords.normalise_crs(cell(values.get("crs")) or "wgs84")
    except ValueError as exc:
        problems.append(Problem(f"{label}{exc}", field="crs", index=row, unit="row"))
        return None
    if crs in (coords.WGS84, coords.CGCS2000):  # taken as they are: no array round trip per household
        x, y = lon, lat
    else:
        xs, ys = coords.to_wgs84([lon], [lat], crs)
        x, y = float(xs[0]), float(ys[0])
    x0, y0, x1, y1 = settings.extent
    if not (x0 <= x <= x1 and y0 <= y <= y1):
        hint = " (lat, lon swapped?)" if x0 <= lat <= x1 and y0 <= lon <= y1 else ""
        problems.append(Problem(f"{label}point outside the service extent{hint}", field="lon", index=row, unit="row"))
        return None
    return x, y


def validate_buildings(session: Session, table: Table, settings: Settings, problems: list[Problem]) -> Buildings:
    """Check a buildings table (ref, lon/lat required; refs unique in the file)."""
    out = Buildings()
    for row, values in table.rows:
        rec = {c: table.get(values, c).strip() for c in BUILDING_HEADERS}
        ref = rec["ref"]
        if not ref:
            problems.append(Problem("building ref (楼栋编码) is required", field="ref", index=row, unit="row"))
            continue
        if len(ref) > 64:
            problems.append(Problem("building ref longer than 64 characters", field="ref", index=row, unit="row"))
            continue
        if ref in out.rows:
            problems.append(Problem(f"building {ref} repeats row {out.rows[ref][0]}", field="ref", index=row, unit="row"))
            continue
        point = _point(rec, row, settings, problems, f"building {ref}: ")
        if point is None:
            if not cell(rec.get("lon")) and not cell(rec.get("lat")):
                problems.append(Problem(f"building {ref}: lon and lat are required", field="lon", index=row, unit="row"))
            continue
        rec["x"], rec["y"] = point
        out.rows[ref] = (row, rec)
    return out


# --------------------------------------------------------------------------- households


@dataclass
class Parsed:
    """The file's households (by ref, in file order) and residents, validated row by row."""

    households: dict[str, dict] = field(default_factory=dict)
    # (row, household ref, name, relation, gender, birth date, ID hash, ID last 4, phone)
    residents: list[tuple] = field(default_factory=list)
    tags: list[tuple[int, str, dt.date]] = field(default_factory=list)  # (resident index, group, start)


def _group_lookup(session: Session) -> dict[str, str]:
    out = {}
    for r in session.execute(text("SELECT key, name_zh, name_en FROM special_group")):
        for k in (r.key, r.name_zh, r.name_en):
            out[_key(k)] = r.key
    # Common short forms in county registers.
    for short, full in (("空巢", "空巢老人"), ("独居", "独居老人"), ("残疾", "残疾人"), ("信访", "信访人员")):
        if _key(full) in out:
            out.setdefault(_key(short), out[_key(full)])
    return out


def _tags(value: str, row: int, groups: dict[str, str], today: dt.date, problems: list[Problem]) -> list[tuple]:
    out = []
    for item in TAG_SPLIT.split(value):
        item = item.strip()
        if not item:
            continue
        start = today
        m = TAG_DATE.match(item)
        if m:
            item = m[1].strip()
            try:
                start = parse_date(m[2]) or today
            except ValueError:
                problems.append(Problem(f"special group {item}: bad start date", field="tags", index=row, unit="row"))
                continue
        key = groups.get(_key(item))
        if key is None:
            problems.append(Problem(f"unknown special group {item[:40]!r}", field="tags", index=row, unit="row"))
            continue
        out.append((key, start))
    return out


DATE_FORMS = (re.compile(r"(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?"), re.compile(r"(\d{4})(\d{2})(\d{2})"))


def _date(value: str) -> dt.date | None:
    """A birth date from text: ISO first (the C parser), then the other written forms; ValueError."""
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        pass
    for form in DATE_FORMS:
        m = form.fullmatch(value)
        if m:
            return dt.date(int(m[1]), int(m[2]), int(m[3]))
    raise ValueError(value)


BAD = object()  # a cell that failed its check


def _date_or_bad(value: str):
    try:
        return _date(value.strip())
    except ValueError:
        return BAD


def validate_rows(session: Session, table: Table, settings: Settings, key: bytes, problems: list[Problem],
                  progress: hh.Progress, total: int) -> Parsed:
    """Check every row of a register table; households grouped by ref.

    Column by column (``map`` and ``zip`` over whole columns run at C speed; a county register
    has over a million rows): a row-by-row loop runs only where a column holds a problem."""
    out = Parsed()
    n = len(table.rows)
    if n == 0:
        return out
    numbers = [r for r, _ in table.rows]
    data = list(zip(*(v for _, v in table.rows)))
    cols = table.columns

    def col(c: str) -> tuple:
        return data[cols.get(c, table.width)]

    progress(n // 4, total)
    bad_rows: set[int] = set()

    def flag(i: int, message: str, field_: str) -> None:
        problems.append(Problem(message, field=field_, index=numbers[i], unit="row"))
        bad_rows.add(i)

    # Households: the first row of each ref gives the household; every other row must repeat it.
    refs = list(map(str.strip, col("ref")))
    first: dict[str, int] = {}
    for i, r in enumerate(refs):
        first.setdefault(r, i)
    if "" in first:
        for i, r in enumerate(refs):
            if not r:
                flag(i, "household ref (户编号) is required", "ref")
    h_cols = [c for c in HOUSEHOLD_COLUMNS if c in cols]
    h_rows = list(zip(*(col(c) for c in h_cols)))
    pos = list(map(first.__getitem__, refs))
    for i in (i for i, differs in enumerate(map(operator.ne, h_rows, map(h_rows.__getitem__, pos))) if differs):
        for c, mine, theirs in zip(h_cols, h_rows[i], h_rows[pos[i]]):
            if mine.strip() != theirs.strip():
                flag(i, f"household {refs[i]}: {c} differs from row {numbers[pos[i]]}", c)
    _new_households(out, first, col, numbers, problems)
    progress(n // 2, total)

    # Residents.
    names = list(map(str.strip, col("name")))
    relations = list(map(str.strip, col("relation")))
    phones = list(map(str.strip, col("phone")))
    for c, values in (("name", names), ("relation", relations), ("phone", phones)):
        if max(map(len, values)) > LIMITS[c]:
            for i, v in enumerate(values):
                if len(v) > LIMITS[c]:
                    flag(i, f"{c} is longer than {LIMITS[c]} characters", c)
    if "" in names:
        for i, v in enumerate(names):
            if not v:
                flag(i, "resident name (姓名) is required", "name")
    genders = list(map(GENDERS.get, col("gender"), itertools.repeat(BAD)))
    for i in [i for i, g in enumerate(genders) if g is BAD]:
        g = GENDERS.get(_key(col("gender")[i]), BAD)
        genders[i] = g
        if g is BAD:
            flag(i, "gender must be 男/女 (M/F)", "gender")
    births = list(map(_date_or_bad, col("birth_date")))
    for i in [i for i, b in enumerate(births) if b is BAD]:
        flag(i, "birth date is not a date (YYYY-MM-DD)", "birth_date")
    progress(3 * n // 4, total)

    # ID numbers: normalised, checked, hashed; duplicates within the file named by row.
    ids = list(map(str.upper, map(str.strip, col("id_number"))))
    digests: list[str | None] = [None] * n
    for i in table.lossy_index(numbers):
        flag(i, "ID number stored as a number, its last digits lost: format the column as text", "id_number")
        ids[i] = ""
    seen: dict[str, int] = {}
    for i, number in enumerate(ids):
        if not number:
            continue
        if not ID_RE.match(number):
            number = hh.normalise_id(number)
            ids[i] = number
            if not ID_RE.match(number):
                flag(i, "ID number is not 18 (or 15) characters of digits (last may be X)", "id_number")
                continue
        digest = hh.id_digest(number, key)
        j = seen.setdefault(digest, i)
        if j != i:
            flag(i, f"ID number duplicates row {numbers[j]}", "id_number")
        digests[i] = digest

    groups: dict[str, str] | None = None
    today = dt.date.today()
    tags = col("tags")
    for i, value in enumerate(tags):
        if value and not value.isspace():
            if groups is None:
                groups, today = _group_lookup(session), hh.today_local(settings)
            for k, start in _tags(value, numbers[i], groups, today, problems):
                out.tags.append((i, k, start))
    last4 = [v[-4:] if v else None for v in ids]
    out.residents = list(zip(numbers, refs, names, [v or None for v in relations], genders, births, digests, last4,
                             [v or None for v in phones]))
    for i, r in enumerate(refs):
        if r:
            out.households[r]["residents"].append(i)
    progress(n, total)
    return out


RENTAL = {**dict.fromkeys(YES, True), **dict.fromkeys(NO, False)}


def _new_households(out: Parsed, first: dict[str, int], col, numbers: list[int], problems: list[Problem]) -> None:
    """The households as their first rows give them, checked column by column (head, kind,
    rental, lengths)."""
    first = {r: i for r, i in first.items() if r}
    idx = list(first.values())
    rows = [numbers[i] for i in idx]
    refs = list(first)
    fc = {c: list(map(str.strip, map(col(c).__getitem__, idx))) for c in HOUSEHOLD_COLUMNS}
    for c in HOUSEHOLD_COLUMNS:
        most = LIMITS.get(c)
        if most and fc[c] and max(map(len, fc[c])) > most:
            for k, v in enumerate(fc[c]):
                if len(v) > most:
                    problems.append(Problem(f"{c} is longer than {most} characters", field=c, index=rows[k], unit="row"))
    if "" in fc["head"]:
        for k, v in enumerate(fc["head"]):
            if not v:
                problems.append(Problem(f"household {refs[k]}: the head (户主) is missing", field="head", index=rows[k],
                                        unit="row"))
    kinds = list(map(KIND_WORDS.get, fc["kind"]))
    rentals = list(map(RENTAL.get, fc["rental"]))
    for k in [k for k, v in enumerate(kinds) if v is None]:
        kinds[k] = KIND_WORDS.get(_key(fc["kind"][k]))
        if kinds[k] is None:
            problems.append(Problem(f"household {refs[k]}: kind must be 户籍/流动/人户分离 (registered/floating/"
                                    f"separated), not {fc['kind'][k][:20]!r}", field="kind", index=rows[k], unit="row"))
    for k in [k for k, v in enumerate(rentals) if v is None]:
        rentals[k] = RENTAL.get(_key(fc["rental"][k]))
        if rentals[k] is None:
            problems.append(Problem(f"household {refs[k]}: rental must be 是/否 (yes/no)", field="rental",
                                    index=rows[k], unit="row"))
    for ref, row, kind, rental, values in zip(refs, rows, kinds, rentals, zip(*fc.values())):
        out.households[ref] = {"ref": ref, "row": row, "values": dict(zip(HOUSEHOLD_COLUMNS, values)), "residents": [],
                               "kind": kind, "rental": bool(rental)}


# --------------------------------------------------------------------------- the import


@dataclass
class Report:
    """What an import did (or would have done)."""

    households: int = 0
    residents: int = 0
    tags: int = 0
    buildings: int = 0
    replaced: int = 0
    grids_assigned: int = 0
    outside_grids: int = 0
    rows: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _existing_buildings(session: Session, refs: list[str]) -> dict[str, tuple]:
    rows = session.execute(text("SELECT ref, id, ST_X(geom) AS x, ST_Y(geom) AS y FROM building WHERE ref = ANY(:r)"),
                           {"r": refs}).all()
    return {r.ref: (r.id, r.x, r.y) for r in rows}


def _allocate(session: Session, table: str, n: int) -> range:
    """``n`` ids of ``table`` reserved as one block: the table is locked against other writers
    until the transaction ends (their INSERTs would draw from the sequence in between)."""
    if n == 0:
        return range(0)
    session.execute(text(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE"))
    first = session.execute(text(f"SELECT nextval(pg_get_serial_sequence('{table}', 'id'))")).scalar_one()
    session.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), :last)"), {"last": first + n - 1})
    return range(first, first + n)


def _temp_keys(session: Session, name: str, kind: str, values) -> str:
    """``values`` COPYed into a temporary one-column table (dropped at commit), to join with:
    a million-element array parameter would be built in Python."""
    session.execute(text(f"CREATE TEMP TABLE IF NOT EXISTS {name} (v {kind}) ON COMMIT DROP"))
    session.execute(text(f"TRUNCATE {name}"))
    hh.copy_rows(session, f"COPY {name} (v) FROM STDIN", ((v,) for v in values))
    session.execute(text(f"ANALYZE {name}"))
    return name


def _raise(problems: list[Problem], label: str, rows: int) -> None:
    problems.sort(key=lambda p: (p.index or 0, p.field or ""))
    bad = len({p.index for p in problems})
    raise GeogridError(f"{label}: {bad} of {rows} rows rejected; nothing was imported", problems=problems)


def import_register(session: Session, path: Path, settings: Settings, *, name: str | None = None,
                    fmt: str | None = None, buildings: Path | None = None, buildings_name: str | None = None,
                    buildings_fmt: str | None = None, progress: hh.Progress | None = None) -> dict:
    """Import households and residents (and ``buildings`` first, when given) from files, all
    or nothing. Scope: planner or grid worker covering the place of every row (its grid, else
    the administrative area holding its point; and a replaced household's old place); 403
    naming the first area out of scope. 422 listing every bad row. ``progress(done, total)``
    is called as rows are checked and written. Returns the counts (:class:`Report`)."""
    scopes.require_role(session, *hh.HOUSEHOLD_ROLES)
    # Millions of small objects: the cyclic collector would rescan them all again and again
    # (half the time of a county's import); none of them form cycles.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _import_register(session, path, settings, name=name, fmt=fmt, buildings=buildings,
                                buildings_name=buildings_name, buildings_fmt=buildings_fmt, progress=progress)
    finally:
        if enabled:
            gc.enable()


def _import_register(session: Session, path: Path, settings: Settings, *, name: str | None, fmt: str | None,
                     buildings: Path | None, buildings_name: str | None, buildings_fmt: str | None,
                     progress: hh.Progress | None) -> dict:
    progress = progress or hh.no_progress
    problems: list[Problem] = []
    btable = read_table(buildings, BUILDING_HEADERS, ("ref", "lon", "lat"), name=buildings_name,
                        fmt=buildings_fmt) if buildings is not None else None
    table = read_table(path, HEADERS, ("ref", "head", "kind", "name"), name=name, fmt=fmt)
    total = 2 * len(table.rows)
    new_buildings = validate_buildings(session, btable, settings, problems) if btable is not None else Buildings()
    if problems:
        _raise(problems, btable.label if btable else table.label, len(btable.rows) if btable else 0)
    key = hh.id_key(settings)
    parsed = validate_rows(session, table, settings, key, problems, progress, total)

    # Points: a household's own, else its building's (from the buildings file, else the register).
    refs = [h["values"]["building"] for h in parsed.households.values() if h["values"]["building"]]
    stored = _existing_buildings(session, sorted(set(refs) - set(new_buildings.rows)))
    located = []
    for household in parsed.households.values():
        v, row = household["values"], household["row"]
        point = _point(v, row, settings, problems, f"household {household['ref']}: ")
        bref = v["building"]
        household["building_key"] = bref or None
        if bref and bref not in new_buildings.rows and bref not in stored:
            problems.append(Problem(f"household {household['ref']}: unknown building {bref[:64]}", field="building",
                                    index=row, unit="row"))
            continue
        if point is not None:
            household["x"], household["y"], household["located_by"] = point[0], point[1], "own"
        elif bref:
            b = new_buildings.rows[bref][1] if bref in new_buildings.rows else None
            household["x"], household["y"] = (b["x"], b["y"]) if b else stored[bref][1:]
            household["located_by"] = "building"
        else:
            if not v["lon"] and not v["lat"]:
                problems.append(Problem(f"household {household['ref']}: no building (楼栋编码) and no lon/lat",
                                        field="building", index=row, unit="row"))
            continue
        located.append(household)

    xs = np.array([h["x"] for h in located], dtype=float)
    ys = np.array([h["y"] for h in located], dtype=float)
    grid_ids, admin_ids = hh.places_of_points(session, xs, ys)
    for i, household in enumerate(located):
        if admin_ids[i] < 0:
            problems.append(Problem(f"household {household['ref']}: the address lies outside the jurisdiction "
                                    "(no administrative area contains its point)", field="location",
                                    index=household["row"], unit="row",
                                    location=(round(household["x"], 7), round(household["y"], 7))))
        household["grid_id"] = int(grid_ids[i]) if grid_ids[i] >= 0 else None
        household["place"] = int(grid_ids[i] if grid_ids[i] >= 0 else admin_ids[i])
    bx = np.array([r[1]["x"] for r in new_buildings.rows.values()], dtype=float)
    by = np.array([r[1]["y"] for r in new_buildings.rows.values()], dtype=float)
    bgrid, badmin = hh.places_of_points(session, bx, by)
    for i, (bref, (row, _rec)) in enumerate(new_buildings.rows.items()):
        if badmin[i] < 0:
            problems.append(Problem(f"building {bref}: outside the jurisdiction (no administrative area contains it)",
                                    field="location", index=row, unit="row"))

    # Scope before anything about the stored register is revealed: every new place, and the
    # old place of every household or building replaced.
    _temp_keys(session, "tmp_refs", "text", parsed.households)
    existing: dict[str, int] = dict(session.execute(text("SELECT h.ref, h.id FROM household h JOIN tmp_refs t ON t.v = h.ref")).all())
    old_places = session.execute(text(f"SELECT {hh.PLACE_SQL} FROM household h WHERE h.id = ANY(:ids)"),
                                 {"ids": list(existing.values())}).scalars().all() if existing else []
    places = {h["place"] for h in located if h.get("place", -1) >= 0}
    places |= {int(g if g >= 0 else a) for g, a in zip(bgrid, badmin) if a >= 0}
    places |= {p for p in old_places if p is not None}
    scopes.require_scope(session, hh.HOUSEHOLD_ROLES, sorted(places), strict=False,
                         action="import households into")

    # ID numbers against the live register (the residents of replaced households excepted).
    hashes = {r[6]: r[0] for r in parsed.residents if r[6]}
    if hashes:
        _temp_keys(session, "tmp_hashes", "text", hashes)
        clash = session.execute(text("""
            SELECT r.id_hash FROM tmp_hashes t JOIN resident r ON r.id_hash = t.v AND r.retired_at IS NULL
            JOIN household h ON h.id = r.household_id
            WHERE NOT EXISTS (SELECT 1 FROM tmp_refs x WHERE x.v = h.ref)
        """)).scalars().all()
        problems += [Problem("ID number duplicates an existing resident", field="id_number", index=hashes[c], unit="row")
                     for c in clash]
    if problems:
        _raise(problems, table.label, len(table.rows))

    report = _write(session, parsed, located, existing, new_buildings, progress, total)
    # Residents and tags were replaced: the households' "behind on visits" dates follow.
    refresh_due(session, [h["id"] for h in located], settings)
    report.rows = len(table.rows)
    if report.residents > 10_000:  # fresh statistics: the next redraw's lookups use the indexes
        session.execute(text("ANALYZE household"))
    audit.record(session, "import", "household_register", table.label, None,
                 {**report.as_dict(), "buildings_file": btable.label if btable else None})
    progress(total, total)
    return report.as_dict()


def _write(session: Session, parsed: Parsed, located: list[dict], existing: dict[str, int], buildings: Buildings,
           progress: hh.Progress, total: int) -> Report:
    report = Report()
    rows = len(parsed.residents)
    # Buildings: new ones inserted, known refs updated (their households follow below).
    if buildings.rows:
        brecs = [r for _, r in buildings.rows.values()]
        known = _existing_buildings(session, [r["ref"] for r in brecs])
        session.execute(text("""
            INSERT INTO building (ref, name, town, village, street, number, geom)
            VALUES (:ref, :name, :town, :village, :street, :number, ST_SetSRID(ST_MakePoint(:x, :y), 4326))
            ON CONFLICT (ref) DO UPDATE SET name = excluded.name, town = excluded.town, village = excluded.village,
                street = excluded.street, number = excluded.number, geom = excluded.geom
        """), [{k: r.get(k) or None for k in ("ref", "name", "town", "village", "street", "number")}
               | {"x": r["x"], "y": r["y"]} for r in brecs])
        moved = session.execute(text("""
            UPDATE household h SET geom = b.geom, updated_at = now() FROM building b
            WHERE h.building_id = b.id AND h.located_by = 'building' AND b.ref = ANY(:refs)
              AND NOT ST_Equals(h.geom, b.geom) RETURNING h.id
        """), {"refs": list(known)}).scalars().all()
        if moved:
            hh.rederive(session, None, "moved", households=moved)
        report.buildings = len(brecs)
    bids: dict[str, int] = dict(session.execute(text("SELECT ref, id FROM building WHERE ref = ANY(:r)"),
                                {"r": sorted({h["building_key"] for h in located if h["building_key"]})}).all())

    new = [h for h in located if h["ref"] not in existing]
    for h, i in zip(new, _allocate(session, "household", len(new))):
        h["id"] = i
    for h in located:
        if h["ref"] in existing:
            h["id"] = existing[h["ref"]]

    def household_row(h: dict) -> tuple:
        v = h["values"]
        return (h["id"], h["ref"], bids.get(h["building_key"]) if h["building_key"] else None,
                v["town"] or None, v["village"] or None, v["street"] or None, v["number"] or None,
                v["building_no"] or None, v["unit"] or None, v["room"] or None,
                f"SRID=4326;POINT({h['x']!r} {h['y']!r})", h["located_by"], h["grid_id"], v["head"], h["kind"],
                h["rental"], v["household_phone"] or None)

    columns = ("id, ref, building_id, town, village, street, number, building_no, unit, room, geom, located_by, "
               "grid_id, head_name, kind, rental, phone")
    hh.copy_rows(session, f"COPY household ({columns}) FROM STDIN", (household_row(h) for h in new))
    replaced = [h for h in located if h["ref"] in existing]
    if replaced:
        session.execute(text(f"CREATE TEMP TABLE tmp_household ({', '.join(c + ' text' for c in columns.split(', '))}) "
                             "ON COMMIT DROP"))
        hh.copy_rows(session, f"COPY tmp_household ({columns}) FROM STDIN", (household_row(h) for h in replaced))
        session.execute(text("""
            UPDATE household h SET building_id = t.building_id::integer, town = t.town, village = t.village,
                   street = t.street, number = t.number, building_no = t.building_no, unit = t.unit, room = t.room,
                   geom = ST_GeomFromEWKT(t.geom), located_by = t.located_by, head_name = t.head_name, kind = t.kind,
                   rental = t.rental::boolean, phone = t.phone, retired_at = NULL, version = h.version + 1,
                   updated_at = now()
            FROM tmp_household t WHERE h.id = t.id::integer
        """))
        session.execute(text("UPDATE resident SET retired_at = now(), version = version + 1 "
                             "WHERE household_id = ANY(:ids) AND retired_at IS NULL"),
                        {"ids": [h["id"] for h in replaced]})
        report.replaced = len(replaced)
    progress(total // 2 + rows // 4, total)

    hid = {h["ref"]: h["id"] for h in located}
    rids = _allocate(session, "resident", rows)
    hh.copy_rows(session, "COPY resident (id, household_id, name, relation, gender, birth_date, id_hash, id_last4, "
                  "phone) FROM STDIN",
                  ((rid, hid[r[1]], *r[2:]) for rid, r in zip(rids, parsed.residents)))
    progress(total // 2 + (3 * rows) // 4, total)
    hh.copy_rows(session, "COPY resident_tag (resident_id, group_key, start_date) FROM STDIN",
                  ((rids[i], k, start) for i, k, start in parsed.tags))
    hh.apply_grids(session, [h["id"] for h in new], [h["grid_id"] for h in new], "register", new=True)
    hh.apply_grids(session, [h["id"] for h in replaced], [h["grid_id"] for h in replaced], "register")
    report.households, report.residents, report.tags = len(located), rows, len(parsed.tags)
    report.grids_assigned = sum(1 for h in located if h["grid_id"] is not None)
    report.outside_grids = len(located) - report.grids_assigned
    return report
