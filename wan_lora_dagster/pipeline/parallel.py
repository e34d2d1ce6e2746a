"""Per-item work spread over the machine's cores.

Cutting runs ffmpeg and decoding runs in PyAV's C code, both of which release the GIL, so
threads keep every core busy without pickling the catalog into worker processes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field

from wan_lora_dagster.errors import UserError

ALL_CORES = os.cpu_count() or 1


@dataclass
class EachResult:
    """Per item: what `make` returned, or the message of the UserError it raised."""

    made: dict[str, object] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)


GroupMaker = Callable[[list[str]], dict[str, object]]


def in_batches(keys: list[str], size: int) -> list[list[str]]:
    """`keys` in order, in consecutive groups of `size` (the last one shorter)."""
    return [keys[start : start + size] for start in range(0, len(keys), size)]


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

    def make_alone(group: list[str]) -> dict[str, object]:
        try:
            return {group[0]: make(group[0])}
        except UserError as error:
            return {group[0]: error}

    return make_groups_in_parallel([[key] for key in keys], make_alone, workers, on_done)


def make_groups_in_parallel(
    groups: list[list[str]],
    make_group: GroupMaker,
    workers: int = ALL_CORES,
    on_done: Callable[[str, int, str | None], None] = lambda key, count, error: None,
) -> EachResult:
    """`make_group(keys)` for every group of keys (items made together: ranges one ffmpeg
    cuts), at most `workers` groups at a time. It returns each key's result, or the UserError
    that failed that key alone; a UserError it raises fails its whole group. Otherwise as
    `make_in_parallel`, whose items are groups of one; `on_done` is called per key.
    """
    keys = [key for group in groups for key in group]
    result = EachResult()
    if workers <= 1:
        for group in groups:
            _take(result, group, _made_or_failed(make_group, group), on_done)
        return result
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="make")
    try:
        submitted: dict[Future, list[str]] = {
            pool.submit(_made_or_failed, make_group, group): group for group in groups
        }
        # as_completed waits on every future once; wait(FIRST_COMPLETED) in a loop walks all the
        # pending ones each time, which at 30,000 captions held the GIL for minutes.
        for future in as_completed(submitted):
            _take(result, submitted[future], future.result(), on_done)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    result.made = {key: result.made[key] for key in keys if key in result.made}
    return result


def _made_or_failed(make_group: GroupMaker, group: list[str]) -> dict[str, object]:
    """Run in a worker thread (or, with one worker, in the caller's, where an interrupt stops
    the item in hand: an engine run that checks for cancelling)."""
    try:
        return make_group(group)
    except UserError as error:
        return dict.fromkeys(group, error)


def _take(result: EachResult, group: list[str], outcomes: dict, on_done) -> None:
    for key in group:
        outcome = outcomes[key]
        if isinstance(outcome, UserError):
            result.failures[key] = str(outcome)
        else:
            result.made[key] = outcome
        on_done(key, len(result.made) + len(result.failures), result.failures.get(key))
