"""The synthetic training set of the engine tests: coloured stripes drifting sideways, cached
by an engine, and the settings the tiny model learns them with in a few dozen steps."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wan_lora_dagster.engines.base import (
    CheckpointInfo,
    LatentJob,
    Progress,
    TextJob,
    TrainRequest,
)
from wan_lora_dagster.engines.diffusers.engine import DiffusersEngine
from wan_lora_dagster.formats.manifest import ManifestEntry, TrainingSetManifest
from wan_lora_dagster.media.video_writer import write_video
from wan_lora_dagster.recipe.datasets import DatasetSection
from wan_lora_dagster.recipe.training import TrainingSettings

NUM_CLIPS = 8
NUM_HELD_OUT = 2
CLIP_SIZE = 32
CLIP_FRAMES = 9
SECTION = DatasetSection(
    name="motion", source="clips", resolution=(CLIP_SIZE, CLIP_SIZE), target_frames=(CLIP_FRAMES,)
)
# A high learning rate and a small rank: the tiny model learns the stripes in a few dozen steps.
TRAINING = TrainingSettings(
    network_dim=4,
    network_alpha=4.0,
    learning_rate=1e-2,
    max_train_epochs=10,
    save_every_n_epochs=5,
    seed=7,
)
HEADER = {"training_set": "manifest-version-under-test", "clip_count": str(NUM_CLIPS)}


def stripes_clip(
    path: Path, seed: int, num_frames: int = CLIP_FRAMES, size: int = CLIP_SIZE
) -> Path:
    """Coloured vertical stripes drifting sideways: one distribution, a random phase and colour."""
    rng = np.random.default_rng(seed)
    phase, colour = rng.uniform(0, 2 * np.pi), rng.uniform(0.3, 1.0, 3)
    columns = np.arange(size)[None, None, :]
    frames = np.arange(num_frames)[:, None, None]
    brightness = 0.5 + 0.5 * np.sin(columns / 3 + phase + frames * 0.5)
    pixels = (brightness[..., None] * colour * 255).repeat(size, axis=1)
    return write_video(pixels.astype(np.uint8), path)


def ignore_progress(progress: Progress) -> None:
    """A progress callback for tests that check files, not reports."""


def cache_training_set(
    engine: DiffusersEngine, root: Path, num_clips: int, num_held_out: int
) -> TrainingSetManifest:
    """Stripe clips cached by `engine` under `root`; the last `num_held_out` are held out."""
    item_ids = [f"stripes{index:02d}" for index in range(num_clips)]
    latent_jobs = [
        LatentJob(
            item, stripes_clip(root / "clips" / f"{item}.mp4", seed), SECTION, root / "latents"
        )
        for seed, item in enumerate(item_ids)
    ]
    text_jobs = [TextJob(item, "stripes drift to the left", root / "texts") for item in item_ids]
    latents = engine.encode_latents(latent_jobs, ignore_progress)
    texts = engine.encode_texts(text_jobs, ignore_progress)
    entries = tuple(
        ManifestEntry(
            item_id=item,
            kind="clip",
            section=SECTION.name,
            latent_files=tuple(str(path.relative_to(root)) for path in latents[item]),
            text_file=str(texts[item].relative_to(root)),
            caption="stripes drift to the left",
            caption_origin="auto",
            caption_version="c",
            latent_version="l",
            text_version="t",
            held_out=index >= num_clips - num_held_out,
        )
        for index, item in enumerate(item_ids)
    )
    return TrainingSetManifest(entries, root=root)


@dataclass
class TrainingRun:
    request: TrainRequest
    returned: list[CheckpointInfo]
    announced: list[CheckpointInfo]
    progress: list[Progress]


def train_request(manifest: TrainingSetManifest, output_dir: Path) -> TrainRequest:
    return TrainRequest(manifest, TRAINING, (SECTION,), output_dir, "stripes", dict(HEADER))
