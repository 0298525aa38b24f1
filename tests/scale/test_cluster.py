"""The local cluster with hot standbys (PostgreSQL streaming replication): writes reach
the standby, status shows its lag, a stopped standby catches up, the CLI shows it, and a
standby promoted after the primary stopped takes the writes of a service that keeps its
multi-host URL. Real clusters, real processes; every wait bounded."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text

from geogrid.db import cluster
from geogrid.db import engine as db

from .conftest import make_cluster, remove_cluster, until, wait_replayed

CLI = [sys.executable, "-m", "geogrid.cli"] if not (Path(sys.executable).parent / "geogrid").exists() \
    else [str(Path(sys.executable).parent / "geogrid")]




def sql(url: str, query: str, params: tuple = ()):
    """All rows of ``query`` on the database of a SQLAlchemy URL (multi-host ones too)."""
    with cluster.connect(url) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else None


def on_standby(settings, query: str, params: tuple = ()):
    return sql(cluster.replica_urls(settings)[0], query, params)


def standby_status(settings) -> dict:
    return next(s for s in cluster.status(settings)["standbys"] if s["name"] == "standby1")


@pytest.fixture
def probe(replicated_cluster):
    """A table of its own on the shared cluster, created on the primary and replayed."""
    name = f"probe_{uuid.uuid4().hex[:8]}"
    sql(cluster.database_url(replicated_cluster), f"CREATE TABLE {name} (id int PRIMARY KEY, note text)")
    wait_replayed(replicated_cluster)
    yield name
    sql(cluster.database_url(replicated_cluster), f"DROP TABLE {name}")


def test_a_write_on_the_primary_appears_on_the_standby(replicated, replicated_cluster, probe):
    sql(replicated.database_url, f"INSERT INTO {probe} VALUES (1, 'hello')")
    rows = until(lambda: on_standby(replicated_cluster, f"SELECT note FROM {probe}"), 10, "the row on the standby")
    assert rows == [("hello",)]
    # The service's settings: the multi-host URL lands on the primary, the replica URL on the standby.
    assert [r[0] for r in sql(replicated.database_url, "SELECT pg_is_in_recovery()")] == [False]
    assert [r[0] for r in sql(replicated.replica_urls[0], "SELECT pg_is_in_recovery()")] == [True]
    # ...and the schema (migrated on the primary) was replayed there.
    assert sql(replicated.replica_urls[0], "SELECT count(*) FROM alembic_version") == [(1,)]
    with db.get_engine(replicated).connect() as conn:  # SQLAlchemy takes the multi-host URL
        assert conn.execute(text("SELECT inet_server_port()")).scalar() == cluster.status(replicated_cluster)["port"]


def test_status_reports_the_standby_streaming_with_its_lag(replicated, replicated_cluster):
    wait_replayed(replicated_cluster)
    s = standby_status(replicated_cluster)
    assert s["running"] and s["state"] == "streaming" and s["sync_state"] == "async", s
    assert s["lag_bytes"] == 0 and s["replay_lag_s"] is not None and 0 <= s["replay_lag_s"] < 5, s
    assert s["port"] != cluster.status(replicated_cluster)["port"]
    assert s["replay_lsn"]
    [listed] = cluster.standbys(replicated_cluster)
    assert listed["name"] == "standby1" and listed["running"] and listed["url"] == replicated.replica_urls[0]
    # The service's settings (database_url naming this cluster) see the same standby.
    assert [x["name"] for x in cluster.status(replicated)["standbys"]] == ["standby1"]


def test_a_standby_refuses_writes(replicated_cluster, probe):
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        on_standby(replicated_cluster, f"INSERT INTO {probe} VALUES (2, 'no')")


def test_a_stopped_standby_shows_down_and_catches_up_when_started(replicated_cluster, probe):
    s = replicated_cluster
    assert cluster.down(s, only="standby1") is True
    try:
        down = standby_status(s)
        assert down["running"] is False and down["state"] is None and down["lag_bytes"] is None, down
        assert cluster.down(s, only="standby1") is False  # already stopped: no error
        # Writes go on; the primary keeps their WAL for the standby (its slot).
        sql(cluster.database_url(s), f"INSERT INTO {probe} SELECT g, 'while down' FROM generate_series(1, 500) g")
    finally:
        started = cluster.start(s, "standby1")
    assert started["name"] == "standby1" and started["started"] is True
    assert cluster.start(s, "standby1")["started"] is False
    assert until(lambda: on_standby(s, f"SELECT count(*) FROM {probe}") == [(500,)], 20, "the standby caught up")
    until(lambda: standby_status(s)["state"] == "streaming", 20, "the standby streaming again")
    with pytest.raises(cluster.ClusterError, match="no node named 'standby9'"):
        cluster.down(s, only="standby9")


def test_database_helpers_take_the_multi_host_url(replicated):
    assert "target_session_attrs=read-write" in replicated.database_url
    name, url = cluster.process_database(replicated, "geogrid_scale_")
    try:
        assert "target_session_attrs=read-write" in url and f"/{name}?" in url
        assert name in cluster.databases(replicated, "geogrid_scale_")
        assert sql(url, "SELECT extname FROM pg_extension WHERE extname = 'postgis'") == [("postgis",)]
        wait_replayed(replicated)
        [replica] = cluster.replica_urls(replicated, name)
        assert replica.endswith(f"/{name}") and sql(replica, "SELECT pg_is_in_recovery()") == [(True,)]
    finally:
        cluster.drop_database(replicated, name)
    assert name not in cluster.databases(replicated, "geogrid_scale_")


def test_the_cli_shows_the_standby_and_its_lag(replicated_cluster):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEOGRID_")}
    env.update(GEOGRID_STATE_DIR=str(replicated_cluster.state_dir), GEOGRID_DB_PORT=str(replicated_cluster.db_port))
    wait_replayed(replicated_cluster)
    out = subprocess.run([*CLI, "db", "status"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    port = standby_status(replicated_cluster)["port"]
    line = next(x for x in out.stdout.splitlines() if x.strip().startswith("standby1:"))
    assert f"port {port}, running, streaming (async), lag 0 bytes" in line, out.stdout
    assert "replay lag" in line and "slot reserved (" in line and "MB more WAL before it is lost)" in line
    bad = subprocess.run([*CLI, "db", "start", "standby9"], env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "no node named 'standby9'" in bad.stderr and "Traceback" not in bad.stderr


@pytest.fixture
def promotable():
    """A cluster of its own for the promotion (it ends with another primary): one
    standby, synchronous commit."""
    settings = make_cluster(replicas=1, synchronous=True)
    yield settings
    remove_cluster(settings)


def test_promote_after_the_primary_stops(promotable):
    s = promotable
    url = cluster.database_url(s)  # what a running service holds: primary first, then the standby
    assert sql(url, "SHOW synchronous_commit") == [("on",)]
    assert sql(url, "SHOW synchronous_standby_names") == [("ANY 1 (standby1)",)]
    assert standby_status(s)["sync_state"] == "quorum"  # up returned once it was
    sql(url, "CREATE TABLE acknowledged (id int PRIMARY KEY)")
    engine = db.get_engine(s.model_copy(update={"database_url": url}))
    with db.transaction(engine) as session:  # every commit returned only once the standby had it
        for i in range(50):
            session.execute(text("INSERT INTO acknowledged VALUES (:i)"), {"i": i})

    with pytest.raises(cluster.ClusterError, match="still running"):
        cluster.promote(s)
    assert on_standby(s, "SELECT pg_is_in_recovery()") == [(True,)]  # nothing happened

    assert cluster.down(s, only="primary") is True
    done = cluster.promote(s)
    assert done["promoted"] == "standby1" and done["retired"] == "primary" and done["standbys"] == []
    assert Path(done["retired_data_dir"]).joinpath("PG_VERSION").exists()  # kept, not rewound

    # The service's engine, on the URL it had: its pool finds the new primary by itself.
    with db.transaction(engine) as session:
        assert session.execute(text("SELECT count(*) FROM acknowledged")).scalar() == 50  # nothing lost
        session.execute(text("INSERT INTO acknowledged VALUES (50)"))
        assert session.execute(text("SELECT inet_server_port()")).scalar() == done["port"]
    engine.dispose()
    # The cluster now names standby1 as its primary; the old primary is never started again.
    st = cluster.status(s)
    assert st["primary_node"] == "standby1" and st["port"] == done["port"] and "standbys" not in st
    assert sql(cluster.database_url(s), "SELECT pg_is_in_recovery()") == [(False,)]
    assert cluster.start(s, "primary") == {"name": "standby1", "port": done["port"], "started": False}
    with pytest.raises(cluster.ClusterError, match="no standby"):
        cluster.promote(s)

    # A fresh standby, copied from the new primary, and synchronous again.
    info = cluster.up(s, replicas=1)
    assert [(x["name"], x["created"]) for x in info.standbys] == [("standby2", True)]
    assert sql(cluster.replica_urls(s)[0], "SELECT count(*) FROM acknowledged") == [(51,)]
    until(lambda: cluster.status(s)["standbys"][0]["sync_state"] == "quorum", 20, "the new standby synchronous")


def test_a_standby_too_far_behind_loses_its_slot_and_up_copies_it_again():
    """The primary keeps at most GEOGRID_REPLICA_WAL_KEEP_MB of WAL for a stopped standby
    (a standby left stopped must not fill its disk): beyond it the slot is lost, status
    says so, and up copies the standby afresh, which then streams again."""
    s = make_cluster(replicas=1, replica_wal_keep_mb=16)
    try:
        url = cluster.database_url(s)
        sql(url, "CREATE TABLE filler (id int, pad text)")
        wait_replayed(s)
        kept = standby_status(s)
        assert kept["slot"] == "reserved" and 0 < kept["wal_left_bytes"] <= 32 * 2**20, kept
        assert cluster.down(s, only="standby1") is True
        # About 60 MB of WAL while it is down, then checkpoints: the primary drops what is beyond 16 MB.
        sql(url, "INSERT INTO filler SELECT g, repeat(md5(g::text), 16) FROM generate_series(1, 100000) g")
        with cluster.admin(s) as conn:
            for _ in range(2):
                conn.execute("SELECT pg_switch_wal()")
                conn.execute("CHECKPOINT")
        lost = standby_status(s)
        assert lost["running"] is False and lost["slot"] == "lost", lost
        assert "GEOGRID_REPLICA_WAL_KEEP_MB=16" in lost["error"] and "geogrid db up" in lost["error"]
        # Started as it is, it could never catch up: up makes it again from the primary.
        info = cluster.up(s, replicas=1)
        assert [(x["name"], x["created"]) for x in info.standbys] == [("standby1", True)]
        wait_replayed(s)
        assert on_standby(s, "SELECT count(*) FROM filler") == [(100000,)]
        again = until(lambda: (st := standby_status(s))["state"] == "streaming" and st, 20, "streaming again")
        assert again["slot"] == "reserved" and "error" not in again, again
    finally:
        remove_cluster(s)
