"""Engine work on a worker thread, its results handed back as they land."""

import subprocess
import sys
import threading
import time

import pytest

from wan_lora_dagster.engines.background import deliveries
from wan_lora_dagster.errors import EngineCancelled, EngineError


def test_each_result_is_handed_back_before_the_work_ends():
    release = threading.Event()
    seen = []

    def work(deliver):
        deliver("checkpoint 1")
        release.wait(timeout=10)  # the work goes on only once the caller has the first result
        deliver("checkpoint 2")

    for item in deliveries(work, cancel=lambda: None):
        seen.append(item)
        release.set()
    assert seen == ["checkpoint 1", "checkpoint 2"]


def test_the_works_error_comes_after_what_it_delivered():
    def work(deliver):
        deliver("checkpoint 1")
        raise EngineError("CUDA out of memory")

    seen = []
    with pytest.raises(EngineError, match="out of memory"):
        for item in deliveries(work, cancel=lambda: None):
            seen.append(item)
    assert seen == ["checkpoint 1"]


def test_a_caller_that_stops_early_cancels_the_work_and_waits_for_it():
    cancelled, ended = threading.Event(), threading.Event()
    outcome = []

    def work(deliver):
        try:
            for step in range(1000):  # an in-process engine: it only reports progress
                deliver(step)
                time.sleep(0.01)
        except EngineCancelled:
            outcome.append("stopped at its next report")
        finally:
            ended.set()

    results = deliveries(work, cancel=cancelled.set)
    assert next(results) == 0
    results.close()  # what an interrupt of the caller's thread does to the generator
    assert cancelled.is_set()
    assert ended.is_set(), "the worker was still running when the caller went on"
    assert outcome == ["stopped at its next report"]


ABANDONING_CALLER = """
import sys, torch
from wan_lora_dagster.engines.background import deliveries

def work(deliver):
    model, data = torch.nn.Linear(256, 256), torch.randn(128, 256)
    while True:
        for _ in range(10):
            model(data).sum().backward()
        deliver("step")

results = deliveries(work, cancel=lambda: None)
next(results)
sys.exit(130)  # as Ctrl-C ends a command, the generator left open
"""


def test_a_caller_that_exits_without_closing_it_exits_with_its_own_code():
    """An interrupt raised outside the generator leaves it open; at exit the worker, inside torch,
    must be stopped first, or the process aborts with 'terminate called without an active
    exception' (the Ctrl-C of issue 10)."""
    finished = subprocess.run(
        [sys.executable, "-c", ABANDONING_CALLER], capture_output=True, text=True, timeout=120
    )
    assert finished.returncode == 130, finished.stderr
    assert "terminate called" not in finished.stderr
