"""Running engine work so that it can be followed and stopped: on a worker thread, handing
each result back as it lands, and cancelled by a run's termination signals.

A Dagster step records events only from its own thread and only when it yields them: a training
that saves a checkpoint every hour for ten hours must hand each one back while it goes on, or the
first nine are recorded at hour ten, and none at all if the run is then cancelled.
"""

from __future__ import annotations

import atexit
import queue
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from wan_lora_dagster.errors import EngineCancelled

Deliver = Callable[[Any], None]
_FINISHED = object()


def deliveries(work: Callable[[Deliver], None], cancel: Callable[[], None]) -> Iterator[Any]:
    """Run `work(deliver)` on a worker thread; yield each item it delivers, in delivery order.

    An exception of the work is raised here once everything delivered before it was yielded. If
    the caller stops early (an exception such as a run's interrupt, or closing this generator),
    the work is cancelled: `cancel()` is called, and the next `deliver` raises EngineCancelled in
    the worker, so an engine without a cancel of its own stops at its next progress report; the
    worker is waited for, so nothing runs on after the caller.
    """
    landed: queue.Queue = queue.Queue()
    stopping = threading.Event()
    failure: list[BaseException] = []

    def deliver(item: Any) -> None:
        if stopping.is_set():
            raise EngineCancelled("cancelled")
        landed.put(item)

    def run() -> None:
        try:
            work(deliver)
        except BaseException as error:  # handed to the caller's thread
            failure.append(error)
        finally:
            landed.put(_FINISHED)

    def stop() -> None:
        stopping.set()
        cancel()
        worker.join()

    worker = threading.Thread(target=run, name="engine-work", daemon=True)
    worker.start()
    atexit.register(stop)
    finished = False
    try:
        while (item := landed.get()) is not _FINISHED:
            yield item
        finished = True
    finally:
        atexit.unregister(stop)
        if finished:
            worker.join()
        else:
            stop()
    if failure:
        raise failure[0]


@contextmanager
def cancel_on_signals(
    cancel: Callable[[], None], signals: Sequence[int] = (signal.SIGTERM, signal.SIGINT)
) -> Iterator[None]:
    """Within the block, these signals call `cancel` first, then whatever handled them before.

    For a caller (a CLI, a Dagster step) whose own handler must still run: the engine's work is
    ended by `cancel`, or by the exception the earlier handler raises. Main thread only.
    """
    previous = {}

    def handle(number, frame):
        cancel()
        earlier = previous[number]
        if callable(earlier):
            earlier(number, frame)

    for number in signals:
        previous[number] = signal.signal(number, handle)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
