"""The contract's codecs refuse what is not a token before checking a signature."""

from __future__ import annotations

import pytest

from vaccine_queue.contract import (
    AdmissionPass,
    PassCodec,
    PassInvalid,
    Ticket,
    TicketCodec,
    TicketInvalid,
)

SECRETS = ("new-secret", "old-secret")


@pytest.mark.parametrize("token", ["\udcff\udcfe", "ä.b.c", ""])
def test_bytes_that_are_no_token_are_refused_as_invalid(token: str) -> None:
    with pytest.raises(TicketInvalid):
        TicketCodec(SECRETS, max_age_s=60).load(token)
    with pytest.raises(PassInvalid):
        PassCodec(SECRETS).load(token)


def test_tokens_round_trip_and_old_secrets_verify() -> None:
    ticket = Ticket("room", "epoch", 7, "tid", 3, 0.0, 0)
    old = TicketCodec(("old-secret",), max_age_s=60, clock=lambda: 1000.0)
    loaded = TicketCodec(SECRETS, max_age_s=60, clock=lambda: 1000.0).load(old.sign(ticket))
    assert (loaded.room, loaded.number, loaded.ticket_id, loaded.issued_at) == (
        "room", 7, "tid", 1000.0)
    admission = AdmissionPass("room", "tid", 2_000)
    codec = PassCodec(SECRETS, clock=lambda: 1000.0)
    assert codec.load(codec.sign(admission), room="room") == admission
