"""Coverage of the stored grids: checks (gaps, overlaps, responsibility, size), stored
runs, repair proposals and exemption masks. The engine itself is :mod:`geogrid.geo.coverage`.
"""
