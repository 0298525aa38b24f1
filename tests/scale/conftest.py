"""Fixtures of the scale tests: a replicated cluster of their own (a primary and one hot
standby, streaming replication), apart from the project cluster in .geogrid/ that the
rest of the suite uses: its own state directory under /tmp, its own free ports, stopped
and deleted at the end (also when an earlier run was killed before it could clean up)."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from geogrid.core.settings import Settings
from geogrid.db import cluster
from geogrid.db import engine as db

TMP_PREFIX = "geogrid-scale-"


def until(check, timeout: float, what: str):
    """Poll ``check`` until it returns something true; return that."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"{what} within {timeout} s"
        time.sleep(0.1)
    return value


def base_port() -> int:
    """A port from 56000 up with the next few free too (for the standbys). Each process
    starts looking at its own place, so test processes running at once rarely race."""
    start = 56000 + (os.getpid() % 300) * 10
    for port in [*range(start, 59000, 10), *range(56000, start, 10)]:
        if all(cluster.port_free(p) for p in range(port, port + 5)):
            return port
    raise RuntimeError("no free ports from 56000 up")


def _sweep() -> None:
    """Delete the clusters of test processes that died without cleaning up."""
    for path in Path(tempfile.gettempdir()).glob(f"{TMP_PREFIX}*"):
        m = re.match(rf"{TMP_PREFIX}(\d+)-", path.name)
        if m and not Path(f"/proc/{m.group(1)}").exists():
            try:
                cluster.destroy(Settings(state_dir=path, database_url=None))
            except cluster.ClusterError:
                pass
            shutil.rmtree(path, ignore_errors=True)


def make_cluster(replicas: int = 1, synchronous: bool | None = None, **settings_values) -> Settings:
    """A new local cluster with ``replicas`` standbys in a temporary state directory; its
    management settings (no database_url; others from ``settings_values``). Delete it with
    :func:`remove_cluster`."""
    state_dir = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.getpid()}-"))
    settings = Settings(state_dir=state_dir, db_port=base_port(), database_url=None, replica_urls=[],
                        **settings_values)
    try:
        cluster.up(settings, replicas=replicas, synchronous=synchronous)
    except BaseException:
        remove_cluster(settings)
        raise
    return settings


def remove_cluster(settings: Settings) -> None:
    """Stop every node of a cluster made by :func:`make_cluster` and delete it."""
    try:
        cluster.destroy(settings)
    finally:
        shutil.rmtree(settings.state_dir, ignore_errors=True)


def wait_replayed(settings: Settings, timeout: float = 30.0) -> None:
    """Until every running standby has replayed all the primary has written."""
    deadline = time.monotonic() + timeout
    while True:
        standbys = cluster.status(settings).get("standbys", [])
        if all(s["lag_bytes"] == 0 for s in standbys if s["running"]):
            return
        assert time.monotonic() < deadline, f"standbys replayed within {timeout} s: {standbys}"
        time.sleep(0.1)


@pytest.fixture(scope="session")
def replicated_cluster() -> Iterator[Settings]:
    """The shared replicated cluster's management settings (no database_url): for
    ``cluster.down(s, only="standby1")``, ``cluster.start``, ``cluster.status``. Tests
    that stop a node start it again."""
    _sweep()
    settings = make_cluster(replicas=1)
    try:
        db.migrate(cluster.database_url(settings))  # on the primary; the standby replays it
        wait_replayed(settings)
        yield settings
    finally:
        remove_cluster(settings)


@pytest.fixture(scope="session")
def replicated(replicated_cluster) -> Iterator[Settings]:
    """Settings of a service on the shared replicated cluster: database_url the multi-host
    URL (primary and standby, read-write: libpq finds the primary), replica_urls the
    standby's. The cluster functions (down/start/status with only=...) accept them too."""
    settings = Settings(state_dir=replicated_cluster.state_dir, db_port=replicated_cluster.db_port,
                        database_url=cluster.database_url(replicated_cluster),
                        replica_urls=cluster.replica_urls(replicated_cluster))
    yield settings
    db.get_engine(settings).dispose()
