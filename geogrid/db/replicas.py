"""Reads from hot standbys (read scaling), with read-your-writes and failover of reads.

A :class:`ReadPool` hands lag-tolerant reads (locate, the public map, OGC, tiles, public
lists) a session on one of the primary's streaming-replication standbys, round robin,
and falls back to the primary whenever no standby will do:

- a standby that refuses a connection (stopped, restarting, unreachable) is skipped for
  :data:`DOWN_S` seconds; the request moves on to the next standby or the primary, so a
  dead standby never turns into an error;
- a standby further behind than ``settings.replica_max_lag_s`` takes no reads; the lag is
  measured on the connection a read already holds, at most every :data:`CHECK_EVERY_S`
  per standby, never on every request;
- read-your-writes: a successful write answers with the primary's WAL position after its
  commit (:meth:`ReadPool.write_lsn`, stamped by the API on the response); a read that
  brings it back (cookie or ``Geogrid-Min-LSN``) goes to a standby only once that standby
  has replayed it, else to the primary. A position that does not parse reads the primary.

Without standbys (the default deployment) every read gets a primary session and none of
this runs: :meth:`ReadPool.open` is then a plain session factory, with no I/O of its own.
"""

from __future__ import annotations

import itertools
import logging
import math
import re
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache

from sqlalchemy import Connection, Engine, create_engine, exc, make_url, text
from sqlalchemy.orm import Session

from geogrid.core.settings import Settings
from geogrid.db.engine import sessionmaker_for

log = logging.getLogger("geogrid.replicas")

DOWN_S = 5.0  # a standby that refused a connection is left alone this long
CHECK_EVERY_S = 1.0  # how often a standby's lag is measured, at most
CONNECT_TIMEOUT_S = 2  # an unreachable standby host must not hold a read for long
PRIMARY, STANDBY = "primary", "standby"
INFO_STANDBY = "geogrid.standby"  # session.info: the standby's name, on a standby session
INFO_PRIMARY = "geogrid.primary"  # session.info: the primary's engine, on a standby session

# A WAL position as PostgreSQL prints a pg_lsn: two hexadecimal 32-bit halves.
_LSN = re.compile(r"([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})")

# One round trip, on the connection the read will use anyway. A standby that has replayed
# all it received while its WAL receiver runs is caught up, however long ago the primary
# last committed (an idle primary writes nothing to replay); else the lag is the age of
# the last transaction replayed. A server out of recovery was promoted: it has everything.
# (After a restart the receive position starts at the segment where streaming resumed,
# behind the replay position: ">=", not "=".)
_MEASURE = text("""
    SELECT pg_is_in_recovery() AS standby,
           pg_last_wal_replay_lsn() - '0/0'::pg_lsn AS replayed,
           coalesce(pg_last_wal_replay_lsn() >= pg_last_wal_receive_lsn(), false)
               AND EXISTS (SELECT 1 FROM pg_stat_wal_receiver) AS caught_up,
           extract(epoch FROM now() - pg_last_xact_replay_timestamp()) AS behind_s""")
_REPLAYED = text("SELECT pg_last_wal_replay_lsn() - '0/0'::pg_lsn")
# The insert position, not pg_current_wal_lsn() (the write position): with asynchronous
# commit (this project's clusters run synchronous_commit=off) a commit's record may still
# be in the WAL buffers when its transaction returns, behind the write position.
_WRITTEN = text("SELECT pg_current_wal_insert_lsn()::text")


def parse_lsn(value: str | None) -> int | None:
    """A WAL position (``16/B374D848``) as a number; None for anything else.

    >>> parse_lsn("16/B374D848"), parse_lsn("0/0"), parse_lsn("zz/1"), parse_lsn("1/2/3")
    (97500059720, 0, None, None)
    """
    m = _LSN.fullmatch(value.strip()) if value else None
    return (int(m.group(1), 16) << 32) | int(m.group(2), 16) if m else None


def format_lsn(lsn: int) -> str:
    """A WAL position as PostgreSQL prints it.

    >>> format_lsn(97500059720)
    '16/B374D848'
    """
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


@lru_cache(maxsize=16)
def _standby_engine(url: str, pool_size: int, max_overflow: int) -> Engine:
    # Pre-ping: a standby stopped since its connections were pooled fails at checkout,
    # where the pool can still move the read elsewhere. As many kept connections as the
    # primary's pool: above them every read would open (and close) one.
    return create_engine(url, pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=True,
                         connect_args={"connect_timeout": CONNECT_TIMEOUT_S})


def _first_line(error: exc.DBAPIError) -> str:
    lines = str(error.orig or error).strip().splitlines()
    return lines[0] if lines else type(error.orig or error).__name__


def _name(url: str) -> str:
    u = make_url(url)
    return f"{u.host or 'localhost'}:{u.port or 5432}"


@dataclass
class Standby:
    """One standby and what this process last saw of it."""

    name: str
    engine: Engine
    down_until: float = 0.0  # monotonic clock
    checked_at: float = -math.inf  # when the lag was last measured (monotonic)
    lag_s: float = 0.0
    replayed: int = 0  # the replay position last seen (it only moves forward)
    promoted: bool = False
    lagging: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def as_dict(self) -> dict:
        """What ops and tests look at."""
        now = time.monotonic()
        return {"name": self.name, "down": self.down_until > now, "lag_s": self.lag_s,
                "replayed": format_lsn(self.replayed), "checked_s_ago": now - self.checked_at}


class ReadPool:
    """Sessions for lag-tolerant reads: on a healthy, caught-up standby when there is one,
    else on the primary (see the module's documentation)."""

    def __init__(self, settings: Settings, primary_engine: Engine):
        self.primary = primary_engine
        self.max_lag_s = settings.replica_max_lag_s
        urls = list(settings.replica_urls)
        if not urls and not settings.database_url:
            from geogrid.db import cluster  # the managed local cluster's own standbys

            urls = cluster.replica_urls(settings)
        self.standbys = [Standby(_name(u), _standby_engine(u, settings.db_pool_size, settings.db_pool_overflow))
                         for u in urls]
        self._turn = itertools.count()

    def __bool__(self) -> bool:
        return bool(self.standbys)

    def _primary(self) -> tuple[Session, str]:
        return sessionmaker_for(self.primary)(), PRIMARY

    def open(self, min_lsn: str | None = None, *, primary: bool = False) -> tuple[Session, str]:
        """A session for a read and where it reads (``"primary"`` or ``"standby"``).
        ``min_lsn``: the WAL position the reader must see (its own last write); one that
        does not parse reads the primary. Blocking (it may connect): call it off the event loop."""
        if primary or not self.standbys:
            return self._primary()
        wanted = None
        if min_lsn is not None:
            wanted = parse_lsn(min_lsn)
            if wanted is None:
                return self._primary()
        n = len(self.standbys)
        first = next(self._turn)
        for i in range(n):
            standby = self.standbys[(first + i) % n]
            now = time.monotonic()
            if standby.down_until > now:
                continue
            if standby.lag_s > self.max_lag_s and now - standby.checked_at < CHECK_EVERY_S:
                continue
            session = sessionmaker_for(standby.engine)()
            try:
                conn = session.connection()  # the checkout: a stopped standby fails here
                if now - standby.checked_at >= CHECK_EVERY_S:
                    self._measure(standby, conn)
                if standby.lag_s > self.max_lag_s:
                    session.close()
                    continue
                if wanted is not None and not standby.promoted and standby.replayed < wanted:
                    standby.replayed = max(standby.replayed, int(conn.execute(_REPLAYED).scalar_one() or 0))
                    if standby.replayed < wanted:  # the reader's own write is not here yet
                        session.close()
                        return self._primary()
            except exc.DBAPIError as error:
                session.close()
                if standby.down_until > time.monotonic():
                    continue  # another read found it down meanwhile (and said so)
                standby.down_until = time.monotonic() + DOWN_S
                log.warning("standby %s unusable, reads skip it for %.0f s: %s", standby.name, DOWN_S,
                            _first_line(error))
                continue
            session.info[INFO_STANDBY] = standby.name
            session.info[INFO_PRIMARY] = self.primary
            return session, STANDBY
        return self._primary()

    def _measure(self, standby: Standby, conn: Connection) -> None:
        if not standby.lock.acquire(blocking=False):
            return  # another read of this process is measuring it right now
        try:
            standby.checked_at = time.monotonic()
            row = conn.execute(_MEASURE).one()
            standby.promoted = not row.standby
            if standby.promoted or row.caught_up:
                standby.lag_s = 0.0
            else:  # never replayed a transaction: as far behind as can be
                standby.lag_s = math.inf if row.behind_s is None else max(float(row.behind_s), 0.0)
            if row.replayed is not None:
                standby.replayed = max(standby.replayed, int(row.replayed))
            lagging = standby.lag_s > self.max_lag_s
            if lagging != standby.lagging:  # said once, when it changes
                standby.lagging = lagging
                if lagging:
                    log.warning("standby %s is %.1f s behind (more than %.1f): reads skip it", standby.name,
                                standby.lag_s, self.max_lag_s)
                else:
                    log.warning("standby %s has caught up: it takes reads again", standby.name)
        finally:
            standby.lock.release()

    def write_lsn(self) -> str | None:
        """The primary's WAL position now, for a write that has just committed (at or past
        its commit record); None when the primary cannot say (the write stands)."""
        try:
            with self.primary.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                return conn.execute(_WRITTEN).scalar_one()
        except exc.DBAPIError as error:
            log.warning("no WAL position for read-your-writes: %s", _first_line(error))
            return None

    def recheck(self, name: str) -> None:
        """A read on the standby ``name`` failed for want of a database: skip it for
        :data:`DOWN_S` seconds unless it still answers (the failure may have been the
        primary's, met on the way). Blocking."""
        for standby in self.standbys:
            if standby.name != name or standby.down_until > time.monotonic():
                continue
            try:
                with standby.engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
            except exc.DBAPIError as error:
                standby.down_until = time.monotonic() + DOWN_S
                log.warning("standby %s failed under a read, reads skip it for %.0f s: %s", name, DOWN_S,
                            _first_line(error))

    def status(self) -> list[dict]:
        """Each standby as this process sees it (name, down, lag, replay position)."""
        return [s.as_dict() for s in self.standbys]


def primary_for(session: Session) -> Engine | None:
    """The primary's engine when ``session`` reads a standby (what a read that also
    writes, such as a tile cut on a cache miss, writes through); None on the primary."""
    return session.info.get(INFO_PRIMARY)
