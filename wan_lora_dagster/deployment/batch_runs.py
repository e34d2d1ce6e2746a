"""A stage's batches on every worker at once: each batch's run orchestrated in its own process.

A run submits its steps to the Celery workers and waits for them, so runs made one after another
keep one worker busy. Dagster orchestrates every run in a process of its own (its run worker);
so does `wan-lora run` on a team deployment: the runs of a stage's batches start together
(`runs_in_flight` at most, each a forked copy of the command: nothing imported again, its
memory shared with the command until written), and each sends back what its run did. The
Celery queue hands the batches to whichever worker is idle.

Ctrl-C reaches every process of the terminal's group. Each run then does what Dagster's run
worker does: it revokes its batch if no worker has taken it yet, and waits for a batch a worker
is making (it is finished and kept, never left half made or made twice); runs not started yet
are not started. A SIGINT or SIGTERM to the command alone is passed on to its runs as SIGINT.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import multiprocessing
import os
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait

from wan_lora_dagster.dagster_internals import capture_interrupts, check_captured_interrupt

PR_SET_PDEATHSIG = 1  # Linux prctl: a signal for this process when its parent dies
FORK = multiprocessing.get_context("fork")  # a run's process shares the command's imports


@dataclass(frozen=True)
class RunOutcome:
    """What one batch's run did: interrupted, the error of each item it failed, or why its
    process ended without saying (`lost`)."""

    interrupted: bool = False
    errors: dict[str, str] = field(default_factory=dict)
    lost: str | None = None


@dataclass
class Ended:
    """Each run's partition keys and outcome, in the order they ended; whether we were stopped."""

    runs: list[tuple[list[str], RunOutcome]] = field(default_factory=list)
    interrupted: bool = False


def run_at_once(
    runs: list[list[str]],
    run_one: Callable[[list[str]], RunOutcome],
    in_flight: int,
    on_done: Callable[[int, int], None] = lambda done, total: None,
) -> Ended:
    """Each run's outcome; `run_one` runs in a forked process, `on_done(runs ended, runs)` in
    this one. After an interrupt, the runs not started yet come back interrupted, unstarted.
    """
    waiting = deque(runs)
    running: dict[Connection, tuple[multiprocessing.Process, list[str]]] = {}
    ended = Ended()
    with _sigterm_as_interrupt():
        while waiting or running:
            try:
                while waiting and not ended.interrupted and len(running) < in_flight:
                    running.update(_start(run_one, waiting.popleft()))
                while ended.interrupted and waiting:
                    ended.runs.append((waiting.popleft(), RunOutcome(interrupted=True)))
                for reader in wait(list(running)):
                    process, keys = running.pop(reader)
                    ended.runs.append((keys, _outcome(reader, process)))
                    on_done(len(ended.runs), len(runs))
            except KeyboardInterrupt:
                ended.interrupted = True
                for process, _ in running.values():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(process.pid, signal.SIGINT)
    return ended


def _start(
    run_one: Callable[[list[str]], RunOutcome], keys: list[str]
) -> dict[Connection, tuple[multiprocessing.Process, list[str]]]:
    sys.stdout.flush()  # else the copy of an unwritten buffer is written again by the child
    sys.stderr.flush()
    reader, writer = FORK.Pipe(duplex=False)
    process = FORK.Process(target=_run_in_child, args=(run_one, keys, writer), daemon=False)
    gc.freeze()  # the child's collector leaves the objects it shares untouched, so uncopied
    try:
        process.start()
    finally:
        gc.unfreeze()
    writer.close()  # the child holds the only writer: its end reads as EOF here
    return {reader: (process, keys)}


def _run_in_child(
    run_one: Callable[[list[str]], RunOutcome], keys: list[str], writer: Connection
) -> None:
    _interrupt_when_orphaned()
    # Dagster's advice for a process that executes a run: capture interrupts from its start,
    # so a Ctrl-C at any moment becomes the run's own orderly stop.
    with capture_interrupts():
        outcome = RunOutcome(interrupted=True) if check_captured_interrupt() else run_one(keys)
    writer.send(outcome)
    writer.close()


def _interrupt_when_orphaned() -> None:
    """A SIGINT to this run's process when the command dies (SIGKILL): its run stops as on a
    Ctrl-C instead of going on with no one to report to."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGINT)


def _outcome(reader: Connection, process: multiprocessing.Process) -> RunOutcome:
    try:
        outcome = reader.recv()
    except EOFError:  # the process died before reporting (killed, out of memory)
        outcome = None
    reader.close()
    process.join()
    if outcome is None:
        return RunOutcome(
            interrupted=process.exitcode == -signal.SIGINT,
            lost=f"the process running its run ended with exit code {process.exitcode}",
        )
    return outcome


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """A SIGTERM stops the runs as a Ctrl-C does (Dagster's run workers treat it so too)."""

    def interrupt(_number, _frame):
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may handle signals (a test runs the command in a thread)
        return
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
