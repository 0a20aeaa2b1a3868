"""The SMS/e-mail gateway as the launch benchmark sees it: the booking backend's webhook
sender posts every message here, and the simulated visitors read their codes back.

    POST /messages        {"id", "channel", "to", "text", "kind", "lang"} (WebhookSender)
    GET  /codes?to=ADDR&kind=code&after=N
                          the code in the message after the first N of that kind to that
                          address; waits up to 20 s for it (404 if none came)

A person reads the SMS on their phone; a visitor of the benchmark asks here. Each message is
kept once by its id, as a real gateway would de-duplicate the outbox's retries.

Run by `launch.py`: `python -m bench.sms_gateway --port N`.
"""

from __future__ import annotations

import argparse
import asyncio
import re

from aiohttp import web

CODE = re.compile(r"\b\d{6}\b")
WAIT_S = 20.0

Inbox = tuple[str, str]  # (address, kind)

messages_key = web.AppKey("messages", dict[Inbox, list[str]])
seen_key = web.AppKey("seen", set[str])
waiters_key = web.AppKey("waiters", dict[Inbox, list[asyncio.Future[None]]])


async def receive(request: web.Request) -> web.Response:
    message = await request.json()
    if message["id"] in request.app[seen_key]:
        return web.json_response({"duplicate": True})
    request.app[seen_key].add(message["id"])
    found = CODE.search(message["text"])
    if found is not None:
        inbox = (message["to"], message["kind"])
        request.app[messages_key].setdefault(inbox, []).append(found.group(0))
        for waiter in request.app[waiters_key].pop(inbox, []):
            if not waiter.done():
                waiter.set_result(None)
    return web.json_response({"accepted": True}, status=202)


async def code(request: web.Request) -> web.Response:
    inbox = (request.query["to"], request.query.get("kind", "code"))
    after = int(request.query.get("after", "0"))
    messages = request.app[messages_key]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while len(messages.get(inbox, ())) <= after:
        arrived = loop.create_future()
        request.app[waiters_key].setdefault(inbox, []).append(arrived)
        try:
            await asyncio.wait_for(arrived, deadline - loop.time())
        except TimeoutError:
            return web.json_response({"error": "no message"}, status=404)
    return web.json_response({"code": messages[inbox][after]})


def create_app() -> web.Application:
    app = web.Application()
    app[messages_key] = {}
    app[seen_key] = set()
    app[waiters_key] = {}
    app.router.add_post("/messages", receive)
    app.router.add_get("/codes", code)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    # Visitors still waiting for a code when the run ends are not waited for.
    web.run_app(create_app(), host="127.0.0.1", port=args.port, access_log=None,
                print=None, shutdown_timeout=1.0)


if __name__ == "__main__":
    main()
