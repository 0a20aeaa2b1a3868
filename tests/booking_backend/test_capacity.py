"""The capacity hint the gate reads (vaccine_queue.contract.CAPACITY_HEADER): on every
response, and alone on HEAD /capacity, without a pass."""

from __future__ import annotations

from booking_backend.capacity import IDLE_HALF_LIFE_S, LATENCY_BUDGET_S, Capacity
from tests.booking_backend.conftest import Env
from vaccine_queue.contract import CAPACITY_HEADER, CAPACITY_PATH


async def test_the_probe_answers_without_a_pass_and_every_response_has_the_hint(env: Env
                                                                                ) -> None:
    async with env.client.head(CAPACITY_PATH) as response:
        assert response.status == 204
        assert 0 <= float(response.headers[CAPACITY_HEADER]) <= 1
    async with env.client.get("/no-such-page") as response:
        assert CAPACITY_HEADER in response.headers


def test_slow_answers_lower_the_hint() -> None:
    capacity = Capacity()
    assert capacity.hint(1.0) == 1.0 and capacity.hint(0.25) == 0.25
    for _ in range(200):
        capacity.observe(4 * LATENCY_BUDGET_S)
    assert 0.2 < capacity.hint(1.0) < 0.3


def test_the_average_forgets_when_no_request_comes() -> None:
    """After a burst of late answers (those held while the backend hung) and then no
    requests, the probe's hint rises again by itself: it once stayed low for as long as no
    visitor came, and an adaptive gate kept its rate at rate_min meanwhile."""
    now = [100.0]
    capacity = Capacity(clock=lambda: now[0])
    for _ in range(20):
        capacity.observe(30.0)
    assert capacity.hint(1.0) < 0.1
    now[0] += 5 * IDLE_HALF_LIFE_S  # quiet: a 32nd of the average is left
    assert capacity.hint(1.0) > 0.5
    now[0] += 10 * IDLE_HALF_LIFE_S
    assert capacity.hint(1.0) == 1.0
