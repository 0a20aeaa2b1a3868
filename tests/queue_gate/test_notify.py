"""A message when the turn is near (issue 16): opt-in on the waiting page, the message
through the booking backend's outbox, the restore link on a second device, the place kept
while not polling, and the contact deleted.

Real servers throughout: gate apps on the private Redis, the booking backend (public and
admin app) on a fresh database of the private PostgreSQL, clients on loopback."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from booking_backend import keys as booking_keys
from booking_backend.main import create_admin_app as create_booking_admin
from booking_backend.main import create_app as create_booking_app
from booking_backend.settings import Settings as BookingSettings
from queue_gate.keys import notifier_key, room_view_key
from queue_gate.main import create_app
from queue_gate.notify import NOTIFY_COOKIE, RestoreLinks
from queue_gate.settings import Settings
from queue_gate.store import RoomKeys
from tests.booking_backend.conftest import (
    ADMIN_TOKEN as BOOKING_ADMIN_TOKEN,
)
from tests.booking_backend.conftest import (
    HOME_POSTCODE,
    OLD,
    SECRET,
    FakeClock,
    RecordingSender,
    pair_slots,
)
from tests.browser import needs_chromium
from vaccine_queue.contract import PASS_FREE_PREFIXES, TURN_NEAR_PATH, Ticket

NOTIFY_TOKEN = "test-notify-token"
ROOM = "main"
CONTACT = "0151 2345678"
ADDRESS = "+491512345678"
KEYS = RoomKeys(ROOM)
CONTACTS = KEYS.notify_script_keys[0]

Client = TestClient[web.Request, web.Application]


@dataclasses.dataclass
class Booking:
    """The booking backend: its public server (behind the gates), admin client, sender."""

    server: TestServer
    admin: Client
    sender: RecordingSender
    app: web.Application

    async def deliver(self) -> int:
        return await self.app[booking_keys.backend_key].outbox.run_once()


@dataclasses.dataclass
class Gate:
    client: Client
    app: web.Application
    registry: CollectorRegistry

    async def tick(self) -> None:
        await self.app[room_view_key].refresh()

    async def notify_round(self) -> int:
        return await self.app[notifier_key].run_once()

    def sample(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, {"room": ROOM, **labels}) or 0.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def booking(database_url: str, clock: FakeClock,
                  aiohttp_server: Callable[..., Awaitable[TestServer]],
                  aiohttp_client: Callable[..., Awaitable[Client]]) -> Booking:
    settings = BookingSettings(
        database_url=database_url, deployment="test", secrets=(SECRET,),
        admin_token=BOOKING_ADMIN_TOKEN, identity_key="test-identity-key",
        outbox_worker=False, sweep_seconds=3600, cookie_secure=False,
        notify_token=NOTIFY_TOKEN)
    sender = RecordingSender()
    app = create_booking_app(settings, clock=clock, sender=sender, registry=CollectorRegistry())
    server = await aiohttp_server(app)
    admin = await aiohttp_client(create_booking_admin(public_app=app))
    async with admin.post("/admin/catalogue/demo",
                          headers={"Authorization": f"Bearer {BOOKING_ADMIN_TOKEN}"}) as resp:
        assert resp.status == 200
    return Booking(server, admin, sender, app)


MakeGate = Callable[..., Awaitable[Gate]]


@pytest.fixture
async def make_gate(aiohttp_client: Callable[..., Awaitable[Client]], redis_url: str,
                    clock: FakeClock, booking: Booking) -> MakeGate:
    """A gate process in front of the booking backend (ticker and sender off: tests run
    them), all on the same Redis."""

    async def factory(**overrides: object) -> Gate:
        values: dict[str, object] = {
            "redis_url": redis_url, "backend_url": str(booking.server.make_url("/")),
            "secrets": (SECRET,), "admin_token": "gate-admin", "cookie_secure": False,
            "room": ROOM, "join_limit": 0, "draw_limit": 0,
            "bypass_paths": PASS_FREE_PREFIXES,
            "initial_rate_per_minute": 12, "notify_minutes": 1, "notify_grace_s": 300.0,
            "notify_url": str(booking.admin.make_url("/")).rstrip("/"),
            "notify_token": NOTIFY_TOKEN, "public_url": "https://impfen.example",
        }
        values.update(overrides)
        registry = CollectorRegistry()
        app = create_app(Settings(**values), clock=clock,  # type: ignore[arg-type]
                         registry=registry, run_ticker=False)
        return Gate(await aiohttp_client(app), app, registry)

    return factory


@pytest.fixture
async def device(booking: Booking) -> AsyncIterator[Callable[[Gate], aiohttp.ClientSession]]:
    """Another device: a browser with a cookie jar of its own, on a gate's address."""
    sessions: list[aiohttp.ClientSession] = []

    def open_on(gate: Gate) -> aiohttp.ClientSession:
        session = aiohttp.ClientSession(
            base_url=str(gate.client.make_url("/").origin()),
            cookie_jar=aiohttp.CookieJar(unsafe=True),
            headers={"Accept": "text/html", "Accept-Language": "de"})
        sessions.append(session)
        return session

    yield open_on
    for session in sessions:
        await session.close()


async def join_others(gate: Gate, count: int) -> None:
    for _ in range(count):
        gate.client.session.cookie_jar.clear()
        async with gate.client.post("/queue/api/join") as resp:
            assert resp.status == 201
    gate.client.session.cookie_jar.clear()


async def arrive(session: aiohttp.ClientSession) -> int:
    """Open the waiting page (which joins), then read the place."""
    async with session.get("/queue/wait") as resp:
        assert resp.status == 200
    return await place(session)


async def place(session: aiohttp.ClientSession | Client) -> int:
    async with session.get("/queue/api/status") as resp:
        body = await resp.json()
        assert resp.status == 200, body
        return int(body["position"])


async def opt_in(session: aiohttp.ClientSession | Client, contact: str = CONTACT,
                 **extra: str) -> aiohttp.ClientResponse:
    form = {"contact": contact, "consent": "1", "next": "/", **extra}
    async with session.post("/queue/notify", data=form, allow_redirects=False) as resp:
        await resp.read()
        return resp


async def advance(clock: FakeClock, gates: list[Gate], seconds: float) -> None:
    """Let time pass in ticks of 5 s (the most a tick credits) with the senders running."""
    while seconds > 0:
        clock.advance(min(seconds, 5))
        seconds -= 5
        for gate in gates:
            await gate.tick()
            await gate.notify_round()


async def book(session: aiohttp.ClientSession, booking: Booking) -> str:
    """Book through the pages, as a browser without JavaScript does, via the gate."""
    catalogue = await booking.app[booking_keys.backend_key].service.catalogue()
    pair = pair_slots("braunschweig", 0)
    await booking.app[booking_keys.backend_key].inventory.release_slots(
        catalogue.centres["braunschweig"], [(pair[0], 1), (pair[1], 1)])
    page = ""

    async def post(path: str, **form: str) -> int:
        nonlocal page
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert token, page[:500]
        async with session.post(path, data={"csrf_token": token.group(1), **form}) as resp:
            page = await resp.text()
            return resp.status

    async with session.get("/") as resp:
        assert resp.status == 200
        page = await resp.text()
    assert await post("/start", birth_date=OLD, postcode=HOME_POSTCODE) == 200
    assert await post("/hold", first_slot=pair[0].id, second_slot=pair[1].id) == 200
    assert await post("/details", name="Erika Muster", contact=CONTACT) == 200
    await booking.deliver()
    assert await post("/verify", code=booking.sender.last_code()) == 200
    match = re.search(r'class="code">([A-Z0-9-]+)<', page)
    assert match, page[:2000]
    return match.group(1)


async def test_opted_in_visitor_is_messaged_once_restores_on_a_second_device_and_books(
        make_gate: MakeGate, booking: Booking, clock: FakeClock, redis_client: aioredis.Redis,
        device: Callable[[Gate], aiohttp.ClientSession]) -> None:
    first, second = await make_gate(), await make_gate()
    await first.tick()
    await join_others(first, 30)
    phone = device(first)
    async with phone.get("/queue/wait") as resp:
        assert resp.status == 200
        page = await resp.text()
    assert "Nachricht, wenn Sie bald dran sind" in page and 'name="consent"' in page
    assert await place(phone) == 31

    resp = await opt_in(phone)
    assert resp.status == 303 and resp.headers["Location"] == "/queue/wait?next=/"
    assert first.sample("queuegate_turn_optins_total") == 1
    async with phone.get("/queue/wait") as resp:
        page = await resp.text()
    assert "Wir schicken eine Nachricht an +49151****678" in page
    [raw] = (await redis_client.hgetall(CONTACTS)).values()
    stored = json.loads(raw)
    assert (stored["c"], stored["a"], stored["l"]) == ("sms", ADDRESS, "de")

    # Far from the front: nothing is sent.
    assert await first.notify_round() == 0 and await second.notify_round() == 0
    # The line moves at 12 a minute (one place per 5 s); the message is due within a
    # minute of the turn. The visitor does not poll meanwhile.
    sent_at_place: int | None = None
    for _ in range(40):
        clock.advance(5)
        await first.tick()
        await second.tick()
        # Both processes look at once: the claim gives the visitor to one of them.
        asked = await asyncio.gather(first.notify_round(), second.notify_round())
        if sum(asked):
            assert sum(asked) == 1
            sent_at_place = 31 - first.app[room_view_key].snapshot.frontier  # type: ignore[union-attr]
            break
    assert sent_at_place is not None and 1 <= sent_at_place <= 13
    for _ in range(3):  # later rounds ask for nobody again
        await advance(clock, [first, second], 1)
    sent = sum(g.sample("queuegate_turn_messages_total", outcome="sent")
               for g in (first, second))
    assert sent == 1
    # The contact is gone from Redis once the message is queued at the backend.
    assert await redis_client.hlen(CONTACTS) == 0
    # Asking again does not store it again, nor send a second message.
    async with phone.post("/queue/notify", data={"contact": CONTACT, "consent": "1"},
                          headers={"Accept": "application/json"}) as resp:
        assert (await resp.json())["notify"] == "sent"
    assert await redis_client.hlen(CONTACTS) == 0

    assert await booking.deliver() == 1
    [message] = [m for m in booking.sender.messages if m.kind == "turn_near"]
    assert message.contact.address == ADDRESS and message.lang == "de"
    assert message.text.startswith("Impftermin-Warteschlange: Sie sind bald dran (in etwa 1 Min.)")
    match = re.search(r"https://impfen\.example(/queue/restore\?t=\S+)$", message.text)
    assert match, message.text
    link = match.group(1)

    # The second device: the link's page, then its button takes the place over.
    laptop = device(second)
    async with laptop.get(link) as resp:
        assert resp.status == 200
        page = await resp.text()
    assert "Zurück an Ihren Platz" in page
    token = re.search(r'name="t" value="([^"]+)"', page)
    assert token
    async with laptop.post("/queue/restore", data={"t": token.group(1)},
                           allow_redirects=False) as resp:
        assert resp.status == 303
    assert await place(laptop) == await place(phone)
    async with laptop.post("/queue/restore", data={"t": token.group(1)}) as resp:
        assert resp.status == 410
        assert "Dieser Link wurde schon benutzt" in await resp.text()

    # The turn comes; the second device is admitted and books.
    await advance(clock, [first, second], 5 * (sent_at_place + 1))
    async with laptop.get("/queue/wait?next=/", allow_redirects=False) as resp:
        assert resp.status == 303 and resp.headers["Location"] == "/"
    code = await book(laptop, booking)
    assert re.fullmatch(r"[A-Z0-9]{4}-[A-Z0-9]{4}", code)


async def test_the_backend_queues_one_message_per_id_and_wants_its_token(
        booking: Booking) -> None:
    body = {"id": "main:abc", "channel": "sms", "address": ADDRESS, "lang": "en",
            "minutes": 7, "link": "https://impfen.example/queue/restore?t=x"}
    auth = {"Authorization": f"Bearer {NOTIFY_TOKEN}"}
    for _ in range(2):
        async with booking.admin.post(TURN_NEAR_PATH, json=body, headers=auth) as resp:
            assert resp.status == 202
    async with booking.admin.post(TURN_NEAR_PATH, json=body) as resp:
        assert resp.status == 401
    # Not the admin token either: the gate holds only the notify token, and the reverse.
    async with booking.admin.post(
            TURN_NEAR_PATH, json=body,
            headers={"Authorization": f"Bearer {BOOKING_ADMIN_TOKEN}"}) as resp:
        assert resp.status == 401
    async with booking.admin.get("/admin/stats", headers=auth) as resp:
        assert resp.status == 401
    for bad in ({**body, "address": "12"}, {**body, "minutes": "7"}, {**body, "link": "x"},
                {**body, "channel": "email"}, [1]):
        async with booking.admin.post(TURN_NEAR_PATH, json=bad, headers=auth) as resp:
            assert resp.status == 400, bad
    async with booking.admin.post(TURN_NEAR_PATH, data=b"{", headers=auth) as resp:
        assert resp.status == 400
    assert await booking.deliver() == 1
    [message] = booking.sender.messages
    assert message.text == ("Vaccination queue: your turn is near (in about 7 min). Back to "
                            "your place: https://impfen.example/queue/restore?t=x")


async def test_the_place_is_kept_while_not_polling_until_the_message_and_grace(
        make_gate: MakeGate, clock: FakeClock,
        device: Callable[[Gate], aiohttp.ClientSession]) -> None:
    gate = await make_gate(abandon_grace_s=240.0, notify_grace_s=120.0, initial_mode="paused")
    await gate.tick()
    away, kept = device(gate), device(gate)
    assert await arrive(away) == 1
    assert await arrive(kept) == 2
    assert (await opt_in(kept)).status == 303
    # Nobody polls for much longer than the grace period while the room is paused.
    await advance(clock, [gate], 600)
    admin = gate.app[room_view_key].store
    await admin.update_config({"mode": "queue", "rate_per_minute": 60})
    await advance(clock, [gate], 5)
    snapshot = gate.app[room_view_key].snapshot
    assert snapshot is not None and snapshot.frontier == 2
    assert snapshot.skipped == 1 and snapshot.admitted == 1  # the one who left is passed over
    async with kept.get("/queue/api/status") as resp:
        assert (await resp.json())["state"] == "admitted"
    async with away.get("/queue/api/status") as resp:
        body = await resp.json()
    assert body["state"] == "waiting" and body["position"] >= 1


async def test_after_the_message_and_grace_normal_abandonment_applies(
        make_gate: MakeGate, clock: FakeClock, redis_client: aioredis.Redis,
        device: Callable[[Gate], aiohttp.ClientSession]) -> None:
    # notify_minutes 1 at 1 a minute: the visitor (place 1) is messaged at once.
    gate = await make_gate(abandon_grace_s=240.0, notify_grace_s=60.0,
                           initial_rate_per_minute=1)
    await gate.tick()
    await gate.app[room_view_key].store.update_config({"mode": "paused"})
    await gate.tick()
    visitor = device(gate)
    assert await arrive(visitor) == 1
    assert (await opt_in(visitor)).status == 303
    await gate.app[room_view_key].store.update_config({"mode": "queue"})
    await gate.tick()
    assert await gate.notify_round() == 1
    await gate.app[room_view_key].store.update_config({"mode": "paused"})
    await advance(clock, [gate], 600)  # grace over, no poll
    await gate.app[room_view_key].store.update_config({"mode": "queue", "rate_per_minute": 60})
    await advance(clock, [gate], 5)
    snapshot = gate.app[room_view_key].snapshot
    assert snapshot is not None and snapshot.skipped == 1
    assert await redis_client.zcard(KEYS.notify_script_keys[5]) == 0  # forgotten


async def test_the_contact_is_deleted_when_the_pass_is_issued_or_the_visitor_withdraws(
        make_gate: MakeGate, redis_client: aioredis.Redis,
        device: Callable[[Gate], aiohttp.ClientSession]) -> None:
    gate = await make_gate(initial_mode="paused")
    await gate.tick()
    first, other = device(gate), device(gate)
    assert await arrive(first) == 1 and await arrive(other) == 2
    assert (await opt_in(first)).status == 303
    assert (await opt_in(other, "Erika@Example.ORG")).status == 303
    assert await redis_client.hlen(CONTACTS) == 2
    # Withdrawn: deleted at once, and the page says so.
    async with other.post("/queue/notify", data={"action": "cancel", "next": "/"},
                          allow_redirects=False) as resp:
        assert resp.status == 303
        assert resp.headers["Location"] == "/queue/wait?next=/&notify=cancelled"
        assert resp.cookies[NOTIFY_COOKIE].value == ""
    async with other.get("/queue/wait?next=/&notify=cancelled") as resp:
        assert "Die Nummer oder Adresse ist gelöscht" in await resp.text()
    assert await redis_client.hkeys(CONTACTS) != [] and await redis_client.hlen(CONTACTS) == 1
    # Admitted before any message went (passthrough): the pass deletes the contact.
    await gate.app[room_view_key].store.update_config({"mode": "passthrough"})
    await gate.tick()
    async with first.get("/queue/api/status") as resp:
        assert (await resp.json())["state"] == "admitted"
    assert await redis_client.hlen(CONTACTS) == 0
    for key in KEYS.notify_script_keys[1:]:
        assert await redis_client.zcard(key) == 0, key


@pytest.mark.parametrize(("lang", "contact", "consent", "status", "text"), [
    ("de", "12", "1", 400, "Bitte prüfen Sie die Handynummer"),
    ("en", "12", "1", 400, "Please check the mobile number"),
    ("de", "erika@", "1", 400, "Bitte prüfen Sie die E-Mail-Adresse"),
    ("en", "", "1", 400, "Please enter a mobile number or e-mail address"),
    ("de", CONTACT, "", 400, "Bitte bestätigen Sie"),
    ("en", CONTACT, "", 400, "Please confirm that we may store"),
    ("de", "x" * 5000, "1", 400, "Bitte prüfen Sie die Handynummer"),
])
async def test_bad_opt_ins_get_a_readable_4xx(
        make_gate: MakeGate, redis_client: aioredis.Redis,
        device: Callable[[Gate], aiohttp.ClientSession], lang: str, contact: str,
        consent: str, status: int, text: str) -> None:
    gate = await make_gate()
    await gate.tick()
    browser = device(gate)
    await arrive(browser)
    form = {"contact": contact, "consent": consent}
    async with browser.post("/queue/notify", data=form,
                            headers={"Accept-Language": lang}) as resp:
        assert resp.status == status
        assert resp.content_type == "text/html"
        assert text in await resp.text()
    async with browser.post("/queue/notify", data=form,
                            headers={"Accept": "application/json",
                                     "Accept-Language": lang}) as resp:
        assert resp.status == status
        assert text in (await resp.json())["message"]
    assert await redis_client.hlen(CONTACTS) == 0


async def test_opt_in_without_a_ticket_is_refused(make_gate: MakeGate) -> None:
    gate = await make_gate()
    async with gate.client.post("/queue/notify", data={"contact": CONTACT, "consent": "1"},
                                headers={"Accept": "application/json"}) as resp:
        assert resp.status == 401
        assert (await resp.json())["error"] == "ticket_missing"


async def test_forged_and_expired_links_get_a_readable_4xx(
        make_gate: MakeGate, clock: FakeClock,
        device: Callable[[Gate], aiohttp.ClientSession]) -> None:
    gate = await make_gate()
    await gate.tick()
    browser = device(gate)
    snapshot = gate.app[room_view_key].snapshot
    assert snapshot is not None
    ticket = Ticket(ROOM, snapshot.epoch, 5, "some-ticket", 0)
    links = gate.app[notifier_key].links
    forged = RestoreLinks(("another-secret",), ROOM, max_age_s=links.max_age_s,
                          clock=clock).sign(ticket)
    foreign = RestoreLinks((SECRET,), "other-room", max_age_s=links.max_age_s,
                           clock=clock).sign(dataclasses.replace(ticket, room="other-room"))
    for token in (forged, foreign, "", "not-a-token", "ä"):
        async with browser.get("/queue/restore", params={"t": token}) as resp:
            assert resp.status == 400, (token, await resp.text())
            assert "Dieser Link ist ungültig" in await resp.text()
        async with browser.post("/queue/restore", data={"t": token}) as resp:
            assert resp.status == 400, token
    valid = links.sign(ticket)
    clock.advance(links.max_age_s + 1)
    async with browser.get("/queue/restore", params={"t": valid},
                           headers={"Accept-Language": "en"}) as resp:
        assert resp.status == 410
        assert "This link has expired" in await resp.text()
    async with browser.post("/queue/restore", data={"t": valid}) as resp:
        assert resp.status == 410


async def test_no_form_and_no_routes_when_messages_are_off(
        make_gate: MakeGate, device: Callable[[Gate], aiohttp.ClientSession]) -> None:
    gate = await make_gate(notify_url="", notify_token="")
    await gate.tick()
    browser = device(gate)
    async with browser.get("/queue/wait") as resp:
        assert resp.status == 200
        assert 'name="consent"' not in await resp.text()
    async with browser.post("/queue/notify", data={"contact": CONTACT}) as resp:
        assert resp.status == 404


def test_settings_of_messages() -> None:
    from vaccine_queue.config import SettingsError

    base: dict[str, Any] = {"secrets": ("s",), "admin_token": "a"}
    with pytest.raises(SettingsError, match="go together"):
        Settings(**base, notify_url="http://backend:8083")
    with pytest.raises(SettingsError, match="QUEUE_GATE_PUBLIC_URL"):
        Settings(**base, public_url="impfen.example")
    with pytest.raises(SettingsError, match="QUEUE_GATE_NOTIFY_MINUTES"):
        Settings(**base, notify_minutes=0)
    settings = Settings.from_env({
        "QUEUE_GATE_SECRETS": "s", "QUEUE_GATE_ADMIN_TOKEN": "a",
        "QUEUE_GATE_NOTIFY_URL": "http://backend:8083", "QUEUE_GATE_NOTIFY_TOKEN": "t",
        "QUEUE_GATE_NOTIFY_MINUTES": "15", "QUEUE_GATE_NOTIFY_GRACE_S": "600",
        "QUEUE_GATE_PUBLIC_URL": "https://impfen.example"})
    assert settings.notify_enabled and settings.notify_minutes == 15
    assert settings.notify_link_max_age_s == 2 * (900 + 600)
    assert "notify_token" not in repr(settings)


@needs_chromium
async def test_the_opt_in_and_the_restore_page_in_chromium(
        browser: Any, booking: Booking, redis_url: str, redis_client: aioredis.Redis,
        aiohttp_server: Callable[..., Awaitable[TestServer]]) -> None:
    """With JavaScript the answer shows in place, without it the page comes back; a bad
    number gets its message either way; axe-core finds nothing serious on any of it."""
    axe_api = pytest.importorskip("axe_playwright_python.async_playwright")
    axe = axe_api.Axe()

    async def accessible(page: Any, name: str) -> None:
        results = await axe.run(page)
        bad = [(v["id"], v["impact"]) for v in results.response["violations"]
               if v.get("impact") in ("serious", "critical")]
        assert bad == [], f"{name}: {bad}"

    settings = Settings(
        redis_url=redis_url, backend_url=str(booking.server.make_url("/")), secrets=(SECRET,),
        admin_token="gate-admin", cookie_secure=False, room=ROOM, join_limit=0,
        initial_rate_per_minute=1, notify_minutes=1,
        notify_url=str(booking.admin.make_url("/")).rstrip("/"), notify_token=NOTIFY_TOKEN)
    app = create_app(settings, registry=CollectorRegistry())
    server = await aiohttp_server(app)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as joiner:
        for _ in range(5):  # ahead of the browsers: nobody's turn is near
            async with joiner.post(server.make_url("/queue/api/join")) as resp:
                assert resp.status == 201

    scripted = await (await browser.new_context(
        locale="en-GB", viewport={"width": 412, "height": 900})).new_page()
    await scripted.goto(str(server.make_url("/queue/wait?lang=en")))
    await scripted.wait_for_selector("#notify-form")
    await accessible(scripted, "waiting page with the offer")
    await scripted.fill("#notify-contact", "12")
    await scripted.check("input[name=consent]")
    await scripted.click("#notify-form button[type=submit]")
    await scripted.wait_for_selector("#notify-error:not([hidden])")
    assert "Please check the mobile number" in await scripted.inner_text("#notify-error")
    assert scripted.url.endswith("/queue/wait?lang=en")  # no reload
    await scripted.fill("#notify-contact", "erika@example.org")
    await scripted.click("#notify-form button[type=submit]")
    await scripted.wait_for_selector("#notify-status:not([hidden])")
    assert "We will send a message to e***@example.org" in await scripted.inner_text(
        "#notify-status")
    assert await scripted.is_hidden("#notify-form")
    await accessible(scripted, "waiting page, message asked for")
    [raw] = (await redis_client.hgetall(CONTACTS)).values()
    assert json.loads(raw)["l"] == "en"  # the message comes in the page's language
    await scripted.click("#notify-cancel button")
    await scripted.wait_for_function(
        "document.getElementById('notify-status').textContent.includes('no message')")
    assert await redis_client.hlen(CONTACTS) == 0
    # The form's own page (for browsers without JavaScript; axe-core needs it).
    await scripted.goto(str(server.make_url("/queue/notify?next=/")))
    await accessible(scripted, "the form on its own page")
    await scripted.fill("#notify-contact", "0151")
    await scripted.check("input[name=consent]")
    await scripted.click("#notify-form button[type=submit]")
    await scripted.wait_for_selector("#notify-error:not([hidden])")
    await accessible(scripted, "a refused number")

    plain = await (await browser.new_context(
        locale="de-DE", java_script_enabled=False,
        viewport={"width": 412, "height": 900})).new_page()
    plain.set_default_timeout(15_000)
    await plain.goto(str(server.make_url("/queue/wait")))
    # The waiting page reloads itself: the form is on a page of its own.
    assert await plain.is_hidden("#notify-form")
    link = plain.locator("a.button[href^='/queue/notify']")
    assert await link.inner_text() == "Nummer oder Adresse eingeben"
    await link.click()
    assert "/queue/notify?next=" in plain.url
    await plain.fill("#notify-contact", "0151")
    await plain.check("input[name=consent]")
    await plain.click("#notify-form button[type=submit]")
    assert "Bitte prüfen Sie die Handynummer" in await plain.inner_text("#notify-error")
    assert await plain.input_value("#notify-contact") == "0151"  # kept to correct it
    await plain.fill("#notify-contact", CONTACT)
    await plain.check("input[name=consent]")
    await plain.click("#notify-form button[type=submit]")
    assert "Wir schicken eine Nachricht an +49151****678" in await plain.inner_text(
        "#notify-status")
    assert await redis_client.hlen(CONTACTS) == 1

    # The link from the message, opened on another device.
    [ticket_id] = await redis_client.hkeys(CONTACTS)
    number = int(await redis_client.zscore(KEYS.notify_script_keys[5], ticket_id) or 0)
    snapshot = app[room_view_key].snapshot
    assert snapshot is not None
    token = app[notifier_key].links.sign(
        Ticket(ROOM, snapshot.epoch, number, str(ticket_id), 5))
    other = await (await browser.new_context(
        locale="de-DE", viewport={"width": 412, "height": 900})).new_page()
    await other.goto(str(server.make_url(f"/queue/restore?t={token}")))
    await accessible(other, "restore page")
    await other.click("button[type=submit]")
    await other.wait_for_selector("#position")
    assert await other.inner_text("#position") == str(number - snapshot.frontier)
