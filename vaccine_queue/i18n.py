"""One language choice and one catalogue for every page and message of both services.

Texts live in gettext catalogues, `locale/<language>.po`, one per language, read once per
process with Babel. Their message ids are keys that name where a text is used (`gate.place`,
`start.heading`, `err.<code>` for the message of an error code), so translators see every
text of a language in one file and a test checks that both files hold the same keys and
that every key is used. Placeholders are Python's `{name}`.

The language of a request: `?lang=` (remembered in the `lang` cookie, shared by the gate
and the booking pages on one site), else that cookie, else the best of the browser's
Accept-Language by q-value, else German.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib.resources
import logging
import zoneinfo
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web
from babel.dates import format_date, format_datetime
from babel.messages.pofile import read_po
from babel.numbers import format_decimal

log = logging.getLogger(__name__)

LANGUAGES = ("de", "en")
DEFAULT_LANGUAGE = "de"
LANG_COOKIE = "lang"
LANG_COOKIE_MAX_AGE_S = 365 * 86400
# Longest Accept-Language header read, and most entries looked at: it is client input.
_ACCEPT_MAX_CHARS = 1000
_ACCEPT_MAX_ENTRIES = 20

lang_key: web.RequestKey[str] = web.RequestKey("lang", str)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@functools.cache
def catalogue(language: str) -> Mapping[str, str]:
    """Every text of one language, by key, from the packaged `locale/<language>.po`."""
    source = importlib.resources.files("vaccine_queue").joinpath("locale", f"{language}.po")
    with source.open("rb") as file:
        po = read_po(file, locale=language)
    return {str(message.id): str(message.string) for message in po if message.id}


class Translator:
    """The texts and formats of one language; templates receive it as `t`."""

    __slots__ = ("_texts", "lang", "other")

    def __init__(self, lang: str) -> None:
        if lang not in LANGUAGES:
            raise ValueError(f"unsupported language {lang!r}")
        self.lang = lang
        self.other = next(other for other in LANGUAGES if other != lang)
        self._texts = catalogue(lang)

    def __call__(self, key: str, **params: object) -> str:
        text = self._texts.get(key)
        if text is None:
            log.error("no text %r in the %s catalogue", key, self.lang)
            return key
        if not params:
            return text
        try:
            return text.format(**params)
        except (KeyError, IndexError, ValueError):
            log.error("text %r in %s does not fit its parameters", key, self.lang)
            return text

    def has(self, key: str) -> bool:
        return key in self._texts

    def number(self, value: float) -> str:
        """41203 as "41.203" or "41,203"."""
        return str(format_decimal(value, locale=self.lang))

    def duration(self, seconds: float | None) -> str:
        """An honest estimate in words: "about 35 minutes", "about 2 h 5 min"."""
        if seconds is None:
            return self("time.unknown")
        if seconds < 60:
            return self("time.less_than_minute")
        minutes = round(seconds / 60)
        if minutes < 90:
            return self("time.about_minutes", n=minutes)
        return self("time.about_hours", h=minutes // 60, m=minutes % 60)

    def when(self, moment: float | dt.datetime, zone: zoneinfo.ZoneInfo) -> str:
        """Weekday, date and time: "Donnerstag, 28.01.2021, 08:00 Uhr"."""
        return self._format(moment, zone, "format.when")

    def date(self, moment: float | dt.datetime, zone: zoneinfo.ZoneInfo) -> str:
        return self._format(moment, zone, "format.date")

    def day(self, day: dt.date, *, long: bool = False, short: bool = False) -> str:
        """A calendar day: "Mo., 11.01." (a chooser's link), "Montag, 11.01.2021" (`long`)
        or "11.01." (`short`)."""
        key = "format.day_long" if long else "format.day_short" if short else "format.day"
        return str(format_date(day, self(key), locale=self.lang))

    def clock(self, moment: float | dt.datetime, zone: zoneinfo.ZoneInfo) -> str:
        return self._format(moment, zone, "format.time")

    def _format(self, moment: float | dt.datetime, zone: zoneinfo.ZoneInfo, key: str) -> str:
        if not isinstance(moment, dt.datetime):
            moment = dt.datetime.fromtimestamp(moment, zone)
        return str(format_datetime(moment.astimezone(zone), self(key), locale=self.lang))


@functools.cache
def translator(lang: str) -> Translator:
    return Translator(lang)


def from_accept_language(header: str) -> str | None:
    """The supported language the browser prefers most (by q-value, then by order), or
    None when it names none of ours."""
    best: str | None = None
    best_q = 0.0
    for part in header[:_ACCEPT_MAX_CHARS].split(",")[:_ACCEPT_MAX_ENTRIES]:
        tag, _, params = part.partition(";")
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if not 0.0 < q <= 1.0:
            continue  # q=0 means "not this one"; out-of-range values are ignored
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and q > best_q:
            best, best_q = primary, q
    return best


def choose_language(request: web.Request) -> str:
    """`?lang=`, then the language cookie, then Accept-Language, then German."""
    for candidate in (request.query.get("lang"), request.cookies.get(LANG_COOKIE)):
        if candidate in LANGUAGES:
            return candidate
    accepted = from_accept_language(request.headers.get("Accept-Language", ""))
    return accepted or DEFAULT_LANGUAGE


def request_language(request: web.Request) -> str:
    """The language of this request, chosen the first time something asks for it (a
    response without words, such as the gate's status poll, never pays for choosing)."""
    lang = request.get(lang_key)
    if lang is None:
        lang = request[lang_key] = choose_language(request)
    return lang


def language_middleware(*, secure_cookies: bool) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Remember a `?lang=` choice in a cookie that the gate's and the booking pages share.
    (The language itself is chosen on demand by `request_language`.)"""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        # The query string is looked at only when there is one: most requests have none.
        if request.query_string and not response.prepared:
            lang = request.query.get("lang")
            if lang in LANGUAGES:
                remember_language(response, lang, secure=secure_cookies)
        return response

    return middleware


def remember_language(response: web.StreamResponse, lang: str, *, secure: bool) -> None:
    response.set_cookie(LANG_COOKIE, lang, max_age=LANG_COOKIE_MAX_AGE_S, path="/",
                        samesite="Lax", httponly=True, secure=secure)
