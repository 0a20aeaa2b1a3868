"""Every metric name the dashboards and alert rules use is one the real apps' /metrics offer.

Runs without Prometheus: the gate's and the booking backend's admin apps are started on a
private Redis and their /metrics pages read, before any traffic (prometheus_client lists a
labelled metric with `# TYPE` before its first sample, so no event is needed).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from booking_backend.main import create_admin_app as create_booking_admin_app
from booking_backend.main import create_app as create_booking_app
from booking_backend.settings import Settings as BookingSettings
from queue_gate.admin import create_admin_app
from queue_gate.main import create_app
from queue_gate.settings import Settings
from tests.ops.dashboards import (
    ALERT_TESTS,
    ALERTS,
    ROOT,
    dashboard_files,
    exposed_names,
    metric_names,
)

ClientFactory = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]
SECRET = "metric-names-secret-0123456789"


async def read_metrics(client: TestClient[web.Request, web.Application]) -> str:
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.content_type == "text/plain"
    return await response.text()


@pytest.fixture
async def gate_exposition(aiohttp_client: ClientFactory, redis_url: str) -> str:
    settings = Settings(redis_url=redis_url, secrets=(SECRET,), admin_token="token",
                        backend_url="http://127.0.0.1:9", cookie_secure=False)
    gate = create_app(settings, registry=CollectorRegistry(), run_ticker=False)
    await aiohttp_client(gate)  # the admin app uses the gate app's resources: start it first
    return await read_metrics(await aiohttp_client(create_admin_app(gate)))


@pytest.fixture
async def booking_exposition(database_url: str, aiohttp_client: ClientFactory) -> str:
    settings = BookingSettings(database_url=database_url, secrets=(SECRET,),
                               admin_token="token", identity_key="identity-key",
                               dev=True)  # dev: the console sender may start
    public = create_booking_app(settings, registry=CollectorRegistry())
    await aiohttp_client(public)
    return await read_metrics(await aiohttp_client(create_booking_admin_app(public_app=public)))


def used_names() -> set[str]:
    """Names in the dashboards, the alert rules and the operators' handbook."""
    sources = [*dashboard_files(), ALERTS, ROOT / "docs" / "operations.md"]
    text = "\n".join(p.read_text(encoding="utf-8") for p in sources)
    return metric_names(text)


async def test_every_metric_used_by_dashboards_and_alerts_is_exposed(
    gate_exposition: str, booking_exposition: str
) -> None:
    gate, booking = exposed_names(gate_exposition), exposed_names(booking_exposition)
    assert {n for n in gate if n.startswith("queuegate_")}, "the gate exposes no metric"
    assert {n for n in booking if n.startswith("booking_")}, "the backend exposes no metric"
    used = used_names()
    assert {n for n in used if n.startswith("queuegate_")} <= gate, sorted(
        {n for n in used if n.startswith("queuegate_")} - gate)
    assert {n for n in used if n.startswith("booking_")} <= booking, sorted(
        {n for n in used if n.startswith("booking_")} - booking)
    # The alert unit tests feed the rules series of the same names.
    assert metric_names(ALERT_TESTS.read_text(encoding="utf-8")) <= gate | booking

