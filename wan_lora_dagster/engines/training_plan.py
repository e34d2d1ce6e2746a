"""The training plan: how long a run lasts and which checkpoints it saves, named before it starts.

The one place that counts a run's steps and save points (no torch import): the graph plans its
`lora_checkpoints` partitions with it, the diffusers engine saves where it says, and the musubi
engine names musubi-tuner's files and chooses its resume points by it.

A step trains one batch per GPU, and batches never mix dataset sections (their resolutions differ).
The run lasts max_train_steps when set, else max_train_epochs epochs. It saves every
save_every_n_steps steps, every save_every_n_epochs epochs (both when both are set) and at its end;
a step where two of these meet saves one file. Epoch saves and the final save are
`{name}-{epoch:06d}`, the other step saves `{name}-step{step:08d}` (musubi-tuner's patterns,
utils/train_utils.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from wan_lora_dagster.errors import ConfigError, EngineError
from wan_lora_dagster.formats.manifest import TrainingSetManifest
from wan_lora_dagster.recipe.datasets import DatasetSection
from wan_lora_dagster.recipe.training import TrainingSettings

CHECKPOINT_SUFFIX = ".safetensors"


@dataclass(frozen=True)
class SavePoint:
    """One checkpoint of the run: when it is saved and the name of its file.

    label: unique within the run, and the same for the same save point whatever the engine; the
    graph's partition keys end with it. Step-numbered (`s000020`) when step saves are on, else
    epoch-numbered (`e0003`).
    """

    step: int
    epoch: int
    file_name: str
    label: str


@dataclass(frozen=True)
class TrainingPlan:
    """labelled_by_step: whether save points are labelled (and found again) by step or epoch."""

    steps_per_epoch: int
    total_steps: int
    save_points: tuple[SavePoint, ...]
    labelled_by_step: bool

    @property
    def last_epoch(self) -> int:
        return epoch_of(self.total_steps, self.steps_per_epoch)

    def epoch_of(self, step: int) -> int:
        return epoch_of(step, self.steps_per_epoch)

    def at_step(self, step: int) -> SavePoint | None:
        """The save point of a step, or None where the run saves nothing."""
        return next((point for point in self.save_points if point.step == step), None)


def epoch_of(step: int, steps_per_epoch: int) -> int:
    """The epoch a step trains in (step 0 counts as the first epoch's)."""
    return max(1, math.ceil(step / steps_per_epoch))


def samples_per_section(manifest: TrainingSetManifest) -> dict[str, int]:
    """Per dataset section: the latent files an epoch trains on, each entry `num_repeats` times."""
    samples: dict[str, int] = {}
    for entry in manifest.training_entries():
        count = len(entry.latent_files) * entry.num_repeats
        samples[entry.section] = samples.get(entry.section, 0) + count
    return samples


def batches_per_section(
    samples: dict[str, int], sections: Iterable[DatasetSection]
) -> dict[str, int]:
    """Per dataset section: the batches of an epoch on one GPU."""
    batch_sizes = {section.name: section.batch_size for section in sections}
    unknown = sorted(samples.keys() - batch_sizes.keys())
    if unknown:
        raise ConfigError(
            f"wan_lora.toml: the training set has entries of [[datasets]] section '{unknown[0]}', "
            "which the recipe no longer has: materialize training_set again."
        )
    return {name: math.ceil(count / batch_sizes[name]) for name, count in samples.items()}


def steps_on_gpus(batches_per_epoch: int, gpus: int) -> int:
    """Each step trains one batch per GPU: an epoch is still one pass over the data."""
    if gpus < 1:
        raise ValueError(f"training needs at least one process, not {gpus}")
    return max(1, math.ceil(batches_per_epoch / gpus))


def plan_training(
    manifest: TrainingSetManifest,
    settings: TrainingSettings,
    sections: Iterable[DatasetSection],
    gpus: int,
    output_name: str,
) -> TrainingPlan:
    """The plan of a run on a training set, counted from its manifest and the recipe's sections."""
    batches = sum(batches_per_section(samples_per_section(manifest), sections).values())
    if not batches:
        raise EngineError(
            "the training set has no training entries (every clip is held out or excluded): "
            "add clips, or lower [eval] num_held_out."
        )
    return plan_run(settings, steps_on_gpus(batches, gpus), output_name)


def total_steps(settings: TrainingSettings, steps_per_epoch: int) -> int:
    """max_train_steps when set, else max_train_epochs epochs."""
    if steps_per_epoch < 1:
        raise ValueError(f"a run needs at least one step per epoch, not {steps_per_epoch}")
    return settings.max_train_steps or settings.max_train_epochs * steps_per_epoch


def plan_run(settings: TrainingSettings, steps_per_epoch: int, output_name: str) -> TrainingPlan:
    """The plan of a run whose steps per epoch are known (musubi-tuner counts its own)."""
    total = total_steps(settings, steps_per_epoch)
    last_epoch = epoch_of(total, steps_per_epoch)
    every_steps, every_epochs = settings.save_every_n_steps, settings.save_every_n_epochs
    step_saves = range(every_steps, total, every_steps) if every_steps else ()
    epoch_saves = range(every_epochs, last_epoch, every_epochs) if every_epochs else ()
    epoch_named = {epoch * steps_per_epoch for epoch in epoch_saves} | {total}
    by_step = bool(every_steps)
    suffix = "" if settings.network == "full" else CHECKPOINT_SUFFIX  # a full fine-tune: a folder
    points = tuple(
        _save_point(
            output_name, step, epoch_of(step, steps_per_epoch), step in epoch_named, by_step, suffix
        )
        for step in sorted({*step_saves, *epoch_named})
    )
    return TrainingPlan(steps_per_epoch, total, points, by_step)


def _save_point(
    output_name: str, step: int, epoch: int, epoch_named: bool, labelled_by_step: bool, suffix: str
) -> SavePoint:
    name = f"{output_name}-{epoch:06d}" if epoch_named else f"{output_name}-step{step:08d}"
    label = f"s{step:06d}" if labelled_by_step else f"e{epoch:04d}"
    return SavePoint(step, epoch, name + suffix, label)
