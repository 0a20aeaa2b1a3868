"""Who may book now: age against the priority groups, and (optionally) an invitation code.

Checked when a visitor starts and again inside every hold and booking request, so a form
posted around the start page gains nothing.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from booking_backend.settings import PriorityGroup

_DOTTED = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})$")
_ISO = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
OLDEST_AGE = 125


class InvalidInput(ValueError):
    """Input a person typed is not usable; `field` names the form field, `code` is stable."""

    def __init__(self, field: str, code: str) -> None:
        super().__init__(f"{field}: {code}")
        self.field = field
        self.code = code


def parse_birth_date(raw: object, today: dt.date, field: str = "birth_date") -> dt.date:
    """Accept `24.12.1938`, `1938-12-24` (and single-digit day/month)."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidInput(field, "birth_date_missing")
    value = raw.strip()
    match = _DOTTED.match(value)
    if match:
        day, month, year = (int(g) for g in match.groups())
    else:
        match = _ISO.match(value)
        if not match:
            raise InvalidInput(field, "birth_date_format")
        year, month, day = (int(g) for g in match.groups())
    try:
        born = dt.date(year, month, day)
    except ValueError as exc:
        raise InvalidInput(field, "birth_date_invalid") from exc
    if born > today:
        raise InvalidInput(field, "birth_date_future")
    if age_on(born, today) > OLDEST_AGE:
        raise InvalidInput(field, "birth_date_too_old")
    return born


def age_on(born: dt.date, day: dt.date) -> int:
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


@dataclass(frozen=True, slots=True)
class Decision:
    eligible: bool
    age: int
    group: PriorityGroup | None  # the open group the person belongs to
    reason: str  # "ok" | "group_not_open" | "invitation_needed" | "invitation_invalid" | ...
    open_groups: tuple[PriorityGroup, ...]
    next_group: PriorityGroup | None  # the person's own group when it is not open yet


def decide(
    born: dt.date,
    today: dt.date,
    groups: tuple[PriorityGroup, ...],
    *,
    invitation_min_age: int | None = None,
    invitations_required: bool = False,
) -> Decision:
    """Eligible when an open group admits the person's age, or, in invitation mode, when the
    invitation's wave admits it (the letters themselves open a group)."""
    age = age_on(born, today)
    open_groups = tuple(g for g in groups if g.is_open(today))
    own = [g for g in groups if g.min_age <= age]
    own_group = max(own, key=lambda g: g.min_age) if own else None
    if invitations_required:
        if invitation_min_age is None:
            return Decision(False, age, None, "invitation_needed", open_groups, None)
        if age < invitation_min_age:
            return Decision(False, age, None, "invitation_age", open_groups, None)
        return Decision(True, age, own_group, "ok", open_groups, None)
    fitting = [g for g in open_groups if g.min_age <= age]
    if fitting:
        return Decision(True, age, max(fitting, key=lambda g: g.min_age), "ok", open_groups, None)
    return Decision(False, age, None, "group_not_open", open_groups, own_group)
