"""Eligibility by priority group (checked again at booking) and the home-district rule."""

from __future__ import annotations

import datetime as dt

import pytest

from booking_backend.eligibility import InvalidInput, age_on, decide, parse_birth_date
from booking_backend.settings import OPEN, PriorityGroup, parse_groups
from tests.booking_backend.conftest import HOME_POSTCODE, OLD, YOUNG, Env, MakeEnv, pair_slots

TODAY = dt.date(2021, 1, 8)
GROUPS = (PriorityGroup(80, OPEN), PriorityGroup(70, dt.date(2021, 2, 15)),
          PriorityGroup(60, None))


def test_birth_dates_are_parsed_in_german_and_iso_form() -> None:
    assert parse_birth_date("24.12.1938", TODAY) == dt.date(1938, 12, 24)
    assert parse_birth_date("1.2.1940", TODAY) == dt.date(1940, 2, 1)
    assert parse_birth_date(" 1938-12-24 ", TODAY) == dt.date(1938, 12, 24)
    for raw, code in (("", "birth_date_missing"), ("24/12/1938", "birth_date_format"),
                      ("30.02.1940", "birth_date_invalid"), ("01.01.2030", "birth_date_future"),
                      ("01.01.1850", "birth_date_too_old"), (None, "birth_date_missing")):
        with pytest.raises(InvalidInput) as caught:
            parse_birth_date(raw, TODAY)
        assert caught.value.code == code


def test_age_counts_the_birthday_itself() -> None:
    assert age_on(dt.date(1941, 1, 8), TODAY) == 80
    assert age_on(dt.date(1941, 1, 9), TODAY) == 79


def test_groups_open_by_flag_or_date() -> None:
    assert decide(dt.date(1938, 1, 1), TODAY, GROUPS).eligible
    waiting = decide(dt.date(1945, 1, 1), TODAY, GROUPS)
    assert (waiting.eligible, waiting.reason, waiting.next_group) == (
        False, "group_not_open", GROUPS[1])
    later = decide(dt.date(1945, 1, 1), dt.date(2021, 2, 15), GROUPS)
    assert later.eligible and later.group == GROUPS[1]
    nobody = decide(dt.date(2000, 1, 1), TODAY, GROUPS)
    assert nobody.next_group is None and not nobody.eligible


def test_group_setting_syntax() -> None:
    assert parse_groups("60:closed, 80:open,70:2021-02-15") == (
        PriorityGroup(80, OPEN), PriorityGroup(70, dt.date(2021, 2, 15)),
        PriorityGroup(60, None))


async def test_not_eligible_is_told_why(env: Env) -> None:
    status, body = await env.api("POST", "/api/v1/eligibility",
                                 json={"birth_date": YOUNG, "postcode": HOME_POSTCODE})
    assert status == 200
    assert body == {"eligible": False, "reason": "group_not_open", "age": 60, "group": None,
                    "open_groups": ["80+"], "own_group": "60+", "own_group_opens": None,
                    "district": {"id": "braunschweig", "name": "Braunschweig"}}
    status, body = await env.api("POST", "/api/v1/offers",
                                 json={"birth_date": YOUNG, "postcode": HOME_POSTCODE})
    assert (status, body["error"], body["open_groups"]) == (403, "not_eligible", ["80+"])


async def test_eligibility_is_checked_again_at_hold(env: Env) -> None:
    ((first, second),) = await env.add_pairs(1)
    status, body = await env.api("POST", "/api/v1/holds", json={
        "birth_date": YOUNG, "postcode": HOME_POSTCODE, "first_slot": first.id,
        "second_slot": second.id})
    assert (status, body["error"]) == (403, "not_eligible")
    assert (await env.backend.counts())["held"] == 0


async def test_eligibility_is_checked_again_at_confirmation(make_env: MakeEnv) -> None:
    env = await make_env()
    ((first, second),) = await env.add_pairs(1)
    status, hold = await env.api("POST", "/api/v1/holds", json={
        "birth_date": OLD, "postcode": HOME_POSTCODE, "first_slot": first.id,
        "second_slot": second.id})
    hid = hold["hold_id"]
    await env.api("POST", f"/api/v1/holds/{hid}/details",
                  json={"name": "Late Closure", "contact": "+4915100001111"})
    await env.deliver()
    # The operator closes every group while the person types the code.
    object.__setattr__(env.backend.service.settings, "priority_groups",
                       (PriorityGroup(80, None),))
    status, body = await env.api("POST", f"/api/v1/holds/{hid}/confirm",
                                 json={"code": env.sender.last_code()})
    assert (status, body["error"]) == (403, "not_eligible")


async def test_home_district_comes_first(env: Env) -> None:
    await env.add_pairs(2, centre="wolfsburg")
    await env.add_pairs(1, centre="braunschweig")
    status, body = await env.api("POST", "/api/v1/offers",
                                 json={"birth_date": OLD, "postcode": HOME_POSTCODE})
    assert status == 200
    assert body["centres"][0]["id"] == "braunschweig"
    assert [o["centre"] for o in body["offers"]] == ["braunschweig", "wolfsburg", "wolfsburg"]
    first, second = pair_slots("braunschweig", 0)
    assert body["offers"][0]["first"]["slot"] == first.id
    assert body["offers"][0]["second"]["slot"] == second.id
    assert body["offers"][0]["first"]["start"] == "2021-01-11T08:00:00+01:00"


async def test_district_rule_refuses_other_districts(make_env: MakeEnv) -> None:
    env = await make_env(home_district_only=True)
    (pair,) = await env.add_pairs(1, centre="wolfsburg")
    status, body = await env.api("POST", "/api/v1/offers",
                                 json={"birth_date": OLD, "postcode": HOME_POSTCODE})
    assert body["offers"] == [] and [c["id"] for c in body["centres"]] == ["braunschweig"]
    status, body = await env.api("POST", "/api/v1/holds", json={
        "birth_date": OLD, "postcode": HOME_POSTCODE, "first_slot": pair[0].id,
        "second_slot": pair[1].id})
    assert (status, body["error"]) == (403, "outside_district")
    status, body = await env.api("POST", "/api/v1/holds", json={
        "birth_date": OLD, "postcode": "38440", "first_slot": pair[0].id,
        "second_slot": pair[1].id})
    assert status == 201  # a Wolfsburg resident may
    status, body = await env.api("POST", "/api/v1/waitlist", json={
        "birth_date": OLD, "postcode": HOME_POSTCODE, "name": "A B", "contact": "a@b.de",
        "centre": "wolfsburg"})
    assert (status, body["error"]) == (403, "outside_district")


async def test_unknown_postcode_is_explained(env: Env) -> None:
    status, body = await env.api("POST", "/api/v1/eligibility",
                                 json={"birth_date": OLD, "postcode": "80331"},
                                 headers={"Accept-Language": "en"})
    assert (status, body["error"]) == (400, "postcode_unknown")
    assert "Niedersachsen" in body["message"]
