"""Deterministic synthetic jurisdiction for demos, tests and benchmarks.

``generate(out_dir, seed)`` writes a fictitious county ``339901`` 演示县 with one town
``339901100`` 青禾镇 (about 30 km², around lon 120.30 / lat 30.20 in Zhejiang), its 8-10
villages/communities, roughly 300 comprehensive-governance grids (smaller in the urban
communities), an environmental net (one grid per village), persons, appointments with
history, and ``defects.json``: every deliberate defect (gaps, a sliver gap, overlaps, a
spill-over across a village boundary, responsibility gaps, size outliers) that a coverage
or responsibility checker is expected to find.

Geometry is built in a local azimuthal equidistant projection (metres, ``METRIC_CRS``): Voronoi
cells of Lloyd-relaxed seeds clipped to their parent. All boundaries are noded together with
snap rounding and every area is rebuilt from the resulting faces, so neighbours share their
edges vertex for vertex (a valid coverage, also after the defects are cut in). The result is
reprojected to EPSG:4326, rounded to 7 decimals and oriented counter-clockwise.
The same seed gives byte-identical files. ``python -m geogrid.io.demo_data [out_dir] [seed]``.
"""

from __future__ import annotations

import json
import sys
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import shapely
from pyproj import Transformer

AS_OF = date(2026, 11, 23)  # "today" of the data set: the expired appointment ended the month before
CENTER = (120.30, 30.20)
METRIC_CRS = f"+proj=aeqd +lat_0={CENTER[1]} +lon_0={CENTER[0]} +datum=WGS84 +units=m +no_defs"
GRID_SIZE = 0.05  # metres: snap-rounding precision of the metric construction
COUNTY, TOWN = "339901", "339901100"
COMMUNITIES = ["东湖社区", "青禾社区", "南苑社区", "新街社区"]
VILLAGES = ["石桥村", "杨家村", "柳塘村", "下庄村", "龙山村", "沙埠村", "桐坞村", "何家埭村", "塘头村", "枫岭村"]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁沈姚卢姜钟陆汪范金方邵俞楼应童"
GIVEN = "伟芳敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华建国文辉玲红斌波宇浩凯鹏飞婷雪琳晨阳海燕晓峰俊丹萍志鑫佳欣怡春林根荣"
GRID_NOTES = ["独居老人{n}户，需每周走访", "重点关注人员{n}名", "出租房{n}处，流动人口较多",
              "信访老户{n}户，注意稳控", "低保户{n}户，按月核查"]
PERSON_NOTES = ["2025年度考核优秀", "兼任村妇联主席", "家住本网格，联系方便", "身体原因申请调岗，待批",
                "退役军人", "2024年度考核基本称职"]
DUTIES = {
    "grid_worker_fulltime": "专职网格员：日常巡查走访、基础信息采集、矛盾纠纷排查、事件及时上报",
    "grid_worker_parttime": "兼职网格员：协助巡查走访，及时上报安全隐患和矛盾纠纷",
    "instructor": "网格指导员（镇干部）：业务指导、督查考核、协调解决网格难题",
    "env_informant": "环保信息员：每周巡查，发现偷排漏排、秸秆焚烧等环境问题及时报告",
    "police": "驻村民警：治安防控、矛盾纠纷化解、协助网格排查",
    "building_head": "楼栋长：负责第{n}幢住户联系、信息报送",
}

_TO_LONLAT = Transformer.from_crs(METRIC_CRS, "EPSG:4326", always_xy=True)


def _star(rng, radius: float, n: int = 96) -> shapely.Polygon:
    """An irregular, smooth star-convex polygon around the origin (a few random harmonics)."""
    t = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    r = np.ones(n)
    for m in range(2, 6):
        r += 0.32 / m * rng.uniform(0.5, 1.0) * np.cos(m * t + rng.uniform(0, 2 * np.pi))
    noise = rng.normal(0.0, 0.04, n)
    r += np.convolve(np.r_[noise[-2:], noise, noise[:2]], np.array([1, 2, 3, 2, 1]) / 9, "valid")
    return shapely.Polygon(np.c_[radius * r * np.cos(t), radius * r * np.sin(t)])


def _polygonal(g):
    """Keep only the polygonal parts of an overlay result."""
    parts = [p for p in shapely.get_parts(g) if p.geom_type in ("Polygon", "MultiPolygon")]
    return parts[0] if len(parts) == 1 else shapely.union_all(parts)


def _partition(rng, region, n: int, lloyd: int = 3) -> np.ndarray:
    """Split region into n Voronoi cells of Lloyd-relaxed random seeds; every cell one polygon."""
    x0, y0, x1, y1 = region.bounds
    pts = np.empty((0, 2))
    while len(pts) < n:
        p = rng.uniform((x0, y0), (x1, y1), (4 * n, 2))
        pts = np.vstack([pts, p[shapely.contains_xy(region, p[:, 0], p[:, 1])]])
    pts = pts[:n]
    for it in range(lloyd + 1):
        vor = shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=region, ordered=True)
        cells = np.array([_polygonal(c) for c in shapely.intersection(shapely.get_parts(vor), region)])
        if it < lloyd:  # move every seed to the centre of its cell
            c = shapely.centroid(cells)
            c = np.where(shapely.contains(region, c), c, shapely.point_on_surface(cells))
            pts = shapely.get_coordinates(c)
    # a convex cell clipped by a concave boundary can fall apart: give the fragments to neighbours
    while (multi := [i for i, c in enumerate(cells) if c.geom_type != "Polygon"]):
        i = multi[0]
        parts = sorted(shapely.get_parts(cells[i]), key=lambda p: -p.area)
        cells[i] = parts[0]
        for part in parts[1:]:
            shared = shapely.length(shapely.intersection(part.boundary, shapely.boundary(cells)))
            shared[i] = -1
            j = int(np.argmax(shared))
            cells[j] = _polygonal(shapely.union(cells[j], part))
    return cells


def _node(cells: np.ndarray, vil: np.ndarray):
    """Node all boundaries at GRID_SIZE and rebuild every cell and village from the faces.

    A face belongs to each cell covering most of it (so deliberate overlaps survive and
    deliberate gaps stay empty); a face under 1 m² (rounding debris) to its best cell.
    Returns the cells, the villages and the faces that no cell covers.
    """
    lines = shapely.union_all(shapely.boundary(np.r_[cells, vil]), grid_size=GRID_SIZE)
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(lines)))
    area = shapely.area(faces)

    def owners(polys, several: bool):
        fi, ci = shapely.STRtree(polys).query(faces, predicate="intersects")
        share = shapely.area(shapely.intersection(faces[fi], polys[ci])) / area[fi]
        order = np.lexsort((-share, fi))
        fi, ci, share = fi[order], ci[order], share[order]
        keep = np.r_[True, fi[1:] != fi[:-1]]  # the best owner ...
        if several:  # ... or every owner of most of the face, debris only to its best
            keep = (share > 0.5) | keep & (share > 0.01) & (area[fi] < 1.0)
        out = np.array([shapely.coverage_union_all(faces[fi[keep & (ci == k)]]) for k in range(len(polys))])
        assert all(g.geom_type == "Polygon" for g in out), "a cell fell apart while noding"
        return out, np.isin(np.arange(len(faces)), fi[keep])

    cells, covered = owners(cells, True)
    return cells, owners(vil, False)[0], faces[~covered]


def _reading_order(geoms) -> np.ndarray:
    """Indices in reading order: rows north to south, west to east within a row."""
    xy = shapely.get_coordinates(shapely.centroid(geoms))
    row = np.floor((xy[:, 1].max() - xy[:, 1]) / np.sqrt(np.mean(shapely.area(geoms))))
    return np.lexsort((xy[:, 0], row))


def _to_lonlat(geoms) -> np.ndarray:
    g = shapely.transform(geoms, lambda c: np.round(np.column_stack(_TO_LONLAT.transform(c[:, 0], c[:, 1])), 7))
    g = shapely.orient_polygons(shapely.remove_repeated_points(g))
    assert shapely.is_valid(g).all()
    return g


def _write_geojson(path: Path, name: str, props: list[dict], geoms) -> Path:
    lines = [json.dumps({"type": "Feature", "properties": p, "geometry": shapely.geometry.mapping(g)},
                        ensure_ascii=False, separators=(",", ":")) for p, g in zip(props, geoms)]
    path.write_text('{"type":"FeatureCollection","name":"%s","features":[\n%s\n]}\n' % (name, ",\n".join(lines)),
                    encoding="utf-8")
    return path


def _write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return path


def _build_geometry(rng):
    """Town, villages and grids in metres (edge-matched), plus the village index of each grid."""
    town = _star(rng, 1.0)
    town = shapely.transform(town, lambda c: c * np.sqrt(rng.uniform(26e6, 34e6) / town.area))
    n_vil = int(rng.integers(8, 11))
    vil = _partition(rng, town, n_vil)
    dist = shapely.distance(shapely.centroid(vil), shapely.Point(0, 0))
    urban = np.zeros(n_vil, bool)
    urban[np.argsort(dist)[:3]] = True  # the town seat (镇区): three communities around the centre
    weight = shapely.area(vil) * np.where(urban, 3.5, 1.0)
    share = weight / weight.sum() * int(rng.integers(290, 351))
    counts = np.maximum(np.floor(share).astype(int), 3)
    counts[np.argsort(-(share - np.floor(share)))[: max(0, round(share.sum()) - counts.sum())]] += 1
    cells = [_partition(rng, v, int(k)) for v, k in zip(vil, counts)]
    owner = np.repeat(np.arange(n_vil), counts)
    grids, vil, _ = _node(np.concatenate(cells), vil)
    county = shapely.union(shapely.transform(_star(rng, 13000.0), lambda c: c + rng.uniform(-3000, 3000, 2)),
                           shapely.buffer(town, 1500), grid_size=GRID_SIZE)
    return county, vil, urban, grids, owner


def _defects(rng, grids, owner, coded, codes):
    """Cut gaps, overlaps and a spill-over into the (edge-matched) metric grids, in place.

    Returns the defect records (grid indices in "_i"/"_j", the removed land of a gap in
    "_cut") and the set of grids not to touch again.
    """
    a, b = shapely.STRtree(grids).query(grids, predicate="intersects")
    a, b = a[a != b], b[a != b]
    shared = shapely.line_merge(shapely.intersection(shapely.boundary(grids[a]), shapely.boundary(grids[b])))
    length = shapely.length(shared)
    nbrs = {i: set(b[(a == i) & (length > 1)].tolist()) for i in range(len(grids))}
    used: set[int] = set()
    records = []

    def pick(kind, same_village: bool, lo: float, hi: float, change, want=lambda i: True):
        for k in rng.permutation(len(a)):
            i, j = int(a[k]), int(b[k])
            if (i in used or j in used or not (coded[i] and coded[j]) or not lo <= length[k] <= hi
                    or (owner[i] == owner[j]) != same_village or not want(i)):
                continue
            new = change(i, j, shared[k], length[k])
            if new.geom_type == "Polygon" and new.is_valid:
                used.update({i, j} | nbrs[i] | nbrs[j])
                records.append({"kind": kind, "codes": [codes[i], codes[j]], "_i": i, "_j": j,
                                "_cut": shapely.difference(grids[i], new)})
                grids[i] = new
                return
        raise RuntimeError(f"no candidate for a {kind}")

    def cut(width):  # remove a strip of the given width along the edge shared with j
        return lambda i, j, line, n: shapely.difference(
            grids[i], shapely.buffer(line, width(n), cap_style="flat", join_style="mitre"))

    def grow(dist):  # claim the part of j within dist of i
        return lambda i, j, line, n: shapely.union(
            grids[i], shapely.intersection(shapely.buffer(grids[i], dist(i, n)), grids[j]))

    for kind, width in [("gap", None), ("gap", None), ("sliver_gap", 1.2)]:
        target = rng.uniform(600, 3000)
        pick(kind, True, 80 if width is None else 150, 400,
             cut(lambda n, t=target, w=width: w or float(np.clip(t / n, 3, 20))))
    for _ in range(2):
        target = rng.uniform(500, 2500)
        pick("overlap", True, 80, 400, grow(lambda i, n, t=target: float(np.clip(t / n, 3, 20))))
    pick("spill_over", False, 100, 600, grow(lambda i, n: 0.005 * grids[i].area / n),
         want=lambda i: grids[i].area > 60000)
    return records, used


def generate(out_dir: Path, seed: int = 20261123, *, as_of: date = AS_OF) -> dict[str, Path]:
    """Write the demo jurisdiction into out_dir; return the written files by name."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    county, vil, urban, grids, owner = _build_geometry(rng)
    n_vil, n = len(vil), len(grids)
    names = [str(c) for c in rng.permutation(COMMUNITIES)[: urban.sum()]]
    rural = iter(rng.permutation(VILLAGES))
    vil_names = [names.pop() if u else str(next(rural)) for u in urban]
    vil_codes = [f"{TOWN}{v + 1:03d}" for v in range(n_vil)]

    # names follow the reading order of all grids; codes that of the coded ones (10% left empty)
    coded = np.ones(n, bool)
    coded[rng.choice(n, round(0.1 * n), replace=False)] = False
    codes: list[str | None] = [None] * n
    gname = [""] * n
    reading = []  # output order of the grids: village by village, in reading order
    for v in range(n_vil):
        idx = np.flatnonzero(owner == v)[_reading_order(grids[owner == v])]
        reading += idx.tolist()
        for k, i in enumerate(idx, 1):
            gname[i] = f"{vil_names[v]}第{k}网格"
        for k, i in enumerate(idx[coded[idx]], 1):
            codes[i] = f"{vil_codes[v]}{k:03d}"
    defects, used = _defects(rng, grids, owner, coded, codes)
    grids, vil, holes = _node(grids, vil)  # final noding: the defects share their vertices too
    town = shapely.coverage_union_all(vil)
    for d in defects:  # measure every geometric defect on the final geometry
        i, j = d.pop("_i"), d.pop("_j")
        cut = d.pop("_cut")
        d["village"] = vil_codes[owner[i]]
        if d["kind"] in ("gap", "sliver_gap"):
            inside = shapely.area(shapely.intersection(holes, cut)) > 0.5 * shapely.area(holes)
            d["area_m2"] = round(float(shapely.area(holes[inside]).sum()), 1)
            d["note"] = f"{codes[i]} shrunk along its edge with {codes[j]}: a blind spot opens between them"
        else:
            d["area_m2"] = round(shapely.intersection(grids[i], grids[j]).area, 1)
            d["note"] = f"{codes[i]} claims part of {codes[j]}"
        if d["kind"] == "spill_over":
            d["into_village"] = vil_codes[owner[j]]
            d["note"] = (f"{codes[i]} sticks out of its village into {codes[j]} "
                         f"({d['area_m2'] / (grids[i].area - d['area_m2']):.2%} of its area)")
            assert d["area_m2"] < 0.01 * (grids[i].area - d["area_m2"])

    households = rng.integers(300, 501, n)
    free = [int(i) for i in rng.permutation(n) if coded[i] and i not in used]
    nobody, expired, small, big = free[:2], free[2], free[3], free[4]
    for i, h in ((small, 80), (big, 1200)):
        households[i] = h
        defects.append({"kind": "size_outlier", "codes": [codes[i]], "village": vil_codes[owner[i]],
                        "area_m2": None, "households": h, "note": f"{h} households, outside the 300-500 norm"})
    defects += [{"kind": "no_responsible", "codes": [codes[i]], "village": vil_codes[owner[i]], "area_m2": None,
                 "note": "no grid leader, worker or instructor assigned"} for i in nobody]
    # 300-500 households and 1,000-1,500 people go together (about 3 per household).
    per_household = np.clip(3.34 - (households - 300) / 200 * 0.34 + rng.normal(0, 0.02, n), 3.0, 3.34)
    population = np.round(households * per_household).astype(int)
    normal = (households >= 300) & (households <= 500)
    population[normal] = np.clip(population[normal], 1000, 1500)
    grid_props = [{"code": codes[i], "name": gname[i], "level": "grid", "layer": "comprehensive",
                   "parent": vil_codes[owner[i]], "households": int(households[i]),
                   "population": int(population[i]),
                   "land_use": str(rng.choice(["residential", "residential", "commercial", "mixed"] if urban[owner[i]]
                                              else ["rural", "rural", "farmland", "farmland", "industrial", "mixed"])),
                   "notes": "内部备注：" + str(rng.choice(GRID_NOTES)).format(n=int(rng.integers(1, 9)))}
                  for i in range(n)]

    # --- people and appointments -----------------------------------------------------
    persons: list[dict] = []
    assignments: list[dict] = []
    seen: set[str] = set()

    def day(lo: str, hi: str) -> date:
        d0, d1 = date.fromisoformat(lo), date.fromisoformat(hi)
        return d0 + timedelta(days=int(rng.integers(0, (d1 - d0).days + 1)))

    def person(frontline: bool = True) -> str:
        ref = f"p{len(persons) + 1:04d}"
        while (name := rng.choice(list(SURNAMES)) + "".join(rng.choice(list(GIVEN), rng.integers(1, 3)))) in seen:
            pass
        seen.add(name)
        while (phone := "13" + "".join(map(str, rng.integers(0, 10, 9)))) in seen:
            pass
        seen.add(phone)
        persons.append({"ref": ref, "name": str(name), "phone": phone,
                        "photo_url": f"https://example.invalid/photos/{ref}.jpg", "name_public": True,
                        "phone_public": bool(rng.random() < (0.9 if frontline else 0.6)),
                        "photo_public": bool(rng.random() < 0.75),
                        "notes": "内部备注：" + str(rng.choice(PERSON_NOTES))})
        return ref

    def assign(ref, area, role, start, end=None, duties=None):
        duties = duties or DUTIES[role].format(n=int(rng.integers(1, 30)))
        # A grid without a code gets one only when it is imported: name it instead.
        where = {"area": area} if isinstance(area, str) else {"area_name": gname[area]}
        assignments.append({"person": ref, **where, "role": role, "start_date": start.isoformat(),
                            "end_date": end and end.isoformat(), "duties": duties})

    def grid(i):
        return codes[i] if coded[i] else int(i)

    staffed = [i for i in reading if i not in nobody]
    instructors = [person() for _ in range(3)]
    for v in range(n_vil):
        mine = [i for i in staffed if owner[i] == v]
        kind = "社区" if urban[v] else "村"
        leader, start = person(), day("2021-03-01", "2021-05-31")  # 2021 village committee elections
        previous = person() if v % 4 == 1 else None  # the secretary before the elections
        instructor, since = instructors[v % 3], day("2021-06-01", "2022-12-31")
        for i in mine:
            duty = f"{kind}党组织书记兼网格长：统筹{vil_names[v]}各网格工作，督导网格员履职"
            if previous:
                assign(previous, grid(i), "grid_leader", date(2017, 5, 1), start - timedelta(days=1), duty)
            assign(leader, grid(i), "grid_leader", start, None, duty)
            assign(instructor, grid(i), "instructor", since)
        worker = None
        for i in mine:
            role = "grid_worker_fulltime" if urban[v] or rng.random() < 0.2 else "grid_worker_parttime"
            if worker is None or urban[v] or i == expired or rng.random() > 0.1:
                worker = person()  # else a rural part-timer keeps two neighbouring grids (一人多职)
            if i == expired:
                assign(worker, grid(i), role, day("2022-01-01", "2023-12-31"),
                       as_of.replace(day=1) - timedelta(days=int(rng.integers(1, 28))))
                defects.append({"kind": "expired_assignment", "codes": [codes[i]], "village": vil_codes[v],
                                "area_m2": None, "person": worker, "as_of": as_of.isoformat(),
                                "note": "the only grid worker's appointment ended last month"})
                worker = None
                continue
            start_w = day("2021-06-01", "2025-12-31")
            if rng.random() < 0.1:  # appointment history: a predecessor
                assign(person(), grid(i), role, day("2018-01-01", "2021-05-31"), start_w - timedelta(days=1))
            assign(worker, grid(i), role, start_w)
            if urban[v] and rng.random() < 0.2:
                assign(person(False), grid(i), "building_head", day("2022-01-01", "2025-12-31"))
        for k in range(1 + int(rng.random() < 0.4)):
            ref = leader if k == 0 and rng.random() < 0.3 else person(False)  # 一人多职
            assign(ref, vil_codes[v] + "901", "env_informant", day("2022-01-01", "2025-06-30"))
        if v % 2 == 0:  # one resident police officer for two villages
            police = person(False)
        assign(police, vil_codes[v], "police", day("2020-01-01", "2024-12-31"))
    urban_grids = [i for i in staffed if urban[owner[i]]]
    while len(persons) < round(1.5 * n):  # about 1.5 persons per grid: the rest are building heads
        i = urban_grids[int(rng.integers(len(urban_grids)))]
        assign(person(False), grid(i), "building_head", day("2022-01-01", "2025-12-31"))

    # --- write ------------------------------------------------------------------------
    admin = _to_lonlat(np.r_[[county, town], vil])
    lonlat_vil = admin[2:]
    admin_props = ([{"code": COUNTY, "name": "演示县", "level": "county", "layer": "admin", "parent": None},
                    {"code": TOWN, "name": "青禾镇", "level": "town", "layer": "admin", "parent": COUNTY}]
                   + [{"code": c, "name": nm, "level": "village", "layer": "admin", "parent": TOWN}
                      for c, nm in zip(vil_codes, vil_names)])
    env_props = [{"code": c + "901", "name": f"{nm}环境监管网格", "level": "grid", "layer": "environment",
                  "parent": c} for c, nm in zip(vil_codes, vil_names)]
    return {
        "areas": _write_geojson(out_dir / "areas.geojson", "admin", admin_props, admin),
        "grids": _write_geojson(out_dir / "grids.geojson", "comprehensive", [grid_props[i] for i in reading],
                                _to_lonlat(grids[reading])),
        "environment_grids": _write_geojson(out_dir / "environment_grids.geojson", "environment", env_props,
                                            lonlat_vil),
        "persons": _write_json(out_dir / "persons.json", persons),
        "assignments": _write_json(out_dir / "assignments.json", assignments),
        "defects": _write_json(out_dir / "defects.json", {"seed": seed, "as_of": as_of.isoformat(),
                                                          "metric_crs": METRIC_CRS, "defects": defects}),
    }


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("data/demo")
    for key, path in generate(target, *(int(a) for a in sys.argv[2:3])).items():
        print(f"{key}: {path}")
