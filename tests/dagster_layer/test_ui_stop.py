"""`wan-lora ui` stopped as a service manager stops it (SIGTERM) leaves nothing running."""

import contextlib
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.processes import default_signals
from wan_lora_dagster.scaffold import init_project

pytestmark = pytest.mark.slow
START_SECONDS = 180
STOP_SECONDS = 60


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _descendants(root: int) -> set[int]:
    """Every live process below root, by parent pid."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError):
                stat = (entry / "stat").read_text()
                state, parent = stat[stat.rindex(")") + 2 :].split()[:2]
                if state not in ("Z", "X"):
                    parents[int(entry.name)] = int(parent)
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2 :].split()[0] not in ("Z", "X")


def test_sigterm_stops_dagster_dev_and_everything_it_started(tmp_path):
    project = init_project(tmp_path / "project")
    port = _free_port()
    ui = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wan_lora_dagster.cli",
            "ui",
            "--project",
            str(project),
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=default_signals,
    )
    deadline = time.monotonic() + START_SECONDS
    while True:
        assert ui.poll() is None, "wan-lora ui exited early"
        with contextlib.suppress(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5).close()
            break
        assert time.monotonic() < deadline, "the UI did not answer"
        time.sleep(1)
    started = _descendants(ui.pid)
    assert len(started) >= 3, "the watch, dagster dev, its webserver and daemon"

    ui.send_signal(signal.SIGTERM)
    ui.wait(timeout=STOP_SECONDS)
    deadline = time.monotonic() + STOP_SECONDS
    while (left := {pid for pid in started if _alive(pid)}) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left, f"still running after wan-lora ui ended: {left}"
    with socket.socket() as probe:  # no one listens: the port is free again (TIME_WAIT aside)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
