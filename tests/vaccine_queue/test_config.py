"""One meaning for every setting: unset or empty is the default, errors name the variable."""

from __future__ import annotations

import pytest

from vaccine_queue.config import Env, SettingsError


def test_unset_and_empty_take_the_default() -> None:
    env = Env({"A": "", "B": "   "})
    assert env.flag("A", True) is True
    assert env.flag("B", False) is False
    assert env.integer("A", 7) == 7
    assert env.number("MISSING", 1.5) == 1.5
    assert env.text("B", "x") == "x"
    assert env.items("A", ("a",)) == ("a",)
    assert env.path("A") is None


@pytest.mark.parametrize(("raw", "expected"), [
    ("1", True), ("TRUE", True), ("yes", True), ("On", True),
    ("0", False), ("false", False), ("NO", False), ("off", False),
])
def test_flags(raw: str, expected: bool) -> None:
    assert Env({"F": raw}).flag("F", not expected) is expected


@pytest.mark.parametrize(("name", "raw", "read", "words"), [
    ("F", "maybe", lambda e: e.flag("F", True), "F must be 1/0"),
    ("I", "ten", lambda e: e.integer("I", 1), "I must be a whole number, not 'ten'"),
    ("I", "-3", lambda e: e.integer("I", 1, minimum=0), "I must be at least 0"),
    ("N", "nan", lambda e: e.number("N", 1.0), "N must be a finite number"),
    ("N", "9", lambda e: e.number("N", 1.0, maximum=2), "N must be at most 2"),
    ("C", "fast", lambda e: e.choice("C", "queue", ("queue", "paused")), "C must be one of"),
])
def test_errors_name_the_variable(name: str, raw: str, read: object, words: str) -> None:
    with pytest.raises(SettingsError, match=words):
        read(Env({name: raw}))  # type: ignore[operator]


def test_items_and_text_are_stripped() -> None:
    env = Env({"L": " a, ,b ,", "T": "  x "})
    assert env.items("L") == ("a", "b")
    assert env.text("T") == "x"
