"""A booking as a calendar file (RFC 5545): one event per dose, to add to any calendar.

Times are written in UTC (`DTSTART:20210111T070000Z`), which every calendar shows in its
own zone, so no VTIMEZONE block is needed and summer time cannot be got wrong. Texts are
the catalogue's, in the page's language; lines end in CRLF and are folded at 75 octets.
"""

from __future__ import annotations

import datetime as dt

from booking_backend.catalogue import Centre
from booking_backend.inventory import Booking
from vaccine_queue.i18n import Translator

# How long each appointment is shown in the calendar (slots carry only their start).
EVENT_MINUTES = 15
PRODID = "-//vaccine-queue//booking//EN"


def escape(text: str) -> str:
    """TEXT values (RFC 5545 3.3.11): backslash, semicolon, comma and newline escaped."""
    return (text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
            .replace("\r\n", "\\n").replace("\n", "\\n"))


def fold(line: str) -> str:
    """Lines longer than 75 octets continue on the next line after CRLF and a space,
    never inside a UTF-8 sequence (RFC 5545 3.1)."""
    out: list[str] = []
    current, size = "", 0
    for char in line:
        width = len(char.encode())
        if size + width > (75 if not out else 74):
            out.append(current)
            current, size = "", 0
        current += char
        size += width
    out.append(current)
    return "\r\n ".join(out)


def utc(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def booking_calendar(booking: Booking, centre: Centre | None, t: Translator, *,
                     now: float, domain: str) -> bytes:
    """Both appointments of `booking` as a VCALENDAR; `domain` makes the UIDs unique."""
    where = f"{centre.name}, {centre.address}" if centre else ""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", f"PRODID:{PRODID}", "CALSCALE:GREGORIAN",
             "METHOD:PUBLISH"]
    for dose, slot, summary in (("first", booking.first, "ics.summary_first"),
                                ("second", booking.second, "ics.summary_second")):
        lines += [
            "BEGIN:VEVENT",
            f"UID:{booking.code}-{dose}@{domain}",
            f"DTSTAMP:{utc(now)}",
            f"DTSTART:{utc(slot.start)}",
            f"DTEND:{utc(slot.start + EVENT_MINUTES * 60)}",
            f"SUMMARY:{escape(t(summary))}",
            f"DESCRIPTION:{escape(t('ics.description', code=booking.code))}",
            *([f"LOCATION:{escape(where)}"] if where else []),
            "STATUS:CONFIRMED",
            "TRANSP:OPAQUE",
            "END:VEVENT",
        ]
    lines.append("END:VCALENDAR")
    return ("".join(fold(line) + "\r\n" for line in lines)).encode()
