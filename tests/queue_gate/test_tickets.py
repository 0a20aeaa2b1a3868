"""Tickets and passes: signed, bound to their room, expiring, with rotatable secrets."""

from __future__ import annotations

import pytest

from queue_gate.tickets import TicketSigner
from tests.queue_gate.conftest import FakeClock
from vaccine_queue.contract import (
    PassCodec,
    PassExpired,
    PassForeign,
    PassInvalid,
    TicketExpired,
    TicketForeign,
    TicketInvalid,
)


def signer(clock: FakeClock, secrets: tuple[str, ...] = ("new",), room: str = "default",
           ) -> TicketSigner:
    return TicketSigner(secrets, room, ticket_max_age_s=3600, clock=clock)


def test_ticket_round_trip(clock: FakeClock) -> None:
    ticket, token = signer(clock).issue_ticket("ep1", 42, 7)
    loaded = signer(clock).load_ticket(token)
    assert (loaded.room, loaded.epoch, loaded.number, loaded.frontier_at_join) == (
        "default", "ep1", 42, 7)
    assert loaded.ticket_id == ticket.ticket_id
    assert loaded.issued_at == int(clock.now)


def test_every_ticket_gets_its_own_id(clock: FakeClock) -> None:
    ids = {signer(clock).issue_ticket("e", n, 0)[0].ticket_id for n in range(200)}
    assert len(ids) == 200


def test_tampered_ticket_is_refused(clock: FakeClock) -> None:
    _, token = signer(clock).issue_ticket("ep1", 42, 0)
    payload, rest = token.split(".", 1)
    # Change the number in the payload but keep the signature: the classic queue jump.
    import base64
    import json

    raw = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    raw[2] = 1
    forged = base64.urlsafe_b64encode(json.dumps(raw, separators=(",", ":")).encode())
    with pytest.raises(TicketInvalid):
        signer(clock).load_ticket(forged.decode().rstrip("=") + "." + rest)
    with pytest.raises(TicketInvalid):
        signer(clock).load_ticket(token[:-2] + ("AA" if token[-2:] != "AA" else "BB"))
    with pytest.raises(TicketInvalid):
        signer(clock).load_ticket("not a ticket at all")


def test_ticket_signed_with_another_secret_is_refused(clock: FakeClock) -> None:
    _, token = signer(clock, ("attacker",)).issue_ticket("ep1", 1, 0)
    with pytest.raises(TicketInvalid):
        signer(clock).load_ticket(token)


def test_ticket_expires(clock: FakeClock) -> None:
    _, token = signer(clock).issue_ticket("ep1", 1, 0)
    clock.advance(3601)
    with pytest.raises(TicketExpired):
        signer(clock).load_ticket(token)


def test_ticket_of_another_room_is_refused(clock: FakeClock) -> None:
    _, token = signer(clock, room="other").issue_ticket("ep1", 1, 0)
    with pytest.raises(TicketForeign):
        signer(clock).load_ticket(token)


def test_secrets_rotate_newest_first(clock: FakeClock) -> None:
    _, old_token = signer(clock, ("old",)).issue_ticket("ep1", 1, 0)
    rotated = signer(clock, ("new", "old"))
    assert rotated.load_ticket(old_token).number == 1
    _, new_token = rotated.issue_ticket("ep1", 2, 0)
    assert signer(clock, ("new",)).load_ticket(new_token).number == 2
    with pytest.raises(TicketInvalid):
        signer(clock, ("old",)).load_ticket(new_token)


def test_ticket_is_not_a_pass(clock: FakeClock) -> None:
    """Different salts: a ticket cannot be presented as a pass, nor the reverse."""
    s = signer(clock)
    ticket, ticket_token = s.issue_ticket("ep1", 1, 0)
    pass_token = s.issue_pass(ticket, int(clock.now) + 60)
    with pytest.raises(PassInvalid):
        s.load_pass(ticket_token)
    with pytest.raises(TicketInvalid):
        s.load_ticket(pass_token)


def test_pass_expiry_and_room(clock: FakeClock) -> None:
    s = signer(clock)
    ticket, _ = s.issue_ticket("ep1", 1, 0)
    token = s.issue_pass(ticket, int(clock.now) + 60)
    assert s.load_pass(token).ticket_id == ticket.ticket_id
    with pytest.raises(PassForeign):
        signer(clock, room="other").load_pass(token)
    clock.advance(60)
    with pytest.raises(PassExpired):
        s.load_pass(token)


def test_the_backends_codec_reads_the_gates_passes(clock: FakeClock) -> None:
    s = signer(clock, ("new", "old"))
    ticket, _ = s.issue_ticket("ep1", 1, 0)
    token = s.issue_pass(ticket, int(clock.now) + 60)
    assert PassCodec(("new",), clock=clock).load(token).room == "default"
    with pytest.raises(PassInvalid):
        PassCodec(("other",), clock=clock).load(token)


def test_no_secret_no_signer(clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="secret"):
        signer(clock, ("",))


def test_a_remembered_ticket_still_expires(clock: FakeClock) -> None:
    s = signer(clock)
    _, token = s.issue_ticket("ep1", 1, 0)
    assert s.load_ticket(token).number == 1  # verified, and remembered
    clock.advance(3601)
    with pytest.raises(TicketExpired):
        s.load_ticket(token)


def test_compressed_tickets_from_plain_itsdangerous_are_read(clock: FakeClock) -> None:
    """Tickets are no longer zlib-compressed; ones that were (the library's default for
    long payloads) must keep their place."""
    import hashlib
    import time

    from itsdangerous import URLSafeTimedSerializer

    clock.now = time.time()  # the plain serializer signs with the real clock
    plain = URLSafeTimedSerializer(["new"], salt="queue-gate.ticket.v1",
                                   signer_kwargs={"digest_method": hashlib.sha256})
    token = plain.dumps(["default", "ep1", 7, "x" * 40, 0, 0])
    assert token.startswith(".")  # compressed
    assert signer(clock).load_ticket(token).number == 7
