"""Caption dropout: a share of the training samples train on the empty caption's embedding.

The empty caption is one more text cache, encoded once per project and text encoder (the
training request names the file: pipeline/caches.py decides where, as for every caption) the
first time a run with dropout needs it, by the same code that encodes every caption. Which
samples drop is drawn per step from (seed, step, rank) alone, so the same seed drops the same
samples and a resumed run drops what the uninterrupted one would have, with no state to save;
and the draw leaves the step's timestep and noise generator untouched.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from wan_lora_dagster.engines.base import Progress, TextJob, TrainRequest
from wan_lora_dagster.engines.training_data import TrainingSample
from wan_lora_dagster.errors import EngineError
from wan_lora_dagster.fingerprints import fingerprint
from wan_lora_dagster.formats.cache_files import text_cache_name


def empty_caption_file(job: TextJob) -> Path:
    return job.cache_dir / text_cache_name(job.item_id)


def ensure_empty_caption(request: TrainRequest, encode_texts) -> None:
    """Encode the empty caption if the run drops captions and its cache is not made yet.

    encode_texts: the engine's (jobs, progress) -> files."""
    job = request.empty_caption
    if request.settings.caption_dropout_rate and job and not empty_caption_file(job).is_file():
        encode_texts([job], _no_progress)


def _no_progress(report: Progress) -> None:
    """One caption: no progress worth reporting."""


class CaptionDropout:
    """Which samples of a step train on the empty caption."""

    def __init__(self, rate: float, seed: int, empty_text_file: Path | None):
        self.rate = rate
        self.seed = seed
        self.empty_text_file = empty_text_file

    @classmethod
    def of(cls, request: TrainRequest) -> CaptionDropout:
        rate, seed = request.settings.caption_dropout_rate, request.settings.seed
        if not rate:
            return cls(0.0, seed, None)
        job = request.empty_caption
        if job is None or not empty_caption_file(job).is_file():
            raise EngineError(
                f"caption_dropout_rate = {rate} trains on the empty caption's text cache, and "
                f"{'none was named' if job is None else empty_caption_file(job)} is not made"
            )
        return cls(rate, seed, empty_caption_file(job))

    def dropped(self, count: int, step: int, rank: int) -> list[bool]:
        """For each of a step's `count` samples, whether it trains on the empty caption."""
        if not self.rate:
            return [False] * count
        seed = int(fingerprint("caption_dropout", self.seed, step, rank), 16) & 0x7FFF_FFFF
        draws = torch.rand(count, generator=torch.Generator().manual_seed(seed))
        return (draws < self.rate).tolist()

    def apply(self, samples: list[TrainingSample], step: int, rank: int) -> list[TrainingSample]:
        return [
            replace(sample, text_file=self.empty_text_file) if drop else sample
            for sample, drop in zip(samples, self.dropped(len(samples), step, rank), strict=True)
        ]
