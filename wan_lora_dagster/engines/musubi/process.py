"""Running musubi-tuner's scripts: each in its own process group, ended as a whole.

`accelerate launch` starts the trainer as its child, and the trainer starts data-loader workers:
signalling only the direct child (what Dagster's PipesSubprocessClient does on cancel,
benchmarks/README.md) leaves those running on the GPU. Every command here starts a new session,
so its pid is the group id of everything it spawns, and every way out of `run_command` (exit,
failure, cancellation, an exception such as Dagster's interrupt) ends that group: SIGTERM, then
SIGKILL.
The command runs under parent_watch, which ends the group itself if this process dies first.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from wan_lora_dagster.errors import EngineCancelled, EngineError
from wan_lora_dagster.parent_watch import watched

TERMINATE_GRACE_SECONDS = 5.0
KILL_WAIT_SECONDS = 10.0
TICK_SECONDS = 0.5
_LINE_BREAK = re.compile(rb"[\r\n]")  # tqdm redraws with "\r"
_PROC = Path("/proc")


class CancelToken:
    """Set from any thread (or a signal handler) to end the command now running."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def consume(self) -> None:
        """Forget a cancellation once it has stopped a command."""
        self._event.clear()


def run_command(
    argv: Sequence[str],
    on_line: Callable[[str], None],
    cancel: CancelToken,
    on_tick: Callable[[], None] | None = None,
    cwd: Path | None = None,
) -> int:
    """Run argv in a new process group; returns its exit status.

    on_line gets each line of its merged stdout and stderr (a tqdm redraw counts as a line), and
    on_tick is called about every TICK_SECONDS; both on the calling thread. Raises EngineCancelled
    when `cancel` is set before or while it runs.
    """
    if cancel.cancelled:
        cancel.consume()
        raise EngineCancelled("cancelled before it started")
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}  # lines as they happen, not per 8 KiB
    if shutil.which(argv[0]) is None:
        raise EngineError(f"cannot start {argv[0]}: no such program")
    try:
        process = subprocess.Popen(
            watched(list(argv)),  # a SIGKILLed `wan-lora run` leaves no trainer behind
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=environment,
            start_new_session=True,
        )
    except OSError as error:
        raise EngineError(f"cannot start {argv[0]}: {error}") from None
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=_read_lines, args=(process.stdout, lines), daemon=True)
    reader.start()
    try:
        _pump(lines, on_line, on_tick, cancel, process)
        return process.wait()
    finally:
        end_process_group(process)
        reader.join(timeout=KILL_WAIT_SECONDS)
        process.stdout.close()


def end_process_group(process: subprocess.Popen) -> None:
    """SIGTERM the group, SIGKILL what is left after TERMINATE_GRACE_SECONDS; wait until gone."""
    group = process.pid
    for sig, patience in (
        (signal.SIGTERM, TERMINATE_GRACE_SECONDS),
        (signal.SIGKILL, KILL_WAIT_SECONDS),
    ):
        if not _group_alive(group, process):
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, sig)
        deadline = time.monotonic() + patience
        while time.monotonic() < deadline and _group_alive(group, process):
            time.sleep(0.05)
    if _group_alive(group, process):
        raise EngineError(f"process group {group} survived SIGKILL")


def _pump(
    lines: queue.Queue[str | None],
    on_line: Callable[[str], None],
    on_tick: Callable[[], None] | None,
    cancel: CancelToken,
    process: subprocess.Popen,
) -> None:
    """Until the output ends: which is when the whole group is gone, since a process left behind
    by the command (say, a worker of its data loader) holds the output pipe open."""
    next_tick = time.monotonic() + TICK_SECONDS
    leader_ended = False
    while True:
        if cancel.cancelled:
            cancel.consume()
            raise EngineCancelled("cancelled; its process group was ended")
        if not leader_ended and process.poll() is not None:
            leader_ended = True
            end_process_group(process)
        try:
            line = lines.get(timeout=TICK_SECONDS)
        except queue.Empty:
            line = ""
        if line is None:
            return
        if line:
            on_line(line)
        if on_tick and time.monotonic() >= next_tick:
            on_tick()
            next_tick = time.monotonic() + TICK_SECONDS


def _read_lines(stream, lines: queue.Queue[str | None]) -> None:
    pending = b""
    for chunk in iter(lambda: stream.read1(65536), b""):
        *complete, pending = _LINE_BREAK.split(pending + chunk)
        for raw in complete:
            if raw.strip():
                lines.put(raw.decode("utf-8", errors="replace").rstrip())
    if pending.strip():
        lines.put(pending.decode("utf-8", errors="replace").rstrip())
    lines.put(None)


def _group_alive(group: int, leader: subprocess.Popen) -> bool:
    """Whether any process of the group still runs (zombies do not count); reaps the leader."""
    leader.poll()
    if _PROC.is_dir():
        return any(_in_group(entry, group) for entry in _PROC.iterdir() if entry.name.isdigit())
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def _in_group(process_dir: Path, group: int) -> bool:
    try:
        stat = (process_dir / "stat").read_text()
    except OSError:
        return False
    # /proc/<pid>/stat: "pid (comm) state ppid pgrp ..."; comm may hold spaces and parentheses.
    state, _, process_group = stat[stat.rindex(")") + 2 :].split()[:3]
    return int(process_group) == group and state not in ("Z", "X")
