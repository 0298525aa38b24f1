"""Coordinates as phones and Chinese web maps report them, to WGS84 lon/lat.

GCJ-02 (Amap/Gaode, Tencent) is WGS84 shifted by a published, deliberately non-linear
offset of a few hundred metres; BD-09 (Baidu) adds a further rotation and shift to
GCJ-02. Neither is a datum pyproj knows, so the conversions are implemented here: the
forward offset is the published formula, the inverse an iteration that converges to
well under a centimetre. CGCS2000 (EPSG:4490) agrees with WGS84 to within about a metre
and is taken as is. Outside mainland China GCJ-02 equals WGS84.

>>> lon, lat = wgs84_to_gcj02(120.15, 30.25)
>>> round(float(lon) - 120.15, 4), round(float(lat) - 30.25, 4)
(0.0047, -0.0023)
>>> x, y = gcj02_to_wgs84(lon, lat)
>>> abs(float(x) - 120.15) < 1e-8 and abs(float(y) - 30.25) < 1e-8
True
>>> to_wgs84([116.404], [39.915], "bd09")[0].round(4)  # Tiananmen on a Baidu map
array([116.3914])
"""

from __future__ import annotations

import numpy as np

WGS84, CGCS2000, GCJ02, BD09 = "wgs84", "cgcs2000", "gcj02", "bd09"
ALIASES = {
    "wgs84": WGS84, "epsg:4326": WGS84, "gps": WGS84,
    "cgcs2000": CGCS2000, "epsg:4490": CGCS2000,
    "gcj02": GCJ02, "gcj-02": GCJ02, "amap": GCJ02, "gaode": GCJ02, "tencent": GCJ02,
    "bd09": BD09, "bd-09": BD09, "baidu": BD09,
}
_A = 6378245.0  # Krasovsky 1940 semi-major axis, as in the published GCJ-02 formula
_EE = 0.00669342162296594323
_X_PI = np.pi * 3000.0 / 180.0


def normalise_crs(name: str) -> str:
    """The canonical name of a coordinate system; ValueError for one geogrid cannot convert."""
    key = (name or "").strip().lower()
    if key not in ALIASES:
        raise ValueError(f"unknown coordinate system {name!r}; use wgs84, cgcs2000, gcj02 or bd09")
    return ALIASES[key]


def in_china(lon, lat) -> np.ndarray:
    """The rough box where GCJ-02 applies (the formula leaves other places alone)."""
    lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    return (lon > 72.004) & (lon < 137.8347) & (lat > 0.8293) & (lat < 55.8271)


def _offset(lon, lat):
    x, y = lon - 105.0, lat - 35.0
    dlat = (-100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
            + (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
            + (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
            + (160.0 * np.sin(y / 12.0 * np.pi) + 320 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0)
    dlon = (300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
            + (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
            + (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
            + (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0)
    rad = lat / 180.0 * np.pi
    magic = 1 - _EE * np.sin(rad) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1 - _EE)) / (magic * sqrt_magic) * np.pi)
    dlon = (dlon * 180.0) / (_A / sqrt_magic * np.cos(rad) * np.pi)
    return dlon, dlat


def wgs84_to_gcj02(lon, lat):
    """WGS84 lon/lat (degrees, scalars or arrays) to GCJ-02; points outside China are returned
    unchanged."""
    lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    dlon, dlat = _offset(lon, lat)
    inside = in_china(lon, lat)
    return np.where(inside, lon + dlon, lon), np.where(inside, lat + dlat, lat)


def gcj02_to_wgs84(lon, lat, iterations: int = 8):
    """Inverse of :func:`wgs84_to_gcj02` by fixed-point iteration (error < 1e-9 degrees)."""
    lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    x, y = lon.copy(), lat.copy()
    for _ in range(iterations):
        gx, gy = wgs84_to_gcj02(x, y)
        x, y = x - (gx - lon), y - (gy - lat)
    return x, y


def bd09_to_gcj02(lon, lat, iterations: int = 4):
    """Inverse of :func:`gcj02_to_bd09`: the published one-step formula, refined by
    fixed-point iteration (it alone is off by up to 0.2 m)."""
    bx, by = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    x, y = bx - 0.0065, by - 0.006
    z = np.sqrt(x * x + y * y) - 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _X_PI)
    gx, gy = z * np.cos(theta), z * np.sin(theta)
    for _ in range(iterations):
        fx, fy = gcj02_to_bd09(gx, gy)
        gx, gy = gx - (fx - bx), gy - (fy - by)
    return gx, gy


def gcj02_to_bd09(lon, lat):
    """GCJ-02 lon/lat (degrees, scalars or arrays) to BD-09, by the published formula."""
    x, y = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    z = np.sqrt(x * x + y * y) + 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) + 0.000003 * np.cos(x * _X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def to_wgs84(lon, lat, crs: str):
    """Convert arrays of lon/lat in ``crs`` (wgs84, cgcs2000, gcj02, bd09) to WGS84."""
    crs = normalise_crs(crs)
    lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    if crs in (WGS84, CGCS2000):
        return lon, lat
    if crs == BD09:
        lon, lat = bd09_to_gcj02(lon, lat)
    return gcj02_to_wgs84(lon, lat)
