"""Engine, sessions and migrations.

The URL is ``GEOGRID_DATABASE_URL`` when set, else the project's own local cluster
(:mod:`geogrid.db.cluster`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.orm import Session, sessionmaker

from geogrid.core.settings import Settings, get_settings

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def resolve_url(settings: Settings) -> str:
    """The database URL: ``settings.database_url`` when set, else the local cluster's."""
    if settings.database_url:
        return settings.database_url
    from geogrid.db import cluster

    return cluster.database_url(settings)


@lru_cache(maxsize=8)
def _engine_for(url: str, pool_size: int = 10, max_overflow: int = 20) -> Engine:
    return create_engine(url, pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=True)


def get_engine(settings: Settings | None = None) -> Engine:
    """The engine for the configured database, one per URL and process (pooled: the
    connections a busy process keeps open, ``db_pool_size``, are never closed and opened
    again; a new connection costs PostgreSQL a process and a SCRAM exchange)."""
    settings = settings or get_settings()
    return _engine_for(resolve_url(settings), settings.db_pool_size, settings.db_pool_overflow)


@lru_cache(maxsize=8)
def _async_engine_for(url: str, pool_size: int) -> AsyncEngine:
    # No overflow: a request waiting for a connection costs the event loop nothing, one
    # opened for a burst and closed after it costs PostgreSQL a process and a SCRAM exchange.
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=0, pool_pre_ping=True)

    @event.listens_for(engine.sync_engine, "connect")
    def _generic_plans(dbapi_connection, record) -> None:
        # Once a connection (a SET, not the URL's options, which a deployment may use itself).
        cursor = dbapi_connection.cursor()
        cursor.execute("SET plan_cache_mode = force_generic_plan")
        cursor.close()
        dbapi_connection.commit()  # else the pool's first reset (a rollback) undoes it
        record.info[_GENERIC] = True

    return engine


_GENERIC = "geogrid.generic_plans"  # in a connection's info: it plans generically throughout
_GENERIC_LOCAL = text("SET LOCAL plan_cache_mode = force_generic_plan")


def use_generic_plans(session: Session) -> None:
    """Let the statements of ``session``'s transaction use the generic plans of their
    prepared statements, for statements that cost PostgreSQL more to plan than to run and
    whose parameters never change the best plan (intake's). The asyncio engine's
    connections already do, from their first use (no round trip); on others, a ``SET
    LOCAL`` for this transaction (their other statements keep PostgreSQL's default)."""
    if not session.connection().info.get(_GENERIC):
        session.execute(_GENERIC_LOCAL)


def get_async_engine(settings: Settings | None = None) -> AsyncEngine:
    """The asyncio engine (psycopg's async connection) for the routes that run their sync
    domain call in a greenlet on the event loop (``AsyncSession.run_sync``) instead of the
    thread pool: incident intake, the hot write path (``bench/intake_paths.py`` measures what
    it saves). Its own pool of ``db_async_pool_size`` connections, one per URL and process."""
    settings = settings or get_settings()
    return _async_engine_for(resolve_url(settings), settings.db_async_pool_size)


@lru_cache(maxsize=8)
def sessionmaker_for(engine: Engine) -> sessionmaker[Session]:
    """One factory per engine (building one costs more than a request's own work)."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error: all-or-nothing."""
    with sessionmaker_for(engine).begin() as session:
        yield session


def alembic_config(url: str):
    """An Alembic configuration for the migrations shipped with geogrid, against ``url``."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(url: str, revision: str = "head") -> None:
    """Bring the schema at ``url`` up to ``revision`` (Alembic)."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def current_revision(url: str) -> str | None:
    """The Alembic revision the schema at ``url`` is at; None for a database never migrated."""
    from alembic.runtime.migration import MigrationContext

    with create_engine(url).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
