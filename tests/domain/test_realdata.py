"""The real Zhejiang boundaries (../shared/data/real): 1 province, 11 cities, 90 districts,
digitised level by level, with invalid rings and spill-over, as real planners' data is."""

from __future__ import annotations

import pytest
from conftest import REAL_DATA

from geogrid.areas import importing
from geogrid.core.errors import GeogridError
from geogrid.io import files

ZJ = REAL_DATA / "zhejiang"
pytestmark = [pytest.mark.realdata,
              pytest.mark.skipif(not ZJ.exists(), reason="../shared/data/real is not present")]


def _import(engine, settings, path, **kwargs):
    read = files.read_features(path, fields=kwargs.pop("fields", None))
    with engine.begin() as conn:
        from sqlalchemy.orm import Session

        with Session(bind=conn) as session:
            return importing.import_areas(session, read.records, read.geoms, settings, **kwargs)


def test_strict_import_reports_invalid_rings_and_stores_nothing(client, engine, settings):
    with pytest.raises(GeogridError) as err:
        _import(engine, settings, ZJ / "province_330000_cities.json", fields={"parent": "-"},
                overrides={"level": "city"})
    invalid = {p.code for p in err.value.problems if "Self-intersection" in p.message}
    assert invalid == {"330200", "330900"}  # 宁波市 and 舟山市 have self-intersecting rings
    assert all(p.location for p in err.value.problems)
    assert client.get("/api/areas").json()["numberMatched"] == 0


def test_whole_province_imports_with_repair(client, engine, settings):
    report = _import(engine, settings, ZJ / "province_330000_outline.json", fields={"parent": "-"},
                     overrides={"level": "province"}, repair=True)
    assert report.codes == ["330000"]
    cities = _import(engine, settings, ZJ / "province_330000_cities.json", overrides={"level": "city"},
                     repair=True, max_spill_ratio=0.25)
    assert {r["code"] for r in cities.repaired} == {"330200", "330900"}
    # The outline was simplified on its own: the islands of 舟山 spill out of it.
    spill = {w["code"]: w for w in cities.warnings}
    assert "330900" in spill and "outside parent 330000" in spill["330900"]["message"]
    total = 0
    for path in sorted(ZJ.glob("city_*_districts.json")):
        total += _import(engine, settings, path, overrides={"level": "county"}, repair=True,
                         max_spill_ratio=0.25).imported
    assert total == 90
    assert client.get("/api/areas", params={"level": "county"}).json()["numberMatched"] == 90
    assert client.get("/api/areas", params={"parent": "330100"}).json()["numberMatched"] == 13

    # 西湖 (West Lake) lies in 西湖区 of 杭州市.
    found = client.get("/api/locate", params={"lon": 120.14, "lat": 30.245}).json()["results"]
    assert [(x["code"], x["level"]) for x in found if x["primary"]] == [
        ("330000", "province"), ("330100", "city"), ("330106", "county")]
    # Areas are in m² on the spheroid: 浙江省 is about 105,500 km².
    province = client.get("/api/areas/330000").json()["properties"]
    assert 95_000e6 < province["area_m2"] < 115_000e6
