"""Rectified-flow training math for Wan 2.1, as kohya-ss/musubi-tuner does it.

With clean latents x0, noise n and t in [0, 1]: the model sees (1 - t) * x0 + t * n at timestep
t * 1000 and learns the velocity n - x0 under a mean squared error. Which t: engines/timesteps.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers import WanTransformer3DModel

from wan_lora_dagster.engines.wan_models import TEXT_LENGTH
from wan_lora_dagster.tasks import TRANSFORMER_PATCH

NUM_TRAIN_TIMESTEPS = 1000
VALIDATION_TIMESTEPS = (0.1, 0.3, 0.5, 0.7, 0.9)


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
    first_frame_given: bool = False,
) -> torch.Tensor:
    """Mean squared error between the predicted and the true velocity (noise - latents).

    noise: like batch.latents; t: (batch,) in (0, 1); dtype: the transformer's compute dtype.
    first_frame_given: TI2V-5B image-to-video (`[training] i2v`): see given_first_frame.
    Returns a float32 scalar.
    """
    latents = batch.latents
    t = t.to(latents.device)
    t_broadcast = t.view(-1, 1, 1, 1, 1)
    noisy = (1 - t_broadcast) * latents + t_broadcast * noise
    timestep = t * NUM_TRAIN_TIMESTEPS
    if first_frame_given:
        noisy, timestep = given_first_frame(noisy, latents, timestep)
    if batch.image_latents is not None:
        noisy = torch.cat([noisy, batch.image_latents], dim=1)
    clip_embeddings = batch.clip_embeddings
    prediction = transformer(
        hidden_states=noisy.to(dtype),
        timestep=timestep,
        encoder_hidden_states=batch.text.to(dtype),
        encoder_hidden_states_image=None if clip_embeddings is None else clip_embeddings.to(dtype),
        return_dict=False,
    )[0]
    target = noise - latents
    if first_frame_given:  # the given frame is no prediction: it stays out of the loss
        prediction, target = prediction[:, :, 1:], target[:, :, 1:]
    return F.mse_loss(prediction.float(), target)


def given_first_frame(
    noisy: torch.Tensor, latents: torch.Tensor, timestep: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Wan 2.2 TI2V-5B image-to-video, as diffusers' WanImageToVideoPipeline samples it with
    `expand_timesteps`: the first latent frame is the clean image latent (the clip's own, which
    the causal VAE encodes from its first frame alone), at timestep 0, and the other frames are
    noisy at t. The timesteps become one per token, frame by frame, as the pipeline gives them.

    noisy, latents: (batch, channels, frames, h, w); timestep: (batch,) -> (batch, tokens).
    """
    noisy = torch.cat([latents[:, :, :1], noisy[:, :, 1:]], dim=2)
    _, _, frames, height, width = latents.shape
    per_frame = (height // TRANSFORMER_PATCH) * (width // TRANSFORMER_PATCH)
    timestep = timestep[:, None].repeat(1, frames * per_frame)
    timestep[:, :per_frame] = 0
    return noisy, timestep
