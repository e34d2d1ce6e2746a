"""Items split over the machine's GPUs: one worker process per device, its model loaded once.

A step that encodes or captions many items hands each device worker a share of about the same
work, every item in exactly one share: by count (items i, i+n, i+2n, ...) where items cost the
same (captions, text embeddings: every caption is padded to 512 tokens), by the work each item
costs where told (latents: frames x pixels), so that a device given the long 720p clips does not
finish last while the others wait.

Workers are started with `spawn` (CUDA cannot be forked) and see only their own GPU
(`CUDA_VISIBLE_DEVICES`), so whatever they start (musubi-tuner's scripts too) uses it. Progress
and results come back to the step through queues.
"""

from __future__ import annotations

import glob
import os
import pickle
import queue
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from wan_lora_dagster.engines.base import Progress, ProgressCallback

DEVICES_ENV = "WAN_LORA_DEVICES"  # e.g. "cuda:0,cuda:2", or "cpu,cpu" to test the split
POLL_SECONDS = 0.2


def gpu_count() -> int:
    """The NVIDIA GPUs this process may use, found without importing torch (which costs the
    command line seconds): CUDA_VISIBLE_DEVICES where set, else the machine's device files."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return len(glob.glob("/dev/nvidia[0-9]*"))
    entries = [index.strip() for index in visible.split(",") if index.strip()]
    # CUDA stops at the first invalid entry: `-1` hides every GPU
    invalid = [position for position, entry in enumerate(entries) if entry.startswith("-")]
    return invalid[0] if invalid else len(entries)


def worker_devices(requested: str | None = None) -> list[str]:
    """The devices a step splits over: `requested` or $WAN_LORA_DEVICES, else every visible GPU.

    One device or none means no split: the step works in its own process, as on a laptop.
    """
    spec = requested or os.environ.get(DEVICES_ENV, "")
    if spec.strip():
        return [device.strip() for device in spec.split(",") if device.strip()]
    return [f"cuda:{index}" for index in range(gpu_count())]


def shares(items: Sequence, count: int, cost: Callable[[Any], float] | None = None) -> list[list]:
    """`count` shares of about equal work, every item in exactly one, each in the items' order.

    The items by decreasing `cost` (default 1 each), each to the share with the least work so
    far (ties: the first): a share's work then exceeds another's by at most one item's cost, and
    the same items always give the same shares. Items of equal cost are dealt out in turn
    (i, i+n, i+2n, ...), so the counts are within one of each other.
    """
    costs = [1.0 if cost is None else float(cost(item)) for item in items]
    loads, indices = [0.0] * count, [[] for _ in range(count)]
    for index in sorted(range(len(items)), key=lambda index: -costs[index]):  # stable
        least = min(range(count), key=lambda share: (loads[share], share))
        indices[least].append(index)
        loads[least] += costs[index]
    return [[items[index] for index in sorted(share)] for share in indices]


@dataclass(frozen=True)
class _Failed:
    device: str
    error: BaseException | None
    trace: str


def split_over_devices(
    devices: Sequence[str],
    items: Sequence,
    work: Callable[[str, list, ProgressCallback], dict],
    progress: ProgressCallback,
    cost: Callable[[Any], float] | None = None,
) -> dict:
    """`work(device, share, progress)` in one spawned process per device; their dicts merged.

    cost: what an item costs, by which the shares are evened out (default: one each). `work`
    must be a module-level function (spawn pickles it by name). An error in any worker is raised
    here once every worker has ended (the first one's own exception when it pickles).
    """
    import torch.multiprocessing as multiprocessing

    context = multiprocessing.get_context("spawn")
    reports, results = context.Queue(), context.Queue()
    portions = [share for share in shares(items, len(devices), cost) if share]
    processes = [
        context.Process(target=_run_worker, args=(index, device, share, work, reports, results))
        for index, (device, share) in enumerate(zip(devices, portions, strict=False))
    ]
    for process in processes:
        process.start()
    merged, failures, done = {}, [], [0] * len(processes)
    pending = len(processes)
    while pending:
        _forward_progress(reports, done, len(items), progress)
        try:
            outcome = results.get(timeout=POLL_SECONDS)
        except queue.Empty:
            if any(p.exitcode not in (None, 0) for p in processes) and results.empty():
                failures.extend(_dead_workers(processes, devices))
                for process in processes:  # their work is lost with the step anyway
                    process.terminate()
                break
            continue
        pending -= 1
        if isinstance(outcome, _Failed):
            failures.append(outcome)
        else:
            merged.update(outcome)
    for process in processes:
        process.join()
    _forward_progress(reports, done, len(items), progress)
    if failures:
        first = failures[0]
        if first.error is not None:
            raise first.error
        raise RuntimeError(f"the worker on {first.device} failed:\n{first.trace}")
    return merged


def _run_worker(index, device, share, work, reports, results) -> None:
    """In the spawned process: see only its own GPU, then do the share."""
    if device.startswith("cuda:"):
        os.environ["CUDA_VISIBLE_DEVICES"] = device.split(":", 1)[1]
        device = "cuda"

    def report(progress: Progress) -> None:
        reports.put((index, progress))

    try:
        results.put(work(device, share, report))
    except BaseException as error:  # the step, in the parent, decides what a failure means
        trace = traceback.format_exc()
        try:
            pickle.dumps(error)
        except Exception:
            error = None
        results.put(_Failed(device, error, trace))


def _forward_progress(reports, done: list[int], total: int, progress: ProgressCallback) -> None:
    """The workers' progress as one count over all items."""
    latest = None
    while True:
        try:
            index, report = reports.get_nowait()
        except queue.Empty:
            break
        done[index] = report.done
        latest = report
    if latest is not None:
        progress(replace(latest, done=sum(done), total=total))


def _dead_workers(processes, devices) -> list[_Failed]:
    return [
        _Failed(device, None, f"exited with {process.exitcode} (killed, or out of memory)")
        for process, device in zip(processes, devices, strict=False)
        if process.exitcode not in (None, 0)
    ]


def run_share(work: Callable[..., Any], *args) -> Callable[[str, list, ProgressCallback], dict]:
    """`work(device, share, progress, *args)` as a picklable worker function."""
    return partial(_with_args, work, args)


def _with_args(work, args, device, share, progress):
    return work(device, share, progress, *args)
