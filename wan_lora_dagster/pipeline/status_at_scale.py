"""`wan-lora status` on tens of thousands of clips: every core, and no cyclic garbage collection.

With everything made, status reads and checks four records and their files per clip: at 30,000
clips about 6 s of Python on one core, most of the command.
- Each item's partitions depend on that item alone, so the items are shared out to forked copies
  of this process (os.fork and a pipe each: no pool, whose threads and queues a fork can
  strand), which hold the same snapshot (catalog, recipe, caption states) without it being sent
  to them. Each sends back what it read, less the made files' sizes and hashes (checked there,
  and a third of a record's bytes), and the snapshot takes it as if it had read it itself: the
  manifest and everything downstream are computed from it as before.
- Python's cyclic collector runs every 700 new objects and, as the heap grows, walks all of it:
  a fifth of the check's time at 30,000 clips. Records are trees of dicts and lists, which
  reference counting frees alone, so the collector is paused while they are read.
"""

from __future__ import annotations

import gc
import os
import pickle
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from wan_lora_dagster.pipeline.asset_spec import Partitioning
from wan_lora_dagster.pipeline.asset_table import partitioned
from wan_lora_dagster.pipeline.parallel import ALL_CORES
from wan_lora_dagster.pipeline.status import Expectations

# Below this many items a fork and the answers' trip back cost more than they save.
MIN_ITEMS_TO_SHARE = 2_000


def check_items_on_cores(
    expectations: Expectations, workers: int = ALL_CORES, min_items: int = MIN_ITEMS_TO_SHARE
) -> None:
    """Fill `expectations` with every clip's and still's records and freshness, `workers`
    processes at a time (this one among them).

    Only in a process of one thread (the `wan-lora` command) on a system that forks: forking
    copies no other thread, so a lock another thread held (logging's, an import's) would stay
    held in the copy; there, and with few items, the snapshot reads as it is asked. A worker
    that fails leaves its share to this process.
    """
    catalog = expectations.catalog
    work = [(partitioned(Partitioning.CLIPS), key) for key in catalog.clip_ids]
    work += [(partitioned(Partitioning.STILLS), key) for key in catalog.still_ids]
    if workers < 2 or len(work) < min_items or not _can_fork():
        return
    # The first item of each kind here, before the fork: what all items share (every caption's
    # state, the captioner's fingerprint) is then read once, not once per process.
    _check(expectations, list({assets: key for assets, key in reversed(work)}.items()))
    shares = [work[index::workers] for index in range(workers)]
    forked = [(share, *_fork(expectations, share)) for share in shares[1:]]
    _check(expectations, shares[0])  # this process's share, meanwhile
    for share, pid, pipe in forked:
        with os.fdopen(pipe, "rb") as answer:
            data = answer.read()
        _, status = os.waitpid(pid, 0)
        if status == 0 and data:
            for asset, key, record, fresh in pickle.loads(data):
                expectations.remember(asset, key, record, fresh)
        else:
            _check(expectations, share)


def _can_fork() -> bool:
    return hasattr(os, "fork") and threading.active_count() == 1


def _fork(expectations: Expectations, share: list) -> tuple[int, int]:
    """A forked worker checking `share`: (its pid, the pipe its answer comes through)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid:
        os.close(write_end)
        return pid, read_end
    status = 1
    try:
        os.close(read_end)
        answer = pickle.dumps(_check_share(expectations, share), pickle.HIGHEST_PROTOCOL)
        with os.fdopen(write_end, "wb") as pipe:
            pipe.write(answer)
        status = 0
    finally:
        os._exit(status)  # no exit handlers: they belong to the parent (its database, its files)


def _check(expectations: Expectations, share: list[tuple[tuple[str, ...], str]]) -> None:
    for assets, key in share:
        for asset in assets:
            expectations.is_fresh(asset, key)


def _check_share(expectations: Expectations, share: list) -> list[tuple]:
    """Check the share; (asset, key, record less made files, fresh) each."""
    answer = []
    for assets, key in share:
        for asset in assets:
            fresh = expectations.is_fresh(asset, key)
            record = expectations.record(asset, key)
            if record is not None:
                record = record.without_made_files()
            answer.append((asset, key, record, fresh))
    return answer


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
