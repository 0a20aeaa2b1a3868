"""The waiting list: joining it. Assignment happens inside the Lua scripts that free
capacity (cancel-1.lua, release_slots-0.lua), so each entry is served exactly once."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping

from booking_backend.catalogue import Centre, District
from booking_backend.store import Store

Clock = Callable[[], float]


class Waitlist:
    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def join(
        self, identity: str, district: District, centre: Centre | None,
        fields: Mapping[str, str],
    ) -> tuple[str, int]:
        """Join the list of a centre (when chosen) or of the home district.
        Returns (ok | already_waiting | already_booked, position in that list)."""
        eid = secrets.token_urlsafe(12)
        keys = self._store.keys
        target = keys.wl_centre(centre.id) if centre else keys.wl_district(district.id)
        flat: list[str] = ["district", district.id, "centre", centre.id if centre else ""]
        for key, value in fields.items():
            flat += [key, value]
        reply = await self._store.run(
            self._store.waitlist_join_script, [keys.wl_entry(eid)],
            [self._store.prefix, int(self._clock()), eid, identity, target, *flat],
        )
        return reply[0], int(reply[1]) if len(reply) > 1 else 0
