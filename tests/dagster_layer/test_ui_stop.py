"""`wan-lora ui` stopped as a service manager stops it (SIGTERM) leaves nothing running."""

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from wan_lora_dagster.scaffold import init_project
from wan_lora_dagster.testing.processes import default_signals

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


def _exit_handles(pids: set[int]) -> dict[int, int]:
    """pid -> a pidfd, readable once that process has ended (whoever its parent is)."""
    handles = {}
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            handles[pid] = os.pidfd_open(pid)
    return handles


def _wait_all_ended(handles: dict[int, int], seconds: float) -> set[int]:
    """Wait until every process has ended, at most `seconds`; those still running."""
    waiting = select.poll()
    for handle in handles.values():
        waiting.register(handle, select.POLLIN)
    left, deadline = dict(handles), time.monotonic() + seconds
    while left and (remaining := deadline - time.monotonic()) > 0:
        for handle, _ in waiting.poll(remaining * 1000):
            waiting.unregister(handle)
            left = {pid: fd for pid, fd in left.items() if fd != handle}
    for handle in handles.values():
        os.close(handle)
    return set(left)


def _serving(process: subprocess.Popen, port: int) -> threading.Event:
    """Set when the webserver says it serves on `port`; its output is read to the end so that
    no pipe fills."""
    ready = threading.Event()

    def read() -> None:
        for line in process.stdout:
            if f"Serving dagster-webserver on http://127.0.0.1:{port}" in line:
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    return ready


def _answers(port: int) -> None:
    """The webserver logs that it serves just before it binds: wait until it answers."""
    deadline = time.monotonic() + START_SECONDS
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=30).close()
            return
        except urllib.error.URLError as error:  # refused: not bound yet
            if not isinstance(error.reason, ConnectionRefusedError):
                raise
            assert time.monotonic() < deadline, "the UI said it serves, but does not answer"
            time.sleep(0.1)


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
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=default_signals,
    )
    try:
        assert _serving(ui, port).wait(START_SECONDS), "the UI did not say it serves"
        _answers(port)
        started = _descendants(ui.pid)
        assert len(started) >= 3, "the watch, dagster dev, its webserver and daemon"
        handles = _exit_handles(started)

        asked = time.monotonic()
        ui.send_signal(signal.SIGTERM)
        ui.wait(timeout=STOP_SECONDS)
        left = _wait_all_ended(handles, STOP_SECONDS)
        took = time.monotonic() - asked
        print(f"wan-lora ui and its {len(started)} processes ended {took:.1f} s after SIGTERM")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(ui.pid, signal.SIGKILL)
    assert not left, f"still running after wan-lora ui ended: {left}"
    with socket.socket() as probe:  # no one listens: the port is free again (TIME_WAIT aside)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
