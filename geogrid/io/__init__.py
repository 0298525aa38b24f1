"""Files in and out (GeoJSON, GeoPackage, Shapefile, incident tables) and the demo data set.
"""
