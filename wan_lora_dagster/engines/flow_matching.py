"""Rectified-flow training math for Wan 2.1, as kohya-ss/musubi-tuner does it.

With clean latents x0, noise n and t in [0, 1]: the model sees (1 - t) * x0 + t * n at timestep
t * 1000 and learns the velocity n - x0 under a mean squared error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers import WanTransformer3DModel

from wan_lora_dagster.engines.wan_models import TEXT_LENGTH

NUM_TRAIN_TIMESTEPS = 1000
VALIDATION_TIMESTEPS = (0.1, 0.3, 0.5, 0.7, 0.9)


def shift_timesteps(t: torch.Tensor, shift: float) -> torch.Tensor:
    """The SD3 / Wan time shift: shift > 1 spends more of training at high noise."""
    return t * shift / (1 + (shift - 1) * t)


def sample_timesteps(
    method: str,
    batch_size: int,
    shift: float,
    generator: torch.Generator,
    within: tuple[float, float] = (0.0, 1.0),
) -> torch.Tensor:
    """t in (0, 1) of shape (batch_size,), drawn like musubi-tuner's `--timestep_sampling`.

    - "uniform": t ~ U(0, 1)
    - "sigmoid": t = sigmoid(z), z ~ N(0, 1)
    - "shift": the sigmoid draw, then time-shifted by `discrete_flow_shift`
    - "sigma": a uniform pick from the 1000 time-shifted steps of the flow-matching scheduler

    within: keep only t with low <= t < high (high = 1 keeps t = 1): a Wan 2.2 expert's range.
    Draws outside are rejected, so the distribution keeps its shape inside the range, as
    musubi's `--preserve_distribution_shape` does (its docs/wan.md recommends that per expert).
    """
    if within == (0.0, 1.0):
        return _draw_timesteps(method, batch_size, shift, generator)
    low, high = within
    kept: list[torch.Tensor] = []
    for _ in range(MAX_REJECTION_ROUNDS):
        t = _draw_timesteps(method, REJECTION_DRAWS, shift, generator)
        kept.append(t[(t >= low) & ((t < high) | (high >= 1.0))])
        if sum(len(part) for part in kept) >= batch_size:
            return torch.cat(kept)[:batch_size]
    raise ValueError(
        f"timestep sampling {method!r} (shift {shift}) almost never draws t in [{low}, {high}): "
        "choose another timestep_sampling or discrete_flow_shift for this expert"
    )


MAX_REJECTION_ROUNDS = 100
REJECTION_DRAWS = 256


def _draw_timesteps(
    method: str, batch_size: int, shift: float, generator: torch.Generator
) -> torch.Tensor:
    if method == "uniform":
        return torch.rand(batch_size, generator=generator)
    if method == "sigmoid":
        return torch.sigmoid(torch.randn(batch_size, generator=generator))
    if method == "shift":
        return shift_timesteps(torch.sigmoid(torch.randn(batch_size, generator=generator)), shift)
    if method == "sigma":
        step = torch.randint(0, NUM_TRAIN_TIMESTEPS, (batch_size,), generator=generator)
        return shift_timesteps(1 - step.float() / NUM_TRAIN_TIMESTEPS, shift)
    raise ValueError(f"unknown timestep sampling {method!r}")


def pad_text_embeddings(embeddings: Sequence[torch.Tensor]) -> torch.Tensor:
    """(num_tokens_i, dim) each -> (batch, 512, dim), zero-padded like musubi and diffusers."""
    dim = embeddings[0].shape[-1]
    padded = embeddings[0].new_zeros(len(embeddings), TEXT_LENGTH, dim)
    for index, embedding in enumerate(embeddings):
        kept = embedding[:TEXT_LENGTH]
        padded[index, : kept.shape[0]] = kept
    return padded


@dataclass
class FlowMatchingBatch:
    """What one training or validation forward pass needs, on the model's device, in float32.

    latents: (batch, channels, latent_frames, latent_height, latent_width), normalised
    text: (batch, 512, text_dim)
    image_latents: (batch, 4 + channels, latent_frames, ...) first-frame condition, I2V only
    clip_embeddings: (batch, 257, 1280) CLIP image features, I2V only
    """

    latents: torch.Tensor
    text: torch.Tensor
    image_latents: torch.Tensor | None = None
    clip_embeddings: torch.Tensor | None = None


def flow_matching_loss(
    transformer: WanTransformer3DModel,
    batch: FlowMatchingBatch,
    noise: torch.Tensor,
    t: torch.Tensor,
    dtype: torch.dtype,
) -> torch.Tensor:
    """Mean squared error between the predicted and the true velocity (noise - latents).

    noise: like batch.latents; t: (batch,) in (0, 1); dtype: the transformer's compute dtype.
    Returns a float32 scalar.
    """
    latents = batch.latents
    t = t.to(latents.device)
    t_broadcast = t.view(-1, 1, 1, 1, 1)
    noisy = (1 - t_broadcast) * latents + t_broadcast * noise
    if batch.image_latents is not None:
        noisy = torch.cat([noisy, batch.image_latents], dim=1)
    clip_embeddings = batch.clip_embeddings
    prediction = transformer(
        hidden_states=noisy.to(dtype),
        timestep=t * NUM_TRAIN_TIMESTEPS,
        encoder_hidden_states=batch.text.to(dtype),
        encoder_hidden_states_image=None if clip_embeddings is None else clip_embeddings.to(dtype),
        return_dict=False,
    )[0]
    return F.mse_loss(prediction.float(), noise - latents)
