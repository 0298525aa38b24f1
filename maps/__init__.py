"""Folium maps: the planner's (boundaries, coverage problems, drawing), the inspector's
(incidents, pollution sources, patrols) and the public grid board (网格公示).

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
