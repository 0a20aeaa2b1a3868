"""Proof of work at the door, measured (docs/benchmarks.md "Proof of work"):

1. How long a browser takes: the real checking page of a real gate process in Debian's
   Chromium with DevTools CPU throttling (`Emulation.setCPUThrottlingRate`, rate 4: a
   phone-class stand-in), from navigation to the form post carrying the solution, for
   `--rounds` fresh visitors; and the same search run on the page's main thread (throttled
   for certain, should throttling not reach the worker).
2. How many places one core of a bot takes per minute, without and with the challenge: the
   bot's own CPU time per place (`time.process_time`), joining through the JSON API with an
   aiohttp client, each join from its own address (a bot with many addresses; the join
   limit does not stop it). With the challenge it solves in Python with hashlib (the hash
   state after the prefix computed once) and joins again.
3. How many draws of the opening lottery one address holds: joins before an opening from
   one address until refused.

    .venv/bin/python -m bench.pow [--bits 18] [--rounds 30] [--bot-places 400]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import secrets
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.procs import ADMIN_TOKEN, stack, visitor_address
from devtools.servers import private_redis
from queue_gate.challenge import RECOMMENDED_BITS, solve

log = logging.getLogger("bench.pow")
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
THROTTLE = 4


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(round(p / 100 * (len(ordered) - 1)), len(ordered) - 1)]


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "median": round(statistics.median(values), 3),
            "p95": round(percentile(values, 95), 3), "max": round(max(values), 3)}


async def patch_room(admin_url: str, room: str, changes: dict[str, Any]) -> None:
    async with aiohttp.ClientSession() as session, session.patch(
            f"{admin_url}/admin/rooms/{room}", json=changes, headers=AUTH) as response:
        assert response.status == 200, await response.text()


# --- 1. the browser ---------------------------------------------------------------------

MAIN_THREAD = """([source, prefix, bits]) => {
  const search = new Function(source + "; return search;")();
  const t0 = performance.now();
  const nonce = search(prefix, bits);
  return [performance.now() - t0, nonce];
}"""


async def browser_solves(gate_url: str, bits: int, rounds: int) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    page_s: list[float] = []
    main_s: list[float] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium,
                                                   args=["--no-sandbox"])
        try:
            for _ in range(rounds):
                context = await browser.new_context()
                page = await context.new_page()
                cdp = await context.new_cdp_session(page)
                await cdp.send("Emulation.setCPUThrottlingRate", {"rate": THROTTLE})
                started = time.perf_counter()
                async with page.expect_request(lambda r: r.method == "POST",
                                               timeout=120_000):
                    await page.goto(f"{gate_url}/queue/wait")
                page_s.append(time.perf_counter() - started)
                await context.close()
            context = await browser.new_context()
            page = await context.new_page()
            html = await (await page.request.get(f"{gate_url}/queue/wait")).text()
            match = re.search(r'<script type="text/plain" id="pow-search">(.*?)</script>',
                              html, re.S)
            assert match is not None, "no search script on the checking page"
            await page.goto(f"{gate_url}/queue/healthz")
            cdp = await context.new_cdp_session(page)
            await cdp.send("Emulation.setCPUThrottlingRate", {"rate": THROTTLE})
            for _ in range(rounds):
                elapsed_ms, nonce = await page.evaluate(
                    MAIN_THREAD, [match.group(1), secrets.token_urlsafe(16), bits])
                assert nonce is not None
                main_s.append(elapsed_ms / 1000)
            await context.close()
        finally:
            await browser.close()
    return {"page_to_post_s": summary(page_s), "main_thread_search_s": summary(main_s)}


# --- 2. the bot -------------------------------------------------------------------------


async def bot_places(gate_url: str, places: int, *, first_address: int,
                     challenge: bool) -> dict[str, Any]:
    """The bot's CPU seconds per place taken, and places per minute on one core."""
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector) as session:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for n in range(places):
            headers = {"X-Forwarded-For": visitor_address(first_address + n)}
            async with session.post(f"{gate_url}/queue/api/join", headers=headers) as first:
                body = await first.json()
            if challenge:
                assert first.status == 428, body
                offer = body["challenge"]
                nonce = solve(offer["prefix"], offer["bits"])
                async with session.post(f"{gate_url}/queue/api/join", headers=headers,
                                        json={"challenge": offer["token"],
                                              "nonce": nonce}) as joined:
                    assert joined.status == 201, await joined.text()
            else:
                assert first.status == 201, body
        cpu = time.process_time() - cpu0
        wall = time.perf_counter() - wall0
    return {"places": places, "cpu_s_per_place": cpu / places,
            "places_per_minute_per_core": round(60 * places / cpu),
            "wall_s": round(wall, 2)}


# --- 3. the lottery ---------------------------------------------------------------------


async def draws_held(gate_url: str, tries: int) -> dict[str, int]:
    held = refused = 0
    async with aiohttp.ClientSession() as session:
        for _ in range(tries):
            async with session.post(f"{gate_url}/queue/api/join",
                                    headers={"X-Forwarded-For": "203.0.113.7"}) as response:
                if response.status == 201:
                    held += 1
                else:
                    assert response.status == 429, await response.text()
                    refused += 1
            session.cookie_jar.clear()
    return {"tries": tries, "held": held, "refused": refused}


async def measure(args: argparse.Namespace, gate_url: str, admin_url: str,
                  room: str) -> dict[str, Any]:
    results: dict[str, Any] = {"bits": args.bits, "throttle": THROTTLE}
    await patch_room(admin_url, room, {"challenge_bits": 0, "rate_per_minute": 0})
    results["bot_without"] = await bot_places(gate_url, args.bot_places, first_address=0,
                                              challenge=False)
    log.info("bot without challenge: %s", results["bot_without"])
    await patch_room(admin_url, room, {"challenge_bits": args.bits})
    await asyncio.sleep(1)  # every process's next tick has the new difficulty
    results["bot_with"] = await bot_places(gate_url, args.bot_solves,
                                           first_address=args.bot_places, challenge=True)
    log.info("bot with challenge: %s", results["bot_with"])
    results["bot_ratio"] = round(results["bot_without"]["places_per_minute_per_core"]
                                 / results["bot_with"]["places_per_minute_per_core"], 1)
    results["browser"] = await browser_solves(gate_url, args.bits, args.rounds)
    log.info("browser: %s", results["browser"])
    await patch_room(admin_url, room, {"challenge_bits": 0,
                                       "opens_at": "2099-01-01T00:00:00+00:00"})
    await asyncio.sleep(1)
    results["draws"] = await draws_held(gate_url, args.draw_tries)
    log.info("draws from one address: %s", results["draws"])
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bits", type=int, default=RECOMMENDED_BITS)
    parser.add_argument("--rounds", type=int, default=30, help="browser solves (each way)")
    parser.add_argument("--bot-places", type=int, default=400,
                        help="places the bot takes without the challenge")
    parser.add_argument("--bot-solves", type=int, default=40,
                        help="places the bot takes with the challenge")
    parser.add_argument("--draw-tries", type=int, default=20)
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    room = "pow"
    with tempfile.TemporaryDirectory() as tmp, private_redis() as redis_url, \
            stack(Path(tmp) / "logs", redis_url) as running:
        gate = running.gate("gate", room, rate_per_minute=0,
                            backend_url="http://127.0.0.1:9")
        results = asyncio.run(measure(args, gate.url, gate.admin_url, room))
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
