"""The service never answers the network as root: started as root, `geogrid serve` switches
to the unprivileged system user first, or refuses."""

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


def _uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])  # the real uid; effective and saved follow it
    raise AssertionError("no Uid line")


def test_serve_started_as_root_runs_as_the_service_user(settings):
    port = free_port()
    env = {**os.environ, "GEOGRID_DATABASE_URL": settings.database_url, "GEOGRID_PORT": str(port),
           "GEOGRID_ESCALATION_INTERVAL_S": "0"}
    proc = subprocess.Popen([str(GEOGRID), "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read()
                time.sleep(0.3)
        else:
            pytest.fail("the service did not start within 60 s")
        service = pwd.getpwnam(settings.db_system_user)
        assert service.pw_uid != 0
        assert _uid_of(proc.pid) == service.pw_uid
        status = Path(f"/proc/{proc.pid}/status").read_text()
        groups = next(line for line in status.splitlines() if line.startswith("Groups:")).split()[1:]
        assert "0" not in groups  # no supplementary root group kept either
        # It still serves what needs its files: the code, the map assets, the database.
        assert httpx.get(f"http://127.0.0.1:{port}/api/levels", timeout=10).status_code == 200
    finally:
        proc.terminate()
        output = proc.communicate(timeout=20)[0]
    assert f"serving as the unprivileged user {settings.db_system_user}" in output


def test_refuses_when_the_service_user_cannot_run_it(settings):
    # The check runs the service's imports as that user first; a failing check must stop
    # a real service, never let it go on as root.
    code = ("from geogrid import cluster; from geogrid.settings import Settings; "
            "cluster.become_service_user(Settings(), 'raise SystemExit(3)', required=True)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode != 0
    assert "will not serve as root" in done.stderr
    assert "README, Security" in done.stderr
    # The demo on loopback may go on as root instead, and is told so by the None.
    code = ("import os; from geogrid import cluster; from geogrid.settings import Settings; "
            "print(cluster.become_service_user(Settings(), 'raise SystemExit(3)', required=False), os.geteuid())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.split() == ["None", "0"], done.stderr
