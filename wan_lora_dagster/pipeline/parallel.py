"""Per-item work spread over the machine's cores.

Cutting runs ffmpeg and decoding runs in PyAV's C code, both of which release the GIL, so
threads keep every core busy without pickling the catalog into worker processes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from wan_lora_dagster.errors import UserError

ALL_CORES = os.cpu_count() or 1


@dataclass
class EachResult:
    """Per item: what `make` returned, or the message of the UserError it raised."""

    made: dict[str, object] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)


def make_in_parallel(
    keys: list[str],
    make: Callable[[str], object],
    workers: int = ALL_CORES,
    on_done: Callable[[str, int, str | None], None] = lambda key, count, error: None,
) -> EachResult:
    """`make(key)` for every key, at most `workers` at a time; results in the order of `keys`.

    A UserError fails its own item only; any other error, or an interrupt (Ctrl-C, a cancelled
    run), stops the work: items not yet started are dropped and the ones running are awaited,
    so no half-made item is left behind by this function. `on_done(key, count, error)` is called
    in the caller's thread as each item ends (`error`: its failure's message, or None).
    """
    if workers <= 1:
        return _make_in_turn(keys, make, on_done)
    result = EachResult()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="make")
    try:
        pending: dict[Future, str] = {pool.submit(make, key): key for key in keys}
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                key = pending.pop(future)
                try:
                    result.made[key] = future.result()
                except UserError as error:
                    result.failures[key] = str(error)
                on_done(key, len(keys) - len(pending), result.failures.get(key))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    result.made = {key: result.made[key] for key in keys if key in result.made}
    return result


def _make_in_turn(keys, make, on_done) -> EachResult:
    """One at a time in the caller's thread, where an interrupt stops the item in hand (an engine
    run that checks for cancelling)."""
    result = EachResult()
    for count, key in enumerate(keys, start=1):
        try:
            result.made[key] = make(key)
        except UserError as error:
            result.failures[key] = str(error)
        on_done(key, count, result.failures.get(key))
    return result
