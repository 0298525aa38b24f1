"""Reference data cached in each process and dropped the moment PostgreSQL says it changed.

The hot paths (intake above all) read the same few rows on every request: the categories
with their time limits and questions, the request types. Each process keeps a copy, and
a statement trigger on those tables (migration 0014) notifies the channel
``geogrid_reference`` with the table's name when a change commits, whoever made it (any
API process on any host, the CLI, psql). One listening connection per process and
database drops the copy of that table. The cache is only used while that connection is
up: between a lost connection and its return every read goes to the database, and the
copies are dropped on reconnecting (a notification may have been missed meanwhile).

A session that has itself written one of these tables reads it from the database until it
ends (:func:`written`): its change is not committed, so not notified, and not for others yet.

>>> from geogrid.db.shared_cache import CHANNEL
>>> CHANNEL
'geogrid_reference'
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from sqlalchemy import Engine
from sqlalchemy.orm import Session

CHANNEL = "geogrid_reference"
log = logging.getLogger("geogrid.cache")
T = TypeVar("T")


class _Listener:
    """One process's copies of the reference tables of one database, and the connection
    that hears about their changes."""

    def __init__(self, engine: Engine):
        # The dialect's own translation: multi-host URLs (a primary and its standbys) included.
        self.args, self.kwargs = engine.dialect.create_connect_args(engine.url)
        self.lock = threading.Lock()
        self.values: dict[str, Any] = {}
        self.generation: dict[str, int] = {}  # bumped by every drop, so a load racing a change is not kept
        self.listening = threading.Event()
        self.notified = 0
        threading.Thread(target=self._run, name="geogrid-cache-listener", daemon=True).start()

    def _run(self) -> None:
        pause = 0.5
        while True:
            try:
                with psycopg.connect(*self.args, **{**self.kwargs, "autocommit": True, "connect_timeout": 10}) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.drop(None)  # whatever changed while nobody listened
                    self.listening.set()
                    pause = 0.5
                    for note in conn.notifies():
                        self.notified += 1
                        self.drop(note.payload)
            except Exception as exc:  # the server went away or failed over: read through until back
                if self.listening.is_set():
                    log.warning("reference cache off: listening connection lost (%s); reconnecting",
                                exc.__class__.__name__)
                self.listening.clear()
                self.drop(None)
                time.sleep(pause)
                pause = min(pause * 2, 10.0)

    def drop(self, table: str | None) -> None:
        with self.lock:
            for name in [table] if table else list(self.generation) + list(self.values):
                self.values.pop(name, None)
                self.generation[name] = self.generation.get(name, 0) + 1

    def get(self, table: str, load: Callable[[], T]) -> T:
        if not self.listening.is_set():
            return load()
        with self.lock:
            if table in self.values:
                return self.values[table]
            generation = self.generation.get(table, 0)
        value = load()
        with self.lock:
            if self.listening.is_set() and self.generation.get(table, 0) == generation:
                self.values[table] = value
        return value


_listeners: dict[str, _Listener] = {}
_listeners_lock = threading.Lock()


def _listener(engine: Engine) -> _Listener:
    key = engine.url.render_as_string(hide_password=False)
    with _listeners_lock:
        if key not in _listeners:
            _listeners[key] = _Listener(engine)
        return _listeners[key]


def cached(session: Session, table: str, load: Callable[[Any], T]) -> T:
    """``load(session)``'s result for ``table``, from this process's copy while it is
    known to be current. The copy is loaded through the caller's own session: a second
    connection per request could wait forever on a pool its requests already hold. Its
    statement sees what was committed before it (READ COMMITTED), never another request's
    uncommitted change; a session that wrote the table itself (:func:`written`) is never
    served nor fills the copy."""
    bind = session.get_bind()
    if table in session.info.get("reference_written", ()) or not isinstance(bind, Engine):
        return load(session)
    return _listener(bind).get(table, lambda: load(session))


def written(session: Session, table: str) -> None:
    """Note that ``session`` changed ``table``: it reads that table from the database from
    now on (other processes hear of the change when it commits)."""
    session.info.setdefault("reference_written", set()).add(table)


def wait_listening(engine: Engine, timeout: float = 5.0) -> bool:
    """Start this process's listener for ``engine``'s database and wait until it hears
    (service start-up and tests); False when it could not connect in time."""
    return _listener(engine).listening.wait(timeout)


def notifications(engine: Engine) -> int:
    """How many change notifications this process has heard for ``engine``'s database."""
    return _listener(engine).notified
