"""Project-local PostgreSQL + PostGIS cluster: install, initialise, start, stop, inspect;
with hot standbys (streaming replication) on request.

When ``settings.database_url`` is set geogrid uses that database and manages nothing here
beyond making sure the ``postgis`` and ``btree_gist`` extensions exist. Otherwise it runs
its own cluster whose data lives in ``settings.state_dir``:

* ``pgdata/``       data directory (or a symlink to /var/lib/geogrid/clusters/<hash>, see below)
* ``postgres.log``  server log
* ``cluster.json``  port and generated superuser password (mode 0600), and the standbys
* ``standby1/``, ``standby1.log``, ...  each hot standby's data directory and log (beside
  ``pgdata``, so under /var/lib/geogrid/clusters/<hash> too when the state dir is out of reach)

The server listens on 127.0.0.1 only, with no Unix socket (socket paths are limited to ~100
bytes, too short for deep checkouts), and password (scram) authentication everywhere.
initdb and postgres refuse to run as root, so as root the cluster belongs to the
unprivileged system user ``settings.db_system_user`` instead.

Replication (``up(settings, replicas=N)``): PostgreSQL's own physical streaming
replication. Each standby is a ``pg_basebackup -R`` copy of the primary with its own
physical replication slot (named like the standby: the primary keeps the WAL a stopped
standby still needs, so it catches up when started again; a standby left stopped for good
makes the primary keep WAL for it, see ``status``), its own port, running as the same
unprivileged user. Standbys connect over 127.0.0.1 as the role ``geogrid_replicator``
(REPLICATION, its own password in ``cluster.json``) with scram. Nodes have names:
``primary`` is the data directory initdb made (``pgdata``), ``standby1``... the others;
after a promotion the primary is a former standby (``cluster.json`` says which) and the
old primary's data directory is kept, retired, never started again by geogrid.

Every expected failure raises :class:`ClusterError` with a message meant for humans.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
import pwd
import re
import secrets
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.engine import URL, make_url

from geogrid.core.settings import Settings

SUPERUSER = "geogrid"  # database superuser of the managed cluster (not the OS user)
EXTENSIONS = ("postgis", "btree_gist")
FALLBACK_ROOT = Path("/var/lib/geogrid/clusters")
PRIMARY = "primary"  # the node initdb made (data in pgdata/), and the name of the primary's role
REPLICATOR = "geogrid_replicator"  # the role standbys stream as: REPLICATION, not superuser
_apt_updated = False  # `apt-get update` at most once per process


class ClusterError(Exception):
    """An expected failure, with a message that says what went wrong and how to fix it."""


@dataclass(frozen=True)
class PgInstall:
    version: int
    bindir: Path

    def tool(self, name: str) -> str:
        return str(self.bindir / name)


@dataclass(frozen=True)
class ClusterInfo:
    managed: bool
    url: str = field(repr=False)  # includes the password; show masked_url to humans
    port: int | None = None
    data_dir: Path | None = None
    log_file: Path | None = None
    initialized: bool = False  # this call ran initdb
    started: bool = False  # this call started the server
    # One dict per standby: name, port, created (this call made it: pg_basebackup),
    # seconds (how long making it took), started (this call started it).
    standbys: tuple[dict, ...] = ()

    @property
    def masked_url(self) -> str:
        return _mask(self.url)


# --- installation -----------------------------------------------------------------


def _find_install(version: int | None = None) -> PgInstall | None:
    """Highest (or the given) PostgreSQL version whose PostGIS extension is installed."""
    found = []
    for bindir in Path("/usr/lib/postgresql").glob("*/bin"):
        ver = bindir.parent.name
        if (ver.isdigit() and (bindir / "initdb").exists()
                and Path(f"/usr/share/postgresql/{ver}/extension/postgis.control").exists()):
            found.append(PgInstall(int(ver), bindir))
    # Non-Debian layouts (Homebrew, RPM, source builds): trust pg_config on PATH.
    if not found and (pg_config := shutil.which("pg_config")):
        out = {k: subprocess.run([pg_config, f"--{k}"], capture_output=True, text=True).stdout.strip()
               for k in ("bindir", "sharedir", "version")}
        m = re.search(r"(\d+)", out["version"])
        if m and (Path(out["sharedir"]) / "extension/postgis.control").exists():
            found.append(PgInstall(int(m.group(1)), Path(out["bindir"])))
    found = [i for i in found if version is None or i.version == version]
    return max(found, key=lambda i: i.version, default=None)


def _apt_server_version() -> int | None:
    """Server major version to pair PostGIS with: the installed one, else what apt offers."""
    installed = [int(v) for p in Path("/usr/lib/postgresql").glob("*/bin/postgres")
                 if (v := p.parent.parent.name).isdigit()]
    if installed:
        return max(installed)
    out = subprocess.run(["apt-cache", "depends", "postgresql"], capture_output=True, text=True).stdout
    m = re.search(r"Depends: postgresql-(\d+)\b", out)
    return int(m.group(1)) if m else None


def ensure_installed() -> PgInstall:
    """Find PostgreSQL + PostGIS; as root on Debian/Ubuntu install them when missing."""
    global _apt_updated
    if install := _find_install():
        return install
    if not shutil.which("apt-get"):
        raise ClusterError("PostgreSQL with PostGIS 3 was not found; install the server and PostGIS "
                           "packages of your system (initdb must be in /usr/lib/postgresql/NN/bin or pg_config on PATH)")
    if os.geteuid() != 0:
        ver = _apt_server_version()
        postgis = f"postgresql-{ver}-postgis-3" if ver else "postgresql-NN-postgis-3 (NN = server major version)"
        raise ClusterError("PostgreSQL with PostGIS is not installed; run: sudo apt-get update && sudo "
                           f"DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql {postgis}")
    if not _apt_updated:
        _run(["apt-get", "update"], what="apt-get update")
        _apt_updated = True
    ver = _apt_server_version()
    if ver is None:
        raise ClusterError("apt offers no 'postgresql' package; check /etc/apt/sources.list")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run(["apt-get", "install", "-y", "postgresql", f"postgresql-{ver}-postgis-3"],
         what=f"installing postgresql-{ver}-postgis-3", env=env)
    if install := _find_install():
        return install
    raise ClusterError(f"installed postgresql-{ver}-postgis-3 but still found no PostGIS-enabled server")


# --- helpers ----------------------------------------------------------------------


def _run(cmd: list, *, what: str, user: str | None = None, check: bool = True, env=None):
    """Run a command (as `user` via Python's own setuid when given); errors become ClusterError."""
    extra: dict[str, Any] = dict(user=user, group=user, extra_groups=[], cwd="/") if user else {}
    try:
        proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env, **extra)
    except (OSError, KeyError) as exc:  # KeyError: unknown user
        raise ClusterError(f"{what} failed: {exc!r}") from None
    if check and proc.returncode != 0:
        detail = " ".join((proc.stderr.strip() or proc.stdout.strip()).splitlines()[-3:])
        raise ClusterError(f"{what} failed (exit {proc.returncode}): {detail}")
    return proc


def _mask(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _tail(path: Path, lines: int = 10) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return f"\n--- last lines of {path} ---\n" + "\n".join(text)


def _service_user(settings: Settings, create: bool = False) -> str | None:
    """OS user that owns the cluster: None (= us) unless we are root."""
    if os.geteuid() != 0:
        return None
    name = settings.db_system_user
    try:
        pwd.getpwnam(name)
    except KeyError:
        if create:
            _run([shutil.which("useradd") or "/usr/sbin/useradd", "--system", "--user-group",
                  "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name],
                 what=f"creating system user {name!r}")
    return name


def _traversable(path: Path) -> bool:
    """Can any user reach `path`? (the 'x' bit for others on it and every ancestor)"""
    return all(p.stat().st_mode & stat.S_IXOTH for p in [path, *path.parents])


def _node_files(node: str) -> tuple[str, str]:
    """Names of a node's data directory and log file in the state dir."""
    return ("pgdata", "postgres.log") if node == PRIMARY else (node, f"{node}.log")


def _fallback_base(settings: Settings) -> Path:
    return FALLBACK_ROOT / hashlib.sha256(str(settings.state_dir.resolve()).encode()).hexdigest()[:12]


def _paths(settings: Settings, user: str | None = None, create: bool = False,
           node: str | None = None) -> tuple[Path, Path]:
    """Real (symlink-resolved) data directory and log file of ``node`` (default: the node
    that is the primary); with create=True make them."""
    state_dir = settings.state_dir.resolve()
    if node is None:
        node = _primary_node(_load_state(settings))
    data_name, log_name = _node_files(node)
    link, log_link = state_dir / data_name, state_dir / log_name
    if not create:
        return link.resolve(), log_link.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink() and not link.exists() and user and not _traversable(state_dir):
        # The service user cannot reach the checkout (e.g. under /root): keep the real
        # files in a place it can reach and leave symlinks where people will look.
        base = _fallback_base(settings)
        base.mkdir(parents=True, exist_ok=True)
        for p in (FALLBACK_ROOT, FALLBACK_ROOT.parent):
            p.chmod(0o755)
        shutil.chown(base, user, user)
        base.chmod(0o700)
        link.symlink_to(base / data_name)
        if not log_link.is_symlink():
            log_link.unlink(missing_ok=True)
            log_link.symlink_to(base / log_name)
    data_dir, log_file = link.resolve(), log_link.resolve()
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    data_dir.chmod(0o700)  # postgres refuses group/world-accessible data directories
    log_file.touch()
    if user:
        if any(data_dir.iterdir()) and data_dir.stat().st_uid != pwd.getpwnam(user).pw_uid:
            # Created by an earlier non-root run: hand the whole cluster over.
            _run(["chown", "-R", f"{user}:{user}", data_dir], what=f"chown of {data_dir}")
        shutil.chown(data_dir, user, user)
        shutil.chown(log_file, user, user)
    return data_dir, log_file


def _state_file(settings: Settings) -> Path:
    return settings.state_dir.resolve() / "cluster.json"


def _load_state(settings: Settings) -> dict | None:
    try:
        return json.loads(_state_file(settings).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ClusterError(f"cannot read {_state_file(settings)}: {exc}; fix or delete it") from None


def _save_state(settings: Settings, state: dict) -> None:
    # Written to a private temp file and renamed, so the password is never world-readable.
    path = _state_file(settings)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".cluster-")
    with os.fdopen(fd, "w") as f:
        json.dump(state, f, indent=2)
    os.replace(tmp, path)


@contextmanager
def _locked(settings: Settings) -> Iterator[None]:
    """Serialise concurrent `up` calls (parallel test workers) on the same state dir."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    with open(settings.state_dir / ".cluster.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def _primary_node(state: dict | None) -> str:
    """Name of the node that is the primary: ``primary`` unless a standby was promoted."""
    return (state or {}).get("primary_node", PRIMARY)


def _standby_entries(state: dict | None) -> list[dict]:
    """The standbys recorded in cluster.json: {"name", "port", "slot"} each."""
    return list((state or {}).get("standbys", []))


def _resolve_node(state: dict | None, name: str) -> str:
    """The node a user means by ``name``: "primary" is whichever node is the primary."""
    primary = _primary_node(state)
    if name == PRIMARY:
        return primary
    if name == primary or any(s["name"] == name for s in _standby_entries(state)):
        return name
    if any(r["name"] == name for r in (state or {}).get("retired", [])):
        raise ClusterError(f"{name} is retired (a primary replaced by a promotion, not rewound): geogrid does not "
                           "start it again; make fresh standbys with `geogrid db up --replicas N`")
    known = ", ".join([PRIMARY, *(s["name"] for s in _standby_entries(state))])
    raise ClusterError(f"no node named {name!r} in this cluster; known: {known}")


def _url_nodes(url: str) -> set[tuple[str | None, int | None]]:
    """(host, port) pairs a URL names, multi-host ones included."""
    u = make_url(url)
    hosts = u.query.get("host")
    if hosts is None:
        return {(u.host, u.port)}
    pairs: set[tuple[str | None, int | None]] = set()
    for h in [hosts] if isinstance(hosts, str) else hosts:
        host, _, port = h.rpartition(":") if ":" in h else (h, "", "")
        pairs.add((host, int(port) if port.isdigit() else None))
    return pairs


def _managed(settings: Settings) -> bool:
    """Is the server geogrid works on the local cluster of settings.state_dir? Yes without
    database_url, and when database_url points at that cluster's nodes (as the settings of
    tests on a replicated cluster do), so that its nodes can be stopped, started, promoted."""
    if not settings.database_url:
        return True
    state = _load_state(settings)
    if state is None:
        return False
    ports = {state.get("port"), *(s.get("port") for s in _standby_entries(state))}
    return all(h in ("127.0.0.1", "localhost") and p in ports for h, p in _url_nodes(settings.database_url))


def _running_port(data_dir: Path) -> int | None:
    """Port of the postmaster running on data_dir, from postmaster.pid; None when stopped."""
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
        pid, port = int(lines[0]), int(lines[3])
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None  # stale pid file after a crash; postgres cleans it up on start
    except PermissionError:
        pass  # alive, owned by another user
    return port


def port_free(port: int) -> bool:
    """Whether nothing listens on ``port`` of 127.0.0.1 (a node, or a test, may take it)."""
    with socket.socket() as s:
        # SO_REUSEADDR like postgres itself, so TIME_WAIT leftovers do not count as taken.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _choose_port(settings: Settings, state: dict, node: str = PRIMARY) -> int:
    """A free port for ``node``: the one it had (for the initdb node: db_port first, as
    ever), never one another node of the cluster has recorded (it may start again)."""
    primary = _primary_node(state)
    entries = {s["name"]: s.get("port") for s in _standby_entries(state)}
    own = state.get("port") if node == primary else entries.get(node)
    others = {p for n, p in [(primary, state.get("port")), *entries.items()] if n != node and p}
    first = [settings.db_port, own] if node == PRIMARY else [own]
    candidates = [*first, *range(settings.db_port + 1, settings.db_port + 100)]
    for port in dict.fromkeys(p for p in candidates if p and p not in others):
        if port_free(port):
            return port
    raise ClusterError(f"no free port in {settings.db_port}..{settings.db_port + 99}; set GEOGRID_DB_PORT")


def _install_for(data_dir: Path) -> PgInstall:
    """Binaries matching the cluster's on-disk format (PG_VERSION)."""
    ver = int((data_dir / "PG_VERSION").read_text().strip())
    if install := _find_install(ver):
        return install
    raise ClusterError(f"cluster {data_dir} was created by PostgreSQL {ver}, which (with PostGIS) is no longer "
                       f"installed; reinstall postgresql-{ver}-postgis-3 or dump, delete the data dir and run up again")


def _locale() -> str:
    out = subprocess.run(["locale", "-a"], capture_output=True, text=True).stdout if shutil.which("locale") else ""
    return "C.UTF-8" if "c.utf8" in out.lower().replace("-", "").split() else "C"


def _initdb(install: PgInstall, data_dir: Path, password: str, user: str | None) -> None:
    fd, pwfile = tempfile.mkstemp(prefix="geogrid-pw-")  # private to us, then handed to `user`
    try:
        with os.fdopen(fd, "w") as f:
            f.write(password + "\n")
        if user:
            shutil.chown(pwfile, user, user)
        _run([install.tool("initdb"), "-D", data_dir, f"--username={SUPERUSER}", f"--pwfile={pwfile}",
              "--auth-local=scram-sha-256", "--auth-host=scram-sha-256", "--encoding=UTF8",
              f"--locale={_locale()}"], user=user, what=f"initdb of {data_dir}")
    finally:
        os.unlink(pwfile)


def _start(install: PgInstall, data_dir: Path, log_file: Path, port: int, user: str | None,
           synchronous: bool = False, wal_keep_mb: int = -1) -> None:
    # pg_ctl hands -o to /bin/sh, so '' arrives as an empty value (no Unix socket at all).
    # Every node (primary or standby) starts with the same options, so a promoted standby
    # behaves as its primary did. hot_standby_feedback: vacuum on the primary waits for
    # queries running on the standbys instead of cancelling them (short reads only here).
    # synchronous_commit: see up(). max_slot_wal_keep_size: settings.replica_wal_keep_mb.
    opts = (f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
            f"-c synchronous_commit={'on' if synchronous else 'off'} -c hot_standby=on -c hot_standby_feedback=on "
            f"-c max_slot_wal_keep_size={wal_keep_mb}{'MB' if wal_keep_mb >= 0 else ''}")
    proc = _run([install.tool("pg_ctl"), "start", "-w", "-t", "60", "-D", data_dir, "-l", log_file,
                 "-o", opts], user=user, check=False, what="pg_ctl start")
    if proc.returncode != 0:
        raise ClusterError(f"PostgreSQL failed to start on port {port}; see {log_file}, fix the cause "
                           "(often a port or permission problem) and run up again" + _tail(log_file))


def _stop(install: PgInstall, data_dir: Path, user: str | None, mode: str = "fast") -> None:
    _run([install.tool("pg_ctl"), "stop", "-D", data_dir, "-m", mode, "-w", "-t", "60"],
         user=user, what="pg_ctl stop")


def _conf_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _set_auto_conf(data_dir: Path, values: dict[str, str | None]) -> bool:
    """Set (or with None remove) parameters in a node's postgresql.auto.conf, the file
    ALTER SYSTEM writes, also for a stopped node or a standby; True when it changed.
    The file keeps its owner and mode (the service user's, 0600)."""
    path = data_dir / "postgresql.auto.conf"
    lines = path.read_text().splitlines()

    def key(line: str) -> str | None:
        return None if line.lstrip().startswith("#") or "=" not in line else line.split("=", 1)[0].strip().lower()

    new = [line for line in lines if key(line) not in values]
    new += [f"{k} = {_conf_quote(v)}" for k, v in values.items() if v is not None]
    if new == lines:
        return False
    path.write_text("\n".join(new) + "\n")
    return True


def _reload(install: PgInstall, data_dir: Path, user: str | None) -> None:
    _run([install.tool("pg_ctl"), "reload", "-D", data_dir], user=user, what="pg_ctl reload")


# --- SQL --------------------------------------------------------------------------


def connect(url: str, dbname: str | None = None, timeout: int = 10) -> psycopg.Connection:
    """An autocommit psycopg connection to the database of a SQLAlchemy URL (multi-host
    ones too), or to ``dbname`` on that server; :class:`ClusterError` when it cannot."""
    u = make_url(url)
    if dbname:
        u = u.set(database=dbname)
    try:
        if "host" in u.query:  # multi-host (?host=h1:p1&host=h2:p2): SQLAlchemy's own translation
            _, kwargs = PGDialect_psycopg().create_connect_args(u)
            return psycopg.connect(**kwargs, autocommit=True, connect_timeout=timeout)
        conninfo = u.set(drivername="postgresql").render_as_string(hide_password=False)
        return psycopg.connect(conninfo, autocommit=True, connect_timeout=timeout)
    except psycopg.Error as exc:
        raise ClusterError(f"cannot connect to {_mask(str(u))}: {_first(exc)} (is the server up? check the URL/port)") from None


def _first(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _ensure_extensions(url: str, dbname: str | None = None) -> None:
    with connect(url, dbname) as conn:
        have = {r[0] for r in conn.execute("SELECT extname FROM pg_extension")}
        for ext in (e for e in EXTENSIONS if e not in have):  # skip: may lack the privilege
            try:
                conn.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(ext)))
            except psycopg.Error as exc:
                raise ClusterError(f"could not create extension {ext} in {conn.info.dbname!r}: {_first(exc)} "
                                   "(needs superuser or database owner, and PostGIS installed on the server)") from None


def _ensure_database(url: str, name: str, drop_existing: bool = False) -> None:
    with connect(url, "postgres") as conn:
        try:
            if drop_existing:  # FORCE terminates other sessions on it (PostgreSQL >= 13)
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.errors.DuplicateDatabase:
            pass  # created concurrently by someone else: fine
        except psycopg.Error as exc:
            raise ClusterError(f"could not create/drop database {name!r}: {_first(exc)}") from None
    _ensure_extensions(url, name)


# --- replication ------------------------------------------------------------------


def _node_url(state: dict, port: int, db_name: str) -> str:
    return URL.create("postgresql+psycopg", username=SUPERUSER, password=state["password"], host="127.0.0.1",
                      port=port, database=db_name).render_as_string(hide_password=False)


def _admin(state: dict, port: int | None = None, timeout: int = 10) -> psycopg.Connection:
    """Superuser connection to ``postgres`` on one node (default: the primary). Its commits
    do not wait for a synchronous standby: cluster housekeeping must not hang on one that
    is down."""
    conn = connect(_node_url(state, port or state["port"], "postgres"), timeout=timeout)
    conn.execute("SET synchronous_commit = local")
    return conn


def admin(settings: Settings) -> psycopg.Connection:
    """A superuser connection to ``postgres`` on the local cluster's primary, for the
    operator's own housekeeping (CHECKPOINT, pg_switch_wal, a look at pg_replication_slots)."""
    if not _managed(settings) or (state := _load_state(settings)) is None:
        raise ClusterError("no local cluster here: GEOGRID_DATABASE_URL names another server, or up was never run")
    return _admin(state)


def _slot_lost(state: dict, slot: str) -> bool:
    """Whether the primary has invalidated replication slot ``slot`` (max_slot_wal_keep_size)."""
    with _admin(state, timeout=5) as conn:
        return _one(conn, "SELECT wal_status FROM pg_replication_slots WHERE slot_name = %s", (slot,)) == "lost"


def _one(conn: psycopg.Connection, query: str, params: tuple = ()):
    row = conn.execute(query, params).fetchone()
    return row[0] if row else None


def _primary_conninfo(state: dict, name: str) -> str:
    """What standby ``name`` streams from the primary with; application_name is its name,
    which synchronous_standby_names and pg_stat_replication go by. The password stays in
    the standby's postgresql.auto.conf (0600, the service user's), not on a command line."""
    return (f"host=127.0.0.1 port={state['port']} user={REPLICATOR} password={state['replication_password']} "
            f"application_name={name}")


def _ensure_replicator(settings: Settings, state: dict) -> None:
    """The replication role on the primary, with the password recorded in cluster.json."""
    if not state.get("replication_password"):
        state["replication_password"] = secrets.token_urlsafe(24)
        _save_state(settings, state)
    with _admin(state) as conn:
        # Only a SCRAM verifier travels: the password never reaches the server or its log.
        verifier = conn.pgconn.encrypt_password(state["replication_password"].encode(), REPLICATOR.encode(),
                                                b"scram-sha-256").decode()
        verb = sql.SQL("ALTER" if _one(conn, "SELECT 1 FROM pg_roles WHERE rolname = %s", (REPLICATOR,)) else "CREATE")
        conn.execute(sql.SQL("{} ROLE {} WITH LOGIN REPLICATION PASSWORD {}").format(
            verb, sql.Identifier(REPLICATOR), sql.Literal(verifier)))


def _drop_slot(state: dict, slot: str) -> None:
    with _admin(state) as conn:
        active = conn.execute("SELECT active FROM pg_replication_slots WHERE slot_name = %s", (slot,)).fetchone()
        if active and active[0]:
            raise ClusterError(f"replication slot {slot} on the primary is in use by another connection; stop "
                               "whatever streams from it and run up again")
        if active:
            conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))


def _empty_dir(path: Path) -> None:
    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _make_standby(settings: Settings, state: dict, entry: dict, user: str | None) -> float:
    """Copy the running primary into standby ``entry``'s (empty) data directory with
    pg_basebackup -R, creating its replication slot; returns the seconds it took."""
    name, slot = entry["name"], entry["slot"]
    data_dir, _ = _paths(settings, user, create=True, node=name)
    if any(data_dir.iterdir()):
        raise ClusterError(f"{data_dir} is not empty but holds no cluster; move it away and run up again")
    install = _install_for(_paths(settings, node=_primary_node(state))[0])
    _ensure_replicator(settings, state)
    _drop_slot(state, slot)  # left by an earlier attempt: -C wants to make it
    started = time.monotonic()
    fd, passfile = tempfile.mkstemp(prefix="geogrid-pgpass-")  # private to us, then handed to `user`
    try:
        with os.fdopen(fd, "w") as f:
            f.write(f"127.0.0.1:{state['port']}:*:{REPLICATOR}:{state['replication_password']}\n")
        if user:
            shutil.chown(passfile, user, user)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")} | {"PGPASSFILE": passfile}
        # --checkpoint=fast: the default spread checkpoint makes the copy wait minutes.
        proc = _run([install.tool("pg_basebackup"), "-D", data_dir, "-h", "127.0.0.1", "-p", state["port"],
                     "-U", REPLICATOR, "-w", "-R", "-X", "stream", "-S", slot, "-C", "--checkpoint=fast",
                     "-l", f"geogrid {name}"], user=user, env=env, check=False, what="pg_basebackup")
    finally:
        os.unlink(passfile)
    if proc.returncode != 0:
        _empty_dir(data_dir)  # nothing half made: up can simply try again
        try:
            _drop_slot(state, slot)
        except ClusterError:
            pass
        detail = " ".join((proc.stderr.strip() or proc.stdout.strip()).splitlines()[-3:])
        raise ClusterError(f"pg_basebackup of the primary into {data_dir} for {name} failed: {detail}")
    # -R wrote a primary_conninfo naming the temporary passfile: ours carries the password.
    _set_auto_conf(data_dir, {"primary_conninfo": _primary_conninfo(state, name), "primary_slot_name": slot})
    return time.monotonic() - started


def _start_node(settings: Settings, state: dict, node: str, user: str | None) -> tuple[int, bool]:
    """Start ``node`` unless it runs; (its port, whether this started it). Records the port."""
    data_dir, log_file = _paths(settings, user, create=True, node=node)
    if not (data_dir / "PG_VERSION").exists():
        raise ClusterError(f"{node} has no data in {data_dir}; `geogrid db up --replicas N` makes missing standbys")
    port = _running_port(data_dir)
    if port is not None:
        return port, False
    port = _choose_port(settings, state, node)
    _start(_install_for(data_dir), data_dir, log_file, port, user, bool(state.get("synchronous")),
           settings.replica_wal_keep_mb)
    entry = next((s for s in _standby_entries(state) if s["name"] == node), None)
    if entry is None:  # the primary
        state["port"] = port
    else:
        entry["port"] = port  # the dict in state["standbys"]
    _save_state(settings, state)
    return port, True


def _repoint(settings: Settings, state: dict, user: str | None) -> None:
    """Make every standby stream from the current primary (its port, their slot)."""
    for entry in _standby_entries(state):
        data_dir, _ = _paths(settings, node=entry["name"])
        if not (data_dir / "PG_VERSION").exists():
            continue
        wanted = {"primary_conninfo": _primary_conninfo(state, entry["name"]), "primary_slot_name": entry["slot"]}
        if _set_auto_conf(data_dir, wanted) and _running_port(data_dir) is not None:
            _reload(_install_for(data_dir), data_dir, user)  # both are reloadable since PostgreSQL 13


def _sync_names(state: dict) -> str:
    names = [s["name"] for s in _standby_entries(state)] if state.get("synchronous") else []
    return f"ANY 1 ({', '.join(names)})" if names else ""


def _apply_sync_names(state: dict) -> None:
    """synchronous_standby_names on the primary: any one of the standbys when synchronous."""
    want = _sync_names(state)
    with _admin(state) as conn:
        if _one(conn, "SHOW synchronous_standby_names") == want:
            return
        conn.execute(sql.SQL("ALTER SYSTEM SET synchronous_standby_names = {}").format(sql.Literal(want)))
        conn.execute("SELECT pg_reload_conf()")
        # The reload is asynchronous: return once the walsenders have it (commits from
        # now on wait), bounded, and not at all when no standby streams yet.
        deadline = time.monotonic() + 10
        while want and time.monotonic() < deadline:
            states = {r[0] for r in conn.execute("SELECT sync_state FROM pg_stat_replication WHERE state = 'streaming'")}
            if not states or states & {"sync", "quorum"}:
                break
            time.sleep(0.05)


def _next_standby_name(state: dict) -> str:
    used = {_primary_node(state), *(s["name"] for s in _standby_entries(state)),
            *(r["name"] for r in state.get("retired", []))}
    return next(f"standby{i}" for i in range(1, 1000) if f"standby{i}" not in used)


def _standby_url(state: dict, entry: dict, db_name: str) -> str:
    return _node_url(state, entry["port"], db_name)


# --- public API -------------------------------------------------------------------


def become_service_user(settings: Settings, probe: str, *, required: bool) -> str | None:
    """Drop root for the service: switch this process to the unprivileged system user
    that already runs the cluster, after whatever needed root (installing packages,
    starting the cluster, reading its password, fetching map assets) is done.

    Returns the user switched to, or None when not root. A service must not answer the
    network as root, so when that user cannot run the code from where it is installed
    (a checkout under /root, say) this refuses (``required``) or, for the loopback demo,
    returns None and leaves the caller to warn. The check runs the imports the service
    needs (``probe``, Python source) as that user in a child process first: a
    half-switched service would fail on its first lazy import instead.
    """
    if os.geteuid() != 0:
        return None
    name = _service_user(settings, create=True) or settings.db_system_user
    entry = pwd.getpwnam(name)
    try:
        done = _run([sys.executable, "-c", probe], what=f"running geogrid as {name}", user=name)
        reason = None
    except ClusterError as exc:  # the interpreter itself may be out of its reach (pyenv under /root)
        done, reason = None, str(exc)
    if done is None:
        if not required:
            return None
        raise ClusterError(f"geogrid will not serve as root, and the system user {name!r} cannot run it from "
                           f"{Path(sys.executable).parent.parent} ({reason}). Install geogrid where {name} can read "
                           "it (e.g. /opt/geogrid), or start it as an unprivileged user (see README, Security)")
    os.setgroups([])
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
    os.environ.update(HOME="/nonexistent", USER=name, LOGNAME=name)
    return name


def database_url(settings: Settings, db_name: str | None = None) -> str:
    """SQLAlchemy URL of settings.db_name (or db_name) on the configured or managed server.

    With standbys, a multi-host URL over the primary and every standby with
    ``target_session_attrs=read-write``: libpq tries them in turn and keeps the one that
    accepts writes, so a service holding this URL finds the new primary by itself after
    a promotion (its pool's pre-ping drops the connections to the old one)."""
    if settings.database_url:
        u = make_url(settings.database_url)
        return u.set(database=db_name).render_as_string(hide_password=False) if db_name else settings.database_url
    state = _load_state(settings)
    if state is None:
        raise ClusterError(f"no local cluster in {settings.state_dir} yet; run up first (or set GEOGRID_DATABASE_URL)")
    db = db_name or settings.db_name
    entries = _standby_entries(state)
    if not entries:
        return _node_url(state, state["port"], db)
    hosts = tuple(f"127.0.0.1:{p}" for p in [state["port"], *(s["port"] for s in entries)])
    return URL.create("postgresql+psycopg", username=SUPERUSER, password=state["password"], database=db,
                      query={"host": hosts, "target_session_attrs": "read-write"}).render_as_string(hide_password=False)


def replica_urls(settings: Settings, db_name: str | None = None) -> list[str]:
    """SQLAlchemy URLs of the standbys (of settings.db_name, or db_name), running or not:
    ``settings.replica_urls`` with GEOGRID_DATABASE_URL, else the local cluster's."""
    if settings.database_url:
        return [make_url(u).set(database=db_name).render_as_string(hide_password=False) if db_name else u
                for u in settings.replica_urls]
    state = _load_state(settings)
    return [_standby_url(state, s, db_name or settings.db_name) for s in _standby_entries(state)] if state else []


def standbys(settings: Settings) -> list[dict]:
    """The local cluster's standbys: name, port, data_dir, running, url (with the password)."""
    if not _managed(settings):
        return []
    state = _load_state(settings)
    out = []
    for entry in _standby_entries(state):
        data_dir, _ = _paths(settings, node=entry["name"])
        port = _running_port(data_dir)
        out.append({"name": entry["name"], "port": port or entry["port"], "data_dir": str(data_dir),
                    "running": port is not None, "url": _standby_url(state or {}, entry, settings.db_name)})
    return out


def up(settings: Settings, replicas: int | None = None, synchronous: bool | None = None) -> ClusterInfo:
    """Make sure the database is reachable with its extensions; start/initialise the cluster if needed.

    ``replicas=N``: at least N hot standbys exist (made with pg_basebackup from the
    primary, each with its own replication slot and port) and run; more that exist are
    kept. ``None``: start the standbys there are. Standbys made later copy the primary as
    it is then (a promoted one included: this is how the old primary is replaced).

    ``synchronous`` (None: as it was, initially False) is recorded in cluster.json.
    False: ``synchronous_commit=off``, as the cluster always ran: a commit returns before
    its WAL is on disk, so a crash of the primary loses the last fraction of a second of
    acknowledged commits, and a promotion loses what the standby had not received yet
    (normally milliseconds, more under load). True: ``synchronous_commit=on`` with
    ``synchronous_standby_names = 'ANY 1 (standby1, ...)'``: a commit returns only once it
    is flushed on the primary and on one standby, so nothing acknowledged is lost when the
    primary dies and that standby is promoted (``promote`` picks the most caught-up one).
    The price: every commit waits for a round trip to a standby and its disk flush, and
    while no standby is connected, commits wait (they do not fail) until one is back.
    Changing it restarts the running nodes (synchronous_commit is a start option).
    """
    if settings.database_url:
        if replicas or synchronous:
            raise ClusterError("standbys are made for the local cluster only; with GEOGRID_DATABASE_URL set up the "
                               "replication of that server yourself and list the standbys in GEOGRID_REPLICA_URLS")
        _ensure_extensions(settings.database_url)
        return ClusterInfo(managed=False, url=settings.database_url, port=make_url(settings.database_url).port)
    if replicas is not None and replicas < 0:
        raise ClusterError("replicas must be 0 or more")
    with _locked(settings):
        install = ensure_installed()
        user = _service_user(settings, create=True)
        state = _load_state(settings)
        node = _primary_node(state)
        data_dir, log_file = _paths(settings, user, create=True, node=node)
        initialized = started = False
        if not (data_dir / "PG_VERSION").exists():
            if node != PRIMARY:
                raise ClusterError(f"the primary ({node}) has no data in {data_dir}; restore it, or delete "
                                   f"{_state_file(settings)} and the data directories to start afresh")
            if any(data_dir.iterdir()):
                raise ClusterError(f"{data_dir} is not empty but holds no cluster; move it away and run up again")
            if state is None:
                state = {"port": settings.db_port, "password": secrets.token_urlsafe(24)}
                _save_state(settings, state)
            _initdb(install, data_dir, state["password"], user)
            initialized = True
        elif state is None:
            raise ClusterError(f"{data_dir} holds a cluster but {_state_file(settings)} (its password) is missing; "
                               "restore the file or delete the data dir to start afresh")
        install = _install_for(data_dir)
        restart = synchronous is not None and bool(state.get("synchronous")) != synchronous
        if restart:
            state["synchronous"] = synchronous
            _save_state(settings, state)
        if restart and _running_port(data_dir) is not None:
            _stop(install, data_dir, user)
        port = _running_port(data_dir)
        if port is None:
            if node == PRIMARY:  # as ever: db_port preferred
                port = _choose_port(settings, state)
                _start(install, data_dir, log_file, port, user, bool(state.get("synchronous")),
                       settings.replica_wal_keep_mb)
                if port != state["port"]:
                    state["port"] = port
                    _save_state(settings, state)
            else:
                port, _ = _start_node(settings, state, node, user)
            started = True
        elif port != state["port"]:
            state["port"] = port
            _save_state(settings, state)
        # The standbys there are: follow the primary's port, run (before anything here
        # commits: a synchronous primary waits for them).
        _repoint(settings, state, user)
        report: list[dict] = []
        for entry in _standby_entries(state):
            sb_dir, _ = _paths(settings, user, create=True, node=entry["name"])
            seconds = None
            if (sb_dir / "PG_VERSION").exists() and _slot_lost(state, entry["slot"]):
                # The primary removed WAL it never received (replica_wal_keep_mb): it cannot catch up.
                if _running_port(sb_dir) is not None:
                    _stop(_install_for(sb_dir), sb_dir, user, mode="immediate")
                _empty_dir(sb_dir)
            if not (sb_dir / "PG_VERSION").exists():  # lost or never finished: copy afresh
                seconds = _make_standby(settings, state, entry, user)
            elif restart and _running_port(sb_dir) is not None:
                _stop(_install_for(sb_dir), sb_dir, user)
            sb_port, sb_started = _start_node(settings, state, entry["name"], user)
            report.append({"name": entry["name"], "port": sb_port, "created": seconds is not None,
                           "seconds": seconds, "started": sb_started})
        primary_url = _node_url(state, state["port"], settings.db_name)
        _ensure_database(primary_url, settings.db_name)
        while replicas is not None and len(_standby_entries(state)) < replicas:
            name = _next_standby_name(state)
            entry = {"name": name, "port": None, "slot": name}
            state.setdefault("standbys", []).append(entry)
            _save_state(settings, state)  # recorded first: a failed copy is retried by the next up
            seconds = _make_standby(settings, state, entry, user)
            sb_port, _ = _start_node(settings, state, name, user)
            report.append({"name": name, "port": sb_port, "created": True, "seconds": seconds, "started": True})
        if _standby_entries(state) or state.get("synchronous") is not None:
            _apply_sync_names(state)
    return ClusterInfo(managed=True, url=database_url(settings), port=port, data_dir=data_dir,
                       log_file=log_file, initialized=initialized, started=started, standbys=tuple(report))


def down(settings: Settings, only: str | None = None) -> bool:
    """Stop the managed cluster (standbys first, then the primary), or only one node:
    "primary" or a standby's name. False when nothing was running (or it is not ours to
    manage). Stopping every standby of a synchronous primary makes its commits wait."""
    if not _managed(settings):
        return False
    state = _load_state(settings)
    if only is None:
        nodes = [*(s["name"] for s in _standby_entries(state)), _primary_node(state)]
    else:
        nodes = [_resolve_node(state, only)]
    stopped = False
    for node in nodes:
        data_dir, _ = _paths(settings, node=node)
        if _running_port(data_dir) is not None:
            _stop(_install_for(data_dir), data_dir, _service_user(settings))
            stopped = True
    return stopped


def start(settings: Settings, only: str) -> dict:
    """Start one stopped node again ("primary" or a standby's name): {name, port, started}.
    A standby catches up from the primary through its replication slot."""
    if not _managed(settings):
        raise ClusterError("GEOGRID_DATABASE_URL names another server: geogrid manages no cluster to start")
    with _locked(settings):
        state = _load_state(settings)
        if state is None:
            raise ClusterError(f"no local cluster in {settings.state_dir} yet; run `geogrid db up` first")
        node = _resolve_node(state, only)
        user = _service_user(settings, create=True)
        port, started = _start_node(settings, state, node, user)
        _repoint(settings, state, user)  # the primary may have come back on another port
    return {"name": node, "port": port, "started": started}


def promote(settings: Settings, name: str | None = None) -> dict:
    """Make a standby the primary after the primary stopped (refused while it runs: two
    primaries would each take writes the other never sees). Default: the running standby
    that received the most WAL. The other standbys follow the new primary (new timeline,
    their slots made on it); synchronous mode goes on with them (with none left, commits
    no longer wait for a standby: run up --replicas N). The old primary's data directory
    is kept and retired: it is not rewound (pg_rewind) or started again by geogrid; fresh
    standbys come from ``up(settings, replicas=N)``."""
    if not _managed(settings):
        raise ClusterError("GEOGRID_DATABASE_URL names another server: promote its standby with its own tools")
    with _locked(settings):
        state = _load_state(settings)
        entries = _standby_entries(state)
        if state is None or not entries:
            raise ClusterError("this cluster has no standby to promote; make some with `geogrid db up --replicas N`")
        old = _primary_node(state)
        old_dir, _ = _paths(settings, node=old)
        if (port := _running_port(old_dir)) is not None:
            raise ClusterError(f"the primary ({old}, port {port}) is still running: promoting a standby now would "
                               "make two primaries. Stop it first (`geogrid db down --only primary`)")
        user = _service_user(settings, create=True)
        received: dict[str, int] = {}
        for entry in entries:
            sb_dir, _ = _paths(settings, node=entry["name"])
            if (sb_port := _running_port(sb_dir)) is None:
                continue
            try:
                with _admin(state, sb_port, timeout=5) as conn:
                    received[entry["name"]] = int(_one(conn, "SELECT pg_wal_lsn_diff(COALESCE("
                                                  "pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()), '0/0')"))
            except (ClusterError, psycopg.Error):
                continue
        if name is None:
            if not received:
                raise ClusterError("no standby is running to promote; start one (`geogrid db start standby1`) "
                                   "or name the one to promote")
            name = max(received, key=lambda n: received[n])  # ties: the first standby
        elif name == PRIMARY or name == old:
            raise ClusterError(f"{name} is the primary already; name a standby to promote")
        else:
            _resolve_node(state, name)
        entry = next(s for s in entries if s["name"] == name)
        data_dir, _ = _paths(settings, node=name)
        if _running_port(data_dir) is None:
            _start_node(settings, state, name, user)
        others = [s for s in entries if s["name"] != name]
        behind = [s["name"] for s in others if received.get(s["name"], -1) > received.get(name, -1) >= 0]
        install = _install_for(data_dir)
        new_state = {**state, "primary_node": name, "port": entry["port"], "standbys": others,
                     "retired": [*state.get("retired", []), {"name": old, "port": state["port"],
                                 "data_dir": str(old_dir), "retired_at": dt.datetime.now(dt.UTC).isoformat()}]}
        # Before it takes writes: who it waits for as a synchronous primary (not itself, as
        # the copy of the old primary's setting says), and slots for its future standbys
        # (made while it is still a standby, they keep the WAL from its replay position).
        _set_auto_conf(data_dir, {"synchronous_standby_names": _sync_names(new_state)})
        _reload(install, data_dir, user)
        with _admin(state, entry["port"]) as conn:
            for other in others:
                if not _one(conn, "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (other["slot"],)):
                    conn.execute("SELECT pg_create_physical_replication_slot(%s, true)", (other["slot"],))
        started = time.monotonic()
        _run([install.tool("pg_ctl"), "promote", "-w", "-t", "60", "-D", data_dir], user=user,
             what=f"pg_ctl promote of {name}")
        seconds = time.monotonic() - started
        _save_state(settings, new_state)
        _set_auto_conf(data_dir, {"primary_conninfo": None, "primary_slot_name": None})  # a primary now
        _reload(install, data_dir, user)
        _repoint(settings, new_state, user)
    result = {"promoted": name, "port": entry["port"], "seconds": seconds, "retired": old,
              "retired_data_dir": str(old_dir), "standbys": [s["name"] for s in others],
              "synchronous": bool(_sync_names(new_state))}
    if behind:
        result["diverged"] = behind  # had received more than the promoted one: cannot follow it
    return result


def status(settings: Settings) -> dict:
    """What is configured and running, for humans and for `geogrid db status`; with
    standbys, per standby: name, port, running, state, sync_state, lag_bytes (WAL the
    primary has written that the standby has not replayed yet), replay_lag_s
    (pg_stat_replication's replay_lag; 0.0 when caught up and idle), replay_lsn, slot
    (its replication slot's wal_status: reserved, extended, unreserved or lost) and
    wal_left_bytes (WAL the primary may still write before the slot is lost, with
    ``replica_wal_keep_mb``)."""
    url = settings.database_url
    info: dict = {"managed": not url, "running": bool(url), "url": url and _mask(url)}
    state = None
    if not url:
        state = _load_state(settings)
        data_dir, log_file = _paths(settings)
        port = _running_port(data_dir)
        url = database_url(settings) if state else None
        info.update(running=port is not None, initialized=(data_dir / "PG_VERSION").exists(),
                    data_dir=str(data_dir), log_file=str(log_file), state_file=str(_state_file(settings)),
                    port=port or (state or {}).get("port"), url=url and _mask(url))
        if _primary_node(state) != PRIMARY:
            info["primary_node"] = _primary_node(state)
        if _standby_entries(state):
            info["synchronous"] = bool((state or {}).get("synchronous"))
        if (state or {}).get("retired"):
            info["retired"] = [r["data_dir"] for r in (state or {})["retired"]]
    elif _managed(settings):
        state = _load_state(settings)  # database_url names the local cluster: show its standbys too
    if info["running"] and url:
        try:
            with connect(url) as conn:
                info["postgres_version"] = _one(conn, "SHOW server_version")
                info["postgis_version"] = _one(conn, "SELECT postgis_lib_version()")
        except ClusterError as exc:
            info.update(running=False, error=str(exc))
        except psycopg.Error as exc:  # connected, but the database lacks PostGIS (up not run yet)
            info["error"] = f"PostGIS not available in {make_url(url).database!r}: {_first(exc)}; run up"
    if state and _standby_entries(state):
        primary_running = _running_port(_paths(settings)[0]) is not None
        info["standbys"] = _standby_status(settings, state, primary_running)
    return info


def _standby_status(settings: Settings, state: dict, primary_running: bool) -> list[dict]:
    seen: dict[str, dict] = {}
    slots: dict[str, tuple] = {}
    if primary_running:
        try:
            with _admin(state, timeout=5) as conn:
                rows = conn.execute(
                    "SELECT application_name, state, sync_state,"
                    " pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint,"
                    " extract(epoch FROM replay_lag)::float8 FROM pg_stat_replication").fetchall()
                slots = {r[0]: r[1:] for r in conn.execute(
                    "SELECT slot_name, wal_status, safe_wal_size FROM pg_replication_slots")}
            seen = {r[0]: {"state": r[1], "sync_state": r[2], "lag_bytes": r[3], "replay_lag_s": r[4]} for r in rows}
        except (ClusterError, psycopg.Error):
            pass  # the standbys' own answers below still say something
    out = []
    for entry in _standby_entries(state):
        data_dir, _ = _paths(settings, node=entry["name"])
        port = _running_port(data_dir)
        item: dict = {"name": entry["name"], "port": port or entry["port"], "running": port is not None,
                      "state": None, "sync_state": None, "lag_bytes": None, "replay_lag_s": None, "replay_lsn": None}
        item.update(seen.get(entry["name"], {}))
        if entry["slot"] in slots:
            item["slot"], item["wal_left_bytes"] = slots[entry["slot"]]
            if item["slot"] == "lost":
                item["error"] = (f"replication slot lost: the primary removed WAL this standby had not received "
                                 f"(more than GEOGRID_REPLICA_WAL_KEEP_MB={settings.replica_wal_keep_mb} behind); "
                                 "`geogrid db up` copies it again")
        if item["replay_lag_s"] is None and item["lag_bytes"] == 0:
            item["replay_lag_s"] = 0.0  # replay_lag turns NULL once a standby is caught up and idle
        if port is not None:
            try:
                with _admin(state, port, timeout=5) as conn:
                    item["replay_lsn"] = str(_one(conn, "SELECT pg_last_wal_replay_lsn()"))
                    if not _one(conn, "SELECT pg_is_in_recovery()"):
                        item["error"] = "not in recovery: this node takes writes (promoted by hand?)"
            except (ClusterError, psycopg.Error) as exc:
                item["error"] = _first(exc)
        out.append(item)
    return out


def create_database(settings: Settings, name: str, drop_existing: bool = False) -> str:
    """Create database `name` (dropped first if asked) with postgis and btree_gist; return its URL."""
    _ensure_database(database_url(settings), name, drop_existing=drop_existing)
    return database_url(settings, name)


def drop_database(settings: Settings, name: str) -> None:
    """Drop database `name` on the same server, ending its sessions; no error if missing."""
    with connect(database_url(settings), "postgres") as conn:
        try:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        except psycopg.Error as exc:
            raise ClusterError(f"could not drop database {name!r}: {_first(exc)}") from None


def databases(settings: Settings, prefix: str = "") -> list[str]:
    """Names of the databases on the server that start with `prefix`."""
    with connect(database_url(settings), "postgres") as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE starts_with(datname, %s) ORDER BY 1", (prefix,))
        return [r[0] for r in rows]


def process_database(settings: Settings, prefix: str) -> tuple[str, str]:
    """A fresh database ``<prefix><pid>`` for this process (tests, benchmarks), after
    dropping those left behind by processes that no longer run. Returns (name, url)."""
    for name in databases(settings, prefix):
        pid = name.removeprefix(prefix)
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            drop_database(settings, name)
    name = f"{prefix}{os.getpid()}"
    return name, create_database(settings, name, drop_existing=True)


def destroy(settings: Settings) -> None:
    """Stop every node of the local cluster in ``settings.state_dir`` and delete it for
    good: data directories (also under /var/lib/geogrid/clusters), logs, cluster.json.
    For throw-away clusters (tests, benchmarks): never point it at a cluster you keep."""
    if not _managed(settings):
        raise ClusterError("GEOGRID_DATABASE_URL names another server: geogrid deletes no external database")
    state = _load_state(settings) or {}
    nodes = dict.fromkeys([PRIMARY, _primary_node(state), *(s["name"] for s in _standby_entries(state)),
                           *(r["name"] for r in state.get("retired", []))])
    user = _service_user(settings)
    state_dir = settings.state_dir.resolve()
    for node in nodes:
        data_dir, _ = _paths(settings, node=node)
        if _running_port(data_dir) is not None:
            _stop(_install_for(data_dir), data_dir, user, mode="immediate")
    for node in nodes:
        for name in _node_files(node):
            link = state_dir / name
            real = link.resolve()
            if real.is_dir():
                shutil.rmtree(real, ignore_errors=True)
            elif real.exists():
                real.unlink()
            if link.is_symlink():
                link.unlink()
    shutil.rmtree(_fallback_base(settings), ignore_errors=True)
    _state_file(settings).unlink(missing_ok=True)
