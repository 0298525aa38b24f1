"""The pure geometry core: GeoJSON parsing and polygon checks, coordinate systems, area
codes, point routing and the coverage engine. No SQL: nothing here imports a database library.
"""
