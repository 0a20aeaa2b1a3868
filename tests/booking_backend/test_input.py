"""Malformed input gets a readable 4xx, never a 5xx."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.booking_backend.conftest import HOME_POSTCODE, OLD, Env

POST_ROUTES = [
    "/api/v1/eligibility", "/api/v1/offers", "/api/v1/holds", "/api/v1/bookings/lookup",
    "/api/v1/bookings/cancel-code", "/api/v1/bookings/cancel", "/api/v1/waitlist",
    "/api/v1/holds/nope/details", "/api/v1/holds/nope/confirm", "/api/v1/holds/nope/code",
]
BODIES: list[Any] = [
    {}, [], "text", 42, None, {"birth_date": 19381224}, {"birth_date": ["x"]},
    {"birth_date": "31.02.1938", "postcode": HOME_POSTCODE},
    {"birth_date": "2099-01-01", "postcode": HOME_POSTCODE},
    {"birth_date": "1.1.1800", "postcode": HOME_POSTCODE},
    {"birth_date": OLD, "postcode": "1234"}, {"birth_date": OLD, "postcode": "99999"},
    {"birth_date": OLD, "postcode": HOME_POSTCODE, "first_slot": {}, "second_slot": 1},
    {"birth_date": OLD, "postcode": HOME_POSTCODE, "first_slot": "x@y", "second_slot": "@"},
    {"birth_date": OLD, "postcode": HOME_POSTCODE, "invitation_code": 5},
    {"name": 1, "contact": None, "code": []}, {"name": "\x00", "contact": "abc", "code": "1"},
    {"booking_code": "AAAA-AAAA", "birth_date": "yesterday"},
    {"birth_date": OLD, "postcode": HOME_POSTCODE, "name": "A", "contact": "@@", "centre": 3},
    {"birth_date": OLD, "postcode": HOME_POSTCODE, "lang": "fr"},
    # Digits of other scripts: str.isdigit() takes them, int() takes some, not "²".
    {"birth_date": OLD, "postcode": HOME_POSTCODE, "first_slot": "x@\u00b2",
     "second_slot": "x@\u0661\u0662"},
    {"birth_date": OLD, "postcode": "\uff13\uff18\uff11\uff10\uff10"},
    {"birth_date": OLD, "postcode": HOME_POSTCODE, "name": "A",
     "contact": "+\u0664\u0669\u0661\u0667\u0660\u0661\u0662\u0663\u0664\u0665"},
]


@pytest.mark.parametrize("path", POST_ROUTES)
async def test_api_never_answers_bad_input_with_5xx(env: Env, path: str) -> None:
    refused = 0
    for body in BODIES:
        status, answer = await env.api("POST", path, json=body)
        assert status < 500, (path, body, answer)
        if status >= 400:
            assert answer["error"] and answer["message"]
            refused += 1
    assert refused >= len(BODIES) - 7  # a few bodies are valid for some routes


async def test_missing_and_mistyped_fields_are_named(env: Env) -> None:
    status, body = await env.api("POST", "/api/v1/eligibility", json={"postcode": "38100"})
    assert (status, body["error"], body["field"]) == (422, "field_missing", "birth_date")
    status, body = await env.api("POST", "/api/v1/eligibility",
                                 json={"birth_date": 1938, "postcode": "38100"})
    assert (status, body["error"], body["field"]) == (422, "field_type", "birth_date")
    status, body = await env.api("POST", "/api/v1/eligibility",
                                 json={"birth_date": "31.02.1938", "postcode": "38100"},
                                 headers={"Accept-Language": "en"})
    assert (status, body["error"]) == (400, "birth_date_invalid")
    assert body["message"] == "This date does not exist. Please check the day and month."


async def test_not_json(env: Env) -> None:
    status, body = await env.api("POST", "/api/v1/eligibility", data="{not json",
                                 headers={"Content-Type": "application/json"})
    assert (status, body["error"]) == (400, "json_invalid")
    status, body = await env.api("POST", "/api/v1/eligibility", data="birth_date=1")
    assert (status, body["error"]) == (415, "unsupported_media_type")
    status, body = await env.api("POST", "/api/v1/eligibility", data=b"\xff\xfe",
                                 headers={"Content-Type": "application/json"})
    assert (status, body["error"]) == (400, "json_invalid")


async def test_huge_bodies_are_refused(env: Env) -> None:
    big = {"birth_date": OLD, "postcode": HOME_POSTCODE, "pad": "x" * 100_000}
    status, body = await env.api("POST", "/api/v1/eligibility", json=big)
    assert (status, body["error"]) == (413, "body_too_large")
    async with env.client.post("/start", data={"birth_date": "x" * 100_000},
                               headers=env.headers()) as resp:
        assert resp.status == 413
        assert "zu groß" in await resp.text()


async def test_unknown_paths_and_methods(env: Env) -> None:
    status, body = await env.api("GET", "/api/v1/nothing")
    assert (status, body["error"]) == (404, "not_found")
    status, body = await env.api("PUT", "/api/v1/holds")
    assert (status, body["error"]) == (405, "method_not_allowed")
    async with env.client.get("/nothing", headers=env.headers()) as resp:
        assert resp.status == 404
        assert "Diese Seite gibt es nicht" in await resp.text()


async def csrf_of(env: Env, path: str = "/") -> str:
    async with env.client.get(path, headers=env.headers()) as resp:
        page = await resp.text()
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match
    return match.group(1)


async def test_forms_need_a_valid_csrf_token(env: Env) -> None:
    token = await csrf_of(env)
    form = {"birth_date": OLD, "postcode": HOME_POSTCODE}
    for bad in ({}, {"csrf_token": "forged"}, {"csrf_token": token + "x"}):
        async with env.client.post("/start", data={**form, **bad}, headers=env.headers(),
                                   allow_redirects=False) as resp:
            assert resp.status == 400
            assert "Das Formular ist zu alt" in await resp.text()
    async with env.client.post("/start", data={**form, "csrf_token": token},
                               headers=env.headers(), allow_redirects=False) as resp:
        assert resp.status == 303


async def test_bad_date_reshows_the_form_with_the_error(env: Env) -> None:
    token = await csrf_of(env)
    async with env.client.post("/start", headers={**env.headers(), "Accept-Language": "en"},
                               data={"birth_date": "1938-13-45", "postcode": "38100",
                                     "csrf_token": token}) as resp:
        assert resp.status == 400
        page = await resp.text()
    assert "This date does not exist" in page
    assert 'value="1938-13-45"' in page and 'aria-invalid="true"' in page


@pytest.mark.parametrize("contact", ["+\u0664\u0669\u0661\u0667\u0660\u0661\u0662\u0663\u0664",
                                     "\u0660\u0661\u0667\u0660\u0661\u0662\u0663\u0664\u0665"])
async def test_phone_numbers_in_other_scripts_digits_are_refused(env: Env,
                                                                  contact: str) -> None:
    """An SMS gateway cannot send to "+٤٩١٧٠…": the number is refused, never stored."""
    status, body = await env.api("POST", "/api/v1/waitlist", json={
        "birth_date": OLD, "postcode": HOME_POSTCODE, "name": "Erna Beispiel",
        "contact": contact})
    assert (status, body["error"]) == (400, "phone_invalid"), body
