"""The Lua loader's includes and the reading of named replies."""

from __future__ import annotations

import pytest

from vaccine_queue.lua import Reply, ScriptError, script_source


def test_reply_reads_fields_by_name() -> None:
    reply = Reply([b"outcome", b"ok", "frontier", 12, "opens_at", ""], "t.lua")
    assert reply.text("outcome") == "ok"
    assert reply.integer("frontier") == 12
    assert reply.optional_number("opens_at") is None
    assert "outcome" in reply and "missing" not in reply
    assert reply.get("missing") is None and reply.get("missing", "x") == "x"
    with pytest.raises(ScriptError, match=r"t\.lua returned no field 'missing'"):
        reply.text("missing")


@pytest.mark.parametrize("raw", [None, "ok", ["odd"], 3])
def test_a_reply_that_is_no_list_of_pairs_is_a_script_error(raw: object) -> None:
    with pytest.raises(ScriptError):
        Reply(raw, "t.lua")


def test_includes_are_pasted_once() -> None:
    source = script_source("queue_gate", "tick-11.lua")
    assert not [line for line in source.splitlines() if line.startswith("--!include")]
    assert source.count("local function room_now") == 1
