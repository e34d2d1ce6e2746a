"""`wan-lora ui` stopped as a service manager stops it (SIGTERM) leaves nothing running."""

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wan_lora_dagster.scaffold import init_project
from wan_lora_dagster.testing.dagster_ui import (
    START_SECONDS,
    STOP_SECONDS,
    wait_until_it_answers,
    webserver_says_it_serves,
)
from wan_lora_dagster.testing.processes import default_signals
from wan_lora_dagster.testing.servers import free_port

pytestmark = pytest.mark.slow


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


def test_sigterm_stops_dagster_dev_and_everything_it_started(tmp_path):
    project = init_project(tmp_path / "project")
    port = free_port()
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
        assert webserver_says_it_serves(ui, port).wait(START_SECONDS), (
            "the UI did not say it serves"
        )
        wait_until_it_answers(port)
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
