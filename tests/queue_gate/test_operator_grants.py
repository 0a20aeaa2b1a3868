"""Per-room operator tokens (queue_gate/operators.py): a viewer reads and cannot change, an
operator of one room changes that room and cannot see another, the admin does everything;
through the admin API and the console alike, on real gates sharing one Redis."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from queue_gate.admin import create_admin_app
from queue_gate.operators import FULL, Grant, Role, parse_grant
from queue_gate.settings import Settings
from tests.queue_gate.conftest import ADMIN_TOKEN, Gate, GateFactory, auth
from vaccine_queue.config import SettingsError

Client = TestClient[web.Request, web.Application]
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')

# The state's line, a test centre's own site, and who may touch which.
STATE, CENTRE = "state", "centre"
TOKENS = {
    "state-ops": "state-ops-token-0123",  # no grant: admin of every room
    "centre-ops": "centre-ops-token-0123",  # operator of the centre's room only
    "press": "press-token-0123456789",  # viewer of every room
    "centre-desk": "centre-desk-token-0123",  # viewer of the centre's room only
}
GRANTS = ("centre-ops=operator:centre", "press=viewer", "centre-desk=viewer:centre")


@dataclass
class Rooms:
    admin: Client  # the admin port of the state's gate
    state: Gate
    centre: Gate


@pytest.fixture
async def rooms(make_gate: GateFactory,
                aiohttp_client: Callable[..., Awaitable[Client]]) -> Rooms:
    """Two rooms on one Redis, each created by its own gate; operators' tools talk to the
    state's gate's admin port, which serves every room."""
    tokens = tuple(f"{name}:{token}" for name, token in TOKENS.items())
    state = await make_gate(room=STATE, admin_tokens=tokens, operator_grants=GRANTS)
    centre = await make_gate(room=CENTRE, admin_tokens=tokens, operator_grants=GRANTS)
    await state.tick()
    await centre.tick()
    return Rooms(await aiohttp_client(create_admin_app(state.app)), state, centre)


def bearer(name: str) -> dict[str, str]:
    return auth(TOKENS[name])


async def rate_of(rooms: Rooms, room: str) -> int:
    answer = await rooms.admin.get(f"/admin/rooms/{room}", headers=auth())
    assert answer.status == 200
    rate = (await answer.json())["rate_per_minute"]
    assert isinstance(rate, int)
    return rate


# -- the admin API -------------------------------------------------------------------------

async def test_a_viewer_reads_every_room_and_changes_none(rooms: Rooms) -> None:
    listed = await rooms.admin.get("/admin/rooms", headers=bearer("press"))
    assert sorted((await listed.json())["rooms"]) == [CENTRE, STATE]
    for room in (STATE, CENTRE):
        read = await rooms.admin.get(f"/admin/rooms/{room}", headers=bearer("press"))
        assert read.status == 200 and (await read.json())["room"] == room
        refused = await rooms.admin.patch(f"/admin/rooms/{room}", headers=bearer("press"),
                                          json={"mode": "paused"})
        assert refused.status == 403
        assert refused.content_type == "application/json"
        answer = await refused.json()
        assert answer["error"] == "forbidden"
        assert "viewer" in answer["message"] and "operator" in answer["message"]
        # Even a body the API would refuse: the role is checked first, nothing is read.
        broken = await rooms.admin.patch(f"/admin/rooms/{room}", headers=bearer("press"),
                                         data=b"{oops")
        assert broken.status == 403
    audit = await rooms.admin.get("/admin/audit", headers=bearer("press"))
    assert audit.status == 200 and (await audit.json())["entries"] == []
    state = await (await rooms.admin.get(f"/admin/rooms/{STATE}", headers=auth())).json()
    assert state["mode"] == "queue"


async def test_an_operator_of_one_room_changes_it_and_cannot_see_the_other(
        rooms: Rooms) -> None:
    changed = await rooms.admin.patch(f"/admin/rooms/{CENTRE}", headers=bearer("centre-ops"),
                                      json={"rate_per_minute": 30})
    assert changed.status == 200 and (await changed.json())["rate_per_minute"] == 30

    # The state's line: refused as if it did not exist, like a room nobody created.
    for method, path in (("PATCH", f"/admin/rooms/{STATE}"), ("GET", f"/admin/rooms/{STATE}"),
                         ("GET", f"/admin/audit?room={STATE}"),
                         ("PATCH", "/admin/rooms/nowhere"), ("GET", "/admin/rooms/nowhere")):
        refused = await rooms.admin.request(method, path, headers=bearer("centre-ops"),
                                            json={"mode": "paused"})
        assert refused.status == 404, (method, path)
        assert (await refused.json())["error"] == "room_not_found"
    assert await rate_of(rooms, STATE) == 60
    state = await (await rooms.admin.get(f"/admin/rooms/{STATE}", headers=auth())).json()
    assert state["mode"] == "queue"

    listed = await rooms.admin.get("/admin/rooms", headers=bearer("centre-ops"))
    assert (await listed.json())["rooms"] == [CENTRE]
    # The admin changes the state's room; the centre's operator does not see that either.
    assert (await rooms.admin.patch(f"/admin/rooms/{STATE}", headers=auth(),
                                    json={"rate_per_minute": 90})).status == 200
    own = await (await rooms.admin.get("/admin/audit", headers=bearer("centre-ops"))).json()
    assert [(e["operator"], e["room"], e["new"]) for e in own["entries"]] == [
        ("centre-ops", CENTRE, 30)]
    every = await (await rooms.admin.get("/admin/audit", headers=auth())).json()
    assert {(e["operator"], e["room"]) for e in every["entries"]} == {
        ("centre-ops", CENTRE), ("admin", STATE)}


async def test_a_viewer_of_one_room_sees_only_that_room(rooms: Rooms) -> None:
    listed = await rooms.admin.get("/admin/rooms", headers=bearer("centre-desk"))
    assert (await listed.json())["rooms"] == [CENTRE]
    assert (await rooms.admin.get(f"/admin/rooms/{CENTRE}",
                                  headers=bearer("centre-desk"))).status == 200
    assert (await rooms.admin.get(f"/admin/rooms/{STATE}",
                                  headers=bearer("centre-desk"))).status == 404
    refused = await rooms.admin.patch(f"/admin/rooms/{CENTRE}", headers=bearer("centre-desk"),
                                      json={"rate_per_minute": 1})
    assert refused.status == 403
    assert await rate_of(rooms, CENTRE) == 60


async def test_the_admin_and_operators_without_a_grant_change_every_room(
        rooms: Rooms) -> None:
    for headers, rate in ((auth(), 70), (bearer("state-ops"), 80)):
        listed = await rooms.admin.get("/admin/rooms", headers=headers)
        assert sorted((await listed.json())["rooms"]) == [CENTRE, STATE]
        for room in (STATE, CENTRE):
            changed = await rooms.admin.patch(f"/admin/rooms/{room}", headers=headers,
                                              json={"rate_per_minute": rate})
            assert changed.status == 200
            assert await rate_of(rooms, room) == rate


async def test_metrics_and_health_stay_open_as_before(rooms: Rooms) -> None:
    assert (await rooms.admin.get("/metrics")).status == 200
    assert (await rooms.admin.get("/healthz")).status == 200
    assert (await rooms.admin.get("/admin/rooms")).status == 401


# -- the console ---------------------------------------------------------------------------

async def sign_in(client: Client, name: str) -> str:
    """Sign in as `name` (English); the CSRF token of the rooms page."""
    client.session.cookie_jar.clear()
    response = await client.post("/console/login", data={"token": TOKENS[name],
                                                         "next": "/console/"},
                                 allow_redirects=False)
    assert response.status == 303
    page = await client.get("/console/?lang=en")
    assert page.status == 200
    found = CSRF.search(await page.text())
    assert found is not None
    return found.group(1)


async def test_the_console_shows_a_viewer_the_rooms_without_the_forms(rooms: Rooms) -> None:
    console = rooms.admin
    csrf = await sign_in(console, "press")
    index = await (await console.get("/console/?lang=en")).text()
    assert f"/console/rooms/{STATE}" in index and f"/console/rooms/{CENTRE}" in index
    page = await console.get(f"/console/rooms/{STATE}?lang=en")
    text = await page.text()
    assert page.status == 200
    assert "may look at this room but not change it" in text
    assert "/change" not in text and 'name="rate_per_minute"' not in text
    assert "/schedule/add" not in text and "/schedule/remove" not in text
    for action in ("change", "apply", "schedule/add", "schedule/remove"):
        refused = await console.post(f"/console/rooms/{STATE}/{action}?lang=en",
                                     data={"csrf_token": csrf, "rate_per_minute": "5",
                                           "date": "2030-01-01", "time": "08:00",
                                           "version": "0", "id": "x"})
        assert refused.status == 403, action
        assert refused.content_type == "text/html"
        assert "role is “viewer” (reading only)" in await refused.text()
    german = await console.post(f"/console/rooms/{STATE}/apply?lang=de",
                                data={"csrf_token": csrf, "rate_per_minute": "5"})
    assert german.status == 403 and "nur lesen" in await german.text()
    assert await rate_of(rooms, STATE) == 60
    figures = await console.get(f"/console/rooms/{CENTRE}/figures.json")
    assert figures.status == 200


async def test_the_console_shows_a_room_operator_only_their_room(rooms: Rooms) -> None:
    console = rooms.admin
    csrf = await sign_in(console, "centre-ops")
    index = await (await console.get("/console/?lang=en")).text()
    assert f"/console/rooms/{CENTRE}" in index and f"/console/rooms/{STATE}" not in index
    own = await (await console.get(f"/console/rooms/{CENTRE}?lang=en")).text()
    assert f'action="/console/rooms/{CENTRE}/change"' in own

    # The state's room, as a room that does not exist: pages, figures, forms, its audit.
    for path in (f"/console/rooms/{STATE}", f"/console/audit?room={STATE}",
                 "/console/rooms/nowhere"):
        missing = await console.get(f"{path}{'&' if '?' in path else '?'}lang=en")
        assert missing.status == 404, path
        assert "No gate has created this room." in await missing.text()
    figures = await console.get(f"/console/rooms/{STATE}/figures.json")
    assert figures.status == 404 and (await figures.json())["error"] == "console_room_missing"
    for action in ("change", "apply", "schedule/add", "schedule/remove"):
        refused = await console.post(f"/console/rooms/{STATE}/{action}?lang=en",
                                     data={"csrf_token": csrf, "rate_per_minute": "5",
                                           "date": "2030-01-01", "time": "08:00",
                                           "version": "0", "id": "x"})
        assert refused.status == 404, action
    assert await rate_of(rooms, STATE) == 60

    # Their own room changes through the confirmation step; the audit shows only it.
    confirm = await console.post(f"/console/rooms/{CENTRE}/change?lang=en",
                                 data={"csrf_token": csrf, "rate_per_minute": "5"})
    assert confirm.status == 200
    applied = await console.post(f"/console/rooms/{CENTRE}/apply",
                                 data={"csrf_token": csrf, "rate_per_minute": "5"},
                                 allow_redirects=False)
    assert applied.status == 303
    assert await rate_of(rooms, CENTRE) == 5
    assert (await rooms.admin.patch(f"/admin/rooms/{STATE}", headers=auth(),
                                    json={"rate_per_minute": 90})).status == 200
    audit = await (await console.get("/console/audit?lang=en")).text()
    assert '<td class="operator">centre-ops</td>' in audit
    assert '<td class="operator">admin</td>' not in audit


async def test_a_changed_grant_applies_to_a_running_session(
        rooms: Rooms, make_gate: GateFactory,
        aiohttp_client: Callable[..., Awaitable[Client]]) -> None:
    """The grant is read at every request: a gate restarted with the operator made a viewer
    keeps their session (same token) but no longer shows them the forms."""
    await sign_in(rooms.admin, "centre-ops")
    cookies = rooms.admin.session.cookie_jar.filter_cookies(
        rooms.admin.make_url("/console/"))
    tokens = tuple(f"{name}:{token}" for name, token in TOKENS.items())
    demoted = await make_gate(room=STATE, admin_tokens=tokens,
                              operator_grants=("centre-ops=viewer:centre",))
    other = await aiohttp_client(create_admin_app(demoted.app))
    other.session.cookie_jar.update_cookies({k: v.value for k, v in cookies.items()})
    page = await other.get(f"/console/rooms/{CENTRE}?lang=en")
    assert page.status == 200
    assert "may look at this room but not change it" in await page.text()


# -- configuration -------------------------------------------------------------------------

def settings(**env: str) -> Settings:
    return Settings.from_env({"QUEUE_GATE_SECRETS": "s", "QUEUE_GATE_ADMIN_TOKEN": ADMIN_TOKEN,
                              "QUEUE_GATE_ADMIN_TOKENS": "anna:a-token,ben:b-token,cem:c-token",
                              **env})


def test_grants_are_read_from_the_environment() -> None:
    read = settings(QUEUE_GATE_OPERATOR_GRANTS=(
        " anna = viewer , ben=operator:centre+over-80 , cem=admin:* "))
    assert read.grant_of("anna") == Grant(Role.VIEWER)
    assert read.grant_of("ben") == Grant(Role.OPERATOR, frozenset({"centre", "over-80"}))
    assert read.grant_of("cem") == FULL
    assert read.grant_of("admin") == FULL
    assert "ben=operator:centre+over-80" in repr(read)  # not a secret
    assert settings().grant_of("anna") == FULL  # no grants: every operator as before


@pytest.mark.parametrize(("grants", "what"), [
    ("anna=reader", "role must be one of viewer, operator, admin, not 'reader'"),
    ("anna=Viewer", "role must be one of"),
    ("anna=", "role must be one of"),
    ("anna", "each entry is name=role or name=role:room+room"),
    ("=viewer", "each entry is name=role"),
    ("dora=viewer", "'dora' is not an operator of QUEUE_GATE_ADMIN_TOKENS"),
    ("admin=viewer", "'admin' is QUEUE_GATE_ADMIN_TOKEN's"),
    ("anna=viewer,anna=admin", "operator 'anna' named twice"),
    ("anna=operator:", "room names joined by '+'"),
    ("anna=operator:Centre", "not 'Centre'"),
    ("anna=operator:centre|state", "not 'centre|state'"),
    ("anna=operator:*+centre", "not '*'"),
    ("anna=operator:centre+", "not ''"),
])
def test_a_bad_grant_is_refused_clearly(grants: str, what: str) -> None:
    with pytest.raises(SettingsError) as refused:
        settings(QUEUE_GATE_OPERATOR_GRANTS=grants)
    assert "QUEUE_GATE_OPERATOR_GRANTS" in str(refused.value)
    assert what in str(refused.value)


def test_what_each_role_may_do() -> None:
    viewer, operator = Grant(Role.VIEWER), Grant(Role.OPERATOR, frozenset({"centre"}))
    assert viewer.allows("state", Role.VIEWER) and not viewer.allows("state", Role.OPERATOR)
    assert operator.allows("centre", Role.OPERATOR)
    assert not operator.allows("centre", Role.ADMIN)
    assert not operator.allows("state", Role.VIEWER)
    # A thing of the whole gate (room None) needs a grant over every room.
    assert FULL.allows(None, Role.ADMIN)
    assert not Grant(Role.ADMIN, frozenset({"centre"})).allows(None, Role.ADMIN)
    assert operator.visible(["state", "centre"]) == ["centre"]
    assert parse_grant("x=admin:b+a")[1].describe() == "admin:a+b"
