"""Passes for the phone line's call-centre agents: a way in that is not the citizens' line.

An agent books for caller after caller on the same inventory. A call-centre lead issues
each agent a pass for one shift through the admin API (`POST
/admin/rooms/{room}/agent-passes` with `{"agent": "name", "hours": 8}`), and the agent's
browser or tool sends it like a visitor's pass (cookie `qg_pass` or header `X-Queue-Pass`).

It is signed like a visitor's pass, by the contract's `PassCodec` with the same secrets, so
the booking backend checks it with no change. Its ticket id is the agent pass's id,
`agent.<random>`: a visitor's ticket id is URL-safe base64, which has no '.', so the two
kinds are never mistaken. What differs from a visitor's pass:

- it is recorded apart (`qg:{room}:agents` and one record per pass, lua/*agent_pass*.lua),
  at most QUEUE_GATE_AGENT_PASSES_MAX active per room, and not counted against the room's
  cap on active sessions;
- a booking does not end it: the proxy ignores the backend's end-session header for it;
- it is bound to the agent's own browser (QUEUE_GATE_AGENT_PASS_MAX_BROWSERS, 1 unless
  set) and, with QUEUE_GATE_AGENT_NETWORKS, honoured only from the call centre's networks;
- an operator lists (`GET`) and revokes (`DELETE .../agent-passes/{id}`) them; issuing and
  revoking are recorded in the room's audit (field `agent_pass`).

The booking backend keys holds by the pass's ticket id (`t:agent.<id>`): one agent's holds
never mix with another's; a confirmed booking leaves no live hold behind, so the next
caller's hold is made freely; and, as for a visitor, one agent has one live hold at a time
(holding a pair for a second caller gives the first one's back).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets

from aiohttp import web

from queue_gate.addresses import browser_fingerprint
from queue_gate.admin import _store_for, json_error
from queue_gate.keys import (
    address_policy_key,
    clock_key,
    gate_app_key,
    metrics_key,
    pages_key,
    room_view_key,
    settings_key,
    store_key,
)
from queue_gate.operators import Role, operator_key
from queue_gate.responses import NO_STORE, wants_html
from queue_gate.store import AgentPassRecord, GateUnavailable, RoomMissing
from vaccine_queue.contract import PASS_COOKIE, AdmissionPass, PassCodec, TokenRejected
from vaccine_queue.i18n import request_language, translator
from vaccine_queue.pages import Problem, json_problem

log = logging.getLogger(__name__)

AGENT_PREFIX = "agent."
# An agent pass's id as issued: the prefix and 16 URL-safe characters (96 random bits).
PASS_ID = re.compile(r"^agent\.[A-Za-z0-9_-]{16}$")
MIN_HOURS = 1
MAX_HOURS = 12
MAX_AGENT_NAME = 64
# Longest wait for the count of active agent passes when /metrics is scraped.
COUNT_TIMEOUT_S = 1.0
# Where someone turned back with an agent pass that is not theirs can queue instead.
JOIN_PATH = "/queue/api/join"


class AgentPassRefused(TokenRejected):
    """A correctly signed agent pass that this request may not use: answered with a 403
    saying why (`refused`), not with the visitors' way back to the line."""


class AgentPassEnded(AgentPassRefused):
    """Expired, revoked, or never issued (Redis has no record of it)."""

    code = "agent_pass_ended"


class AgentPassShared(AgentPassRefused):
    """Used from a browser that is not the agent's."""

    code = "agent_pass_shared"


class AgentNetworkRefused(AgentPassRefused):
    """Sent from outside QUEUE_GATE_AGENT_NETWORKS."""

    code = "agent_network"


class InvalidAgentPass(ValueError):
    pass


def new_pass_id() -> str:
    return AGENT_PREFIX + secrets.token_urlsafe(12)


def is_agent_pass(admission: AdmissionPass) -> bool:
    return admission.ticket_id.startswith(AGENT_PREFIX)


# -- the public side: the proxy's check ---------------------------------------------------------
async def check(request: web.Request, admission: AdmissionPass) -> None:
    """Raise a `TokenRejected` unless this agent pass may be used by this request: from the
    agent networks (no Redis asked otherwise), on record, from the agent's browser. Counts
    the request as an agent's. One Redis round trip, as for a visitor's pass."""
    app = request.app
    room = app[settings_key].room
    policy = app[address_policy_key]
    address = policy.client_address(request)
    if not policy.agent_allowed(address):
        raise AgentNetworkRefused()
    fingerprint = browser_fingerprint(request, address)
    try:
        outcome, _ = await app[store_key].check_agent_pass(admission.ticket_id, fingerprint)
    except GateUnavailable:
        # As for visitors: signature, expiry and network were checked; only a revocation
        # or a second browser is missed while Redis is away.
        app[metrics_key].redis_errors.labels(room, "agent_pass_check").inc()
        outcome = "ok"
    if outcome == "ended":
        raise AgentPassEnded()
    if outcome == "shared":
        raise AgentPassShared()
    app[metrics_key].agent_requests.labels(room).inc()


def refused(request: web.Request, code: str) -> web.Response:
    """A 403 naming why (the agent's lead can act on it; a citizen is told to queue), as a
    page or JSON, and the pass cookie cleared: it is of no use to this browser."""
    problem = Problem(code, 403, extra={"join": JOIN_PATH})
    response: web.Response
    if wants_html(request):
        t = translator(request_language(request))
        response = request.app[pages_key].render(
            request, "error.html", {"problem": problem, "text": problem.message(t)},
            status=403)
    else:
        response = json_problem(request, problem)
    response.del_cookie(PASS_COOKIE, path="/")
    return response


# -- the operators' side: issue, list, revoke ---------------------------------------------------
def validate_request(body: object) -> tuple[str, int]:
    """The agent's name and the shift's hours from `{"agent": "name", "hours": 8}`."""
    if not isinstance(body, dict):
        raise InvalidAgentPass('Send a JSON object such as {"agent": "Anna S.", "hours": 8}.')
    unknown = sorted(set(body) - {"agent", "hours"})
    if unknown:
        raise InvalidAgentPass(f"Unknown field(s): {', '.join(unknown)}.")
    agent = body.get("agent")
    if not isinstance(agent, str) or not agent.strip() or len(agent.strip()) > MAX_AGENT_NAME \
            or not agent.isprintable():
        raise InvalidAgentPass(f"agent must be the agent's name: 1 to {MAX_AGENT_NAME} "
                               "printable characters.")
    hours = body.get("hours")
    if isinstance(hours, bool) or not isinstance(hours, int) or \
            not MIN_HOURS <= hours <= MAX_HOURS:
        raise InvalidAgentPass(f"hours must be a whole number from {MIN_HOURS} to "
                               f"{MAX_HOURS} (one shift).")
    return agent.strip(), hours


async def issue(request: web.Request) -> web.Response:
    """POST /admin/rooms/{room}/agent-passes: a signed pass for one agent's shift."""
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return json_error(400, "invalid_json", 'The body must be a JSON object such as '
                          '{"agent": "Anna S.", "hours": 8}.')
    try:
        agent, hours = validate_request(body)
    except InvalidAgentPass as exc:
        return json_error(422, "invalid_agent_pass", str(exc))
    gate = request.app[gate_app_key]
    settings = gate[settings_key]
    operator = request[operator_key]
    pass_id = new_pass_id()
    async with _store_for(request, Role.OPERATOR) as store:
        try:
            issued = await store.issue_agent_pass(pass_id, agent, operator=operator,
                                                  seconds=hours * 3600,
                                                  limit=settings.agent_passes_max)
        except RoomMissing:
            return json_error(404, "room_not_found", "No gate has created this room.")
        room = store.room
    if issued.outcome == "full":
        return json_error(409, "agent_passes_exhausted",
                          f"Room {room} has {issued.active} active agent passes, the most "
                          f"QUEUE_GATE_AGENT_PASSES_MAX allows ({settings.agent_passes_max}). "
                          "Revoke one that is no longer needed, or wait for one to expire.")
    gate[metrics_key].agent_passes_issued.labels(room).inc()
    log.info("agent pass %s for %r issued by %s in room %s until %d", pass_id, agent,
             operator, room, issued.expires_at)
    token = PassCodec(settings.secrets, clock=gate[clock_key]).sign(
        AdmissionPass(room, pass_id, issued.expires_at))
    return web.json_response(
        {"pass": token, "id": pass_id, "agent": agent, "room": room,
         "expires_at": issued.expires_at, "active": issued.active},
        status=201, headers=NO_STORE)


def _record_json(record: AgentPassRecord) -> dict[str, object]:
    return {"id": record.pass_id, "agent": record.agent, "issued_by": record.issued_by,
            "issued_at": int(record.issued_at), "expires_at": record.expires_at,
            "last_used": None if record.last_used is None else int(record.last_used)}


async def list_passes(request: web.Request) -> web.Response:
    """GET /admin/rooms/{room}/agent-passes: the active ones, expiring first first."""
    async with _store_for(request, Role.VIEWER) as store:
        try:
            await store.read_config()
        except RoomMissing:
            return json_error(404, "room_not_found", "No gate has created this room.")
        records = await store.agent_passes()
        room = store.room
    limit = request.app[gate_app_key][settings_key].agent_passes_max
    return web.json_response(
        {"room": room, "limit": limit, "agent_passes": [_record_json(r) for r in records]},
        headers=NO_STORE)


async def revoke(request: web.Request) -> web.Response:
    """DELETE /admin/rooms/{room}/agent-passes/{id}: the pass stops working at once."""
    pass_id = request.match_info["pass_id"]
    if not PASS_ID.match(pass_id):
        return json_error(404, "agent_pass_not_found",
                          "No such agent pass (ids look like agent.<16 characters>).")
    operator = request[operator_key]
    async with _store_for(request, Role.OPERATOR) as store:
        agent = await store.revoke_agent_pass(pass_id, operator=operator)
        room = store.room
    if agent is None:
        return json_error(404, "agent_pass_not_found",
                          "No active agent pass has this id in this room (expired or "
                          "revoked already?).")
    request.app[gate_app_key][metrics_key].agent_passes_revoked.labels(room).inc()
    log.info("agent pass %s of %r revoked by %s in room %s", pass_id, agent, operator, room)
    return web.json_response({"id": pass_id, "agent": agent, "revoked": True},
                             headers=NO_STORE)


async def observe_active(gate: web.Application) -> None:
    """Set `queuegate_agent_passes_active` for the gate's room: one count in Redis per scrape
    (the tick's script is left as it is). Without Redis, or if it takes longer than
    `COUNT_TIMEOUT_S` (a scrape must not hang on it), the gauge keeps its last value."""
    room = gate[settings_key].room
    try:
        async with asyncio.timeout(COUNT_TIMEOUT_S):
            active = await gate[room_view_key].store.count_agent_passes()
    except (GateUnavailable, TimeoutError):
        gate[metrics_key].redis_errors.labels(room, "agent_passes_count").inc()
        return
    gate[metrics_key].agent_passes_active.labels(room).set(active)


def install(admin_app: web.Application) -> None:
    admin_app.router.add_post("/admin/rooms/{room}/agent-passes", issue)
    admin_app.router.add_get("/admin/rooms/{room}/agent-passes", list_passes)
    admin_app.router.add_delete("/admin/rooms/{room}/agent-passes/{pass_id}", revoke)
