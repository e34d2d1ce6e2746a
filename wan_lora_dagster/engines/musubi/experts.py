"""musubi-tuner's Wan 2.2 A14B options: one training run per expert, both experts to sample.

musubi (commit 30c658c, docs/wan.md "Training") trains Wan 2.2 two ways. With `--dit <low>
--dit_high_noise <high>` it trains ONE LoRA that both experts share, swapping the base weights at
`--timestep_boundary`. We want a LoRA for each expert (what diffusers' Wan 2.2 loader and
ComfyUI's two-model workflows load), which musubi trains "with either the high-noise model or the
low-noise model ... specified with `--dit`", with the expert's timestep range and
`--preserve_distribution_shape`: so engines.experts runs musubi once per expert, with those options
(musubi/timestep_args.py).
Its sampler takes both experts and a LoRA for each (`--dit_high_noise`, `--lora_weight_high_noise`).
"""

from __future__ import annotations

from pathlib import Path

from wan_lora_dagster.recipe.training import TrainingSettings
from wan_lora_dagster.tasks import HIGH_NOISE, LOW_NOISE, TASKS, wan_task


def expert_dit(settings: TrainingSettings, expert: str | None) -> str | None:
    """The DiT file an expert's run trains on: musubi's `--dit` is the low-noise expert's."""
    return settings.dit_high_noise if expert == HIGH_NOISE else settings.dit


def expert_generation_args(
    settings: TrainingSettings, loras: dict[str, Path], strength: float, boundary: float
) -> list[str]:
    """Both experts for wan_generate_video (`--dit` is set by the caller to the low-noise one),
    each with its own LoRA file when there is one; no LoRA at all for strength 0."""
    if not wan_task(settings.task).experts or not settings.dit_high_noise:
        return []  # musubi then samples every step with the low-noise expert (`--dit`)
    arguments = [
        "--dit_high_noise", str(Path(settings.dit_high_noise).expanduser().resolve()),
        "--timestep_boundary", repr(boundary),
        # docs/wan.md "Inference": --offload_inactive_dit only without block swap, else lazy loading
        "--lazy_loading" if settings.blocks_to_swap else "--offload_inactive_dit",
    ]  # fmt: skip
    if strength == 0:
        return arguments
    if HIGH_NOISE in loras:
        arguments += [
            "--lora_weight_high_noise", str(loras[HIGH_NOISE]),
            "--lora_multiplier_high_noise", repr(strength),
        ]  # fmt: skip
    if LOW_NOISE in loras:
        arguments += ["--lora_weight", str(loras[LOW_NOISE]), "--lora_multiplier", repr(strength)]
    return arguments


def expert_problems(settings: TrainingSettings) -> list[str]:
    """What musubi cannot do for this task, or what it needs that is not set."""
    spec = wan_task(settings.task)
    if spec.musubi_task is None:
        trained = ", ".join(task.musubi_task for task in TASKS.values() if task.musubi_task)
        return [
            f"task {settings.task} is not trained by musubi-tuner (its Wan --task choices at "
            f"commit 30c658c are {trained}; it has no {settings.task.upper()}): "
            "use engine = 'diffusers'"
        ]
    wants_high = spec.experts and "high" in (settings.experts or ("high", "low"))
    if wants_high and not settings.dit_high_noise:
        return [
            f"task {settings.task} trains the high-noise expert: set dit_high_noise = its DiT "
            "file (`dit` is the low-noise expert's, as musubi's --dit and --dit_high_noise)"
        ]
    return []
