"""Project-local PostgreSQL + PostGIS cluster: install, initialise, start, stop, inspect.

When ``settings.database_url`` is set geogrid uses that database and manages nothing here
beyond making sure the ``postgis`` and ``btree_gist`` extensions exist. Otherwise it runs
its own cluster whose data lives in ``settings.state_dir``:

* ``pgdata/``       data directory (or a symlink to /var/lib/geogrid/clusters/<hash>, see below)
* ``postgres.log``  server log
* ``cluster.json``  port and generated superuser password (mode 0600)

The server listens on 127.0.0.1 only, with no Unix socket (socket paths are limited to ~100
bytes, too short for deep checkouts), and password (scram) authentication everywhere.
initdb and postgres refuse to run as root, so as root the cluster belongs to the
unprivileged system user ``settings.db_system_user`` instead.

Every expected failure raises :class:`ClusterError` with a message meant for humans.
"""

from __future__ import annotations

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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL, make_url

from geogrid.core.settings import Settings

SUPERUSER = "geogrid"  # database superuser of the managed cluster (not the OS user)
EXTENSIONS = ("postgis", "btree_gist")
FALLBACK_ROOT = Path("/var/lib/geogrid/clusters")
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
    extra = dict(user=user, group=user, extra_groups=[], cwd="/") if user else {}
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


def _paths(settings: Settings, user: str | None = None, create: bool = False) -> tuple[Path, Path]:
    """Real (symlink-resolved) data directory and log file; with create=True make them."""
    state_dir = settings.state_dir.resolve()
    link, log_link = state_dir / "pgdata", state_dir / "postgres.log"
    if not create:
        return link.resolve(), log_link.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink() and not link.exists() and user and not _traversable(state_dir):
        # The service user cannot reach the checkout (e.g. under /root): keep the real
        # files in a place it can reach and leave symlinks where people will look.
        base = FALLBACK_ROOT / hashlib.sha256(str(state_dir).encode()).hexdigest()[:12]
        base.mkdir(parents=True, exist_ok=True)
        for p in (FALLBACK_ROOT, FALLBACK_ROOT.parent):
            p.chmod(0o755)
        shutil.chown(base, user, user)
        base.chmod(0o700)
        link.symlink_to(base / "pgdata")
        if not log_link.is_symlink():
            log_link.unlink(missing_ok=True)
            log_link.symlink_to(base / "postgres.log")
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


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        # SO_REUSEADDR like postgres itself, so TIME_WAIT leftovers do not count as taken.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _choose_port(settings: Settings, state: dict) -> int:
    candidates = [settings.db_port, state.get("port"), *range(settings.db_port + 1, settings.db_port + 100)]
    for port in dict.fromkeys(p for p in candidates if p):
        if _port_free(port):
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


def _start(install: PgInstall, data_dir: Path, log_file: Path, port: int, user: str | None) -> None:
    # pg_ctl hands -o to /bin/sh, so '' arrives as an empty value (no Unix socket at all).
    opts = (f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
            "-c synchronous_commit=off")
    proc = _run([install.tool("pg_ctl"), "start", "-w", "-t", "60", "-D", data_dir, "-l", log_file,
                 "-o", opts], user=user, check=False, what="pg_ctl start")
    if proc.returncode != 0:
        raise ClusterError(f"PostgreSQL failed to start on port {port}; see {log_file}, fix the cause "
                           "(often a port or permission problem) and run up again" + _tail(log_file))


# --- SQL --------------------------------------------------------------------------


def _connect(url: str, dbname: str | None = None) -> psycopg.Connection:
    u = make_url(url)
    if dbname:
        u = u.set(database=dbname)
    conninfo = u.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        return psycopg.connect(conninfo, autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        raise ClusterError(f"cannot connect to {_mask(str(u))}: {_first(exc)} (is the server up? check the URL/port)") from None


def _first(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _ensure_extensions(url: str, dbname: str | None = None) -> None:
    with _connect(url, dbname) as conn:
        have = {r[0] for r in conn.execute("SELECT extname FROM pg_extension")}
        for ext in (e for e in EXTENSIONS if e not in have):  # skip: may lack the privilege
            try:
                conn.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(ext)))
            except psycopg.Error as exc:
                raise ClusterError(f"could not create extension {ext} in {conn.info.dbname!r}: {_first(exc)} "
                                   "(needs superuser or database owner, and PostGIS installed on the server)") from None


def _ensure_database(url: str, name: str, drop_existing: bool = False) -> None:
    with _connect(url, "postgres") as conn:
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
    name = _service_user(settings, create=True)
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
    """SQLAlchemy URL of settings.db_name (or db_name) on the configured or managed server."""
    if settings.database_url:
        u = make_url(settings.database_url)
        return u.set(database=db_name).render_as_string(hide_password=False) if db_name else settings.database_url
    state = _load_state(settings)
    if state is None:
        raise ClusterError(f"no local cluster in {settings.state_dir} yet; run up first (or set GEOGRID_DATABASE_URL)")
    return URL.create("postgresql+psycopg", username=SUPERUSER, password=state["password"], host="127.0.0.1",
                      port=state["port"], database=db_name or settings.db_name).render_as_string(hide_password=False)


def up(settings: Settings) -> ClusterInfo:
    """Make sure the database is reachable with its extensions; start/initialise the cluster if needed."""
    if settings.database_url:
        _ensure_extensions(settings.database_url)
        return ClusterInfo(managed=False, url=settings.database_url, port=make_url(settings.database_url).port)
    with _locked(settings):
        install = ensure_installed()
        user = _service_user(settings, create=True)
        data_dir, log_file = _paths(settings, user, create=True)
        state = _load_state(settings)
        initialized = started = False
        if not (data_dir / "PG_VERSION").exists():
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
        port = _running_port(data_dir)
        if port is None:
            port = _choose_port(settings, state)
            _start(install, data_dir, log_file, port, user)
            started = True
        if port != state["port"]:
            state["port"] = port
            _save_state(settings, state)
        _ensure_database(database_url(settings), settings.db_name)
    return ClusterInfo(managed=True, url=database_url(settings), port=port, data_dir=data_dir,
                       log_file=log_file, initialized=initialized, started=started)


def down(settings: Settings) -> bool:
    """Stop the managed cluster; False when it was not running (or is not ours to manage)."""
    if settings.database_url:
        return False
    data_dir, _ = _paths(settings)
    if _running_port(data_dir) is None:
        return False
    _run([_install_for(data_dir).tool("pg_ctl"), "stop", "-D", data_dir, "-m", "fast", "-w", "-t", "60"],
         user=_service_user(settings), what="pg_ctl stop")
    return True


def status(settings: Settings) -> dict:
    """What is configured and running, for humans and for `geogrid db status`."""
    url = settings.database_url
    info: dict = {"managed": not url, "running": bool(url), "url": url and _mask(url)}
    if not url:
        data_dir, log_file = _paths(settings)
        state = _load_state(settings)
        port = _running_port(data_dir)
        url = state and database_url(settings)
        info.update(running=port is not None, initialized=(data_dir / "PG_VERSION").exists(),
                    data_dir=str(data_dir), log_file=str(log_file), state_file=str(_state_file(settings)),
                    port=port or (state or {}).get("port"), url=url and _mask(url))
    if not (info["running"] and url):
        return info
    try:
        with _connect(url) as conn:
            info["postgres_version"] = conn.execute("SHOW server_version").fetchone()[0]
            info["postgis_version"] = conn.execute("SELECT postgis_lib_version()").fetchone()[0]
    except ClusterError as exc:
        info.update(running=False, error=str(exc))
    except psycopg.Error as exc:  # connected, but the database lacks PostGIS (up not run yet)
        info["error"] = f"PostGIS not available in {make_url(url).database!r}: {_first(exc)}; run up"
    return info


def create_database(settings: Settings, name: str, drop_existing: bool = False) -> str:
    """Create database `name` (dropped first if asked) with postgis and btree_gist; return its URL."""
    _ensure_database(database_url(settings), name, drop_existing=drop_existing)
    return database_url(settings, name)


def drop_database(settings: Settings, name: str) -> None:
    """Drop database `name` on the same server, ending its sessions; no error if missing."""
    with _connect(database_url(settings), "postgres") as conn:
        try:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        except psycopg.Error as exc:
            raise ClusterError(f"could not drop database {name!r}: {_first(exc)}") from None


def databases(settings: Settings, prefix: str = "") -> list[str]:
    """Names of the databases on the server that start with `prefix`."""
    with _connect(database_url(settings), "postgres") as conn:
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
