"""Fixtures for the booking backend: a fake clock, a recording sender, passes, and a real
app on a real port against a fresh database of the private PostgreSQL from tests/conftest.py."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import zoneinfo
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry
from pytest_aiohttp import AiohttpClient

from booking_backend import keys
from booking_backend.backend import Backend
from booking_backend.inventory import Slot
from booking_backend.main import create_admin_app, create_app
from booking_backend.settings import Settings
from booking_backend.verification import DeliveryFailed, Message
from vaccine_queue.contract import PASS_HEADER, AdmissionPass, PassCodec

SECRET = "test-secret-for-passes"
ADMIN_TOKEN = "test-admin-token"
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
START = dt.datetime(2021, 1, 8, 8, 0, tzinfo=BERLIN).timestamp()  # Friday, 8:00
CENTRE = "braunschweig"  # district braunschweig, postcode 38100
OTHER_CENTRE = "wolfsburg"  # district wolfsburg, postcode 38440
HOME_POSTCODE = "38100"
OLD = "24.12.1938"  # 82 on START: in the open 80+ group
YOUNG = "1960-05-01"  # 60: group not open


class FakeClock:
    """Seconds since the epoch, moved only by the test."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RecordingSender:
    """Keeps every message; can fail on purpose or wait for the test's go-ahead."""

    name = "recording"

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.failures = 0
        self.gate: asyncio.Event | None = None
        # Set: the message is handed over (the phone has it) but the gateway's answer
        # waits for this event, as with a slow gateway.
        self.reply: asyncio.Event | None = None
        self.sent = asyncio.Event()

    async def send(self, message: Message) -> None:
        if self.gate is not None:
            await self.gate.wait()
        if self.failures > 0:
            self.failures -= 1
            raise DeliveryFailed("test failure")
        self.messages.append(message)
        self.sent.set()
        if self.reply is not None:
            await self.reply.wait()

    def last_code(self, address: str | None = None) -> str:
        for message in reversed(self.messages):
            if message.kind not in ("code", "cancel_code"):
                continue
            if address is None or message.contact.address == address:
                digits = [w.strip(".") for w in message.text.split() if w.strip(".").isdigit()]
                return next(d for d in digits if len(d) == 6)
        raise AssertionError("no code was sent")


def local(day: dt.date, hour: int, minute: int = 0) -> int:
    return int(dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=BERLIN).timestamp())


FIRST_DAY = dt.date(2021, 1, 11)
SECOND_DAY = FIRST_DAY + dt.timedelta(days=21)


def pair_slots(centre: str, index: int) -> tuple[Slot, Slot]:
    """The index-th test pair: 10-minute slots from 8:00 on FIRST_DAY and 21 days later."""
    return (Slot(local(FIRST_DAY, 8) + 600 * index, centre),
            Slot(local(SECOND_DAY, 8) + 600 * index, centre))


@dataclasses.dataclass
class Env:
    """One running public app (and admin app) with its clock, sender and backend."""

    client: TestClient[web.Request, web.Application]
    admin: TestClient[web.Request, web.Application]
    clock: FakeClock
    sender: RecordingSender
    backend: Backend
    settings: Settings

    def pass_token(self, ticket_id: str = "ticket-1", *, expires: float | None = None) -> str:
        codec = PassCodec((SECRET,))
        until = int(expires if expires is not None else self.clock() + 10 * 365 * 86400)
        return codec.sign(AdmissionPass("main", ticket_id, until))

    def headers(self, ticket_id: str = "ticket-1") -> dict[str, str]:
        return {PASS_HEADER: self.pass_token(ticket_id)}

    async def add_pairs(self, count: int, centre: str = CENTRE, units: int = 1,
                        share: float = 0.0) -> list[tuple[Slot, Slot]]:
        catalogue = await self.backend.service.catalogue()
        pairs = [pair_slots(centre, i) for i in range(count)]
        slots = [(s, units) for pair in pairs for s in pair]
        await self.backend.inventory.release_slots(catalogue.centres[centre], slots, share=share)
        return pairs

    async def api(self, method: str, path: str, ticket: str = "ticket-1",
                  **kwargs: Any) -> tuple[int, Any]:
        headers = {**self.headers(ticket), **kwargs.pop("headers", {})}
        async with self.client.request(method, path, headers=headers, **kwargs) as response:
            return response.status, await response.json()

    async def deliver(self) -> int:
        return await self.backend.outbox.run_once()

    async def book(self, pair: tuple[Slot, Slot], ticket: str, *, name: str = "Erika Muster",
                   contact: str | None = None, birth: str = OLD) -> dict[str, Any]:
        """The whole API flow for one person; returns the booking JSON."""
        contact = contact or f"+49151{abs(hash(ticket)) % 10**8:08d}"
        status, hold = await self.api("POST", "/api/v1/holds", ticket, json={
            "birth_date": birth, "postcode": HOME_POSTCODE,
            "first_slot": pair[0].id, "second_slot": pair[1].id})
        assert status == 201, hold
        hid = hold["hold_id"]
        status, body = await self.api("POST", f"/api/v1/holds/{hid}/details", ticket,
                                      json={"name": name, "contact": contact})
        assert status == 202, body
        await self.deliver()
        code = self.sender.last_code(contact_address(contact))
        status, booking = await self.api("POST", f"/api/v1/holds/{hid}/confirm", ticket,
                                         json={"code": code})
        assert status == 201, booking
        return dict(booking)


def contact_address(raw: str) -> str:
    from booking_backend.identity import parse_contact

    return parse_contact(raw).address


MakeEnv = Callable[..., Awaitable[Env]]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def base_settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url, deployment="test", secrets=(SECRET,), admin_token=ADMIN_TOKEN,
        identity_key="test-identity-key", outbox_worker=False, sweep_seconds=3600,
        hold_seconds=600, code_validity_seconds=600, code_resend_seconds=60,
        cookie_secure=False,  # the tests speak plain HTTP
    )


@pytest.fixture
async def make_env(
    base_settings: Settings, aiohttp_client: AiohttpClient, clock: FakeClock
) -> MakeEnv:
    """Apps on a fresh database; `base_settings` (and so the database) comes first, so the
    apps are torn down, their pools closed, before the database is dropped."""
    async def make(catalogue: bool = True, **overrides: Any) -> Env:
        settings = dataclasses.replace(base_settings, **overrides)
        sender = RecordingSender()
        app = create_app(settings, clock=clock, sender=sender, registry=CollectorRegistry())
        admin_app = create_admin_app(public_app=app)
        client = await aiohttp_client(app)
        admin = await aiohttp_client(admin_app)
        backend = app[keys.backend_key]
        if catalogue:
            async with admin.post("/admin/catalogue/demo",
                                  headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as resp:
                assert resp.status == 200
        return Env(client, admin, clock, sender, backend, settings)

    return make


@pytest.fixture
async def env(make_env: MakeEnv) -> Env:
    return await make_env()
