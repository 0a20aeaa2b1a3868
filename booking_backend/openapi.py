"""The OpenAPI 3 document of the JSON API, served at /api/v1/openapi.json.

Built from the tables below. Tests keep it true: its paths and methods are exactly the app's
routes (test_openapi), and schemathesis calls every operation with generated requests,
valid and invalid, and checks each answer's status, content type, headers and body against
the document (test_schemathesis).
"""

from __future__ import annotations

from typing import Any

from vaccine_queue.contract import END_SESSION_HEADER, PASS_COOKIE, PASS_HEADER

_STR = {"type": "string"}
_INT = {"type": "integer"}
_BOOL = {"type": "boolean"}
_STR_OR_NULL = {"type": "string", "nullable": True}
_DATE_TIME = {"type": "string", "format": "date-time"}

# Request fields. A pattern says what the server reads (as loosely as it reads it); a
# value of the right shape can still be refused with a 400 naming the field (a birth date
# in the future, a postcode outside the deployment's region, an invitation never issued).
_BIRTH_DATE = {"type": "string", "example": "24.12.1938",
               "pattern": r"^\s*(\d{1,2}\.\d{1,2}\.\d{4}|\d{4}-\d{1,2}-\d{1,2})\s*$",
               "description": "DD.MM.YYYY or YYYY-MM-DD (day and month may have one digit)"}
# Booking and invitation codes: letters and digits that cannot be mixed up (no 0/O, 1/I),
# in any case, with dashes and spaces ignored.
_CODE_CHAR = r"[A-HJ-NP-Za-hj-np-z2-9]"


def _code_pattern(characters: int) -> str:
    return rf"^[\s\-]*({_CODE_CHAR}[\s\-]*){{{characters}}}$"


_PERSON = {
    "birth_date": _BIRTH_DATE,
    "postcode": {"type": "string", "pattern": r"^\s*[0-9]{5}\s*$", "example": "38100"},
    "invitation_code": {"type": "string", "nullable": True, "example": "ABCD-EFGH-JKLM",
                        "pattern": rf"^\s*$|{_code_pattern(12)}",
                        "description": "required when the deployment books by invitation"},
}
_CONTACT = {
    "name": {"type": "string", "maxLength": 120, "example": "Erika Mustermann"},
    "contact": {"type": "string", "example": "+49 151 23456789",
                "description": "mobile number (SMS) or e-mail address"},
    "lang": {"type": "string", "nullable": True, "enum": ["de", "en", None],
             "description": "the language of the texts sent; default: the request's"},
}
_SLOT_ID = {"type": "string", "pattern": r"^.+@[0-9]{1,11}$", "maxLength": 120,
            "description": "a slot's `slot` from /offers"}
_BOOKING_REF = {"booking_code": {"type": "string", "pattern": _code_pattern(8),
                                 "example": "K7QM-3XZA"},
                "birth_date": _BIRTH_DATE}

# The offers' optional day and time of day (booking_backend/days.py).
_DAY_CHOICE = [
    {"name": "day", "in": "query", "required": False,
     "description": "only first doses on this day (in the deployment's time zone); 422 "
                    "`day_invalid` if not YYYY-MM-DD, `day_out_of_range` outside the days "
                    "that may be booked",
     "schema": {"type": "string", "format": "date", "example": "2021-01-11"}},
    {"name": "time_of_day", "in": "query", "required": False,
     "description": "only first doses starting in the morning (before 12:00), afternoon "
                    "(12:00 to 17:00) or evening (from 17:00), local time; default all; 422 "
                    "`time_of_day_invalid` for anything else",
     "schema": {"type": "string", "enum": ["all", "morning", "afternoon", "evening"]}},
]

# Response bodies.
_SLOT = {"type": "object", "properties": {"slot": _STR, "start": _DATE_TIME}}
_CENTRE = {"type": "object", "properties": {
    "id": _STR, "name": _STR, "town": _STR, "district": _STR,
    "street": {**_STR, "description": "empty when the catalogue gives none"},
    "postcode": _STR, "address": {**_STR, "example": "Marktplatz 1, 38100 Braunschweig"},
    "map_url": {**_STR, "description": "OpenStreetMap's search for the address"}}}
_DISTRICT = {"type": "object", "properties": {"id": _STR, "name": _STR}}
_BOOKING = {"type": "object", "properties": {
    "booking_code": _STR, "status": {"type": "string", "enum": ["active", "cancelled"]},
    "name": _STR, "centre": {**_CENTRE, "nullable": True}, "first": _SLOT, "second": _SLOT}}
_HOLD = {"type": "object", "properties": {
    "hold_id": _STR, "status": _STR, "expires_at": _DATE_TIME, "expires_in_seconds": _INT,
    "centre": {**_CENTRE, "nullable": True}, "first": _SLOT, "second": _SLOT,
    "booking_code": _STR_OR_NULL,
    "verification": {"type": "object", "properties": {
        "status": _STR, "delivered": _BOOL, "to": _STR_OR_NULL}}}}
_VERIFICATION = {"type": "object", "properties": {"verification": {
    "type": "object", "properties": {
        "status": {"type": "string", "enum": ["sending"]},
        "channel": {"type": "string", "enum": ["sms", "email"]}, "to": _STR}}}}
_GROUPS = {"type": "object", "properties": {
    "groups": {"type": "array", "items": {"type": "object", "properties": {
        "name": _STR, "min_age": _INT, "open": _BOOL, "opens": _STR_OR_NULL}}},
    "invitations_required": _BOOL, "home_district_only": _BOOL}}
_DECISION = {"type": "object", "properties": {
    "eligible": _BOOL, "reason": _STR, "age": _INT, "group": _STR_OR_NULL,
    "open_groups": {"type": "array", "items": _STR}, "own_group": _STR_OR_NULL,
    "own_group_opens": _STR_OR_NULL, "district": _DISTRICT}}
_OFFERS = {"type": "object", "properties": {
    "district": _DISTRICT, "centres": {"type": "array", "items": _CENTRE},
    "days": {"type": "array", "description": "the next (up to 7) days with free pairs at these "
             "centres, whatever `day` and `time_of_day` say: what `?day=` may ask for",
             "items": {"type": "string", "format": "date"}},
    "offers": {"type": "array", "items": {"type": "object", "properties": {
        "centre": _STR, "first": _SLOT, "second": _SLOT}}}}}
_RELEASED = {"type": "object", "properties": {"hold_id": _STR, "released": _BOOL}}
_CANCELLED = {"type": "object", "properties": {
    "booking_code": _STR, "status": {"type": "string", "enum": ["cancelled"]}}}
_WAITING = {"type": "object", "properties": {
    "status": {"type": "string", "enum": ["waiting"]}, "already_waiting": _BOOL,
    "position": _INT, "notify": _STR}}

# Every error is this object (vaccine_queue.pages.json_problem); some carry more fields.
_PROBLEM = {
    "type": "object", "required": ["error", "message"],
    "properties": {
        "error": {**_STR, "description": "a stable code, e.g. `postcode_invalid`"},
        "message": {**_STR, "description": "the same in the request's language"},
        "field": {**_STR, "description": "the request field at fault"},
        "queue": {**_STR, "description": "403 without a valid pass: where to queue"},
        "reason": {**_STR, "description": "403 `not_eligible`: why (see /eligibility)"},
        "age": {**_INT, "description": "403 `not_eligible`: the age on today's date"},
        "status": {**_STR, "description": "410 `hold_expired`: the hold's state"},
        "detail": {**_STR, "description": "422 `pair_invalid`: what is wrong with the pair"},
        "attempts_left": {**_INT, "description": "422 `code_wrong`: tries before the lock"},
    },
}

# What each error status means, with the headers it carries: one entry per status in
# components/responses, which the operations refer to.
_RETRY_AFTER = {"description": "seconds to wait before trying again", "schema": _INT}
_ERROR_STATUSES: dict[str, tuple[str, dict[str, Any]]] = {
    "400": ("The body is not JSON, or a value cannot be used (`field` names it)", {}),
    "403": ("No valid pass from the queue gate (`queue` is where to line up), or the "
            "person may not book (yet) or not at that centre", {}),
    "404": ("No such hold or booking for this visitor", {}),
    "409": ("Not in this state: the pair was taken meanwhile, already booked, no contact "
            "details yet, no code delivered, too late to cancel", {}),
    "410": ("The hold or the code has expired", {}),
    "413": ("The body is larger than the deployment accepts (BOOKING_MAX_BODY_BYTES)", {}),
    "415": ("The body is not `application/json`", {}),
    "422": ("The body is not a JSON object, a field is missing or of the wrong type, or a "
            "value is refused (a wrong code, an unknown centre or slot)", {}),
    "429": ("Too many codes asked for, asked again too soon, or too many wrong codes", {}),
    "503": ("The database is unavailable (with Retry-After) or the catalogue not loaded yet",
            {"Retry-After": _RETRY_AFTER}),
}
# Statuses every call behind the gate can answer (no or a bad pass; the database away),
# and those of every call that reads a JSON body.
_GATED = ("403", "503")
_BODY = ("400", "413", "415", "422")


def _errors(*statuses: str) -> dict[str, Any]:
    return {status: {"$ref": f"#/components/responses/Error{status}"}
            for status in sorted(statuses)}


def _body(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "properties": properties, "required": required}}}}


def _ok(description: str, schema: dict[str, Any], status: str = "200",
        headers: dict[str, Any] | None = None,
        links: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description,
                                "content": {"application/json": {"schema": schema}}}
    if headers:
        response["headers"] = headers
    if links:
        response["links"] = links
    return {status: response}


_HOLD_ID = [{"name": "hold_id", "in": "path", "required": True, "schema": _STR}]
_ENDS_SESSION = {END_SESSION_HEADER: {
    "description": "1: the gate ends the visitor's pass", "required": True,
    "schema": {"type": "string", "enum": ["1"]}}}
# The hold a POST /holds made, for the calls on it (schemathesis follows these links too).
_HOLD_LINKS = {name: {"operationId": operation,
                      "parameters": {"hold_id": "$response.body#/hold_id"}}
               for name, operation in (("GetHold", "getHold"), ("ReleaseHold", "releaseHold"),
                                       ("SubmitDetails", "submitDetails"),
                                       ("ResendCode", "resendCode"),
                                       ("ConfirmHold", "confirmHold"))}

OPERATIONS: dict[str, dict[str, dict[str, Any]]] = {
    "/api/v1/openapi.json": {"get": {
        "operationId": "openapi", "summary": "This document", "security": [],
        "responses": _ok("OpenAPI document", {"type": "object"})}},
    "/api/v1/groups": {"get": {
        "operationId": "groups", "summary": "Priority groups and booking rules",
        "responses": {**_ok("Groups", _GROUPS), **_errors("403")}}},
    "/api/v1/centres": {"get": {
        "operationId": "centres",
        "summary": "Vaccination centres; with ?postcode= the home district's first",
        "parameters": [{"name": "postcode", "in": "query", "schema": {
            "type": "string", "pattern": "^([0-9]{5})?$", "example": "38100",
            "description": "empty: all centres"}}],
        "responses": {**_ok("Centres", {"type": "object", "properties": {
            "centres": {"type": "array", "items": _CENTRE}}}), **_errors("400", *_GATED)}}},
    "/api/v1/eligibility": {"post": {
        "operationId": "eligibility", "summary": "May this person book now, and if not, why",
        "requestBody": _body(_PERSON, ["birth_date", "postcode"]),
        "responses": {**_ok("Decision", _DECISION), **_errors(*_GATED, *_BODY)}}},
    "/api/v1/offers": {"post": {
        "operationId": "offers",
        "summary": "Free pairs (first and second dose at one centre), home district first",
        "parameters": _DAY_CHOICE,
        "requestBody": _body(_PERSON, ["birth_date", "postcode"]),
        "responses": {**_ok("Offers", _OFFERS), **_errors(*_GATED, *_BODY)}}},
    "/api/v1/holds": {"post": {
        "operationId": "createHold", "summary": "Hold a pair atomically for a few minutes",
        "requestBody": _body({**_PERSON,
                              "first_slot": {**_SLOT_ID, "example": "braunschweig@1610348400"},
                              "second_slot": {**_SLOT_ID, "example": "braunschweig@1612162800"},
                              "lang": _CONTACT["lang"]},
                             ["birth_date", "postcode", "first_slot", "second_slot"]),
        "responses": {**_ok("Held", _HOLD, "201", links=_HOLD_LINKS),
                      **_errors(*_GATED, *_BODY, "409")}}},
    "/api/v1/holds/{hold_id}": {
        "get": {"operationId": "getHold", "summary": "A hold and its verification state",
                "parameters": _HOLD_ID,
                "responses": {**_ok("Hold", _HOLD), **_errors(*_GATED, "404")}},
        "delete": {"operationId": "releaseHold", "summary": "Give a hold back",
                   "parameters": _HOLD_ID,
                   "responses": {**_ok("Released (false: it had ended already)", _RELEASED),
                                 **_errors(*_GATED, "404")}},
    },
    "/api/v1/holds/{hold_id}/details": {"post": {
        "operationId": "submitDetails",
        "summary": "Name and contact for the hold; sends a verification code",
        "parameters": _HOLD_ID, "requestBody": _body(_CONTACT, ["name", "contact"]),
        "responses": {**_ok("Code is being sent", _VERIFICATION, "202"),
                      **_errors(*_GATED, *_BODY, "404", "409", "410", "429")}}},
    "/api/v1/holds/{hold_id}/code": {"post": {
        "operationId": "resendCode", "summary": "Send a new code (rate-limited; no body)",
        "parameters": _HOLD_ID,
        "responses": {**_ok("Code is being sent", _VERIFICATION, "202"),
                      **_errors(*_GATED, "404", "409", "410", "429")}}},
    "/api/v1/holds/{hold_id}/confirm": {"post": {
        "operationId": "confirmHold",
        "summary": "Check the code and book; retries return the same booking",
        "parameters": [*_HOLD_ID, {"name": "Idempotency-Key", "in": "header", "schema": {
            "type": "string", "minLength": 1, "maxLength": 100}}],
        "requestBody": _body({"code": {"type": "string", "pattern": r"\S",
                                       "example": "123456"}}, ["code"]),
        "responses": {**_ok("Booked", _BOOKING, "201", _ENDS_SESSION),
                      **_ok("Already booked by an earlier identical request", _BOOKING,
                            headers=_ENDS_SESSION),
                      **_errors(*_GATED, *_BODY, "404", "409", "410", "429")}}},
    "/api/v1/bookings/lookup": {"post": {
        "operationId": "lookupBooking", "summary": "A booking by code and birth date",
        "requestBody": _body(_BOOKING_REF, ["booking_code", "birth_date"]),
        "responses": {**_ok("Booking", _BOOKING), **_errors(*_GATED, *_BODY, "404")}}},
    "/api/v1/bookings/cancel-code": {"post": {
        "operationId": "cancelCode",
        "summary": "Send a code to the booking's phone or e-mail to confirm a cancellation",
        "requestBody": _body(_BOOKING_REF, ["booking_code", "birth_date"]),
        "responses": {**_ok("Code is being sent", _VERIFICATION, "202"),
                      **_errors(*_GATED, *_BODY, "404", "409", "429")}}},
    "/api/v1/bookings/cancel": {"post": {
        "operationId": "cancelBooking",
        "summary": "Cancel; the pair goes to the waiting list first",
        "requestBody": _body({**_BOOKING_REF, "code": {
            "type": "string", "nullable": True,
            "description": "the code from /bookings/cancel-code, when the deployment asks "
                           "for one"}}, ["booking_code", "birth_date"]),
        "responses": {**_ok("Cancelled", _CANCELLED),
                      **_errors(*_GATED, *_BODY, "404", "409", "410", "429")}}},
    "/api/v1/waitlist": {"post": {
        "operationId": "joinWaitlist",
        "summary": "Join the waiting list of the home district or one centre",
        "requestBody": _body({**_PERSON, **_CONTACT, "centre": {
            "type": "string", "nullable": True,
            "description": "a centre's id; empty: the home district"}},
            ["birth_date", "postcode", "name", "contact"]),
        "responses": {**_ok("Joined", _WAITING, "201"), **_ok("Already waiting", _WAITING),
                      **_errors(*_GATED, *_BODY, "409")}}},
}


def _error_response(description: str, headers: dict[str, Any]) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {"Cache-Control": {"schema": {"type": "string", "enum": ["no-store"]}},
                    **headers},
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
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
                f"{PASS_HEADER}). Errors are `{{\"error\": code, \"message\": text}}`, the "
                "text in the request's language (?lang=de|en, the lang cookie, "
                "Accept-Language)."
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
            "schemas": {"Problem": _PROBLEM},
            "responses": {f"Error{status}": _error_response(description, headers)
                          for status, (description, headers) in _ERROR_STATUSES.items()},
        },
    }
