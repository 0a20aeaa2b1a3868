"""The managed process: started with a log, ready when its port listens, ended by signals,
and gone when whoever started it dies."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devtools.processes import ManagedProcess, free_port, port_is_open

# A tiny TCP server: listens on the port given, says so, and serves until stopped. With
# "stubborn" it ignores SIGTERM, as a hung server would.
SERVER = """
import signal, socket, sys
if sys.argv[2] == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
sock = socket.socket()
sock.bind(("127.0.0.1", int(sys.argv[1])))
sock.listen()
print("listening", flush=True)
while True:
    sock.accept()[0].close()
"""


def start_server(tmp_path: Path, *, stubborn: bool = False) -> tuple[ManagedProcess, int]:
    port = free_port()
    process = ManagedProcess.start(
        "toy", [sys.executable, "-c", SERVER, str(port), "stubborn" if stubborn else "plain"],
        log_path=tmp_path / "toy.log")
    process.wait_for_port(port)
    return process, port


def test_free_port_is_free() -> None:
    assert not port_is_open(free_port())


def test_started_process_listens_logs_and_stops_on_sigterm(tmp_path: Path) -> None:
    process, port = start_server(tmp_path)
    assert process.running()
    assert port_is_open(port)
    assert process.cpu_seconds() >= 0.0
    assert process.stop() == -signal.SIGTERM
    assert not process.running()
    assert not port_is_open(port)
    assert "listening" in process.log_tail()
    assert process.stop() == -signal.SIGTERM  # stopping again is harmless


def test_a_process_that_ignores_sigterm_is_killed(tmp_path: Path) -> None:
    process, _port = start_server(tmp_path, stubborn=True)
    assert process.stop(timeout_s=0.5) == -signal.SIGKILL


def test_kill_ends_it_at_once_as_a_crash_would(tmp_path: Path) -> None:
    process, port = start_server(tmp_path, stubborn=True)
    process.kill()
    assert process.popen.returncode == -signal.SIGKILL
    assert not port_is_open(port)


def test_exit_before_listening_is_reported_with_the_log(tmp_path: Path) -> None:
    process = ManagedProcess.start(
        "broken", [sys.executable, "-c", "import sys; sys.exit('no config here')"],
        log_path=tmp_path / "broken.log")
    with pytest.raises(RuntimeError, match=r"(?s)broken exited with code 1.*no config here"):
        process.wait_for_port(free_port())


@pytest.mark.skipif(sys.platform != "linux", reason="prctl(PR_SET_PDEATHSIG) is Linux's")
def test_the_server_dies_with_whoever_started_it(tmp_path: Path) -> None:
    """A test run or demo killed by SIGKILL leaves no server behind."""
    parent = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path\n"
         "from devtools.processes import ManagedProcess\n"
         "p = ManagedProcess.start('sleeper', ['sleep', '600'], log_path=Path(sys.argv[1]))\n"
         "print(p.pid, flush=True); time.sleep(600)\n",
         str(tmp_path / "sleeper.log")],
        stdout=subprocess.PIPE, cwd=Path(__file__).resolve().parents[2])
    assert parent.stdout is not None
    with parent.stdout:
        child = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    # The child gets SIGTERM from the kernel; it is gone (or a zombie nobody reaped yet).
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process_state(child) not in ("gone", "Z"):
        time.sleep(0.02)
    assert process_state(child) in ("gone", "Z")


def process_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"
