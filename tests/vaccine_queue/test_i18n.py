"""The catalogues: the same keys in every language, every key used, and language choice."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from vaccine_queue.i18n import (
    LANG_COOKIE,
    LANGUAGES,
    catalogue,
    choose_language,
    from_accept_language,
    translator,
)

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [*ROOT.glob("queue_gate/**/*.py"), *ROOT.glob("booking_backend/**/*.py"),
           *ROOT.glob("vaccine_queue/**/*.py"), *ROOT.glob("templates/**/*.html"),
           *ROOT.glob("booking_backend/data/*.js")]
# Keys built at run time from a code: the code itself must appear in the source.
DYNAMIC_PREFIXES = ("err.",)


def fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_language_has_the_same_keys() -> None:
    keys = {lang: set(catalogue(lang)) for lang in LANGUAGES}
    for lang in LANGUAGES:
        assert keys[lang] == keys["de"], (lang, keys[lang] ^ keys["de"])


def test_placeholders_agree_between_languages() -> None:
    for key, german in catalogue("de").items():
        if key.startswith("format."):
            continue
        for lang in LANGUAGES:
            assert fields(catalogue(lang)[key]) == fields(german), (lang, key)


def test_no_text_is_empty() -> None:
    for lang in LANGUAGES:
        assert [key for key, text in catalogue(lang).items() if not text.strip()] == []


def test_every_key_is_used() -> None:
    source = "\n".join(path.read_text(encoding="utf-8") for path in SOURCES)
    unused = []
    for key in catalogue("de"):
        if key in source:
            continue
        prefix = next((p for p in DYNAMIC_PREFIXES if key.startswith(p)), None)
        if prefix is not None and re.search(rf"[\"']{re.escape(key[len(prefix):])}[\"']",
                                            source):
            continue
        unused.append(key)
    assert unused == []


@pytest.mark.parametrize(("header", "expected"), [
    ("fr, de;q=0.5, en;q=0.8", "en"),
    ("de-DE,de;q=0.9,en;q=0.8", "de"),
    ("en-GB", "en"),
    ("en;q=0, de;q=0.1", "de"),
    ("fr", None),
    ("", None),
    ("en;q=abc, de", "de"),
    ("*", None),
])
def test_accept_language(header: str, expected: str | None) -> None:
    assert from_accept_language(header) == expected


def _request(path: str, headers: dict[str, str] | None = None) -> web.Request:
    return make_mocked_request("GET", path, headers=headers or {})


def test_choice_order() -> None:
    assert choose_language(_request("/")) == "de"
    assert choose_language(_request("/", {"Accept-Language": "en"})) == "en"
    cookie = {"Accept-Language": "en", "Cookie": f"{LANG_COOKIE}=de"}
    assert choose_language(_request("/", cookie)) == "de"
    assert choose_language(_request("/?lang=en", cookie)) == "en"
    assert choose_language(_request("/?lang=xx", cookie)) == "de"


def test_formats() -> None:
    de, en = translator("de"), translator("en")
    assert (de.number(41203), en.number(41203)) == ("41.203", "41,203")
    assert de.duration(None) == de("time.unknown")
    assert en.duration(30) == en("time.less_than_minute")
    assert en.duration(35 * 60) == en("time.about_minutes", n=35)
    assert en.duration(125 * 60) == en("time.about_hours", h=2, m=5)


def test_missing_key_and_bad_parameters_do_not_break_a_page() -> None:
    t = translator("en")
    assert t("no.such.key") == "no.such.key"
    assert t("time.about_minutes", wrong=1) == catalogue("en")["time.about_minutes"]
