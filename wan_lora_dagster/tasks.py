"""The task table: every fact of each Wan task, written once. Plain data, no torch.

The recipe's `task` choices, both engines, the musubi checks, the tiny models and the starter
recipes read this table; nothing else names a task, so adding a Wan task is one `WanTask` row here.
It imports nothing of this package: it is the bottom layer, which the recipe and the file formats
build on.

Wan 2.1 tasks have one transformer. Wan 2.2 A14B tasks have two experts of the same shape: the
high-noise one denoises timesteps at or above a boundary, the low-noise one those below it
(diffusers' `WanPipeline`: `transformer` and `transformer_2`, split at `boundary_ratio`). A LoRA
is trained for each expert. TI2V-5B has one transformer and its own VAE (48 latent channels,
4x16x16 compression), whose latents must never be mistaken for the Wan 2.1 VAE's.
"""

from __future__ import annotations

from dataclasses import dataclass

HIGH_NOISE = "high_noise"
LOW_NOISE = "low_noise"
EXPERT_NAMES = {"high": HIGH_NOISE, "low": LOW_NOISE}
"""The recipe's `[training] experts` values -> the expert's name in files and headers."""

TRANSFORMER_PATCH = 2
"""Every Wan transformer cuts latents into 1x2x2 patches (`patch_size` in Wan's configs)."""


@dataclass(frozen=True)
class Vae:
    """A Wan VAE's latent layout (Wan's configs: `vae_stride`, the latent channels `z_dim`)."""

    architecture: str
    """The suffix of its latent cache names (formats.cache_files), so no latent of one VAE is
    ever read as the other's."""
    latent_channels: int
    temporal_compression: int
    spatial_compression: int

    @property
    def resolution_step(self) -> int:
        """Pixel sides divide by this: the VAE's spatial stride times the transformer's patch."""
        return self.spatial_compression * TRANSFORMER_PATCH


# musubi-tuner names every Wan cache `..._wan.safetensors` (its `ARCHITECTURE_WAN`) and trains the
# A14B experts on the Wan 2.1 VAE (its docs/wan.md: "VAE is also same as Wan2.1"); it has no
# TI2V-5B, so the Wan 2.2 VAE's latents get a name of their own.
WAN21_VAE = Vae("wan", latent_channels=16, temporal_compression=4, spatial_compression=8)
WAN22_VAE = Vae("wan22", latent_channels=48, temporal_compression=4, spatial_compression=16)
VAES = (WAN21_VAE, WAN22_VAE)


@dataclass(frozen=True)
class WanTask:
    name: str
    summary: str
    """What it is, for people (`wan-lora init --task` writes it beside the task)."""
    diffusers_repo: str
    """The diffusers-format release on the Hugging Face hub, which the diffusers engine loads."""
    num_blocks: int
    """Transformer blocks (`num_layers` in Wan's and musubi's wan/configs; each A14B expert)."""
    tiny_model: str
    """The folder of the tiny model's variant for this task (engines.diffusers.tiny builds each)."""
    musubi_task: str | None
    """musubi-tuner's `--task` name (commit 30c658c); None: musubi-tuner does not train it."""
    musubi_dit: str | None = None
    """The name of its DiT file in the single-file releases musubi-tuner loads (Comfy-Org's
    repackaged ones); an A14B task's names `{expert}`."""
    image_to_video: bool = False
    """Conditions on a start image (the first frame's latents)."""
    clip: bool = False
    """Conditions on CLIP image features too (Wan 2.1 I2V only; Wan 2.2 I2V does without)."""
    image_to_video_option: bool = False
    """Trains text-to-video, or image-to-video with `[training] i2v = true` (Wan 2.2 TI2V-5B: the
    clean first latent frame conditions the rest, at timestep 0, as diffusers' Wan pipelines with
    `expand_timesteps` sample it)."""
    boundary: float | None = None
    """Default boundary_ratio of a two-expert task (musubi's wan/configs `boundary`)."""
    vae: Vae = WAN21_VAE

    @property
    def experts(self) -> tuple[str, ...]:
        """The task's experts, high noise first; empty for a one-transformer task."""
        return (HIGH_NOISE, LOW_NOISE) if self.boundary is not None else ()

    @property
    def resolution_step(self) -> int:
        return self.vae.resolution_step


TASKS = {
    task.name: task
    for task in (
        WanTask(
            "t2v-1.3B",
            summary="Wan 2.1 text-to-video, 1.3B: fits 8-12 GB",
            diffusers_repo="Wan-AI/Wan2.1-T2V-1.3B-Diffusers",
            num_blocks=30,
            tiny_model="tiny",
            musubi_task="t2v-1.3B",
            musubi_dit="wan2.1_t2v_1.3B_bf16.safetensors",
        ),
        WanTask(
            "t2v-14B",
            summary="Wan 2.1 text-to-video, 14B: 24 GB with musubi, fp8, block swap",
            diffusers_repo="Wan-AI/Wan2.1-T2V-14B-Diffusers",
            num_blocks=40,
            tiny_model="tiny",
            musubi_task="t2v-14B",
            musubi_dit="wan2.1_t2v_14B_bf16.safetensors",
        ),
        WanTask(
            "i2v-14B",
            summary="Wan 2.1 image-to-video, 14B: conditioned on each clip's first frame",
            diffusers_repo="Wan-AI/Wan2.1-I2V-14B-480P-Diffusers",
            num_blocks=40,
            tiny_model="tiny-i2v",
            musubi_task="i2v-14B",
            musubi_dit="wan2.1_i2v_480p_14B_bf16.safetensors",
            image_to_video=True,
            clip=True,
        ),
        WanTask(
            "t2v-A14B",
            summary="Wan 2.2 text-to-video: two experts, a LoRA for each",
            diffusers_repo="Wan-AI/Wan2.2-T2V-A14B-Diffusers",
            num_blocks=40,
            tiny_model="tiny-t2v-A14B",
            musubi_task="t2v-A14B",
            musubi_dit="wan2.2_t2v_{expert}_14B_fp16.safetensors",
            boundary=0.875,
        ),
        WanTask(
            "i2v-A14B",
            summary="Wan 2.2 image-to-video: two experts, a LoRA for each, no CLIP",
            diffusers_repo="Wan-AI/Wan2.2-I2V-A14B-Diffusers",
            num_blocks=40,
            tiny_model="tiny-i2v-A14B",
            musubi_task="i2v-A14B",
            musubi_dit="wan2.2_i2v_{expert}_14B_fp16.safetensors",
            image_to_video=True,
            boundary=0.9,
        ),
        WanTask(
            "ti2v-5B",
            summary="Wan 2.2 TI2V-5B: its own VAE (16x smaller sides): sides / 32",
            diffusers_repo="Wan-AI/Wan2.2-TI2V-5B-Diffusers",
            num_blocks=30,
            tiny_model="tiny-ti2v-5B",
            musubi_task=None,
            image_to_video_option=True,
            vae=WAN22_VAE,
        ),
    )
}
TASK_NAMES = tuple(TASKS)
DEFAULT_TASK = "t2v-1.3B"
"""A recipe's task when it names none: the smallest, which the tiny model stands in for."""


def wan_task(name: str) -> WanTask:
    return TASKS[name]


def takes_start_images(task: str, i2v: bool = False) -> bool:
    """Whether a LoRA of `task` (with the recipe's `[training] i2v`) generates from start images."""
    one = wan_task(task)
    return one.image_to_video or (i2v and one.image_to_video_option)


def vae_with_spatial_compression(spatial_compression: int) -> Vae:
    """The Wan VAE that shrinks frame sides by `spatial_compression` (8: Wan 2.1's, 16: 2.2's)."""
    for vae in VAES:
        if vae.spatial_compression == spatial_compression:
            return vae
    raise ValueError(f"no Wan VAE shrinks frame sides {spatial_compression}x")


def expert_range(expert: str, boundary: float) -> tuple[float, float]:
    """The part of t in [0, 1] an expert denoises: high noise [boundary, 1], low [0, boundary)."""
    return (boundary, 1.0) if expert == HIGH_NOISE else (0.0, boundary)
