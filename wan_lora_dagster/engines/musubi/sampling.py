"""Eval videos through musubi's wan_generate_video: one run per LoRA strength, over a prompt file.

`wan_generate_video --from_file` (commit 30c658c) reads one prompt a line, skips empty and `#`
lines, takes per-line options after ` --` (`--d` is the seed: `parse_prompt_line`), loads the DiT
with the LoRA merged once, and saves `<save_path>/<time>_<seed>.mp4` per line, in order, logging
`Video saved to: <path>`. The LoRA multiplier is per run, hence one run per strength.
"""

from __future__ import annotations

from pathlib import Path

from wan_lora_dagster.engines.base import SampleRequest
from wan_lora_dagster.errors import EngineError
from wan_lora_dagster.project import EvalSettings, TrainingSettings

SampleJob = tuple[int, str, int]  # prompt index, prompt, seed


def sample_jobs(evaluation: EvalSettings) -> list[SampleJob]:
    return [
        (prompt_index, prompt, seed)
        for prompt_index, prompt in enumerate(evaluation.prompts)
        for seed in evaluation.seeds
    ]


def prompt_file_text(jobs: list[SampleJob]) -> str:
    return "".join(f"{prompt} --d {seed}\n" for _, prompt, seed in jobs)


def check_sampling(settings: TrainingSettings, request: SampleRequest) -> None:
    if settings.task == "i2v-14B":
        raise EngineError(
            "eval videos of an i2v-14B LoRA need a start image per prompt, which [eval] has no "
            "place for; musubi's wan_generate_video refuses I2V without --image_path"
        )
    if not request.checkpoint.is_file():
        raise EngineError(f"{request.checkpoint}: LoRA checkpoint not found.")
    texts = [*request.settings.prompts, request.settings.negative_prompt]
    bad = [text for text in texts if "\n" in text or " --" in text]
    bad += [prompt for prompt in request.settings.prompts if prompt.lstrip().startswith("#")]
    if bad:
        raise EngineError(
            f"wan_lora.toml: [eval] prompt {bad[0]!r} cannot go in musubi's prompt file: it "
            "holds a line break or ' --' (its option marker), or starts with '#' (a comment)"
        )


def check_saved(saved: list[Path], jobs: list[SampleJob], prompt_file: Path) -> None:
    """One video per line, in order: each named with its line's seed."""
    seeds = [seed for _, _, seed in jobs]
    in_order = len(saved) == len(jobs) and all(
        path.stem.endswith(f"_{seed}") for path, seed in zip(saved, seeds, strict=True)
    )
    if not in_order:
        raise EngineError(
            f"wan_generate_video saved {[path.name for path in saved]}, expected one video for "
            f"each of the seeds {seeds} of {prompt_file}, in order"
        )
