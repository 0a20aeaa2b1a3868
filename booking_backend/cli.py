"""`python -m booking_backend.cli`: operate the booking backend from a shell.

Most commands talk to the admin API (`BOOKING_ADMIN_URL`, default http://127.0.0.1:8083,
with `BOOKING_ADMIN_TOKEN`), so they work from any machine that reaches the admin port.
`outbox-worker` talks to the database directly (same environment as the backend) and delivers
messages in a process of its own (run the backend with BOOKING_OUTBOX_WORKER=0 then).

    load-demo [--days N]          the 50 demo centres and generated slots
    load-catalogue FILE           centres, districts and postcodes (JSON)
    release FILE [--share X]      add slots from a JSON file; a share goes to the waiting list
    stats                         free / held / booked units, bookings, people waiting
    invitations WAVE MIN_AGE N    create a wave of invitation codes (printed one per line)
    sweep                         expire held pairs whose time ran out, now
    cancel-range --centre ID --from T --until T --reason TEXT [--dry-run]
                                  cancel a centre's appointments in [from, until)
    closures CENTRE               the ranges cancelled at a centre
    day-list --centre ID --date YYYY-MM-DD [--output FILE]
                                  a centre's day list as CSV (stdout, or FILE)
    outbox-worker                 deliver codes and waiting-list news (runs until Ctrl-C)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from booking_backend.backend import Backend
from booking_backend.settings import Settings
from vaccine_queue.config import Env, SettingsError

DEFAULT_ADMIN_URL = "http://127.0.0.1:8083"


class CliError(Exception):
    """Shown to the operator as one line, exit code 1."""


async def call(method: str, path: str, body: Any = None, *, raw: str | None = None,
               text: bool = False) -> Any:
    """The admin API's answer as JSON (`text`: as the text it sent, e.g. CSV)."""
    env = Env()
    base = env.text("BOOKING_ADMIN_URL", DEFAULT_ADMIN_URL).rstrip("/")
    token = env.text("BOOKING_ADMIN_TOKEN")
    if not token:
        raise CliError("set BOOKING_ADMIN_TOKEN")
    headers = {"Authorization": f"Bearer {token}"}
    kwargs: dict[str, Any] = {"headers": headers}
    if raw is not None:
        kwargs["data"] = raw
        headers["Content-Type"] = "application/json"
    elif body is not None:
        kwargs["json"] = body
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as session,
            session.request(method, base + path, **kwargs) as response,
        ):
            sent = await response.text(encoding="utf-8")
            if text and response.status < 400:
                return sent
            try:
                answer = json.loads(sent)
            except ValueError:
                answer = {"message": sent}
            if response.status >= 400:
                message = answer.get("message") if isinstance(answer, dict) else answer
                raise CliError(f"{response.status}: {message}")
            return answer
    except aiohttp.ClientError as exc:
        raise CliError(f"cannot reach {base}: {exc}") from exc


async def day_list(centre: str, date: str, output: str | None) -> None:
    text: str = await call("GET", f"/admin/centres/{quote(centre, safe='')}/days/"
                                  f"{quote(date, safe='')}.csv", text=True)
    if output is None:
        sys.stdout.write(text)  # the CLI's output: the CSV as the API sent it
        return
    try:
        await asyncio.to_thread(Path(output).write_text, text, encoding="utf-8", newline="")
    except OSError as exc:
        raise CliError(f"cannot write {output}: {exc.strerror}") from exc


def show(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))  # the CLI's output


async def run(args: argparse.Namespace) -> None:
    if args.command == "load-demo":
        show(await call("POST", "/admin/catalogue/demo"))
        body: dict[str, Any] = {"waitlist_share": 0}
        if args.days:
            body["days"] = args.days
        show(await call("POST", "/admin/slots/generate", body))
    elif args.command == "load-catalogue":
        show(await call("POST", "/admin/catalogue", raw=_read(args.file)))
    elif args.command == "release":
        document = json.loads(_read(args.file))
        if args.share is not None and isinstance(document, dict):
            document["waitlist_share"] = args.share
        show(await call("POST", "/admin/slots", document))
    elif args.command == "stats":
        show(await call("GET", "/admin/stats"))
    elif args.command == "invitations":
        answer = await call("POST", "/admin/invitations",
                            {"wave": args.wave, "min_age": args.min_age, "count": args.count})
        for code in answer["codes"]:
            print(code)  # the CLI's output: one code per letter
    elif args.command == "sweep":
        show(await call("POST", "/admin/sweep"))
    elif args.command == "outbox-worker":
        await outbox_worker()
    elif args.command == "cancel-range":
        show(await call("POST", f"/admin/centres/{quote(args.centre, safe='')}/closures", {
            "from": args.from_, "until": args.until, "reason": args.reason,
            "dry_run": args.dry_run}))
    elif args.command == "closures":
        show(await call("GET", f"/admin/centres/{quote(args.centre, safe='')}/closures"))
    elif args.command == "day-list":
        await day_list(args.centre, args.date, args.output)


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from exc


async def outbox_worker() -> None:
    try:
        settings = Settings.from_env()
        settings.check_startable()
    except SettingsError as exc:
        raise CliError(str(exc)) from exc
    backend = Backend(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await backend.open()
    try:
        await backend.outbox.run_forever(stop)
    finally:
        await backend.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m booking_backend.cli",
                                     description="Operate the booking backend.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("load-demo", help="load the 50 demo centres and generate slots")
    demo.add_argument("--days", type=int, default=0, help="days of slots (default: setting)")
    cat = sub.add_parser("load-catalogue", help="load centres/districts/postcodes from JSON")
    cat.add_argument("file")
    rel = sub.add_parser("release", help="add slots from a JSON file (vaccine arrived)")
    rel.add_argument("file")
    rel.add_argument("--share", type=float, default=None,
                     help="share of new pairs for the waiting list (default: setting)")
    sub.add_parser("stats", help="counts of free, held and booked units and waiting people")
    inv = sub.add_parser("invitations", help="create a wave of invitation codes")
    inv.add_argument("wave")
    inv.add_argument("min_age", type=int)
    inv.add_argument("count", type=int)
    sub.add_parser("sweep", help="expire held pairs whose time ran out")
    sub.add_parser("outbox-worker", help="deliver messages from this process")
    cancel = sub.add_parser("cancel-range",
                            help="cancel a centre's appointments in a time range")
    cancel.add_argument("--centre", required=True)
    cancel.add_argument("--from", dest="from_", required=True,
                        help="ISO date-time (local time without offset) or epoch seconds")
    cancel.add_argument("--until", required=True, help="end of the range (not included)")
    cancel.add_argument("--reason", required=True, help="told to every person affected")
    cancel.add_argument("--dry-run", action="store_true",
                        help="only count who would be affected")
    closures = sub.add_parser("closures", help="the ranges cancelled at a centre")
    closures.add_argument("centre")
    day = sub.add_parser("day-list", help="a centre's day list as CSV")
    day.add_argument("--centre", required=True, help="the centre's id (as in the catalogue)")
    day.add_argument("--date", required=True, help="the day, YYYY-MM-DD")
    day.add_argument("--output", default=None, help="write to this file instead of stdout")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(run(args))
    except CliError as exc:
        sys.stderr.write(f"error: {exc}\n")
        raise SystemExit(1) from exc


if __name__ == "__main__":
    main()
