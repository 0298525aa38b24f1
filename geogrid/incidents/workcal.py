"""Working time: time limits of cases are counted in working hours or working days.

Weekends are off, configurable holidays are off, and make-up working days (调休, a
Saturday or Sunday worked in exchange for a holiday) are on. A working day runs from
``day_start`` to ``day_end`` in the service's time zone.

>>> import datetime as dt
>>> from zoneinfo import ZoneInfo
>>> cal = WorkCalendar(holidays={dt.date(2026, 10, 1)}, tz=ZoneInfo("Asia/Shanghai"))
>>> friday_4pm = dt.datetime(2026, 11, 20, 16, 0, tzinfo=cal.tz)
>>> cal.add(friday_4pm, 4, "working_hours").isoformat()   # 1.5 h on Friday, 2.5 h on Monday
'2026-11-23T11:00:00+08:00'
>>> cal.add(friday_4pm, 1, "working_days").isoformat()    # by the end of Monday
'2026-11-23T17:30:00+08:00'
>>> cal.working_hours_between(friday_4pm, dt.datetime(2026, 11, 23, 10, 0, tzinfo=cal.tz))
3.0
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

UNITS = ("working_hours", "working_days", "hours", "days")


@dataclass
class WorkCalendar:
    holidays: Iterable[dt.date] = field(default_factory=set)
    workdays: Iterable[dt.date] = field(default_factory=set)
    day_start: dt.time = dt.time(8, 30)
    day_end: dt.time = dt.time(17, 30)
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Shanghai"))

    def __post_init__(self) -> None:
        self.holidays, self.workdays = frozenset(self.holidays), frozenset(self.workdays)
        if self.day_end <= self.day_start:
            raise ValueError("a working day must end after it starts")

    def is_workday(self, day: dt.date) -> bool:
        if day in self.workdays:
            return True
        return day.weekday() < 5 and day not in self.holidays

    def _bounds(self, day: dt.date) -> tuple[dt.datetime, dt.datetime]:
        return (dt.datetime.combine(day, self.day_start, tzinfo=self.tz),
                dt.datetime.combine(day, self.day_end, tzinfo=self.tz))

    def add(self, start: dt.datetime, amount: float, unit: str) -> dt.datetime:
        """The deadline ``amount`` units after ``start``."""
        if unit not in UNITS:
            raise ValueError(f"unknown time unit {unit!r}; use one of {', '.join(UNITS)}")
        start = start.astimezone(self.tz)
        if unit == "hours":
            return start + dt.timedelta(hours=amount)
        if unit == "days":
            return start + dt.timedelta(days=amount)
        if unit == "working_days":
            day, left = start.date(), int(amount)
            while left > 0:
                day += dt.timedelta(days=1)
                left -= self.is_workday(day)
            if amount == 0:
                return start
            return self._bounds(day)[1]
        remaining = dt.timedelta(hours=amount)
        moment = start
        for _ in range(3660):  # ten years of days: enough for any time limit
            day = moment.date()
            if self.is_workday(day):
                begin, end = self._bounds(day)
                moment = max(moment, begin)
                if moment < end:
                    if moment + remaining <= end:
                        return moment + remaining
                    remaining -= end - moment
            moment = self._bounds(day + dt.timedelta(days=1))[0]
        raise ValueError("time limit too long")

    def working_hours_between(self, a: dt.datetime, b: dt.datetime) -> float:
        """Working hours from ``a`` to ``b`` (negative when ``b`` is earlier)."""
        if b < a:
            return -self.working_hours_between(b, a)
        a, b = a.astimezone(self.tz), b.astimezone(self.tz)
        total = dt.timedelta()
        day = a.date()
        while day <= b.date():
            if self.is_workday(day):
                begin, end = self._bounds(day)
                lo, hi = max(begin, a), min(end, b)
                if hi > lo:
                    total += hi - lo
            day += dt.timedelta(days=1)
        return round(total.total_seconds() / 3600, 4)
