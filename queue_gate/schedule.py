"""What a room's schedule means for a waiting visitor: its next change of mode.

The schedule itself (timed changes, each applied once by whichever gate process is first)
lives in Redis (`RoomStore.set_schedule`, lua/apply_schedule-3.lua); every process keeps
the pending entries it last read and works out from them, without a round trip, the next
change that concerns someone in line: a closing, a pause, or an opening.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from queue_gate.store import ScheduledChange

# Modes in which the line moves (or lets everyone through).
OPEN_MODES = ("queue", "passthrough")

Change = Literal["closes", "pauses", "opens"]


@dataclass(frozen=True, slots=True)
class NextChange:
    """The room's next scheduled change of mode that concerns visitors, at `at`."""

    change: Change
    at: float

    def as_json(self) -> dict[str, Any]:
        return {"change": self.change,
                "at": dt.datetime.fromtimestamp(self.at, dt.UTC).isoformat()}


def next_change(mode: str, entries: Sequence[ScheduledChange]) -> NextChange | None:
    """The first entry (in time order) that closes the room, pauses an open one or opens a
    paused or closed one, starting from `mode`; entries that leave the mode alone or move
    between the open modes (or from paused to ... paused) are stepped over. An opening that
    also sets an opening time says the later of the two."""
    current = mode
    for entry in sorted(entries, key=lambda item: item.at):
        new = entry.changes.get("mode")
        if not isinstance(new, str) or new == current:
            continue
        if new == "closed":
            return NextChange("closes", entry.at)
        if new == "paused" and current in OPEN_MODES:
            return NextChange("pauses", entry.at)
        if new in OPEN_MODES and current not in OPEN_MODES:
            opens_at = entry.changes.get("opens_at")
            at = entry.at
            if opens_at is not None:
                with contextlib.suppress(ValueError):
                    at = max(at, float(opens_at))
            return NextChange("opens", at)
        current = new
    return None
