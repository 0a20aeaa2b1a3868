"""The waiting list: joining it. Assignment happens inside the Lua scripts that free
capacity (cancel-n.lua, release_slots-n.lua), so each entry is served exactly once."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping

from booking_backend.catalogue import Centre, District
from booking_backend.store import MAX_ATTEMPTS, Store, StoreConflict

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
        existing, existing_list = "", ""  # the person's entry, learnt from the script
        for _ in range(MAX_ATTEMPTS):
            entry = keys.wl_entry(eid)
            reply = await self._store.run(
                self._store.waitlist_join_script,
                [entry, keys.identities, keys.wl_identities, keys.wl_seq, target, keys.counts,
                 keys.wl_entry(existing) if existing else entry, existing_list or entry],
                [int(self._clock()), eid, identity, existing, *flat],
            )
            status = reply.text("outcome")
            if status == "previous":
                # Race: the person's entry is not the one we expected (a first try expects
                # none, or they joined meanwhile): declare it and its list, try again.
                existing = reply.text("entry")
                existing_list = (await self._store.hget(keys.wl_entry(existing), "list")
                                 or "") if existing else ""
                continue
            return status, 0 if status == "already_booked" else reply.integer("position")
        raise StoreConflict("waitlist_join-8.lua: the person's entry kept changing")
