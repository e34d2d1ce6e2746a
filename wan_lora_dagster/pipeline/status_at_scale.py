"""`wan-lora status` on tens of thousands of clips: every core, and no cyclic garbage collection.

With everything made, status reads and checks four records and their files per clip: at 30,000
clips about 6 s of Python on one core, most of the command.
- Each item's partitions depend on that item alone, so the items are shared out to forked copies
  of this process, which hold the same snapshot (catalog, recipe, caption states) without it
  being sent to them. Each sends back what it read, less the made files' sizes and hashes
  (checked there, and a third of a record's bytes), and the snapshot takes it as if it had read
  it itself: the manifest and everything downstream are computed from it as before.
- Python's cyclic collector runs every 700 new objects and, as the heap grows, walks all of it:
  a fifth of the check's time at 30,000 clips. Records are trees of dicts and lists, which
  reference counting frees alone, so the collector is paused while they are read.
"""

from __future__ import annotations

import gc
import multiprocessing
from collections.abc import Iterator
from contextlib import contextmanager

from wan_lora_dagster.pipeline.made_files import MADE_FILES
from wan_lora_dagster.pipeline.parallel import ALL_CORES
from wan_lora_dagster.pipeline.status import PER_CLIP_ASSETS, PER_STILL_ASSETS, Expectations

# Below this many items a fork and the answers' trip back cost more than they save.
MIN_ITEMS_TO_SHARE = 2_000

_shared: Expectations | None = None  # the snapshot the forked workers inherit


def check_items_on_cores(
    expectations: Expectations, workers: int = ALL_CORES, min_items: int = MIN_ITEMS_TO_SHARE
) -> None:
    """Fill `expectations` with every clip's and still's records and freshness, `workers`
    processes at a time (this one among them). Needs the `fork` start method (Linux); without
    it, or with few items, nothing is done here and the snapshot reads as it is asked."""
    catalog = expectations.catalog
    work = [(PER_CLIP_ASSETS, key) for key in catalog.clip_ids]
    work += [(PER_STILL_ASSETS, key) for key in catalog.still_ids]
    if workers < 2 or len(work) < min_items:
        return
    if "fork" not in multiprocessing.get_all_start_methods():
        return
    # The first item of each kind here, before the fork: what all items share (every caption's
    # state, the captioner's fingerprint) is then read once, not once per process.
    _check(expectations, list({assets: key for assets, key in reversed(work)}.items()))
    global _shared
    shares = [work[index::workers] for index in range(workers)]
    _shared = expectations
    try:
        with multiprocessing.get_context("fork").Pool(workers - 1) as pool:
            answers = pool.map_async(_check_share, shares[1:])
            _check(expectations, shares[0])  # this process's share, meanwhile
            for answer in answers.get():
                _take(expectations, answer)
    finally:
        _shared = None


def _check(expectations: Expectations, share: list[tuple[tuple[str, ...], str]]) -> None:
    for assets, key in share:
        for asset in assets:
            expectations.is_fresh(asset, key)


def _check_share(share: list[tuple[tuple[str, ...], str]]) -> list[tuple]:
    """In a forked worker: check the share; (asset, key, record less made files, fresh) each."""
    _check(_shared, share)
    answer = []
    for assets, key in share:
        for asset in assets:
            record = _shared.record(asset, key)
            if record is not None:
                record = {name: value for name, value in record.items() if name != MADE_FILES}
            answer.append((asset, key, record, _shared.is_fresh(asset, key)))
    return answer


def _take(expectations: Expectations, answer: list[tuple]) -> None:
    for asset, key, record, fresh in answer:
        expectations.remember(asset, key, record, fresh)


@contextmanager
def no_cycle_collection() -> Iterator[None]:
    """Pause Python's cyclic garbage collector (if it runs) for the block."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
