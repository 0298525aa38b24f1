"""Importing published national boundaries (DataV-style: province -> cities -> districts):
cities without districts listed as their own only child, municipalities whose districts sit
directly under the province, empty files, and spill-over refusals that say how to proceed.
Small files that mimic the published structure, read and imported as the CLI does."""

from __future__ import annotations

import json

import pytest
import shapely
from sqlalchemy import text

from geogrid.areas import importing
from geogrid.core.errors import GeogridError
from geogrid.db import engine as db
from geogrid.io import files


def box(x0: float, y0: float, x1: float, y1: float) -> dict:
    return json.loads(shapely.to_geojson(shapely.box(x0, y0, x1, y1)))


def datav(path, *features) -> str:
    """A DataV-style file: adcode, name, level and a nested parent object."""
    doc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"adcode": code, "name": name, "level": level,
                                           **({"parent": {"adcode": parent}} if parent else {})},
         "geometry": geometry} for code, name, level, parent, geometry in features]}
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return str(path)


def load(engine, settings, path, **options):
    read = files.read_features(path, fields={"code": "adcode"})
    with db.transaction(engine) as session:
        return importing.import_areas(session, read.records, read.geoms, settings, **options)


def stored(engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(text("SELECT a.code, coalesce(p.code, '') FROM area a "
                                      "LEFT JOIN area p ON p.id = a.parent_id")).all())


GD = box(112.0, 21.0, 116.0, 24.0)
GUANGZHOU = box(113.0, 22.8, 114.0, 23.8)
DONGGUAN = box(114.0, 22.6, 114.5, 23.2)


def test_a_city_without_districts_listed_as_its_own_child_is_skipped(tmp_path, engine, settings, clean):
    # One file with every level, as the national download comes: 东莞 appears twice, the
    # second time as a district whose parent is itself.
    path = datav(tmp_path / "440000_full.json",
                 ("440000", "广东省", "province", None, GD),
                 ("440100", "广州市", "city", "440000", GUANGZHOU),
                 ("441900", "东莞市", "city", "440000", DONGGUAN),
                 ("440103", "荔湾区", "county", "440100", box(113.0, 22.8, 113.5, 23.8)),
                 ("440104", "越秀区", "county", "440100", box(113.5, 22.8, 114.0, 23.8)),
                 ("441900", "东莞市", "county", "441900", DONGGUAN))
    report = load(engine, settings, path)
    assert report.imported == 5 and report.by_level == {"province": 1, "city": 2, "county": 2}
    assert [(s["index"], s["code"]) for s in report.skipped] == [(5, "441900")]
    assert "不设区的地级市" in report.skipped[0]["reason"]
    assert stored(engine)["441900"] == "440000"  # the city itself, which governs its towns directly

    # The district file alone, once the cities are in: its 东莞 row is recognised against the
    # stored city; indexes in errors stay those of the file.
    districts = datav(tmp_path / "districts.json",
                      ("440105", "海珠区", "county", "440100", box(113.2, 22.9, 113.3, 23.0)),
                      ("441900", "东莞市", "county", "441900", DONGGUAN),
                      ("440106", "天河区", "county", "440199", box(113.3, 22.9, 113.4, 23.0)))
    with pytest.raises(GeogridError) as refused:
        load(engine, settings, districts)
    assert [(p.index, p.code) for p in refused.value.problems] == [(2, "440106")]
    assert "unknown parent 440199" in refused.value.problems[0].message


def test_a_same_code_child_with_another_outline_is_still_refused(tmp_path, engine, settings, clean):
    path = datav(tmp_path / "bad.json",
                 ("440000", "广东省", "province", None, GD),
                 ("441900", "东莞市", "city", "440000", DONGGUAN),
                 ("441900", "某区", "county", "441900", box(114.0, 22.6, 114.2, 22.8)))
    with pytest.raises(GeogridError) as refused:
        load(engine, settings, path)
    assert any(p.index == 2 and "441900" in p.message for p in refused.value.problems)
    assert stored(engine) == {}


def test_a_municipality_takes_districts_under_the_province_and_empty_files_say_so(tmp_path, engine, settings,
                                                                                   clean):
    bj = datav(tmp_path / "110000_full.json",
               ("110000", "北京市", "province", None, box(116.0, 39.5, 117.0, 40.5)),
               ("110101", "东城区", "county", "110000", box(116.0, 39.5, 116.5, 40.5)),
               ("110102", "西城区", "county", "110000", box(116.5, 39.5, 117.0, 40.5)))
    assert load(engine, settings, bj).by_level == {"province": 1, "county": 2}
    assert stored(engine) == {"110000": "", "110101": "110000", "110102": "110000"}
    empty = tmp_path / "110000_cities.json"
    empty.write_text('{"type": "FeatureCollection", "features": []}', encoding="utf-8")
    with pytest.raises(GeogridError, match="110000_cities.json: the file has no features"):
        files.read_features(empty, fields={"code": "adcode"})


def test_a_spill_over_refusal_names_the_option_and_the_largest_share(tmp_path, engine, settings, clean):
    # 珠海-like: the city's simplified outline reaches 6 % beyond the province's.
    path = datav(tmp_path / "spill.json",
                 ("440000", "广东省", "province", None, box(113.0, 22.0, 114.0, 23.0)),
                 ("440400", "珠海市", "city", "440000", box(113.0, 22.06, 113.5, 23.0)),
                 ("440300", "深圳市", "city", "440000", box(113.5, 21.94, 114.0, 23.0)))
    with pytest.raises(GeogridError) as refused:
        load(engine, settings, path)
    message = str(refused.value)
    with engine.connect() as conn:  # the share outside, as PostGIS measures it
        share = conn.execute(text("SELECT ST_Area(ST_Difference(c, p)::geography) / ST_Area(c::geography) FROM "
                                  "(SELECT ST_MakeEnvelope(113.5, 21.94, 114.0, 23.0, 4326) AS c, "
                                  "ST_MakeEnvelope(113.0, 22.0, 114.0, 23.0, 4326) AS p) x")).scalar_one()
    assert f"{share:.2%}" in message and "440300 outside 440000" in message
    assert "--max-spill" in message and "max_spill=" in message and stored(engine) == {}
    allowed = float(message.split("max_spill=")[1].split()[0])
    assert share <= allowed < share + 0.002
    assert load(engine, settings, path, max_spill_ratio=allowed).imported == 3


def test_an_empty_geopackage_says_it_has_no_features(tmp_path):
    import geopandas as gpd

    path = tmp_path / "cities.gpkg"
    gpd.GeoDataFrame({"adcode": [], "name": []}, geometry=[], crs=4326).to_file(path, driver="GPKG")
    with pytest.raises(GeogridError, match="cities.gpkg: the file has no features"):
        files.read_features(path, fields={"code": "adcode", "parent": "parent_code"})
