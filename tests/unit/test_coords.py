"""GCJ-02 (Amap) and BD-09 (Baidu) back to WGS84: the round trip over China, no database."""

from __future__ import annotations

import numpy as np

from geogrid.geo import coords


def test_gcj02_is_converted_within_1e_6_degrees_everywhere_in_china():
    rng = np.random.default_rng(3)
    x, y = rng.uniform(74, 134, 20000), rng.uniform(18, 53, 20000)
    back = coords.to_wgs84(*coords.wgs84_to_gcj02(x, y), "gcj02")
    assert np.abs(back[0] - x).max() < 1e-8 and np.abs(back[1] - y).max() < 1e-8


def test_bd09_is_converted_within_1e_6_degrees():
    rng = np.random.default_rng(4)
    for box in ((119.9, 29.9, 120.2, 30.2), (74, 18, 134, 53)):
        x, y = rng.uniform(box[0], box[2], 20000), rng.uniform(box[1], box[3], 20000)
        back = coords.to_wgs84(*coords.gcj02_to_bd09(*coords.wgs84_to_gcj02(x, y)), "bd09")
        worst = max(np.abs(back[0] - x).max(), np.abs(back[1] - y).max())
        assert worst < 1e-6, worst
