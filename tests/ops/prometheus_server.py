"""A private Prometheus for tests: own config, data dir and loopback port; never a shared one."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devtools.processes import free_port, stop_process

PROMETHEUS_MISSING = (
    "prometheus not found on PATH: install it (Debian/Ubuntu: apt-get install prometheus; "
    "do not start its service, the tests start their own)"
)


def prometheus_binary() -> str | None:
    return shutil.which("prometheus")


def promtool_binary() -> str | None:
    return shutil.which("promtool")


@dataclass(frozen=True)
class ScrapeJob:
    name: str
    targets: Sequence[str]  # host:port of the admin apps serving /metrics


class Prometheus:
    """A client of the HTTP API of one running Prometheus."""

    def __init__(self, url: str) -> None:
        self.url = url

    def get(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        # Only ever http://127.0.0.1:<port>, built by private_prometheus.
        url = f"{self.url}{path}?{query}"
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query at the current time: the list of result series (vector only)."""
        try:
            data = self.get("/api/v1/query", query=expr)
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{expr!r} was refused: {exc.read().decode()}") from None
        assert data["resultType"] == "vector", (expr, data["resultType"])
        result: list[dict[str, Any]] = data["result"]
        return result

    def targets_up(self) -> dict[str, str]:
        """scrapeUrl -> health ("up", "down", "unknown") of every active target."""
        data = self.get("/api/v1/targets", state="active")
        return {t["scrapeUrl"]: t["health"] for t in data["activeTargets"]}


def write_config(path: Path, jobs: Sequence[ScrapeJob], rule_files: Sequence[Path],
                 interval_s: float) -> None:
    """prometheus.yml for the test; JSON is YAML, so no YAML library is needed."""
    interval = f"{interval_s:g}s"
    config = {
        "global": {"scrape_interval": interval, "scrape_timeout": interval,
                   "evaluation_interval": interval},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [
            {"job_name": job.name, "metrics_path": "/metrics",
             "static_configs": [{"targets": list(job.targets)}]}
            for job in jobs
        ],
    }
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")


@contextlib.contextmanager
def private_prometheus(jobs: Sequence[ScrapeJob], *, rule_files: Sequence[Path] = (),
                       interval_s: float = 1.0) -> Iterator[Prometheus]:
    """Start prometheus on a free loopback port with its own config and data dir."""
    binary = prometheus_binary()
    if binary is None:
        raise RuntimeError(PROMETHEUS_MISSING)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="test-prometheus-") as workdir:
        config = Path(workdir) / "prometheus.yml"
        write_config(config, jobs, rule_files, interval_s)
        log = (Path(workdir) / "prometheus.log").open("wb")
        args = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={Path(workdir) / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=1h",
            "--log.level=warn",
        ]
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_ready(url, proc, Path(log.name))
            yield Prometheus(url)
        finally:
            stop_process(proc)
            log.close()


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prometheus exited with code {proc.returncode}: "
                               f"{log.read_text(errors='replace')[-2000:]}")
        with contextlib.suppress(OSError), urllib.request.urlopen(  # noqa: S310
                f"{url}/-/ready", timeout=1) as response:
            if response.status == 200:
                return
        time.sleep(0.05)
    raise RuntimeError("prometheus was not ready within 20 s")
