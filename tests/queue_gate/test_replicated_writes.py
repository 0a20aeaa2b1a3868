"""Writes that must outlive a failover wait for a replica: besides joins, passes and ticks,
an operator's change of the room and the end of a session. With a real master, replica and
three Sentinels, and a relay that starves the replica: while it lags, a change is answered
503 `not_replicated` (Redis took it; the operator sends it again), an ended session keeps
its pass rather than be reopened by a failover; once the replica follows, both go through."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from devtools.servers import LocalSentinel, private_sentinel
from queue_gate.admin import create_admin_app
from queue_gate.keys import store_key
from queue_gate.store import NotReplicated
from tests.queue_gate.conftest import GateFactory, auth
from tests.queue_gate.relay import Relay

ROOM = "replicated-writes"


@pytest.fixture
def starved() -> Iterator[tuple[LocalSentinel, Relay]]:
    relays: list[Relay] = []

    def link(master_port: int) -> int:
        relays.append(Relay(master_port))
        return relays[0].port

    try:
        with private_sentinel(master_link=link) as started:
            yield started, relays[0]
    finally:
        for relay in relays:
            relay.close()


async def test_changes_and_ended_sessions_wait_for_the_replica(
        starved: tuple[LocalSentinel, Relay], make_gate: GateFactory,
        aiohttp_client: object) -> None:
    sentinel, relay = starved
    gate = await make_gate(redis_sentinels=sentinel.sentinels,
                           redis_master=sentinel.master_name, room=ROOM)
    await gate.tick()
    admin: TestClient[web.Request, web.Application] = await aiohttp_client(  # type: ignore[operator]
        create_admin_app(gate.app))
    store = gate.app[store_key]

    response = await admin.patch(f"/admin/rooms/{ROOM}", json={"rate_per_minute": 77},
                                 headers=auth())
    assert response.status == 200, await response.text()
    # Confirmed by the replica (no raise); no pass was issued to this ticket to end.
    assert await store.end_pass("ticket-before") is False

    relay.held.set()  # from here the replica receives nothing
    response = await admin.patch(f"/admin/rooms/{ROOM}", json={"rate_per_minute": 78},
                                 headers=auth())
    assert response.status == 503
    body = await response.json()
    assert body["error"] == "not_replicated"
    assert "again" in body["message"]
    with pytest.raises(NotReplicated):
        await store.end_pass("ticket-while-lagging")
