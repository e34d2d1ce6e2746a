"""Progress of long work, for a terminal bar and for a run log that is read by people.

Domain code reports every unit; `ProgressThrottle` passes on only what a person wants to read
(every few seconds or every tenth of the work), and listeners (the CLI's bars) see everything.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from wan_lora_dagster.engines.base import Progress

Listener = Callable[[str, Progress], None]
_listeners: list[Listener] = []


def add_listener(listener: Listener) -> None:
    _listeners.append(listener)


def remove_listener(listener: Listener) -> None:
    _listeners.remove(listener)


def notify(asset: str, progress: Progress) -> None:
    """Tell the listeners (the command line's bars) of the work done."""
    for listener in list(_listeners):
        listener(asset, progress)


def describe(progress: Progress) -> str:
    if progress.resumed is not None:
        return f"{progress.stage}: {progress.resumed}"
    parts = [f"{progress.stage}: {progress.done}/{progress.total}"]
    if progress.epoch is not None:
        parts.append(f"epoch {progress.epoch}")
    if progress.seconds_per_unit:
        parts.append(f"{progress.seconds_per_unit:.2f} s/it")
    if progress.loss is not None:
        parts.append(f"loss {progress.loss:.4f}")
    return ", ".join(parts)


class ProgressThrottle:
    """A progress callback that logs at sensible intervals and informs listeners of every unit."""

    def __init__(self, asset: str, log: Callable[[str], None], seconds: float = 5.0):
        self.asset = asset
        self.log = log
        self.seconds = seconds
        self._last_time = 0.0
        self._last_fraction = -1.0

    def __call__(self, progress: Progress) -> None:
        notify(self.asset, progress)
        fraction = progress.done / max(progress.total, 1)
        now = time.monotonic()
        finished = progress.done >= progress.total
        if (
            finished
            or progress.resumed is not None
            or now - self._last_time >= self.seconds
            or fraction - self._last_fraction >= 0.1
        ):
            self.log(describe(progress))
            self._last_time, self._last_fraction = now, fraction
