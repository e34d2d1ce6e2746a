"""Captions per second of the text cache on the tiny model: one caption a forward pass, padded to
512 tokens (what `DiffusersEngine.encode_texts` did before batching, and what musubi-tuner and
diffusers do) vs. `engines.diffusers.text_encoding.encode_texts`, one caption a pass and in batches.

Every side writes the same cache files (tests/engines/test_text_batches.py checks they match)
for the same captions: 4 to 80 words of the tiny tokenizer's vocabulary, as clip captions run.
One torch thread on every side (see `use_steady_torch_threads`).

    .venv/bin/python benchmarks/text_cache.py [--small]
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from _common import (
    Measured,
    machine_load,
    measured,
    median_of,
    parse_args,
    print_machine,
    print_side_times,
    print_table,
    scratch_dir,
    use_steady_torch_threads,
)
from diffusers.pipelines.wan.pipeline_wan import prompt_clean

from wan_lora_dagster.engines.base import TextJob
from wan_lora_dagster.engines.diffusers.engine import DiffusersEngine
from wan_lora_dagster.engines.diffusers.text_encoding import TEXT_BATCH_SIZE, encode_texts
from wan_lora_dagster.engines.diffusers.tiny import VOCABULARY
from wan_lora_dagster.engines.wan_models import TEXT_LENGTH, WanModels
from wan_lora_dagster.formats.cache_files import text_cache_name
from wan_lora_dagster.formats.musubi_cache import save_text_cache
from wan_lora_dagster.recipe.training import TrainingSettings

BEFORE = "one at a time, 512 tokens (before)"
ONE_EACH = "one at a time, own length"
BATCHED = f"batches of {TEXT_BATCH_SIZE}"
SWEEP_SIZES = (1, 4, 8, 16, 32, 64)


def captions(count: int) -> list[str]:
    rng = random.Random(11)
    return [" ".join(rng.choices(VOCABULARY, k=rng.randint(4, 80))) for _ in range(count)]


@torch.no_grad()
def encode_one_at_a_time_padded(models: WanModels, jobs: Sequence[TextJob]) -> None:
    """The loop `DiffusersEngine.encode_texts` ran before batching (git history: encoding.py's
    `encode_text`): each caption padded to 512 tokens, its own forward pass, trimmed, saved."""
    for job in jobs:
        tokens = models.tokenizer(
            prompt_clean(job.text),
            padding="max_length",
            max_length=TEXT_LENGTH,
            truncation=True,
            return_tensors="pt",
        )
        hidden = models.text_encoder(tokens.input_ids, tokens.attention_mask).last_hidden_state
        embedding = hidden[0, : int(tokens.attention_mask.sum())]
        save_text_cache(job.cache_dir / text_cache_name(job.item_id), embedding, caption=job.text)


def timed_side(
    models: WanModels, texts: list[str], folder: Path, encode: Callable[[list[TextJob]], None]
) -> Measured:
    jobs = [TextJob(f"clip{index:05d}", text, folder) for index, text in enumerate(texts)]
    with measured() as seconds:
        encode(jobs)
    return seconds


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    count, repeats = (60, 1) if args.small else (500, 3)
    load_at_start = machine_load()
    use_steady_torch_threads()
    texts = captions(count)
    with scratch_dir("text-cache") as root:
        models = DiffusersEngine(TrainingSettings(), models_dir=root / "models").models
        sides = {
            BEFORE: lambda jobs: encode_one_at_a_time_padded(models, jobs),
            ONE_EACH: batched(models, 1),
            BATCHED: batched(models, TEXT_BATCH_SIZE),
        }
        timed_side(models, texts[:8], root / "warm-up", sides[BATCHED])
        runs: dict[str, list[Measured]] = {name: [] for name in sides}
        for repeat in range(repeats):  # alternating which side goes first
            for name in list(sides) if repeat % 2 == 0 else list(reversed(sides)):
                folder = root / f"side{list(sides).index(name)}-run{repeat}"
                runs[name].append(timed_side(models, texts, folder, sides[name]))
        print(f"\n{count} captions of 4-80 words, tiny model, {repeats} run(s) a side")
        print_side_times(runs, ("captions/s", lambda seconds: count / seconds))
        sweep = [
            [size, count / sweep_median(models, texts, root, size, repeats)] for size in SWEEP_SIZES
        ]
        print_table(
            f"Batch size sweep (median of {repeats})", ["batch size", "captions/s (wall)"], sweep
        )
    before, one_each, batch = (
        median_of(runs[name], "wall") for name in (BEFORE, ONE_EACH, BATCHED)
    )
    print(f"\n  {BATCHED} / {BEFORE}, captions/s (wall): {before / batch:.1f}x")
    print(f"  {BATCHED} / {ONE_EACH}, captions/s (wall): {one_each / batch:.2f}x")
    print_machine(load_at_start)


def sweep_median(models: WanModels, texts: list[str], root: Path, size: int, repeats: int) -> float:
    folders = [root / f"sweep{size}-run{repeat}" for repeat in range(repeats)]
    return median_of([timed_side(models, texts, f, batched(models, size)) for f in folders], "wall")


def batched(models: WanModels, size: int) -> Callable[[list[TextJob]], None]:
    return lambda jobs: encode_texts(models, jobs, ignore_progress, batch_size=size)


def ignore_progress(progress) -> None:
    pass


if __name__ == "__main__":
    main()
