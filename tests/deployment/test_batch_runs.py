"""Batch runs at once, each in a forked process: outcomes, a lost process, and Ctrl-C."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from wan_lora_dagster.dagster_internals import check_captured_interrupt
from wan_lora_dagster.deployment.batch_runs import RunOutcome, run_at_once

WAIT_SECONDS = 60


def test_each_run_reports_its_errors_and_a_killed_process_is_named(tmp_path):
    def run_one(keys: list[str]) -> RunOutcome:
        if keys == ["killed"]:
            os.kill(os.getpid(), signal.SIGKILL)  # out of memory, say
        return RunOutcome(errors={key: f"{key} failed in {os.getpid()}" for key in keys})

    ended = run_at_once([["a", "b"], ["killed"], ["c"]], run_one, in_flight=2)

    outcomes = dict((tuple(keys), outcome) for keys, outcome in ended.runs)
    assert set(outcomes) == {("a", "b"), ("killed",), ("c",)}
    assert outcomes[("a", "b")].errors["a"].startswith("a failed in ")
    assert outcomes[("a", "b")].errors["a"] != f"a failed in {os.getpid()}", "not in this process"
    assert outcomes[("killed",)].lost == "the process running its run ended with exit code -9"
    assert not ended.interrupted


@pytest.fixture
def ctrl_c_interrupts():
    """SIGINT raises KeyboardInterrupt, as in a terminal (a pytest-xdist worker ignores it)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_an_interrupt_stops_the_runs_and_starts_no_more(tmp_path, ctrl_c_interrupts):
    """Two runs in flight get the interrupt and stop as they choose; the third never starts."""

    def run_one(keys: list[str]) -> RunOutcome:
        (tmp_path / keys[0]).touch()
        deadline = time.monotonic() + WAIT_SECONDS
        while not check_captured_interrupt() and time.monotonic() < deadline:
            time.sleep(0.05)
        return RunOutcome(interrupted=check_captured_interrupt())

    def interrupt_once_two_run() -> None:
        deadline = time.monotonic() + WAIT_SECONDS
        while len(list(tmp_path.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C sends this command

    threading.Thread(target=interrupt_once_two_run, daemon=True).start()
    ended = run_at_once([["first"], ["second"], ["third"]], run_one, in_flight=2)

    assert ended.interrupted
    assert {keys[0]: outcome.interrupted for keys, outcome in ended.runs} == dict.fromkeys(
        ["first", "second", "third"], True
    )
    assert sorted(path.name for path in Path(tmp_path).iterdir()) == ["first", "second"]
