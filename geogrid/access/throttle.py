"""Login throttling and per-client rate limits, kept in PostgreSQL so that every worker
process and every host counts the same attempts.

Each function here runs in its own short transaction on a connection of its own: a
request's session rolls back when the request fails, and a failed login is exactly the
request whose failure must be remembered. Counters are upserts whose row lock orders
concurrent requests, so none is lost or counted twice.

Failed logins are counted per account (the name as typed, lower-cased, whether or not such
an account exists) and per client address; once a counter reaches its limit the key waits
``login_backoff_s``, doubling with each further failure up to ``login_backoff_max_s``. A
counter is forgotten ``login_window_s`` after its last failure or the end of its wait.

Request rates (``hit``) are counted in 10-second slots and summed over the last minute:
unlike one counter per calendar minute, a client cannot double its allowance by sending
at the end of one minute and the start of the next.
"""

from __future__ import annotations

import math
import time

from sqlalchemy import Connection, Engine, text
from sqlalchemy.orm import Session

from geogrid.core.errors import GeogridError
from geogrid.core.settings import Settings

SLOT_S = 10
RATE_WINDOW_S = 60
KEY_CHARS = 200  # login_failure.key and rate_counter.bucket are at most this long
SWEEP_EVERY_S = 60.0
_last_sweep: dict[str, float] = {}


def engine_of(session: Session) -> Engine:
    """The engine a session is bound to, so that counters commit on connections of their own."""
    bind = session.get_bind()
    return bind.engine if isinstance(bind, Connection) else bind


def account_key(username: str) -> str:
    """The failure counter key of an account name as typed: lower-cased, at most ``KEY_CHARS`` long."""
    return username.lower()[:KEY_CHARS]


# --------------------------------------------------------------------------- failed logins


def refuse_if_blocked(engine: Engine, username: str, address: str | None) -> None:
    """429 while the account or the address waits after too many failed logins."""
    with engine.connect() as conn:
        row = conn.execute(text("""
            SELECT kind, ceil(extract(epoch FROM blocked_until - now()))::int AS wait
            FROM login_failure
            WHERE ((kind = 'account' AND key = :account) OR (kind = 'address' AND key = :address))
              AND blocked_until > now()
            ORDER BY wait DESC LIMIT 1
        """), {"account": account_key(username), "address": address and address[:KEY_CHARS]}).first()
    if row is None:
        return
    wait = max(1, row.wait)
    whom = "this account" if row.kind == "account" else f"address {address}"
    raise GeogridError(f"too many failed logins for {whom}: try again in {wait} s", status=429,
                       extra={"retry_after": wait, "throttled": row.kind})


# Every SET expression sees the row as it was before the update.
_FORGOTTEN = "greatest(f.last_at, coalesce(f.blocked_until, f.last_at)) < now() - make_interval(secs => :window)"
_FAILURES = f"CASE WHEN {_FORGOTTEN} THEN 1 ELSE f.failures + 1 END"
_RECORD = f"""
    INSERT INTO login_failure AS f (kind, key, failures, first_at, last_at, blocked_until)
    VALUES (:kind, :key, 1, now(), now(),
            CASE WHEN 1 >= :limit THEN now() + make_interval(secs => :backoff) END)
    ON CONFLICT (kind, key) DO UPDATE SET
        failures = {_FAILURES},
        first_at = CASE WHEN {_FORGOTTEN} THEN now() ELSE f.first_at END,
        last_at = now(),
        blocked_until = CASE WHEN {_FAILURES} >= :limit THEN now() + make_interval(
            secs => least(:backoff * power(2, least({_FAILURES} - :limit, 30)), :backoff_max)) END
    RETURNING failures
"""


def record_failure(engine: Engine, settings: Settings, username: str, address: str | None) -> None:
    """Count one failed login against the account name and the address (committed now)."""
    keys = [("account", account_key(username), settings.login_failures_per_account)]
    if address is not None:
        keys.append(("address", address[:KEY_CHARS], settings.login_failures_per_address))
    # Always account before address: concurrent failures take the row locks in one order.
    with engine.begin() as conn:
        for kind, key, limit in keys:
            conn.execute(text(_RECORD), {"kind": kind, "key": key, "limit": limit, "window": settings.login_window_s,
                                         "backoff": settings.login_backoff_s,
                                         "backoff_max": settings.login_backoff_max_s})
        if _sweep_due("login_failure"):
            conn.execute(text("DELETE FROM login_failure f WHERE " + _FORGOTTEN), {"window": settings.login_window_s})


def reset_account(engine: Engine, username: str) -> None:
    """A successful login clears the account's failures (not the address's: one valid
    account must not let its holder keep guessing others' passwords)."""
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM login_failure WHERE kind = 'account' AND key = :k"),
                     {"k": account_key(username)})


# --------------------------------------------------------------------------- request rates


def hit(engine: Engine, bucket: str, per_minute: int, client: str) -> None:
    """Count one request of ``bucket`` (e.g. ``login:1.2.3.4``); 429 with the seconds to
    wait when it would be more than ``per_minute`` in the last minute. Refused requests
    are not counted, so a client that waits as told gets through."""
    with engine.begin() as conn:
        if _sweep_due("rate_counter"):
            conn.execute(text("DELETE FROM rate_counter WHERE window_start < now() - make_interval(secs => :span)"),
                         {"span": 2 * RATE_WINDOW_S})
        slot = conn.execute(text("""
            INSERT INTO rate_counter AS r (bucket, window_start, hits)
            VALUES (:b, date_bin(make_interval(secs => :slot), now(), TIMESTAMPTZ '1970-01-01 00:00:00+00'), 1)
            ON CONFLICT (bucket, window_start) DO UPDATE SET hits = r.hits + 1
            RETURNING window_start
        """), {"b": bucket[:KEY_CHARS], "slot": SLOT_S}).scalar_one()
        # The row lock taken above makes concurrent hits of this bucket wait here in turn.
        total, oldest, now = conn.execute(text("""
            SELECT sum(hits), min(window_start) FILTER (WHERE hits > 0), now() FROM rate_counter
            WHERE bucket = :b AND window_start > :slot - make_interval(secs => :span)
        """), {"b": bucket[:KEY_CHARS], "slot": slot, "span": RATE_WINDOW_S}).one()
        if total > per_minute:
            conn.execute(text("UPDATE rate_counter SET hits = hits - 1 WHERE bucket = :b AND window_start = :slot"),
                         {"b": bucket[:KEY_CHARS], "slot": slot})
            retry = max(1, math.ceil((oldest - now).total_seconds() + RATE_WINDOW_S))
            raise GeogridError(f"too many requests from {client}: at most {per_minute} a minute; retry in {retry} s",
                               status=429, extra={"retry_after": retry})


# --------------------------------------------------------------------------- housekeeping


def _sweep_due(table: str) -> bool:
    """Old counters are deleted now and then: at most once a minute per table and process."""
    now = time.monotonic()
    if now - _last_sweep.get(table, -SWEEP_EVERY_S) < SWEEP_EVERY_S:
        return False
    _last_sweep[table] = now
    return True
