"""What the musubi engine checks before any work starts: the weight files, and that the Python
running musubi-tuner imports what the settings need."""

from __future__ import annotations

from pathlib import Path

from wan_lora_dagster.engines.musubi.arguments import ATTENTION_MODULES
from wan_lora_dagster.engines.musubi.locate import find_modules
from wan_lora_dagster.errors import EngineError
from wan_lora_dagster.recipe.training import TrainingSettings
from wan_lora_dagster.tasks import wan_task

WEIGHTS = {"dit": "DiT", "vae": "VAE", "t5": "T5 text encoder"}


def check_weights(settings: TrainingSettings) -> None:
    """Every checkpoint file the task needs is set and exists (CLIP for I2V too)."""
    clip = {"clip": "CLIP image encoder"} if wan_task(settings.task).clip else {}
    needed = {**WEIGHTS, **clip}
    if settings.dit_high_noise:
        needed["dit_high_noise"] = "high-noise expert's DiT"
    problems = []
    for key, what in needed.items():
        value = getattr(settings, key)
        if not value:
            problems.append(f"[training] {key} is not set (the {what} checkpoint file)")
        elif not Path(value).expanduser().is_file():
            problems.append(f"{value}: [training] {key} file not found")
    if problems:
        raise EngineError("musubi-tuner needs its weights as files: " + "; ".join(problems))


def check_environment(python: str, settings: TrainingSettings) -> None:
    """`python` imports accelerate, which runs the trainer, and the configured attention."""
    module = ATTENTION_MODULES.get(settings.attention)
    found = find_modules(python, ["accelerate", *([module] if module else [])])
    if not found["accelerate"]:
        raise EngineError(f"{python} cannot import accelerate, which runs musubi's trainer")
    if module and not found[module]:
        raise EngineError(
            f"wan_lora.toml: [training] attention = {settings.attention!r} needs the "
            f"{module} package, which {python} cannot import: install it, or use "
            "attention = 'sdpa'"
        )
