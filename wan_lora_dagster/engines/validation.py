"""Held-out flow-matching loss: a number to compare checkpoints by, not only by eye."""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import torch
from diffusers import WanTransformer3DModel

from wan_lora_dagster.engines.adapters import load_adapter
from wan_lora_dagster.engines.diffusers.full_checkpoint import model_strengths
from wan_lora_dagster.engines.flow_matching import VALIDATION_TIMESTEPS, flow_matching_loss
from wan_lora_dagster.engines.training_data import load_batches, samples_of
from wan_lora_dagster.errors import EngineError
from wan_lora_dagster.formats.manifest import TrainingSetManifest

VALIDATION_ADAPTER = "validated_lora"


class ForwardModel(Protocol):
    """What the loss needs of a model: a diffusers folder's (WanModels) or a single file's."""

    transformer: WanTransformer3DModel
    device: torch.device
    dtype: torch.dtype


def validation_loss(
    models: ForwardModel,
    checkpoint: Path | None,
    manifest: TrainingSetManifest,
    timesteps: Sequence[float] = VALIDATION_TIMESTEPS,
    first_frame_given: bool = False,
) -> float:
    """Mean loss over every held-out latent x `timesteps`, LoRA at strength 1.

    The noise of a latent is seeded by its file name and the timesteps are fixed, so two
    checkpoints (or a checkpoint and the base model, checkpoint=None) see identical inputs and
    their losses differ only by what the LoRA changed. first_frame_given: TI2V-5B
    image-to-video, conditioned on each held-out clip's first frame (flow_matching_loss).
    """
    held_out = manifest.held_out_entries()
    if not held_out:
        raise EngineError(
            "the training set holds no held-out clips, so there is no validation loss: "
            "set [eval] num_held_out to 1 or more, or list clips in [eval] held_out."
        )
    losses = []
    with lora_loaded(models.transformer, checkpoint), torch.no_grad():
        for sample in samples_of(manifest, held_out):
            [(batch, _)] = load_batches([sample], models.device)
            seed = zlib.crc32(sample.latent_file.name.encode())
            noise = torch.randn(batch.latents.shape, generator=torch.Generator().manual_seed(seed))
            for t in timesteps:
                timestep = torch.full((1,), t)
                loss = flow_matching_loss(
                    models.transformer,
                    batch,
                    noise.to(models.device),
                    timestep,
                    models.dtype,
                    first_frame_given,
                )
                losses.append(loss.item())
    return sum(losses) / len(losses)


@contextmanager
def lora_loaded(transformer: WanTransformer3DModel, checkpoint: Path | None) -> Iterator[None]:
    """The checkpoint's adapter at strength 1 for the duration (engines.adapters.load_adapter)."""
    if checkpoint is None:
        yield
        return
    if Path(checkpoint).is_dir():  # a full fine-tune's model folder
        with model_strengths(transformer, Path(checkpoint)) as set_strength:
            set_strength(1.0)
            yield
        return
    if not Path(checkpoint).is_file():
        raise EngineError(f"{checkpoint}: LoRA checkpoint not found.")
    load_adapter(transformer, checkpoint, VALIDATION_ADAPTER)
    try:
        yield
    finally:
        transformer.delete_adapters(VALIDATION_ADAPTER)
