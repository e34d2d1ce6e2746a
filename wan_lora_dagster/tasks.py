"""What each Wan task is made of: experts, VAE, conditioning. Plain data, no torch.

Wan 2.1 tasks have one transformer. Wan 2.2 A14B tasks have two experts of the same shape: the
high-noise one denoises timesteps at or above a boundary, the low-noise one those below it
(diffusers' `WanPipeline`: `transformer` and `transformer_2`, split at `boundary_ratio`). A LoRA
is trained for each expert. TI2V-5B has one transformer and its own VAE (48 latent channels,
4x16x16 compression), whose latents must never be mistaken for the Wan 2.1 VAE's.
"""

from __future__ import annotations

from dataclasses import dataclass

from wan_lora_dagster.formats.cache_files import ARCHITECTURE, WAN22_VAE_ARCHITECTURE

HIGH_NOISE = "high_noise"
LOW_NOISE = "low_noise"
EXPERT_NAMES = {"high": HIGH_NOISE, "low": LOW_NOISE}
"""The recipe's `[training] experts` values -> the expert's name in files and headers."""

# Latent cache name suffixes by VAE. musubi-tuner names every Wan latent `..._wan.safetensors`
# (`ARCHITECTURE_WAN`) and trains the A14B experts on the Wan 2.1 VAE (its docs/wan.md: "VAE is
# also same as Wan2.1"); it has no TI2V-5B, so the Wan 2.2 VAE's latents get a name of their own.
WAN21_VAE = ARCHITECTURE
WAN22_VAE = WAN22_VAE_ARCHITECTURE


@dataclass(frozen=True)
class WanTask:
    name: str
    image_to_video: bool = False
    clip: bool = False
    """Conditions on CLIP image features (Wan 2.1 I2V only; Wan 2.2 I2V does without)."""
    boundary: float | None = None
    """Default boundary_ratio of a two-expert task (musubi's wan/configs `boundary`)."""
    vae: str = WAN21_VAE
    musubi: bool = True
    """musubi-tuner (commit 30c658c) trains this task."""

    @property
    def experts(self) -> tuple[str, ...]:
        """The task's experts, high noise first; empty for a one-transformer task."""
        return (HIGH_NOISE, LOW_NOISE) if self.boundary is not None else ()

    @property
    def resolution_step(self) -> int:
        """Pixel sides must divide by this: the VAE's stride times the transformer's patch (2)."""
        return 32 if self.vae == WAN22_VAE else 16


TASKS = {
    task.name: task
    for task in (
        WanTask("t2v-1.3B"),
        WanTask("t2v-14B"),
        WanTask("i2v-14B", image_to_video=True, clip=True),
        WanTask("t2v-A14B", boundary=0.875),
        WanTask("i2v-A14B", image_to_video=True, boundary=0.9),
        WanTask("ti2v-5B", vae=WAN22_VAE, musubi=False),
    )
}


def wan_task(name: str) -> WanTask:
    return TASKS[name]


def expert_range(expert: str, boundary: float) -> tuple[float, float]:
    """The part of t in [0, 1] an expert denoises: high noise [boundary, 1], low [0, boundary)."""
    return (boundary, 1.0) if expert == HIGH_NOISE else (0.0, boundary)


def tiny_model_name(task: str) -> str:
    """The folder name of the tiny model's variant for `task` (engines.tiny builds each): the
    text-to-video Wan 2.1 tasks share `tiny`."""
    if task in ("t2v-1.3B", "t2v-14B"):
        return "tiny"
    return "tiny-i2v" if task == "i2v-14B" else f"tiny-{task}"
