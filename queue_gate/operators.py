"""Who may do what on the admin port: each operator's grant (a role and the rooms it covers)
and the one check every handler of the admin API makes before it touches a room.

Roles, each including the one before:

    viewer    read rooms and their audit
    operator  also change rooms (PATCH, and what changes a room's traffic)
    admin     also create and delete rooms, and everything else

A grant comes from QUEUE_GATE_OPERATOR_GRANTS (`name=role` for every room, or
`name=role:room+room`); an operator without an entry, and QUEUE_GATE_ADMIN_TOKEN's "admin",
is the admin of every room, as before grants existed.

A room a grant does not cover is answered as a room that does not exist (404
`room_not_found`), so that a token of the test centre's room learns nothing about the state's
rooms; a covered room with a role too low is a 403 `forbidden` that names the role needed.
A handler of the admin API says what it needs in one line:

    require(request, room, Role.OPERATOR)

The console (queue_gate/console.py) asks the same grant through `Grant.allows`.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp import web

# An entry's rooms: `*` for every room, or room names joined by '+'.
EVERY_ROOM = "*"
ROOM_SEPARATOR = "+"
NO_STORE = {"Cache-Control": "no-store"}


class Role(enum.IntEnum):
    """What a token may do; a higher role may do everything a lower one may."""

    VIEWER = 1
    OPERATOR = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def named(cls, label: str) -> Role:
        for role in cls:
            if role.label == label:
                return role
        raise ValueError(f"role must be one of {', '.join(r.label for r in cls)}, "
                         f"not {label[:20]!r}")


@dataclass(frozen=True, slots=True)
class Grant:
    """A role, over every room (`rooms` None) or over the rooms named."""

    role: Role
    rooms: frozenset[str] | None = None

    def covers(self, room: str) -> bool:
        return self.rooms is None or room in self.rooms

    def allows(self, room: str | None, role: Role) -> bool:
        """May this grant act as `role` on `room`? `room` None: on the whole gate (only a
        grant over every room)."""
        covered = self.rooms is None if room is None else self.covers(room)
        return covered and self.role >= role

    def visible(self, rooms: Iterable[str]) -> list[str]:
        """The rooms of `rooms` this grant covers, in their order."""
        return [room for room in rooms if self.covers(room)]

    def describe(self) -> str:
        rooms = EVERY_ROOM if self.rooms is None else ROOM_SEPARATOR.join(sorted(self.rooms))
        return f"{self.role.label}:{rooms}"


# What an operator without an entry in QUEUE_GATE_OPERATOR_GRANTS may do: everything.
FULL = Grant(Role.ADMIN)


def parse_grant(entry: str) -> tuple[str, Grant]:
    """One entry of QUEUE_GATE_OPERATOR_GRANTS, `name=role` or `name=role:rooms`, as
    (operator name, grant); ValueError saying what is wrong. The operator's and the rooms'
    names are checked by the settings (queue_gate/settings.py), which know them."""
    name, equals, rest = entry.partition("=")
    if not equals or not name.strip():
        raise ValueError(f"each entry is name=role or name=role:room+room, not {entry[:40]!r}")
    label, colon, rooms_text = rest.strip().partition(":")
    try:
        role = Role.named(label.strip())
    except ValueError as exc:
        raise ValueError(f"{name.strip()[:64]!r}: {exc}") from None
    if not colon or rooms_text.strip() == EVERY_ROOM:
        return name.strip(), Grant(role)
    rooms = frozenset(room.strip() for room in rooms_text.split(ROOM_SEPARATOR))
    return name.strip(), Grant(role, rooms)


# The operator whose token the request carried (the audit records this name), and their
# grant; both set by the admin API's middleware (queue_gate/admin.py).
operator_key = web.RequestKey("operator", str)
grant_key = web.RequestKey("grant", Grant)


def _refusal(error: type[web.HTTPException], code: str, message: str) -> web.HTTPException:
    """A JSON error like the admin API's others, raised (the middleware lets it through)."""
    return error(text=json.dumps({"error": code, "message": message}),
                 content_type="application/json", headers=NO_STORE)


def require(request: web.Request, room: str | None, role: Role) -> None:
    """Go on only if the request's token may act as `role` on `room` (None: on the whole
    gate); else raise a 404 for a room the token does not cover, a 403 for a role too low."""
    grant = request[grant_key]
    if room is not None and not grant.covers(room):
        raise _refusal(web.HTTPNotFound, "room_not_found",
                       "No room of this name that your token covers.")
    if grant.role < role:
        raise _refusal(web.HTTPForbidden, "forbidden",
                       f"Your token's role is {grant.role.label}; this needs {role.label}.")
    if not grant.allows(room, role):
        raise _refusal(web.HTTPForbidden, "forbidden",
                       f"Your token covers only some rooms; this needs {role.label} of "
                       "every room.")
