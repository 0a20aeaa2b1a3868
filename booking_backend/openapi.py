"""The OpenAPI 3 document of the JSON API, served at /api/v1/openapi.json.

Built from this table; a test checks that its paths and methods are exactly the app's routes.
"""

from __future__ import annotations

from typing import Any

from vaccine_queue.contract import END_SESSION_HEADER, PASS_COOKIE, PASS_HEADER

_STR = {"type": "string"}
_PERSON = {
    "birth_date": {"type": "string", "example": "1938-12-24",
                   "description": "YYYY-MM-DD or DD.MM.YYYY"},
    "postcode": {"type": "string", "pattern": "^[0-9]{5}$", "example": "38100"},
    "invitation_code": {"type": "string", "example": "ABCD-EFGH-JKLM",
                        "description": "required when the deployment books by invitation"},
}
_CONTACT = {
    "name": {"type": "string", "maxLength": 120},
    "contact": {"type": "string", "description": "mobile number (SMS) or e-mail address"},
    "lang": {"type": "string", "enum": ["de", "en"]},
}
_SLOT = {"type": "object", "properties": {"slot": _STR, "start": {"type": "string",
                                                                   "format": "date-time"}}}
_CENTRE = {"type": "object", "properties": {"id": _STR, "name": _STR, "town": _STR,
                                            "district": _STR}}
_BOOKING = {"type": "object", "properties": {
    "booking_code": _STR, "status": {"type": "string", "enum": ["active", "cancelled"]},
    "name": _STR, "centre": _CENTRE, "first": _SLOT, "second": _SLOT}}
_HOLD = {"type": "object", "properties": {
    "hold_id": _STR, "status": _STR, "expires_at": {"type": "string", "format": "date-time"},
    "expires_in_seconds": {"type": "integer"}, "centre": _CENTRE, "first": _SLOT,
    "second": _SLOT, "booking_code": {"type": "string", "nullable": True},
    "verification": {"type": "object"}}}
_VERIFICATION = {"type": "object", "properties": {"verification": {"type": "object"}}}
_BOOKING_REF = {"booking_code": {"type": "string", "example": "K7QM-3XZA"},
                "birth_date": _PERSON["birth_date"]}


def _body(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "properties": properties, "required": required}}}}


def _ok(description: str, schema: dict[str, Any] | None = None,
        status: str = "200") -> dict[str, Any]:
    response: dict[str, Any] = {"description": description}
    if schema is not None:
        response["content"] = {"application/json": {"schema": schema}}
    return {status: response}


_ERRORS = {
    "400": {"$ref": "#/components/responses/Error"},
    "403": {"$ref": "#/components/responses/Error"},
    "409": {"$ref": "#/components/responses/Error"},
    "422": {"$ref": "#/components/responses/Error"},
    "503": {"$ref": "#/components/responses/Error"},
}
_ERROR = {"$ref": "#/components/responses/Error"}
_HOLD_ID = [{"name": "hold_id", "in": "path", "required": True, "schema": _STR}]

OPERATIONS: dict[str, dict[str, dict[str, Any]]] = {
    "/api/v1/openapi.json": {"get": {"summary": "This document", "security": [],
                                     "responses": _ok("OpenAPI document", {"type": "object"})}},
    "/api/v1/groups": {"get": {"summary": "Priority groups and booking rules",
                               "responses": _ok("Groups", {"type": "object"})}},
    "/api/v1/centres": {"get": {
        "summary": "Vaccination centres; with ?postcode= the home district's first",
        "parameters": [{"name": "postcode", "in": "query", "schema": _PERSON["postcode"]}],
        "responses": _ok("Centres", {"type": "object", "properties": {
            "centres": {"type": "array", "items": _CENTRE}}})}},
    "/api/v1/eligibility": {"post": {
        "summary": "May this person book now, and if not, why",
        "requestBody": _body(_PERSON, ["birth_date", "postcode"]),
        "responses": {**_ok("Decision", {"type": "object"}), **_ERRORS}}},
    "/api/v1/offers": {"post": {
        "summary": "Free pairs (first and second dose at one centre), home district first",
        "requestBody": _body(_PERSON, ["birth_date", "postcode"]),
        "responses": {**_ok("Offers", {"type": "object"}), **_ERRORS}}},
    "/api/v1/holds": {"post": {
        "summary": "Hold a pair atomically for a few minutes",
        "requestBody": _body({**_PERSON, "first_slot": _STR, "second_slot": _STR,
                              "lang": _CONTACT["lang"]},
                             ["birth_date", "postcode", "first_slot", "second_slot"]),
        "responses": {**_ok("Held", _HOLD, "201"), **_ERRORS}}},
    "/api/v1/holds/{hold_id}": {
        "get": {"summary": "A hold and its verification state", "parameters": _HOLD_ID,
                "responses": {**_ok("Hold", _HOLD), "404": _ERROR}},
        "delete": {"summary": "Give a hold back", "parameters": _HOLD_ID,
                   "responses": {**_ok("Released", {"type": "object"}),
                                 "404": {"$ref": "#/components/responses/Error"}}},
    },
    "/api/v1/holds/{hold_id}/details": {"post": {
        "summary": "Name and contact for the hold; sends a verification code",
        "parameters": _HOLD_ID, "requestBody": _body(_CONTACT, ["name", "contact"]),
        "responses": {**_ok("Code is being sent", _VERIFICATION, "202"), **_ERRORS}}},
    "/api/v1/holds/{hold_id}/code": {"post": {
        "summary": "Send a new code (rate-limited)", "parameters": _HOLD_ID,
        "responses": {**_ok("Code is being sent", _VERIFICATION, "202"), **_ERRORS,
                      "429": {"$ref": "#/components/responses/Error"}}}},
    "/api/v1/holds/{hold_id}/confirm": {"post": {
        "summary": "Check the code and book; retries return the same booking",
        "parameters": [*_HOLD_ID, {"name": "Idempotency-Key", "in": "header",
                                   "schema": {"type": "string", "maxLength": 100}}],
        "requestBody": _body({"code": {"type": "string", "example": "123456"}}, ["code"]),
        "responses": {**_ok(f"Booked (sets {END_SESSION_HEADER}: 1)", _BOOKING, "201"),
                      **_ok("Already booked by an earlier identical request", _BOOKING),
                      **_ERRORS, "410": {"$ref": "#/components/responses/Error"},
                      "429": {"$ref": "#/components/responses/Error"}}}},
    "/api/v1/bookings/lookup": {"post": {
        "summary": "A booking by code and birth date",
        "requestBody": _body(_BOOKING_REF, ["booking_code", "birth_date"]),
        "responses": {**_ok("Booking", _BOOKING), **_ERRORS,
                      "404": {"$ref": "#/components/responses/Error"}}}},
    "/api/v1/bookings/cancel-code": {"post": {
        "summary": "Send a code to the booking's phone or e-mail to confirm a cancellation",
        "requestBody": _body(_BOOKING_REF, ["booking_code", "birth_date"]),
        "responses": {**_ok("Code is being sent", _VERIFICATION, "202"), **_ERRORS}}},
    "/api/v1/bookings/cancel": {"post": {
        "summary": "Cancel; the pair goes to the waiting list first",
        "requestBody": _body({**_BOOKING_REF, "code": _STR}, ["booking_code", "birth_date"]),
        "responses": {**_ok("Cancelled", {"type": "object"}), **_ERRORS}}},
    "/api/v1/waitlist": {"post": {
        "summary": "Join the waiting list of the home district or one centre",
        "requestBody": _body({**_PERSON, **_CONTACT, "centre": _STR},
                             ["birth_date", "postcode", "name", "contact"]),
        "responses": {**_ok("Joined", {"type": "object"}, "201"),
                      **_ok("Already waiting", {"type": "object"}), **_ERRORS}}},
}


def document() -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Vaccination booking API",
            "version": "1.0.0",
            "description": (
                "Book first and second dose together against one inventory. Every call needs "
                f"an admission pass from the queue gate (cookie {PASS_COOKIE} or header "
                f"{PASS_HEADER})."
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"queuePassHeader": []}, {"queuePassCookie": []}],
        "paths": OPERATIONS,
        "components": {
            "securitySchemes": {
                "queuePassHeader": {"type": "apiKey", "in": "header", "name": PASS_HEADER},
                "queuePassCookie": {"type": "apiKey", "in": "cookie", "name": PASS_COOKIE},
            },
            "responses": {"Error": {
                "description": (
                    "An error people can read: `error` is a stable code, `message` says it in "
                    "the request's language (?lang=de|en, the lang cookie, Accept-Language)"
                ),
                "content": {"application/json": {"schema": {
                    "type": "object", "required": ["error", "message"],
                    "properties": {"error": _STR, "message": _STR, "field": _STR}}}},
            }},
        },
    }
