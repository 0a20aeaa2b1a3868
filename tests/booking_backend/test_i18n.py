"""Every text exists in German and English with the same placeholders."""

from __future__ import annotations

import string

from booking_backend.i18n import TEXTS, from_accept_language, translate


def fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_both_languages_with_the_same_placeholders() -> None:
    for key, (de, en) in TEXTS.items():
        assert de.strip() and en.strip(), key
        assert fields(de) == fields(en), key


def test_accept_language() -> None:
    assert from_accept_language("") == "de"
    assert from_accept_language("en-GB,en;q=0.9") == "en"
    assert from_accept_language("fr, de;q=0.5, en;q=0.8") == "en"
    assert from_accept_language("tr, x;q=abc") == "de"


def test_missing_parameters_do_not_break_a_page() -> None:
    assert translate("en", "err.code_wrong", {}) == TEXTS["err.code_wrong"][1]
    assert translate("de", "no.such.key") == "no.such.key"
