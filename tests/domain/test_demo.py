"""The demo jurisdiction loads through the ordinary import path and answers lookups."""

from __future__ import annotations

import json

import shapely

from geogrid.io import demo


def test_demo_loads_once_and_answers(client, engine, settings, tmp_path):
    # Its own state directory: the demo keeps account passwords there.
    settings = settings.model_copy(update={"state_dir": tmp_path / "state"})
    first = demo.load(engine, settings, tmp_path, reset=False)
    assert "loaded from" in first and "comprehensive" in first
    second = demo.load(engine, settings, tmp_path, reset=False)
    assert "already loaded" in second
    grids = client.get("/api/grids", params={"layer": "comprehensive", "limit": 1000}).json()
    assert 250 <= grids["numberMatched"] <= 400
    assert all(len(f["properties"]["code"]) == 15 for f in grids["features"])

    # Ask for a point inside a grid that has a leader and a worker today.
    persons = json.loads((tmp_path / "persons.json").read_text(encoding="utf-8"))
    private_phones = {p["phone"] for p in persons if not p["phone_public"]}
    feature = next(f for f in grids["features"] if f["properties"]["households"])
    point = shapely.geometry.shape(feature["geometry"]).representative_point()
    found = client.get("/api/locate", params={"lon": point.x, "lat": point.y}).json()["results"]
    levels = [(x["layer"], x["level"]) for x in found if x["primary"]]
    assert ("admin", "county") in levels and ("admin", "village") in levels and ("comprehensive", "grid") in levels
    shown = [p for x in found for p in x["persons"]]
    assert all(p.get("phone") not in private_phones for p in shown)

    again = demo.load(engine, settings, tmp_path, reset=True)
    assert "loaded from" in again
    assert client.get("/api/grids", params={"layer": "comprehensive"}).json()["numberMatched"] == grids["numberMatched"]
