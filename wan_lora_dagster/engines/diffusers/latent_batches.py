"""Latent caching at the GPU's speed: frame windows of one shape encoded together, while CPU
threads decode the next clips.

The jobs are taken in a fixed order (section, then item), whatever order they come in, and a
batch holds the next windows of one shape in that order: the same jobs give the same batches,
hence the same bytes. On a CPU the VAE encodes a batch one window at a time (its convolutions
round differently at other batch sizes), so there a cache file's bytes do not depend on the
batch at all; a CPU gains nothing from batching these convolutions anyway.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from wan_lora_dagster.engines.base import LatentJob, Progress, ProgressCallback
from wan_lora_dagster.engines.diffusers.encoding import Window, encode_windows, windows_of
from wan_lora_dagster.engines.wan_models import WanModels

# Windows a VAE pass encodes on a GPU: on an H100 one window of 45 frames at 384x208 already
# keeps it busy; 4 give 10 % more windows/s, their activations staying under 20 GiB.
LATENT_BATCH_SIZE = 4
# Threads decoding and resizing clips (PyAV and numpy release the GIL), and how many decoded
# clips may wait for the GPU: enough to cover a slow decode, few enough to bound memory.
DECODE_THREADS = 4
DECODED_AHEAD = 8


def encode_latent_jobs(
    models: WanModels,
    jobs: Sequence[LatentJob],
    progress: ProgressCallback,
    batch_size: int = LATENT_BATCH_SIZE,
) -> dict[str, list[Path]]:
    """Every job's cache files, item_id -> files; progress per job as its last window is written."""
    ordered = sorted(jobs, key=lambda job: (job.section.name, job.item_id, str(job.cache_dir)))
    tracker = _JobTracker(ordered, progress)
    pending: dict[tuple, list[tuple[int, Window]]] = {}
    # a CPU decodes only while it does not encode: decoding beside the encode made the same job
    # encode to other bits now and then on a loaded machine (the suite under load); a GPU's
    # encode does not share the CPU's torch threads
    ahead = DECODED_AHEAD if models.device.type != "cpu" else 1
    with ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="decode") as pool:
        decoded = _in_order(pool, ordered, lambda job: windows_of(models, job), ahead)
        for index, windows in enumerate(decoded):
            tracker.expect(index, len(windows))
            for window in windows:
                batch = pending.setdefault(window.frames.shape, [])
                batch.append((index, window))
                if len(batch) == batch_size:
                    tracker.written(encode_windows(models, [w for _, w in batch]), batch)
                    del pending[window.frames.shape]
    for batch in pending.values():  # the last, partial batch of each shape, in order of arrival
        tracker.written(encode_windows(models, [w for _, w in batch]), batch)
    return tracker.files


def _in_order(
    pool: ThreadPoolExecutor, jobs: list[LatentJob], decode: Callable, ahead: int
) -> Iterator[list[Window]]:
    """decode(job) for each job, run on `pool` at most `ahead` jobs ahead, yielded in order."""
    futures: deque[Future] = deque()
    remaining = iter(jobs)
    try:
        for job in remaining:
            futures.append(pool.submit(decode, job))
            if len(futures) >= ahead:
                yield futures.popleft().result()
        while futures:
            yield futures.popleft().result()
    finally:  # an error or an interrupt: decode nothing more
        for future in futures:
            future.cancel()


class _JobTracker:
    """Which jobs have all their windows written: their files, and the progress reports."""

    def __init__(self, jobs: list[LatentJob], progress: ProgressCallback):
        self.jobs = jobs
        self.progress = progress
        self.left: dict[int, int] = {}
        self.files: dict[str, list[Path]] = {}
        self.done = 0
        self.started = time.perf_counter()

    def expect(self, index: int, windows: int) -> None:
        self.files.setdefault(self.jobs[index].item_id, [])
        self.left[index] = windows
        if windows == 0:  # a clip shorter than every window: done at once
            self._finish(index)

    def written(self, paths: list[Path], batch: list[tuple[int, Window]]) -> None:
        for path, (index, _) in zip(paths, batch, strict=True):
            self.files[self.jobs[index].item_id].append(path)
            self.left[index] -= 1
            if self.left[index] == 0:
                self._finish(index)

    def _finish(self, index: int) -> None:
        self.done += 1
        seconds = (time.perf_counter() - self.started) / self.done
        self.progress(Progress("latents", self.done, len(self.jobs), seconds))
