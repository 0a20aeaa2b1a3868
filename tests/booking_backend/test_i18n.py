"""Languages on the booking pages and API: the shared choice (`?lang=`, the `lang` cookie
the gate shares, Accept-Language by q-value) and the one catalogue."""

from __future__ import annotations

import re
from pathlib import Path

from tests.booking_backend.conftest import HOME_POSTCODE, Env
from vaccine_queue.i18n import LANG_COOKIE, LANGUAGES, catalogue

BACKEND = Path(__file__).resolve().parents[2] / "booking_backend"


async def test_accept_language_by_q_value_on_a_page(env: Env) -> None:
    # English is preferred over German here (0.8 > 0.5); French is not offered.
    headers = {**env.headers(), "Accept-Language": "fr, de;q=0.5, en;q=0.8"}
    async with env.client.get("/", headers=headers) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Language"] == "en"
        page = await resp.text()
    assert '<html lang="en">' in page and "Book a vaccination appointment" in page
    headers["Accept-Language"] = "fr"
    async with env.client.get("/", headers=headers) as resp:
        assert resp.headers["Content-Language"] == "de"  # nothing of ours: German


async def test_the_shared_lang_cookie_is_set_and_read(env: Env) -> None:
    async with env.client.get("/?lang=en", headers=env.headers()) as resp:
        assert resp.headers["Content-Language"] == "en"
        cookie = resp.cookies[LANG_COOKIE]
    assert LANG_COOKIE == "lang" and cookie.value == "en" and cookie["path"] == "/"
    assert "bk_lang" not in resp.cookies
    env.client.session.cookie_jar.clear()
    # The gate's pages set the same cookie: a choice made there holds here.
    for value, expected in (("en", "en"), ("de", "de")):
        async with env.client.get("/", headers={**env.headers(), "Accept-Language": "de",
                                                "Cookie": f"{LANG_COOKIE}={value}"}) as resp:
            assert resp.headers["Content-Language"] == expected
    async with env.client.get("/", headers={**env.headers(), "Accept-Language": "de",
                                            "Cookie": "bk_lang=en"}) as resp:
        assert resp.headers["Content-Language"] == "de"  # the old cookie means nothing


async def test_api_error_messages_follow_the_language(env: Env) -> None:
    body = {"birth_date": "24.12.1938", "postcode": "381"}
    texts = {}
    for accept in ("en-GB,en;q=0.9", "de-DE", "fr, de;q=0.5, en;q=0.8"):
        status, answer = await env.api("POST", "/api/v1/eligibility", json=body,
                                       headers={"Accept-Language": accept})
        assert (status, answer["error"], answer["field"]) == (400, "postcode_invalid",
                                                              "postcode")
        texts[accept] = answer["message"]
    assert texts["en-GB,en;q=0.9"] == catalogue("en")["err.postcode_invalid"]
    assert texts["de-DE"] == catalogue("de")["err.postcode_invalid"]
    assert texts["fr, de;q=0.5, en;q=0.8"] == catalogue("en")["err.postcode_invalid"]
    status, answer = await env.api("POST", "/api/v1/eligibility?lang=en",
                                   json={**body, "postcode": HOME_POSTCODE, "birth_date": ""},
                                   headers={"Accept-Language": "de"})
    assert answer["message"] == catalogue("en")["err.birth_date_missing"]


async def test_refusals_and_server_trouble_follow_the_language(env: Env) -> None:
    async with env.client.post("/api/v1/eligibility", json={},
                               headers={"Accept-Language": "en"}) as resp:
        assert resp.status == 403
        assert (await resp.json())["message"] == catalogue("en")["err.pass_missing"]
    async with env.client.get("/nowhere", headers={**env.headers(), "Accept-Language": "en"}
                              ) as resp:
        assert resp.status == 404
        assert catalogue("en")["err.not_found"] in await resp.text()


def test_every_code_the_backend_raises_has_words_in_every_language() -> None:
    # The admin API answers operators in English, its words inside the problem itself.
    source = "\n".join(path.read_text(encoding="utf-8") for path in BACKEND.glob("*.py")
                       if path.name != "admin.py")
    codes = set(re.findall(r'Problem\(\s*"([a-z_]+)"', source))
    codes |= set(re.findall(r'refusal\(request, "([a-z_]+)"\)', source))
    codes |= {f"code_{status}" for status in ("wrong", "locked", "expired", "not_delivered",
                                              "failed", "missing", "wait", "too_many")}
    assert len(codes) > 30
    for lang in LANGUAGES:
        missing = sorted(code for code in codes if f"err.{code}" not in catalogue(lang))
        assert missing == [], lang
