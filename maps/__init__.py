"""Folium maps: the planner's (boundaries, coverage problems, drawing), the inspector's
(incidents, pollution sources, patrols) and the public grid board (网格公示).

One module per page (``planner.py``, ``inspector.py``, ``public.py``: fetch domain results,
put them on a map); ``views.py`` turns those results into the plain properties, rows and
cards a page shows; ``base.py`` is the shared page machinery (labels, base map, colours,
the final HTML and its Content-Security-Policy); ``assets.py`` serves or inlines Leaflet and
``static/*.js``, the pages' own scripts, which the Python side calls with data only.

>>> sorted(KINDS)
['inspector', 'planner', 'public']
"""

from __future__ import annotations

KINDS = ("planner", "inspector", "public")


def render(kind: str, session, settings, **params) -> str:
    """The HTML of one map; ``inline=True`` makes it one standalone file."""
    from maps import inspector, planner, public

    return {"planner": planner.render, "inspector": inspector.render, "public": public.render}[kind](
        session, settings, **params)
