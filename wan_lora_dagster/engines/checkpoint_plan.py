"""Every checkpoint of a training run, named before it starts (never overwritten later)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from wan_lora_dagster.project import TrainingSettings


@dataclass(frozen=True)
class PlannedCheckpoint:
    step: int
    epoch: int
    path: Path


def plan_checkpoints(
    settings: TrainingSettings, steps_per_epoch: int, output_dir: Path, output_name: str
) -> list[PlannedCheckpoint]:
    """Every checkpoint of the run, named before it starts.

    The run lasts max_train_steps when set, else max_train_epochs epochs. Epoch saves and the final
    save are `{name}-{epoch:06d}`, step saves `{name}-step{step:08d}`; one file per step at most.
    """
    total_steps = settings.max_train_steps or settings.max_train_epochs * steps_per_epoch
    last_epoch = math.ceil(total_steps / steps_per_epoch)

    def epoch_of(step: int) -> int:
        return math.ceil(step / steps_per_epoch)

    names: dict[int, str] = {}
    if settings.save_every_n_steps:
        for step in range(settings.save_every_n_steps, total_steps, settings.save_every_n_steps):
            names[step] = f"{output_name}-step{step:08d}"
    if settings.save_every_n_epochs:
        for epoch in range(settings.save_every_n_epochs, last_epoch, settings.save_every_n_epochs):
            names[epoch * steps_per_epoch] = f"{output_name}-{epoch:06d}"
    names[total_steps] = f"{output_name}-{last_epoch:06d}"
    return [
        PlannedCheckpoint(step, epoch_of(step), output_dir / f"{name}.safetensors")
        for step, name in sorted(names.items())
    ]
