"""The manifest's cache files as training samples, shuffled into batches, loaded onto a device."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from wan_lora_dagster.engines.flow_matching import FlowMatchingBatch, pad_text_embeddings
from wan_lora_dagster.errors import EngineError
from wan_lora_dagster.formats.manifest import ManifestEntry, TrainingSetManifest
from wan_lora_dagster.formats.musubi_cache import load_latent_cache, load_text_cache


@dataclass(frozen=True)
class TrainingSample:
    """One latent cache file (a frame window of a clip, or a still) and its caption's cache."""

    latent_file: Path
    text_file: Path
    section: str


def samples_of(
    manifest: TrainingSetManifest, entries: Sequence[ManifestEntry]
) -> list[TrainingSample]:
    """Every latent file of every entry, once (repeats are the caller's business)."""
    return [
        TrainingSample(manifest.resolve(latent), manifest.resolve(entry.text_file), entry.section)
        for entry in entries
        for latent in entry.latent_files
    ]


def training_samples(manifest: TrainingSetManifest) -> list[TrainingSample]:
    """The training entries' samples, each entry repeated `num_repeats` times like musubi (the
    training plan refuses a training set without any)."""
    samples = []
    for entry in manifest.training_entries():
        samples += samples_of(manifest, [entry]) * entry.num_repeats
    return samples


def _by_section(samples: Sequence[TrainingSample]) -> dict[str, list[TrainingSample]]:
    groups: dict[str, list[TrainingSample]] = {}
    for sample in samples:
        groups.setdefault(sample.section, []).append(sample)
    return groups


def epoch_batches(
    samples: Sequence[TrainingSample], batch_sizes: dict[str, int], rng: random.Random
) -> list[list[TrainingSample]]:
    """One epoch: each section's samples shuffled and cut into its batch size, batches shuffled."""
    batches = []
    for section, group in sorted(_by_section(samples).items()):
        shuffled = rng.sample(group, len(group))
        size = batch_sizes.get(section, 1)
        batches += [shuffled[start : start + size] for start in range(0, len(shuffled), size)]
    rng.shuffle(batches)
    return batches


def load_batches(
    samples: Sequence[TrainingSample], device: torch.device
) -> list[tuple[FlowMatchingBatch, int]]:
    """Load caches and stack those of one latent shape; returns (batch, sample count) per shape.

    Bucketed sections hold several shapes, which cannot share one tensor, so a step runs one
    forward pass per shape and weights each loss by its share of the samples.
    """
    by_shape: dict[tuple, list] = {}
    for sample in samples:
        latent_cache = _load_latent(sample.latent_file)
        by_shape.setdefault(tuple(latent_cache.latent.shape), []).append((sample, latent_cache))
    return [(_stack(group, device), len(group)) for group in by_shape.values()]


def _load_latent(path: Path):
    if not path.is_file():
        raise EngineError(
            f"{path}: latent cache missing. Re-materialize latent_cache (the training set lists "
            "a file that was deleted since)."
        )
    return load_latent_cache(path)


def _load_text(path: Path) -> torch.Tensor:
    if not path.is_file():
        raise EngineError(f"{path}: text cache missing. Re-materialize text_cache.")
    return load_text_cache(path)


def _stack(group: list, device: torch.device) -> FlowMatchingBatch:
    def stacked(tensors: list[torch.Tensor | None]) -> torch.Tensor | None:
        if any(tensor is None for tensor in tensors):
            return None
        return torch.stack(tensors).to(device=device, dtype=torch.float32)

    texts = [_load_text(sample.text_file).float() for sample, _ in group]
    return FlowMatchingBatch(
        latents=stacked([cache.latent for _, cache in group]),
        text=pad_text_embeddings(texts).to(device),
        image_latents=stacked([cache.image_latent for _, cache in group]),
        clip_embeddings=stacked([cache.clip_embedding for _, cache in group]),
    )
