"""Demo mode: shipped centres and generated slots on startup, console sender."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import CollectorRegistry
from pytest_aiohttp import AiohttpClient

from booking_backend import keys
from booking_backend.catalogue import demo_catalogue_json, parse_catalogue
from booking_backend.main import create_admin_app, create_app
from booking_backend.settings import Settings
from booking_backend.verification import ConsoleSender
from tests.booking_backend.conftest import SECRET, FakeClock


def test_demo_catalogue_has_fifty_centres_in_every_district() -> None:
    import json

    catalogue = parse_catalogue(json.loads(demo_catalogue_json()))
    assert len(catalogue.centres) == 50
    assert len(catalogue.districts) == 45
    assert {c.district for c in catalogue.centres.values()} == set(catalogue.districts)
    exact, guessed = catalogue.district_of("38100"), catalogue.district_of("38101")
    assert exact is not None and exact.id == "braunschweig"
    assert guessed is not None and guessed.id == "braunschweig"  # nearest known prefix


async def test_demo_loads_data_on_startup(
    database_url: str, aiohttp_client: AiohttpClient, caplog: pytest.LogCaptureFixture,
) -> None:
    settings = Settings(demo=True, database_url=database_url, secrets=(SECRET,), demo_days=7,
                        deployment="demo", sweep_seconds=3600)
    app = create_app(settings, clock=FakeClock(), registry=CollectorRegistry())
    admin_app = create_admin_app(public_app=app)
    client = await aiohttp_client(app)
    await aiohttp_client(admin_app)
    backend = app[keys.backend_key]
    assert isinstance(backend.sender, ConsoleSender)
    counts = await backend.counts()
    # 7 days from Saturday 9 January 2021: 6 open days, 8:00-18:00 every 30 min, 2 people.
    assert counts["capacity"] == 50 * 6 * 20 * 2
    assert counts["free"] == counts["capacity"]
    async with client.get("/api/v1/centres?postcode=38100",
                          headers=_headers()) as resp:
        body = await resp.json()
    assert body["centres"][0]["id"] == "braunschweig"
    caplog.set_level(logging.WARNING, logger="booking_backend.verification")
    from booking_backend.identity import Contact
    from booking_backend.verification import Message

    await backend.sender.send(Message("m", "code", Contact("sms", "+4915112345678"), "de",
                                      "Ihr Code: 123456"))
    assert "+49151*****678" in caplog.text and "4915112345678" not in caplog.text


def _headers() -> dict[str, str]:
    from vaccine_queue.contract import PASS_HEADER, AdmissionPass, PassCodec

    return {PASS_HEADER: PassCodec((SECRET,)).sign(AdmissionPass("r", "t", 2**40))}
