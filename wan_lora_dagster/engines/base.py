"""What the asset graph needs from a training engine: one interface, two implementations.

`diffusers` runs the model math in this process; `musubi` drives kohya-ss/musubi-tuner's scripts.
Both read and write caches in musubi-tuner's file format: either trains from the other's caches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from wan_lora_dagster.fingerprints import fingerprint
from wan_lora_dagster.formats.manifest import TrainingSetManifest
from wan_lora_dagster.recipe.datasets import DatasetSection
from wan_lora_dagster.recipe.evaluation import EvalSettings
from wan_lora_dagster.recipe.training import TrainingSettings


@dataclass(frozen=True)
class Resumed:
    """Where an interrupted training run goes on: after `step`, in `epoch`, from a saved state;
    `loss_curve`: the running loss of each step before it, where the state keeps them, so that
    a resumed run's loss curves are the uninterrupted run's."""

    step: int
    epoch: int
    state: Path
    loss_curve: tuple[tuple[int, float], ...] = ()

    def __str__(self) -> str:
        return f"resumed after step {self.step} (epoch {self.epoch}) from {self.state}"


@dataclass(frozen=True)
class Progress:
    """One progress report: `done` of `total` units, with a rate and, in training, the loss.
    A resumed training's first report says where it resumed from."""

    stage: str
    done: int
    total: int
    seconds_per_unit: float | None = None
    loss: float | None = None
    epoch: int | None = None
    resumed: Resumed | None = None

    def to_json(self) -> dict:
        """The report as a training worker process sends it to its parent (JSON values)."""
        data = dict(self.__dict__)
        if self.resumed is not None:
            data["resumed"] = {**self.resumed.__dict__, "state": str(self.resumed.state)}
        return data

    @classmethod
    def from_json(cls, data: dict) -> Progress:
        resumed = data.get("resumed")
        if resumed is not None:
            curve = tuple(tuple(point) for point in resumed.get("loss_curve", ()))
            resumed = Resumed(resumed["step"], resumed["epoch"], Path(resumed["state"]), curve)
        return cls(**{**data, "resumed": resumed})


ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True)
class LatentJob:
    """Encode one clip (or still) under one dataset section into `cache_dir`."""

    item_id: str
    media_path: Path
    section: DatasetSection
    cache_dir: Path


@dataclass(frozen=True)
class TextJob:
    """Encode one final caption into `cache_dir/<item_id>_wan_te.safetensors`."""

    item_id: str
    text: str
    cache_dir: Path


@dataclass(frozen=True)
class CheckpointInfo:
    """A LoRA file the trainer saved: the unit of the `lora_checkpoints` partitions."""

    path: Path
    epoch: int
    step: int
    loss: float | None


@dataclass(frozen=True)
class TrainRequest:
    manifest: TrainingSetManifest
    settings: TrainingSettings
    sections: tuple[DatasetSection, ...]
    output_dir: Path
    output_name: str
    header: dict[str, str] = field(default_factory=dict)
    """Extra safetensors metadata for every saved LoRA (training-set hash, settings)."""
    log_dir: Path | None = None
    """Where the trainer writes its TensorBoard event files (none if None)."""

    expert: str | None = None
    """Wan 2.2 A14B: the expert this request trains (tasks.HIGH_NOISE or LOW_NOISE)."""
    timestep_range: tuple[float, float] = (0.0, 1.0)
    """The part of t in [0, 1] trained on: an expert's (engines.experts)."""
    empty_caption: TextJob | None = None
    """The empty caption's text cache, made once, that caption dropout trains on."""


def run_identity(request: TrainRequest) -> str:
    """A fingerprint of everything that shapes a training run: an engine resumes only its own."""
    return fingerprint(
        request.manifest.version,
        request.settings.settings_fingerprint(),
        [section.model_dump(mode="json") for section in request.sections],
        request.output_name,
        str(request.output_dir.resolve()),
    )


@dataclass(frozen=True)
class StartImage:
    """The first frame an image-to-video eval video starts from: `name` labels it."""

    name: str
    path: Path


@dataclass(frozen=True)
class SampleRequest:
    checkpoint: Path
    settings: EvalSettings
    output_dir: Path
    start_images: tuple[StartImage, ...] = ()
    """Image-to-video only: every prompt x strength x seed is sampled from each of them."""


@dataclass(frozen=True)
class SampleVideo:
    path: Path
    prompt: str
    strength: float
    seed: int
    start_image: StartImage | None = None
    walk_position: float | None = None
    """In a latent walk, where its noise lies between the walk's two seeds' (0 to 1)."""


class Engine(Protocol):
    name: str

    def check(self) -> None:
        """Raise EngineError before any work if the engine cannot run (missing tools or weights)."""

    def encode_latents(
        self, jobs: Sequence[LatentJob], progress: ProgressCallback
    ) -> dict[str, list[Path]]:
        """Write musubi-format latent caches; returns item_id -> cache files written."""

    def encode_texts(self, jobs: Sequence[TextJob], progress: ProgressCallback) -> dict[str, Path]:
        """Write musubi-format text-encoder caches; returns item_id -> cache file."""

    def train(
        self,
        request: TrainRequest,
        progress: ProgressCallback,
        on_checkpoint: Callable[[CheckpointInfo], None],
    ) -> list[CheckpointInfo]:
        """Train a LoRA from the manifest's caches, calling on_checkpoint as each file lands."""

    def sample(self, request: SampleRequest, progress: ProgressCallback) -> list[SampleVideo]:
        """One mp4 per prompt x strength x seed; strength 0 is the base model."""

    def cancel(self) -> None:
        """From another thread: end the work in progress, which raises EngineCancelled."""

    def validation_loss(
        self, checkpoint: Path | None, manifest: TrainingSetManifest, settings: TrainingSettings
    ) -> float:
        """Flow-matching loss on the manifest's held-out entries, fixed noise and timesteps."""
