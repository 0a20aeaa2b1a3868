"""The JSON API (`/api/v1/...`): the same operations as the pages, for call-centre agents and
apps, against the same inventory, through the same service. Errors are
`{"error": code, "message": text}`, the text in the request's language (`?lang=`, the
`lang` cookie, Accept-Language).

CSRF: the API only accepts `application/json` bodies, which a foreign page cannot send
without a CORS preflight that we never answer, so the pass cookie alone cannot be abused.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from booking_backend import keys
from booking_backend.catalogue import Catalogue, Centre
from booking_backend.days import parse_choice
from booking_backend.inventory import Booking, Hold, Slot
from booking_backend.openapi import document
from booking_backend.service import Person, Service
from vaccine_queue.contract import END_SESSION_HEADER
from vaccine_queue.i18n import LANGUAGES, request_language
from vaccine_queue.pages import Problem

API_PREFIX = "/api/"


# The next days with free pairs an app is told of (to ask `?day=` for), as the page shows.
OFFER_DAYS = 7


def is_api(request: web.Request) -> bool:
    """API requests get JSON answers, errors included; everything else gets pages."""
    return request.path.startswith(API_PREFIX)


def service_of(request: web.Request) -> Service:
    return request.app[keys.service_key]


def owner(request: web.Request) -> str:
    return str(request.get(keys.owner_key, "anon:"))


async def body_of(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise Problem("unsupported_media_type", 415)
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError) as exc:
        raise Problem("json_invalid", 400) from exc
    if not isinstance(body, dict):
        raise Problem("json_object", 422)
    return body


def text(body: dict[str, Any], name: str, *, required: bool = True) -> str:
    value = body.get(name)
    if value is None:
        if required:
            raise Problem("field_missing", 422, field=name, params={"field": name})
        return ""
    if not isinstance(value, str):
        raise Problem("field_type", 422, field=name, params={"field": name})
    return value


def lang(request: web.Request, body: dict[str, Any]) -> str:
    value = body.get("lang")
    if value is None:
        return request_language(request)
    if value not in LANGUAGES:
        raise Problem("field_type", 422, field="lang", params={"field": "lang"})
    return str(value)


def slot_json(service: Service, slot: Slot) -> dict[str, Any]:
    return {"slot": slot.id, "start": service.local(slot.start).isoformat()}


def centre_json(centre: Centre | None) -> dict[str, Any] | None:
    if centre is None:
        return None
    return {"id": centre.id, "name": centre.name, "town": centre.town,
            "district": centre.district, "street": centre.street,
            "postcode": centre.postcode, "address": centre.address, "map_url": centre.map_url}


async def booking_json(service: Service, booking: Booking) -> dict[str, Any]:
    catalogue = await service.catalogue()
    return {
        "booking_code": booking.code, "status": booking.status, "name": booking.name,
        "centre": centre_json(catalogue.centres.get(booking.centre)),
        "first": slot_json(service, booking.first), "second": slot_json(service, booking.second),
    }


async def person_of(request: web.Request, body: dict[str, Any]) -> Person:
    return await service_of(request).person(
        text(body, "birth_date"), text(body, "postcode"),
        text(body, "invitation_code", required=False))


def decision_json(person: Person) -> dict[str, Any]:
    d = person.decision
    return {
        "eligible": d.eligible, "reason": d.reason, "age": d.age,
        "group": d.group.name if d.group else None,
        "open_groups": [g.name for g in d.open_groups],
        "own_group": d.next_group.name if d.next_group else None,
        "own_group_opens": d.next_group.opens.isoformat()
        if d.next_group and d.next_group.opens else None,
        "district": {"id": person.district.id, "name": person.district.name},
    }


# -- handlers ---------------------------------------------------------------------------------
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(document())


async def groups(request: web.Request) -> web.Response:
    service = service_of(request)
    today = service.today()
    return web.json_response({
        "groups": [{"name": g.name, "min_age": g.min_age, "open": g.is_open(today),
                    "opens": g.opens.isoformat() if g.opens and g.opens.year > 1 else None}
                   for g in service.settings.priority_groups],
        "invitations_required": service.settings.invitations_required,
        "home_district_only": service.settings.home_district_only,
    })


async def centres(request: web.Request) -> web.Response:
    service = service_of(request)
    postcode = request.query.get("postcode", "")
    catalogue: Catalogue = await service.catalogue()
    if postcode:
        # ASCII digits only: str.isdigit() takes other scripts' digits too (and "²").
        if not (len(postcode) == 5 and postcode.isascii() and postcode.isdigit()):
            raise Problem("postcode_invalid", 400, field="postcode")
        listed = catalogue.centres_for(postcode, home_only=service.settings.home_district_only,
                                       limit=len(catalogue.centres))
    else:
        listed = list(catalogue.centres.values())
    return web.json_response({"centres": [centre_json(c) for c in listed]})


async def eligibility(request: web.Request) -> web.Response:
    person = await person_of(request, await body_of(request))
    return web.json_response(decision_json(person))


async def offers(request: web.Request) -> web.Response:
    service = service_of(request)
    # The query's day and time of day are checked first: a bad one is the app's mistake.
    choice = parse_choice(request.query.get("day"), request.query.get("time_of_day"))
    person = await person_of(request, await body_of(request))
    listed, found = await service.search(person, choice)
    days = await service.offer_days(listed, OFFER_DAYS)
    return web.json_response({
        "district": {"id": person.district.id, "name": person.district.name},
        "centres": [centre_json(c) for c in listed],
        "days": [d.day.isoformat() for d in days],
        "offers": [{"centre": o.centre.id, "first": slot_json(service, o.first),
                    "second": slot_json(service, o.second)} for o in found],
    })


async def hold_json(service: Service, hold: Hold) -> dict[str, Any]:
    catalogue = await service.catalogue()
    state = await service.hold_code(hold.hid)
    contact = service.hold_contact(hold)
    return {
        "hold_id": hold.hid, "status": hold.status,
        "expires_at": service.local(hold.expires).isoformat(),
        "expires_in_seconds": max(0, hold.expires - service.now()),
        "centre": centre_json(catalogue.centres.get(hold.centre)),
        "first": slot_json(service, hold.first), "second": slot_json(service, hold.second),
        "booking_code": hold.booking or None,
        "verification": {"status": state.status, "delivered": state.delivered,
                         "to": contact.masked if contact else None},
    }


async def create_hold(request: web.Request) -> web.Response:
    service = service_of(request)
    body = await body_of(request)
    person = await person_of(request, body)
    hid, _ = await service.hold(person, text(body, "first_slot"), text(body, "second_slot"),
                                owner(request), lang(request, body))
    hold = await service.hold_state(hid, owner(request))
    return web.json_response(await hold_json(service, hold), status=201)


async def get_hold(request: web.Request) -> web.Response:
    service = service_of(request)
    hold = await service.hold_state(request.match_info["hold_id"], owner(request))
    return web.json_response(await hold_json(service, hold))


async def delete_hold(request: web.Request) -> web.Response:
    service = service_of(request)
    hid = request.match_info["hold_id"]
    await service.hold_state(hid, owner(request))
    released = await service.release(hid, owner(request))
    return web.json_response({"hold_id": hid, "released": released})


async def hold_details(request: web.Request) -> web.Response:
    service = service_of(request)
    body = await body_of(request)
    contact = await service.submit_details(
        request.match_info["hold_id"], owner(request), text(body, "name"),
        text(body, "contact"), lang(request, body))
    return web.json_response({"verification": {"status": "sending", "channel": contact.channel,
                                               "to": contact.masked}}, status=202)


async def resend_code(request: web.Request) -> web.Response:
    service = service_of(request)
    contact = await service.resend(request.match_info["hold_id"], owner(request))
    return web.json_response({"verification": {"status": "sending", "channel": contact.channel,
                                               "to": contact.masked}}, status=202)


async def confirm(request: web.Request) -> web.Response:
    service = service_of(request)
    hid = request.match_info["hold_id"]
    body = await body_of(request)
    code = text(body, "code")
    key = request.headers.get("Idempotency-Key")
    if key is not None:
        await service.claim_idempotency_key(owner(request), key, hid)
    booking, new = await service.confirm(hid, owner(request), code, "api")
    response = web.json_response(await booking_json(service, booking), status=201 if new else 200)
    response.headers[END_SESSION_HEADER] = "1"
    return response


async def lookup(request: web.Request) -> web.Response:
    service = service_of(request)
    body = await body_of(request)
    booking = await service.find_booking(text(body, "booking_code"), text(body, "birth_date"))
    return web.json_response(await booking_json(service, booking))


async def cancel_code(request: web.Request) -> web.Response:
    service = service_of(request)
    body = await body_of(request)
    booking = await service.find_booking(text(body, "booking_code"), text(body, "birth_date"))
    contact = await service.request_cancel_code(booking)
    return web.json_response({"verification": {"status": "sending", "channel": contact.channel,
                                               "to": contact.masked}}, status=202)


async def cancel(request: web.Request) -> web.Response:
    service = service_of(request)
    body = await body_of(request)
    booking = await service.find_booking(text(body, "booking_code"), text(body, "birth_date"))
    await service.cancel(booking, text(body, "code", required=False))
    return web.json_response({"booking_code": booking.code, "status": "cancelled"})


async def waitlist(request: web.Request) -> web.Response:
    service = service_of(request)
    body = await body_of(request)
    person = await person_of(request, body)
    status, position, contact = await service.join_waitlist(
        person, text(body, "name"), text(body, "contact"),
        text(body, "centre", required=False), lang(request, body))
    return web.json_response(
        {"status": "waiting", "already_waiting": status == "already_waiting",
         "position": position, "notify": contact.masked},
        status=201 if status == "ok" else 200,
    )


ROUTES: tuple[tuple[str, str, Any], ...] = (
    ("GET", "/api/v1/openapi.json", openapi),
    ("GET", "/api/v1/groups", groups),
    ("GET", "/api/v1/centres", centres),
    ("POST", "/api/v1/eligibility", eligibility),
    ("POST", "/api/v1/offers", offers),
    ("POST", "/api/v1/holds", create_hold),
    ("GET", "/api/v1/holds/{hold_id}", get_hold),
    ("DELETE", "/api/v1/holds/{hold_id}", delete_hold),
    ("POST", "/api/v1/holds/{hold_id}/details", hold_details),
    ("POST", "/api/v1/holds/{hold_id}/code", resend_code),
    ("POST", "/api/v1/holds/{hold_id}/confirm", confirm),
    ("POST", "/api/v1/bookings/lookup", lookup),
    ("POST", "/api/v1/bookings/cancel-code", cancel_code),
    ("POST", "/api/v1/bookings/cancel", cancel),
    ("POST", "/api/v1/waitlist", waitlist),
)


def setup_routes(app: web.Application) -> None:
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler)

