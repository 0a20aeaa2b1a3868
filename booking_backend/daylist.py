"""The centre's side of a booking: who comes on a day, and who came.

The day list of a centre holds every dose of every booking due at that centre on one day of
the deployment's time zone (`BOOKING_TIMEZONE`), found through the indexes
`bookings_by_first_dose` and `bookings_by_second_dose`: one line per person and dose, by
time. Waiting-list assignments are bookings like any other; cancelled bookings stay on the
list, marked, so the desk knows why someone is missing.

Check-in marks a dose `attended` or `no_show` (columns `first_attendance` /
`second_attendance` with the time of the mark). A mark is a state, not an event: the same
mark again changes nothing, a different one replaces it (and its time), so every count is
a count of rows and never counts twice, whichever process or desk marked it.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import zoneinfo
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from booking_backend.catalogue import Catalogue
from booking_backend.db import Connection, Database
from booking_backend.identity import format_code, is_code, normalise_code
from vaccine_queue.pages import Problem

Clock = Callable[[], float]

DOSES = ("first", "second")
MARKS = ("attended", "no_show")
# What the gauges count per centre and day: the two marks, and doses not marked yet.
ATTENDANCE_STATES = (*MARKS, "unmarked")
# The days the gauges cover, relative to the deployment's today.
GAUGE_DAYS = ("today", "yesterday")
# The columns of each dose; the only names ever put into SQL text here.
_COLUMNS = {dose: (f"{dose}_start", f"{dose}_attendance", f"{dose}_marked_at")
            for dose in DOSES}
_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# The CSV's columns, in order: stable, documented in docs/api.md.
CSV_COLUMNS = ("date", "time", "dose", "name", "birth_date", "booking_code", "booking_status",
               "attendance", "marked_at", "flag", "source")
# A cell starting with one of these is a formula to a spreadsheet: it is quoted with '.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True, slots=True)
class Line:
    """One person's dose on the day."""

    start: int
    dose: str  # first | second
    code: str
    name: str  # "" once purged
    birth: dt.date | None  # None once purged
    status: str  # active | cancelled
    source: str  # web | api | waitlist
    attendance: str | None  # attended | no_show | None
    marked_at: int | None
    # Only on second doses: the first was marked no-show (`first_no_show`), or its time has
    # passed without a mark (`first_unmarked`).
    flag: str = ""

    @property
    def active(self) -> bool:
        return self.status == "active"


@dataclass(frozen=True, slots=True)
class DayList:
    centre: str
    centre_name: str
    day: dt.date
    zone: zoneinfo.ZoneInfo
    lines: list[Line]  # by time, then name: active and cancelled
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def active(self) -> list[Line]:
        return [line for line in self.lines if line.active]

    @property
    def cancelled(self) -> list[Line]:
        return [line for line in self.lines if not line.active]


@dataclass(frozen=True, slots=True)
class Mark:
    code: str
    dose: str
    status: str
    marked_at: int
    previous: str | None
    changed: bool


def parse_day(raw: str) -> dt.date:
    """`YYYY-MM-DD`, nothing else (fromisoformat alone would take `20210111` too)."""
    if not _ISO_DAY.fullmatch(raw):
        raise Problem("day_invalid", 422)
    try:
        return dt.date.fromisoformat(raw)
    except ValueError as exc:
        raise Problem("day_invalid", 422) from exc


def day_bounds(day: dt.date, zone: zoneinfo.ZoneInfo) -> tuple[int, int]:
    """The day's first second and the next day's first second, in epoch seconds (a day of a
    clock change is 23 or 25 hours long)."""
    start = dt.datetime.combine(day, dt.time(), zone)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), zone)
    return int(start.timestamp()), int(end.timestamp())


def _flag(dose: str, status: str, first_attendance: str | None, first_start: int,
          now: float) -> str:
    if dose != "second" or status != "active" or first_attendance == "attended":
        return ""
    if first_attendance == "no_show":
        return "first_no_show"
    return "first_unmarked" if first_start <= now else ""


def count_lines(lines: Iterable[Line]) -> dict[str, int]:
    """Doses due (active bookings), attended, no-show and not marked yet. A mark on a booking
    cancelled later (a second dose closed by the centre) still counts: it happened."""
    counts = dict.fromkeys(("due", *ATTENDANCE_STATES, "cancelled"), 0)
    for line in lines:
        if line.attendance is not None:
            counts[line.attendance] += 1
        if line.active:
            counts["due"] += 1
            if line.attendance is None:
                counts["unmarked"] += 1
        else:
            counts["cancelled"] += 1
    return counts


class DayLists:
    """Reads day lists and writes check-in marks; knows the deployment's time zone."""

    def __init__(self, db: Database, clock: Clock, timezone: str) -> None:
        self.db = db
        self.clock = clock
        self.zone = zoneinfo.ZoneInfo(timezone)

    def today(self) -> dt.date:
        return dt.datetime.fromtimestamp(self.clock(), self.zone).date()

    def centre_name(self, catalogue: Catalogue, centre: str) -> str:
        known = catalogue.centres.get(centre)
        if known is None:
            raise Problem("centre_unknown", 404)
        return known.name

    async def day_list(self, catalogue: Catalogue, centre: str, day: dt.date) -> DayList:
        name = self.centre_name(catalogue, centre)
        start, end = day_bounds(day, self.zone)
        # One statement per dose, each through its own (centre, start) index.
        rows = await self.db.fetch(
            "SELECT 'first' AS dose, first_start AS start, * FROM bookings"
            " WHERE centre = $1 AND first_start >= $2 AND first_start < $3"
            " UNION ALL"
            " SELECT 'second' AS dose, second_start AS start, * FROM bookings"
            " WHERE centre = $1 AND second_start >= $2 AND second_start < $3"
            " ORDER BY start, name, code, dose", centre, start, end)
        now = self.clock()
        lines = [
            Line(
                start=row["start"], dose=row["dose"], code=row["code"], name=row["name"] or "",
                birth=row["birth"], status=row["status"], source=row["source"],
                attendance=row[f"{row['dose']}_attendance"],
                marked_at=row[f"{row['dose']}_marked_at"],
                flag=_flag(row["dose"], row["status"], row["first_attendance"],
                           row["first_start"], now),
            )
            for row in rows
        ]
        return DayList(centre, name, day, self.zone, lines, count_lines(lines))

    async def mark(self, code_raw: object, dose: object, status: object) -> Mark:
        """Mark one dose of a booking; the same mark again is answered and changes nothing."""
        if not is_code(code_raw):
            raise Problem("booking_unknown", 404)
        assert isinstance(code_raw, str)
        code = format_code(normalise_code(code_raw))
        if dose not in DOSES:
            raise Problem("dose_invalid", 422, field="dose")
        if status not in MARKS:
            raise Problem("attendance_invalid", 422, field="status")
        assert isinstance(dose, str) and isinstance(status, str)
        start_col, mark_col, at_col = _COLUMNS[dose]
        now = int(self.clock())
        _, today_ends = day_bounds(self.today(), self.zone)

        async def work(conn: Connection) -> Mark:
            # Race: two desks marking one dose at once: the row lock orders them; the second
            # sees the first's mark (same: no change; different: it replaces it).
            row = await conn.fetchrow(
                f"SELECT status, purged_at, {start_col} AS start, {mark_col} AS mark,"  # noqa: S608
                f" {at_col} AS marked_at FROM bookings WHERE code = $1 FOR UPDATE", code)
            if row is None:
                raise Problem("booking_unknown", 404)
            if row["status"] != "active":
                raise Problem("booking_not_active", 409)
            if row["purged_at"] is not None:
                raise Problem("booking_purged", 409)
            # Early arrivals are checked in from the morning of their day, not before.
            if row["start"] >= today_ends:
                raise Problem("dose_not_due", 409)
            if row["mark"] == status:
                return Mark(code, dose, status, row["marked_at"], status, changed=False)
            await conn.execute(
                f"UPDATE bookings SET {mark_col} = $2, {at_col} = $3"  # noqa: S608
                " WHERE code = $1", code, status, now)
            return Mark(code, dose, status, now, row["mark"], changed=True)

        return await self.db.transaction(work)

    async def attendance(self, centres: Iterable[str]) -> dict[tuple[str, str, str], int]:
        """(centre, day, state) -> doses, for today and yesterday, every centre listed (zeros
        included: a centre with nobody due shows 0, not a gap)."""
        ids = sorted(set(centres))
        today = self.today()
        yesterday_start, today_start = day_bounds(today - dt.timedelta(days=1), self.zone)
        _, today_end = day_bounds(today, self.zone)
        counts = {(c, d, s): 0 for c in ids for d in GAUGE_DAYS for s in ATTENDANCE_STATES}
        if not ids:
            return counts
        parts = []
        for dose in DOSES:
            start_col, mark_col, _ = _COLUMNS[dose]
            # `centre = ANY(...)` with a range on the start: one index range scan per centre.
            parts.append(
                f"SELECT centre, {start_col} >= $3 AS today,"  # noqa: S608
                f" coalesce({mark_col}, 'unmarked') AS state, count(*) AS n FROM bookings"
                f" WHERE centre = ANY($1::text[]) AND {start_col} >= $2 AND {start_col} < $4"
                f" AND ({mark_col} IS NOT NULL OR status = 'active')"
                " GROUP BY 1, 2, 3")
        rows = await self.db.fetch(" UNION ALL ".join(parts), ids, yesterday_start,
                                   today_start, today_end)
        for row in rows:
            key = (row["centre"], "today" if row["today"] else "yesterday", row["state"])
            counts[key] = counts.get(key, 0) + row["n"]
        return counts


def _cell(value: str) -> str:
    return f"'{value}" if value.startswith(_FORMULA_START) else value


def to_csv(day_list: DayList) -> str:
    """One row per person and dose, by time; header row; columns `CSV_COLUMNS`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    zone = day_list.zone
    for line in day_list.lines:
        local = dt.datetime.fromtimestamp(line.start, zone)
        marked = ("" if line.marked_at is None
                  else dt.datetime.fromtimestamp(line.marked_at, zone).isoformat())
        writer.writerow((
            local.date().isoformat(), local.strftime("%H:%M"), line.dose, _cell(line.name),
            "" if line.birth is None else line.birth.isoformat(), line.code, line.status,
            line.attendance or "", marked, line.flag, line.source,
        ))
    return out.getvalue()


def to_json(day_list: DayList) -> dict[str, object]:
    zone = day_list.zone
    return {
        "centre": {"id": day_list.centre, "name": day_list.centre_name},
        "date": day_list.day.isoformat(),
        "timezone": zone.key,
        "counts": day_list.counts,
        "lines": [
            {
                "time": dt.datetime.fromtimestamp(line.start, zone).strftime("%H:%M"),
                "start": line.start, "dose": line.dose, "name": line.name,
                "birth_date": None if line.birth is None else line.birth.isoformat(),
                "booking_code": line.code, "booking_status": line.status,
                "attendance": line.attendance, "marked_at": line.marked_at,
                "flag": line.flag or None, "source": line.source,
            }
            for line in day_list.lines
        ],
    }
