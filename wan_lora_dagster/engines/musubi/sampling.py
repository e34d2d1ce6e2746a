"""Eval videos through musubi's wan_generate_video: one run per LoRA strength, over a prompt file.

`wan_generate_video --from_file` (commit 30c658c) reads one prompt a line, skips empty and `#`
lines, takes per-line options after ` --` (`--d` is the seed: `parse_prompt_line`), loads the DiT
with the LoRA merged once, and saves `<save_path>/<time>_<seed>.mp4` per line, in order, logging
`Video saved to: <path>`. The LoRA multiplier is per run, hence one run per strength.

Image-to-video: `--i <path>` on a line is `--image_path` for that line (`parse_prompt_line` maps
`i` to `image_path`), so one run still loads the DiT once for every start image.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from wan_lora_dagster.engines.base import SampleRequest, StartImage
from wan_lora_dagster.engines.eval_plan import EvalJob
from wan_lora_dagster.errors import EngineError
from wan_lora_dagster.recipe.training import TrainingSettings
from wan_lora_dagster.tasks import wan_task


def by_strength(jobs: list[EvalJob]) -> dict[float, list[EvalJob]]:
    groups: dict[float, list[EvalJob]] = {}
    for job in jobs:
        groups.setdefault(job.strength, []).append(job)
    return groups


def prompt_file_text(jobs: list[EvalJob], images: dict[int, Path]) -> str:
    """One line per video; `images`: start image index -> the file staged for musubi."""
    lines = []
    for job in jobs:
        image = "" if job.image_index is None else f" --i {images[job.image_index]}"
        lines.append(f"{job.prompt}{image} --d {job.seed}\n")
    return "".join(lines)


def check_sampling(settings: TrainingSettings, request: SampleRequest) -> None:
    if wan_task(settings.task).image_to_video and not request.start_images:
        raise EngineError(
            f"eval videos of an {settings.task} LoRA start from images, and this eval has none: "
            "hold out a clip ([eval] num_held_out) or list [eval] images"
        )
    if request.settings.walk:
        raise EngineError("[eval] walk: musubi-tuner's wan_generate_video takes a seed only")
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


def check_saved(saved: list[Path], jobs: list[EvalJob], prompt_file: Path) -> None:
    """One video per line, in order: each named with its line's seed."""
    seeds = [job.seed for job in jobs]
    in_order = len(saved) == len(jobs) and all(
        path.stem.endswith(f"_{seed}") for path, seed in zip(saved, seeds, strict=True)
    )
    if not in_order:
        raise EngineError(
            f"wan_generate_video saved {[path.name for path in saved]}, expected one video for "
            f"each of the seeds {seeds} of {prompt_file}, in order"
        )


def stage_images(images: tuple[StartImage, ...], folder: Path) -> dict[int, Path]:
    """Copies named `i00.png`...: a user's file name may hold ' --', which would end the path
    in musubi's prompt line."""
    folder.mkdir(parents=True, exist_ok=True)
    staged = {}
    for index, image in enumerate(images):
        if not image.path.is_file():
            raise EngineError(f"{image.path}: start image not found")
        staged[index] = folder / f"i{index:02d}{image.path.suffix.lower()}"
        shutil.copyfile(image.path, staged[index])
    return staged
