"""The demo's inbox: the messages the demo would have sent (codes included), shown on a page
of the booking site (`/demo/inbox`), because the demo has no SMS gateway or mail server.

Demo mode only: the backend wraps its sender in `InboxSender`, which keeps the latest
messages in this process's memory and passes each on (the console sender still logs it).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from booking_backend.verification import Clock, Message, Sender

# Messages kept, newest first; older ones drop out.
INBOX_SIZE = 200


@dataclass(frozen=True, slots=True)
class Delivered:
    at: float
    message: Message


class InboxSender:
    """A sender that remembers what it sent, for the demo inbox page."""

    def __init__(self, inner: Sender, clock: Clock) -> None:
        self.inner = inner
        self.name = inner.name
        self._clock = clock
        self.messages: deque[Delivered] = deque(maxlen=INBOX_SIZE)

    async def send(self, message: Message) -> None:
        await self.inner.send(message)
        self.messages.appendleft(Delivered(self._clock(), message))
