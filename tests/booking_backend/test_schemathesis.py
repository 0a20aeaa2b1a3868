"""The API does what its OpenAPI document says: schemathesis reads /api/v1/openapi.json from a
real backend (real PostgreSQL, a real port, a gate pass on every request) and calls every
operation with requests it generates from the document: its examples, the boundaries of
every field (the coverage phase), random valid and invalid data (fuzzing) and chains of
calls that follow the document's links (a hold, then its details, code, confirmation).

Each answer must be no server error, and its status, content type, headers and body must
be what the document says for that operation; a request the document calls invalid must be
refused (negative_data_rejection). Not checked: that every request the document calls
valid is accepted (positive_data_acceptance), because the API refuses well-formed values
by their meaning with a 400 or 422 naming the field (a birth date after today, a postcode
outside the region, an invitation code never issued, a wrong code), which no schema says.

Seeded and bounded (API_FUZZ_EXAMPLES, default 10 per operation) so CI sees the same run
every time; a longer fuzz, with schemathesis's report shown: `API_FUZZ_EXAMPLES=200
.venv/bin/python -m pytest -q -rP --log-level=INFO tests/booking_backend/test_schemathesis.py`
(see docs/api.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from pathlib import Path

from tests.booking_backend.conftest import HOME_POSTCODE, OLD, Env
from vaccine_queue.contract import PASS_HEADER

log = logging.getLogger(__name__)

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
)
SEED = 20210108
EXAMPLES = int(os.environ.get("API_FUZZ_EXAMPLES", "10"))


def config_file(workdir: Path, values: dict[str, str]) -> Path:
    """A schemathesis.toml that offers real values (an eligible person, free slots, a
    booking) for half of the generated requests, so they get past "not found" and "not
    eligible" to the calls' real work; the other half stay generated."""
    lines = []
    for key, value in values.items():
        name = key.rsplit(".", 1)[1]
        lines += [f"[dictionaries.{name}]", f"values = [{json.dumps(value)}]", ""]
    lines.append("[parameters]")
    lines += [f'"{key}" = {{ dictionary = "{key.rsplit(".", 1)[1]}", probability = 0.5 }}'
              for key in values]
    path = workdir / "schemathesis.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def run_schemathesis(env: Env, workdir: Path, config: Path) -> tuple[int, str]:
    """`schemathesis run` against the running app; its exit code and report."""
    url = str(env.client.make_url("/api/v1/openapi.json"))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run", url,
        "--header", f"{PASS_HEADER}: {env.pass_token()}",
        # The pass above on every request; not generated passes (the gate's tests cover those).
        "--generation-with-security-parameters", "false",
        "--checks", ",".join(CHECKS),
        "--max-examples", str(EXAMPLES), "--seed", str(SEED),
        "--generation-database", "none", "--workers", "1", "--no-color",
        # Its caches and crash files go to the test's folder, not the working tree.
        cwd=workdir, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


async def test_api_answers_as_documented(env: Env, tmp_path: Path) -> None:
    # Free pairs (one with the document's example slot ids) with room for many holds, and a
    # booking to look up and cancel; the fuzzer's holds are followed by the calls on them
    # through the document's links.
    pairs = await env.add_pairs(2, units=1000)
    booking = await env.book(pairs[1], "ticket-2")
    config = config_file(tmp_path, {
        "body.birth_date": OLD, "body.postcode": HOME_POSTCODE,
        "body.first_slot": pairs[0][0].id, "body.second_slot": pairs[0][1].id,
        "body.booking_code": booking["booking_code"],
    })
    returncode, report = await run_schemathesis(env, tmp_path, config)
    summary = report[report.rfind("=== SUMMARY ==="):] or report[-4000:]
    log.info("schemathesis, %d examples per operation:\n%s", EXAMPLES, report)
    assert returncode == 0, report
    # Loaded from its URL, the document's own operation is left out: 14 of our 15.
    assert "Tested: 14" in summary, summary
    assert "Failures:" not in summary, summary


async def test_centres_postcode_takes_ascii_digits_only(env: Env) -> None:
    """The document says five ASCII digits; `?postcode=` with other scripts' digits (which
    str.isdigit accepts) listed every centre instead of being refused."""
    arabic_indic = "\u0663\u0668\u0661\u0660\u0660"
    for postcode in (arabic_indic, "\uff13" * 5, "\u00b2" * 5):  # fullwidth 3, superscript 2
        status, body = await env.api("GET", "/api/v1/centres", params={"postcode": postcode})
        assert (status, body["error"], body["field"]) == (400, "postcode_invalid", "postcode")
    status, body = await env.api("GET", "/api/v1/centres", params={"postcode": HOME_POSTCODE})
    assert status == 200
    assert body["centres"][0]["district"] == "braunschweig"
