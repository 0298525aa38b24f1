"""What every benchmark prints first: the machine, its load, and the versions that matter."""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Iterator
from pathlib import Path


def loadavg() -> str:
    """1-minute load average: other work on the machine skews every figure."""
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def describe(**versions: str) -> str:
    """A two-line description: CPUs, model, OS, load; Python and the given versions."""
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    listed = "; ".join(f"{name} {version}" for name, version in versions.items())
    return (f"Machine: {os.cpu_count()} CPUs ({usable} usable), {cpu}; {platform.system()} {platform.release()}; "
            f"load average {loadavg()}\nPython {platform.python_version()}; {listed}")


@contextlib.contextmanager
def scratch_database(prefix: str, *, keep: bool = False) -> Iterator[tuple[object, str]]:
    """A migrated database of this process's own on the project's cluster (started when
    down): yields the base settings and the database's URL; dropped at the end, with its
    pooled engine, unless ``keep``."""
    # Here, not at the top: the benches that only describe() the machine need no geogrid.
    from geogrid.core.settings import Settings
    from geogrid.db import cluster
    from geogrid.db import engine as db

    base = Settings()
    cluster.up(base)
    name, url = cluster.process_database(base, prefix)
    try:
        db.migrate(url)
        yield base, url
    finally:
        if keep:
            print(f"kept database {name}")
        else:
            db.get_engine(Settings(database_url=url)).dispose()
            cluster.drop_database(base, name)
