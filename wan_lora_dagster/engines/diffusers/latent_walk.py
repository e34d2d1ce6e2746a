"""Initial noise for a latent walk: a spherical interpolation between two seeds' noises.

Gaussian noise of many dimensions lies near a sphere; a straight line between two draws passes
inside it (lower norm: washed-out videos), slerp stays on it. The ends are the seeds' own noises,
bit for bit, so a walk's first and last videos are the plain videos of its two seeds.
"""

from __future__ import annotations

import torch

from wan_lora_dagster.recipe.evaluation import EvalSettings

PARALLEL = 1e-6  # below this angle the two noises are (anti)parallel: interpolate linearly


def seed_noise(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """The noise a diffusers Wan pipeline draws for `seed` from a CPU generator (float32)."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)


def slerp(start: torch.Tensor, end: torch.Tensor, position: float) -> torch.Tensor:
    """The point `position` (0 to 1) along the great circle from `start` to `end`."""
    if position == 0:
        return start.clone()
    if position == 1:
        return end.clone()
    a, b = start.double().flatten(), end.double().flatten()
    cosine = torch.dot(a / a.norm(), b / b.norm()).clamp(-1, 1)
    angle = torch.arccos(cosine)
    if angle.abs() < PARALLEL:
        mixed = (1 - position) * a + position * b
    else:
        mixed = (
            torch.sin((1 - position) * angle) * a + torch.sin(position * angle) * b
        ) / torch.sin(angle)
    return mixed.reshape(start.shape).to(start.dtype)


def walk_noise(
    settings: EvalSettings, position: float, latent_channels: int, scale: tuple[int, int]
) -> torch.Tensor:
    """The initial latents of the walk video at `position`, shaped as the pipeline draws them.

    scale: the VAE's (temporal, spatial) compression, 4 and 8 for Wan 2.1.
    """
    temporal, spatial = scale
    shape = (
        1,
        latent_channels,
        (settings.num_frames - 1) // temporal + 1,
        settings.height // spatial,
        settings.width // spatial,
    )
    first, second = settings.walk.seeds
    return slerp(seed_noise(shape, first), seed_noise(shape, second), position)
