"""The service never answers the network as root: started as root, `geogrid serve` switches
to the unprivileged system user first, or refuses when that user cannot run it."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import free_port

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the switch happens only when started as root")
GEOGRID = Path(sys.executable).with_name("geogrid")


def _status(pid: int, field: str) -> list[str]:
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith(field + ":"))
    return line.split()[1:]


def _service_user_can_run_us(name: str) -> bool:
    """Whether the system user can run this interpreter at all (not when it lives under
    /root, as a pyenv Python does): the case `serve` must refuse."""
    if not _exists(name):
        return False
    try:
        done = subprocess.run([sys.executable, "-c", "import geogrid"], user=name, group=name, extra_groups=[],
                              cwd="/", capture_output=True)
    except PermissionError:  # the interpreter itself is out of the user's reach
        return False
    return done.returncode == 0


def _exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def test_the_switch_leaves_no_root_behind(settings):
    # What a service process is left with after the switch: the user's uid and gid, no
    # supplementary groups, HOME not root's (where the user can run this installation).
    code = ("import os; from geogrid.db import cluster; from geogrid.core.settings import Settings; "
            "user = cluster.become_service_user(Settings(), 'pass', required=True); "
            "print(user, os.getuid(), os.geteuid(), os.getgid(), os.getgroups(), os.environ['HOME'])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if not _service_user_can_run_us(settings.db_system_user):
        # Where the user cannot even start this interpreter, no switch is possible: refused.
        assert done.returncode != 0 and "will not serve as root" in done.stderr, done.stderr
        return
    assert done.returncode == 0, done.stderr
    service = pwd.getpwnam(settings.db_system_user)
    assert done.stdout.split() == [settings.db_system_user, str(service.pw_uid), str(service.pw_uid),
                                   str(service.pw_gid), "[]", "/nonexistent"]
    assert service.pw_uid != 0


def test_refuses_when_the_service_user_cannot_run_it(settings):
    # The check runs the service's imports as that user first; a failing check must stop
    # a real service, never let it go on as root.
    code = ("from geogrid.db import cluster; from geogrid.core.settings import Settings; "
            "cluster.become_service_user(Settings(), 'raise SystemExit(3)', required=True)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode != 0
    assert "will not serve as root" in done.stderr
    assert "README, Security" in done.stderr
    # The demo on loopback may go on as root instead, and is told so by the None.
    code = ("import os; from geogrid.db import cluster; from geogrid.core.settings import Settings; "
            "print(cluster.become_service_user(Settings(), 'raise SystemExit(3)', required=False), os.geteuid())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.split() == ["None", "0"], done.stderr


def test_serve_started_as_root_switches_or_refuses(settings):
    """Where the service user can run this installation, `geogrid serve` answers as that
    user; where it cannot (an interpreter under /root), it refuses to start: never root."""
    port = free_port()
    env = {**os.environ, "GEOGRID_DATABASE_URL": settings.database_url, "GEOGRID_PORT": str(port),
           "GEOGRID_ESCALATION_INTERVAL_S": "0", "GEOGRID_STATE_DIR": str(settings.state_dir)}
    proc = subprocess.Popen([str(GEOGRID), "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        started, deadline = False, time.monotonic() + 300  # a first start may fetch the map assets
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                started = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                time.sleep(0.3)
            if started:
                break
        if _service_user_can_run_us(settings.db_system_user):
            assert started, "the service did not start"
            service = pwd.getpwnam(settings.db_system_user)
            assert _status(proc.pid, "Uid") == [str(service.pw_uid)] * 4  # real, effective, saved, fs
            assert "0" not in _status(proc.pid, "Groups")
            # It still serves what needs its files: the code and the database.
            assert httpx.get(f"http://127.0.0.1:{port}/api/levels", timeout=10).status_code == 200
        else:
            assert not started
            assert proc.wait(timeout=60) == 1
    finally:
        if proc.poll() is None:
            proc.terminate()
        output = proc.communicate(timeout=30)[0]
    if _service_user_can_run_us(settings.db_system_user):
        assert f"serving as the unprivileged user {settings.db_system_user}" in output
    else:
        assert "will not serve as root" in output and "Traceback" not in output
