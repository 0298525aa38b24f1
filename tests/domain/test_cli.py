"""The command line, run as a user runs it (a real process), against the test database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyogrio

GEOGRID = str(Path(sys.executable).with_name("geogrid"))


def run(*args, settings, check=True):
    env = {**os.environ, "GEOGRID_DATABASE_URL": settings.database_url}
    result = subprocess.run([GEOGRID, *args], capture_output=True, text=True, env=env, timeout=120)
    assert "Traceback" not in result.stderr + result.stdout
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_db_up_is_idempotent_and_status_reports():
    env = {k: v for k, v in os.environ.items() if k != "GEOGRID_DATABASE_URL"}
    first = subprocess.run([GEOGRID, "db", "up"], capture_output=True, text=True, env=env, timeout=600)
    second = subprocess.run([GEOGRID, "db", "up"], capture_output=True, text=True, env=env, timeout=600)
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert "already running" in second.stdout and "schema at revision" in second.stdout
    status = subprocess.run([GEOGRID, "db", "status"], capture_output=True, text=True, env=env, timeout=60)
    assert "running: True" in status.stdout and "postgis_version: 3" in status.stdout
    assert "***" in status.stdout  # the password never shows


def test_import_export_locate(tmp_path, settings, clean):
    doc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"code": "339901", "name": "演示县", "level": "county"},
         "geometry": {"type": "Polygon", "coordinates": [[[120, 30], [120.1, 30], [120.1, 30.1], [120, 30.1], [120, 30]]]}},
        {"type": "Feature", "properties": {"name": "青禾镇", "level": "town", "parent": "339901"},
         "geometry": {"type": "Polygon", "coordinates": [[[120, 30], [120.05, 30], [120.05, 30.05], [120, 30.05], [120, 30]]]}},
    ]}
    src = tmp_path / "areas.geojson"
    src.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    dry = run("import", str(src), "--dry-run", settings=settings)
    assert "would import 2 features" in dry.stdout
    out = run("import", str(src), settings=settings)
    assert "imported 2 features" in out.stdout and "339901001" in out.stdout  # generated town code
    again = run("import", str(src), settings=settings, check=False)
    assert again.returncode == 1 and again.stderr.startswith("error:") and "duplicate code 339901" in again.stderr

    gpkg = tmp_path / "out.gpkg"
    run("export", "--out", str(gpkg), "--format", "gpkg", settings=settings)
    frame = pyogrio.read_dataframe(gpkg)
    assert sorted(frame["code"]) == ["339901", "339901001"]
    found = json.loads(run("locate", "120.01", "30.01", settings=settings).stdout)
    assert [x["code"] for x in found] == ["339901", "339901001"]


def test_output_into_a_closed_pipe_ends_quietly(settings, clean):
    """``geogrid export -o - | head``: the reader leaves early; geogrid neither reports a bug
    nor prints a traceback (Click ends on EPIPE as Unix tools do)."""
    env = {**os.environ, "GEOGRID_DATABASE_URL": settings.database_url}
    doc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"code": f"3399{i:02d}", "name": f"县{i}", "level": "county"},
         "geometry": {"type": "Polygon", "coordinates": [[[120 + i, 30], [120.9 + i, 30], [120.9 + i, 30.9],
                                                          [120 + i, 30.9], [120 + i, 30]]]}} for i in range(3)]}
    src = Path(os.environ.get("TMPDIR", "/tmp")) / f"pipe-{os.getpid()}.geojson"
    src.write_text(json.dumps(doc), encoding="utf-8")
    try:
        run("import", str(src), settings=settings)
    finally:
        src.unlink()
    whole = run("export", "-o", "-", settings=settings)
    assert len(json.loads(whole.stdout)["features"]) == 3 and "wrote 3 areas" in whole.stderr
    for args in (["export", "-o", "-"], ["locate", "120.5", "30.5"]):
        reader, writer = os.pipe()
        os.close(reader)  # nobody reads: the first write fails with EPIPE
        try:
            proc = subprocess.run([GEOGRID, *args], stdout=writer, stderr=subprocess.PIPE, text=True, env=env,
                                  timeout=120)
        finally:
            os.close(writer)
        assert "bug" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        assert not proc.stderr.startswith("error:"), proc.stderr
    refused = run("export", "-o", "-", "--format", "gpkg", settings=settings, check=False)
    assert refused.returncode == 1 and "only geojson can be written to standard output" in refused.stderr
    unwritable = run("export", "-o", "/proc/no-such-dir/areas.geojson", settings=settings, check=False)
    assert unwritable.returncode == 1 and unwritable.stderr.startswith("error: cannot write /proc/no-such-dir")
