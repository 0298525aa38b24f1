"""Publication to the public and to GIS clients: a planner publishes a layer (or one grid)
and the public sees that generation until the next one (:mod:`.generations`); what is
public is defined once, by the database views of migration 0013 and the serializers of
:mod:`.public`; OGC API - Features reads them (:mod:`.features`) and vector tiles are cut
from them (:mod:`.tiles`).
"""
