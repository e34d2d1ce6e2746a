"""UMT5 embeddings of captions, many per forward pass, each cached alone in musubi's format.

A cache holds one caption's embedding trimmed to its own tokens, (num_tokens, dim), as
musubi-tuner writes it. musubi-tuner and diffusers pad every caption to 512 tokens before the
encoder; here a batch is padded only to its longest caption. With the attention mask the padding
changes nothing a real token sees (T5's position bias is relative, masked keys weigh exactly 0), so
the trimmed embedding is the same up to float rounding, at a fraction of the work: a caption of
a film clip is 10-100 tokens, and the 512-token forward was 94 % of the time per caption.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import torch
from diffusers.pipelines.wan.pipeline_wan import prompt_clean

from wan_lora_dagster.engines.base import Progress, ProgressCallback, TextJob
from wan_lora_dagster.engines.wan_models import TEXT_LENGTH, WanModels
from wan_lora_dagster.formats.cache_files import text_cache_name
from wan_lora_dagster.formats.musubi_cache import save_text_cache

# On a CPU the tiny model's rate rises up to 32 captions a pass and falls at 64
# (benchmarks/text_cache.py's sweep). On a GPU 32 rows keep UMT5-XXL's matmuls busy while its
# activations stay at a few GiB even for 512-token captions (32 x 64 heads x 512^2 scores).
TEXT_BATCH_SIZE = 32


def encode_texts(
    models: WanModels,
    jobs: Sequence[TextJob],
    progress: ProgressCallback,
    batch_size: int = TEXT_BATCH_SIZE,
) -> dict[str, Path]:
    """Every job's cache file, `batch_size` captions a forward pass; item_id -> file.

    Captions are batched by length so that a batch pads its short captions little, ties broken
    by text and item: the same captions make the same batches, hence the same bytes, in
    whatever order they come.
    """
    by_length = sorted(jobs, key=lambda job: (len(job.text), job.text, job.item_id))
    written: dict[str, Path] = {}
    for start in range(0, len(by_length), batch_size):
        batch = by_length[start : start + batch_size]
        started = time.perf_counter()
        written.update(_encode_batch(models, batch))
        seconds = (time.perf_counter() - started) / len(batch)
        progress(Progress("texts", len(written), len(jobs), seconds))
    return written


@torch.no_grad()
def _encode_batch(models: WanModels, jobs: Sequence[TextJob]) -> dict[str, Path]:
    try:
        tokens = models.tokenizer(
            [prompt_clean(job.text) for job in jobs],
            padding="longest",
            max_length=TEXT_LENGTH,
            truncation=True,
            add_special_tokens=True,
            return_attention_mask=True,
            return_tensors="pt",
        )
        hidden = models.text_encoder(
            tokens.input_ids.to(models.device), tokens.attention_mask.to(models.device)
        ).last_hidden_state.cpu()
    except Exception as error:
        error.add_note(f"while encoding the captions of {_names(jobs)}")
        raise
    lengths = tokens.attention_mask.sum(dim=1).tolist()
    return {
        job.item_id: _save(job, embedding[:length])
        for job, embedding, length in zip(jobs, hidden, lengths, strict=True)
    }


def _save(job: TextJob, embedding: torch.Tensor) -> Path:
    path = job.cache_dir / text_cache_name(job.item_id)
    try:
        save_text_cache(path, embedding, caption=job.text)
    except Exception as error:
        error.add_note(f"while writing the text cache of {job.item_id!r} ({job.text!r})")
        raise
    return path


def _names(jobs: Sequence[TextJob]) -> str:
    shown = ", ".join(repr(job.item_id) for job in jobs[:3])
    return shown + (f" and {len(jobs) - 3} more" if len(jobs) > 3 else "")
