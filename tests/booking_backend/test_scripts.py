"""Every booking script runs, down each of its paths, and its reply is read by name.

The store's `run` is wrapped to keep each reply (Redis itself is real); one walk through
the product's steps then has to meet every script of `lua/` and every outcome listed
below, each with the fields its header promises.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Iterable, Sequence

import pytest

from booking_backend.store import Script, Value
from tests.booking_backend.conftest import (
    CENTRE,
    HOME_POSTCODE,
    OLD,
    OTHER_CENTRE,
    Env,
    pair_slots,
)
from vaccine_queue.lua import Reply

# script -> outcome -> the fields that come with it (besides "outcome")
OUTCOMES: dict[str, dict[str, set[str]]] = {
    "hold-10.lua": {"ok": {"expired_holds"}, "gone": {"expired_holds"},
                    "invalid": {"why"}, "previous": {"previous"}},
    "release-8.lua": {"released": set(), "not_live": set()},
    "hold_details-2.lua": {"ok": set(), "confirmed": {"booking"}},
    "code_request-7.lua": {"ok": {"sends"}, "previous": {"message"}, "wait": {"seconds"}},
    "code_check-3.lua": {"ok": set(), "wrong": {"remaining"}},
    "confirm-18.lua": {"ok": {"booking", "new"}, "waiting": {"entry"}, "centre": {"centre"},
                       "expired": set()},
    "cancel-n.lua": {"ok": {"assigned"}, "not_active": set(),
                     "retry": {"centre_ids", "district_ids"}},
    "release_slots-n.lua": {"ok": {"added", "assigned"},
                            "retry": {"centre_ids", "district_ids"}},
    "waitlist_join-8.lua": {"ok": {"position"}, "previous": {"entry"},
                            "already_waiting": {"position"}},
    "outbox_fail-4.lua": {"retry": {"due"}},
}
# scripts without outcomes: the fields they always send
FIELDS: dict[str, set[str]] = {
    "sweep-n.lua": {"expired"},
    "codes_expire-2.lua": {"expired"},
    "outbox_claim-1.lua": {"claimed"},
    "outbox_done-5.lua": {"started"},
}

Seen = list[tuple[str, list[str], Reply]]


def script_names() -> set[str]:
    folder = importlib.resources.files("booking_backend").joinpath("lua")
    return {entry.name for entry in folder.iterdir()
            if entry.name.endswith(".lua") and not entry.name.startswith("_")}


@pytest.fixture
def seen(env: Env, monkeypatch: pytest.MonkeyPatch) -> Seen:
    """Every script call of `env`'s store: its name, its KEYS and its reply."""
    calls: Seen = []
    store = env.backend.store
    run = store.run

    async def recording(script: Script, keys: Sequence[str], args: Iterable[Value]) -> Reply:
        reply = await run(script, keys, args)
        calls.append((script.name, list(keys), reply))
        return reply

    monkeypatch.setattr(store, "run", recording)
    return calls


async def hold(env: Env, ticket: str, first: str, second: str) -> tuple[int, str]:
    status, body = await env.api("POST", "/api/v1/holds", ticket, json={
        "birth_date": OLD, "postcode": HOME_POSTCODE, "first_slot": first,
        "second_slot": second})
    return status, str(body.get("hold_id", ""))


async def details(env: Env, hid: str, ticket: str, name: str, contact: str) -> None:
    status, body = await env.api("POST", f"/api/v1/holds/{hid}/details", ticket,
                                 json={"name": name, "contact": contact})
    assert status == 202, body


async def confirm(env: Env, hid: str, ticket: str, code: str) -> tuple[int, dict[str, str]]:
    status, body = await env.api("POST", f"/api/v1/holds/{hid}/confirm", ticket,
                                 json={"code": code})
    return status, body


async def join(env: Env, ticket: str, name: str, contact: str) -> int:
    status, body = await env.api("POST", "/api/v1/waitlist", ticket, json={
        "birth_date": OLD, "postcode": HOME_POSTCODE, "name": name, "contact": contact})
    assert status in (200, 201), body
    return int(body["position"])


async def walk_every_path(env: Env) -> None:
    """Holds, codes, confirmations, cancellations, the waiting list and the sweeps."""
    pairs = await env.add_pairs(4)
    catalogue = await env.backend.service.catalogue()
    offers = await env.backend.inventory.offers([catalogue.centres[CENTRE]])
    assert [(o.first, o.second) for o in offers][:1] == [pairs[0]]
    # Waiting: joining twice keeps one place.
    assert await join(env, "w0", "Wanda Warte", "+4915100000090") == 1
    assert await join(env, "w0", "Wanda Warte", "+4915100000090") == 1

    # Holds: ok, previous (a second pair for the same visitor), gone, invalid, release.
    status, first_hid = await hold(env, "a", pairs[0][0].id, pairs[0][1].id)
    assert status == 201
    status, hid = await hold(env, "a", pairs[1][0].id, pairs[1][1].id)
    assert status == 201
    assert (await hold(env, "b", pairs[1][0].id, pairs[1][1].id))[0] == 409
    assert (await hold(env, "b", pairs[0][0].id, pairs[1][0].id))[0] == 422
    status, body = await env.api("DELETE", f"/api/v1/holds/{hid}", "a")
    assert (status, body["released"]) == (200, True)
    assert await env.backend.inventory.release(first_hid, "t:a") is False

    # A code: sent, sent again (replacing the first), too early for a third; one failed
    # delivery retried; a wrong guess, then the right code books, twice the same booking.
    status, hid = await hold(env, "c", pairs[2][0].id, pairs[2][1].id)
    await details(env, hid, "c", "Carla Code", "+4915100000091")
    env.clock.advance(env.settings.code_resend_seconds)
    status, _ = await env.api("POST", f"/api/v1/holds/{hid}/code", "c")
    assert status in (200, 202)
    status, _ = await env.api("POST", f"/api/v1/holds/{hid}/code", "c")
    assert status == 429
    env.sender.failures = 1
    assert await env.deliver() == 1
    env.clock.advance(2)
    assert await env.deliver() == 1
    assert (await confirm(env, hid, "c", "000000"))[0] == 422
    code = env.sender.last_code("+4915100000091")
    status, booking = await confirm(env, hid, "c", code)
    assert status == 201, booking
    assert (await confirm(env, hid, "c", code))[0] == 200
    await details_after_booking(env, hid)

    # Someone waiting books directly: confirm-18.lua learns of the entry and drops it.
    assert await join(env, "w1", "Willi Warte", "+4915100000092") == 2
    status, hid = await hold(env, "w1", pairs[3][0].id, pairs[3][1].id)
    await details(env, hid, "w1", "Willi Warte", "+4915100000092")
    await env.deliver()
    status, body = await confirm(env, hid, "w1", env.sender.last_code("+4915100000092"))
    assert status == 201, body
    assert (await env.backend.counts())["waiting"] == 1

    # Cancelled: the pair goes to the first waiting person; a second cancel does nothing.
    cancelled = await env.backend.inventory.booking(booking["booking_code"])
    assert cancelled is not None
    outcome = await env.backend.inventory.cancel(cancelled)
    assert outcome.status == "ok" and len(outcome.extra) == 1
    assert (await env.backend.inventory.cancel(cancelled)).status == "not_active"

    # New slots with a share for the waiting list, which is empty now; then one who waits.
    assert await join(env, "w2", "Wim Warte", "+4915100000093") == 1
    outcome = await env.backend.inventory.release_slots(
        catalogue.centres[CENTRE], [(pair_slots(CENTRE, 5)[0], 1), (pair_slots(CENTRE, 5)[1], 1)],
        share=1.0)
    assert (outcome.value, len(outcome.extra)) == ("2", 1)

    # Expiry: a late confirmation frees its hold, the next hold sweeps the others.
    other = await env.add_pairs(3, centre=OTHER_CENTRE)
    status, hid = await hold(env, "e", other[0][0].id, other[0][1].id)
    await details(env, hid, "e", "Emil Eile", "+4915100000094")
    await env.deliver()
    assert (await hold(env, "f", other[1][0].id, other[1][1].id))[0] == 201
    env.clock.advance(env.settings.hold_seconds)
    status, body = await confirm(env, hid, "e", env.sender.last_code("+4915100000094"))
    assert (status, body["error"]) == (410, "hold_expired")
    assert (await hold(env, "g", other[2][0].id, other[2][1].id))[0] == 201
    assert (await env.backend.counts())["held"] == 2  # only g's pair
    env.clock.advance(env.settings.code_validity_seconds)
    assert await env.backend.verifier.expire_codes() == 1  # e's code, never used


async def details_after_booking(env: Env, hid: str) -> None:
    outcome = await env.backend.inventory.attach_person(hid, "t:c", "x", {"name": "X"})
    assert outcome.status == "confirmed" and outcome.value


async def test_every_script_path_answers_with_named_fields(env: Env, seen: Seen) -> None:
    await walk_every_path(env)
    assert {name for name, _, _ in seen} == script_names()
    outcomes: dict[str, set[str]] = {}
    for name, keys, reply in seen:
        if name == "offers-n.lua":
            assert set(reply) == set(keys)  # one field per centre, named by its key
        elif name in FIELDS:
            assert set(reply) == FIELDS[name], (name, reply)
        else:
            outcome = reply.text("outcome")
            outcomes.setdefault(name, set()).add(outcome)
            if outcome in OUTCOMES[name]:
                assert set(reply) == {"outcome"} | OUTCOMES[name][outcome], (name, reply)
    for name, expected in OUTCOMES.items():
        assert outcomes[name] >= set(expected), name


async def test_every_key_of_a_script_is_in_the_deployments_slot(env: Env, seen: Seen) -> None:
    await walk_every_path(env)
    tag = "bk:{test}:"
    assert all(key.startswith(tag) for _, keys, _ in seen for key in keys)
