"""The case state machine: states, legal transitions, who may enter each state, and the
step whose time limit applies in each state. Pure rules, no SQL.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from geogrid.core.settings import Settings
from geogrid.incidents.workcal import WorkCalendar

STATES = {
    "reported": ("上报", "Reported"), "accepted": ("受理", "Accepted"), "filed": ("立案", "Filed"),
    "dispatched": ("派遣", "Dispatched"), "in_progress": ("处置", "In progress"), "handled": ("反馈", "Handled"),
    "verified": ("核查", "Verified"), "closed": ("结案", "Closed"), "void": ("作废", "Void"),
    "parked": ("挂账", "Parked"),
}
TRANSITIONS = {
    "reported": ("accepted", "void"),
    "accepted": ("filed", "void"),
    "filed": ("dispatched", "void"),
    "dispatched": ("in_progress", "parked"),
    "in_progress": ("handled", "parked"),
    "handled": ("verified", "in_progress"),
    "verified": ("closed",),
    "parked": ("in_progress", "void"),
    "closed": (),
    "void": (),
}
TERMINAL = ("closed", "void")
# Who may move a case into each state: the centre (inspectors, planners) runs the case;
# the grid worker or the department handles it.
CENTRE = ("inspector", "planner")
HANDLERS = ("grid_worker", "department_handler", "inspector")
MAY_ENTER = {"accepted": CENTRE, "filed": CENTRE, "dispatched": CENTRE, "void": CENTRE, "parked": CENTRE,
             "in_progress": HANDLERS, "handled": HANDLERS, "verified": CENTRE, "closed": CENTRE}
# The time limit that starts when a case enters a state (the step it must finish next).
STEP_OF = {"reported": "accept", "accepted": "dispatch", "dispatched": "handle", "handled": "verify"}
# The step a case is in, whichever state of it: what an imported open case is timed on.
STEP_IN = {"reported": "accept", "accepted": "dispatch", "filed": "dispatch", "dispatched": "handle",
           "in_progress": "handle", "handled": "verify", "verified": "verify"}


def calendar(settings: Settings) -> WorkCalendar:
    """The working calendar time limits are counted in: holidays, extra workdays, working hours
    and time zone from the settings."""
    return WorkCalendar(holidays=settings.holidays, workdays=settings.extra_workdays,
                        day_start=settings.work_day_start, day_end=settings.work_day_end,
                        tz=ZoneInfo(settings.timezone))
