"""Choosing an appointment by day and time of day: what a person (`?day=&time_of_day=` on
the appointments page) or an app (the same query parameters on `POST /api/v1/offers`)
asked for, checked, and the window of first-dose starts it means in the deployment's zone.

Times of day are wall-clock hours in the deployment's zone: morning before 12:00,
afternoon 12:00 to 17:00, evening from 17:00.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass

from vaccine_queue.pages import Problem

ALL_DAY = "all"
# Name -> [first hour, end hour) of the first dose's start.
TIMES_OF_DAY: Mapping[str, tuple[int, int]] = {
    "morning": (0, 12), "afternoon": (12, 17), "evening": (17, 24),
}
CHOICES = (ALL_DAY, *TIMES_OF_DAY)


@dataclass(frozen=True, slots=True)
class DayChoice:
    """A day (None: not chosen, the first day with free pairs is shown) and a time of day
    (`all` or one of TIMES_OF_DAY)."""

    day: dt.date | None = None
    time_of_day: str = ALL_DAY

    @property
    def hours(self) -> tuple[int, int] | None:
        """Local wall-clock hours [from, to) of the time of day; None for the whole day."""
        return TIMES_OF_DAY.get(self.time_of_day)

    def on(self, day: dt.date) -> DayChoice:
        return DayChoice(day, self.time_of_day)

    def window(self, zone: zoneinfo.ZoneInfo) -> tuple[int, int] | None:
        """First and last second (epoch) of the chosen day; None without a day. (The time
        of day narrows it further through `hours`, on every day when none is chosen.)"""
        if self.day is None:
            return None
        start = dt.datetime.combine(self.day, dt.time(), zone)
        end = dt.datetime.combine(self.day + dt.timedelta(days=1), dt.time(), zone)
        return int(start.timestamp()), int(end.timestamp()) - 1


def parse_choice(day_raw: str | None, time_raw: str | None) -> DayChoice:
    """`day=YYYY-MM-DD` and `time_of_day=all|morning|afternoon|evening`, both optional
    (None: not given); anything else, the empty string too, is a 422 naming the parameter."""
    day: dt.date | None = None
    if day_raw is not None:  # given, even empty: it must be a day
        try:
            if len(day_raw) != 10:
                raise ValueError(day_raw)
            day = dt.date.fromisoformat(day_raw)
        except ValueError:
            raise Problem("day_invalid", 422, field="day") from None
    time_of_day = ALL_DAY if time_raw is None else time_raw
    if time_of_day not in CHOICES:
        raise Problem("time_of_day_invalid", 422, field="time_of_day")
    return DayChoice(day, time_of_day)
