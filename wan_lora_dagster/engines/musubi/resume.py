"""Resuming a killed or cancelled musubi-tuner run, and numbering its files as one run.

musubi-tuner (training/trainer_base.py, commit 30c658c) restores a saved state with `--resume`
(LoRA weights, optimizer, LR scheduler, random states) but starts its epoch and step counters at
zero ("TODO skip until initial step"), trains for the full --max_train_epochs/--max_train_steps
again and names its files from 1 again. So each launch is a *segment* that starts at a known step
of the run: it is told only what is left, and what it saves is renamed as it lands, to the
training plan's name for its step of the whole run (engines/training_plan.py). The final file,
which musubi names `{name}.safetensors`, becomes `{name}-{last epoch:06d}`, as the diffusers
engine names it.

A segment must keep the run's save points: a resumed segment saves every N epochs of its own,
which are run epochs only if it starts on a multiple of N epochs; likewise for steps, and with
both set it must start on both. States are saved only with checkpoints (`--save_state`), so they
lie on save points, and the resume point is the latest state from which every planned save stays
aligned.

A resumed segment also rebuilds its LR scheduler for the steps left while the restored state
carries the steps done, so a schedule that depends on the run's length (linear, cosine...) would
be squeezed: such runs start over instead of resuming.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from wan_lora_dagster.engines.training_plan import total_steps
from wan_lora_dagster.recipe.training import TrainingSettings

SavedKind = Literal["epoch", "step", "last"]
# accelerate's save_state writes the RNG state last (accelerate/checkpointing.py,
# save_accelerator_state) and musubi registers nothing after it: its presence means complete.
STATE_COMPLETE_MARKER = "random_states_0.pkl"
JOURNAL_FORMAT = 1
# Learning-rate schedules whose value at a step does not depend on the total number of steps.
LENGTH_FREE_SCHEDULERS = ("constant", "constant_with_warmup")


@dataclass(frozen=True)
class SegmentOptions:
    """What one launch of the trainer runs: the whole run, or what is left of it after a resume.

    Exactly one of max_train_epochs and max_train_steps is set (musubi lets epochs override steps).
    """

    max_train_epochs: int | None
    max_train_steps: int | None
    save_every_n_epochs: int | None
    save_every_n_steps: int | None
    resume_state: Path | None = None


@dataclass(frozen=True)
class Saved:
    """A checkpoint file or state folder musubi saved, as named: epoch N, step N, or the last."""

    kind: SavedKind
    number: int | None = None


def parse_checkpoint_name(output_name: str, file_name: str) -> Saved | None:
    return _parse(output_name, file_name, suffix=r"\.safetensors")


def parse_state_name(output_name: str, folder_name: str) -> Saved | None:
    return _parse(output_name, folder_name, suffix="-state")


def state_name(output_name: str, saved: Saved) -> str:
    """musubi's EPOCH_STATE_NAME / STEP_STATE_NAME / LAST_STATE_NAME (utils/train_utils.py)."""
    if saved.kind == "epoch":
        return f"{output_name}-{saved.number:06d}-state"
    if saved.kind == "step":
        return f"{output_name}-step{saved.number:08d}-state"
    return f"{output_name}-state"


def run_step(saved: Saved, segment_start: int, steps_per_epoch: int, segment_steps: int) -> int:
    """The run's step count at a save of a segment that started after segment_start steps.

    segment_steps: the segment's own step count at the save (needed for "last" only).
    """
    if saved.kind == "epoch":
        return segment_start + saved.number * steps_per_epoch
    if saved.kind == "step":
        return segment_start + saved.number
    return segment_start + segment_steps


def keeps_saves_aligned(settings: TrainingSettings, steps_per_epoch: int, start_step: int) -> bool:
    """Whether a segment starting here saves at every one of the run's save points after it."""
    every_steps, every_epochs = settings.save_every_n_steps, settings.save_every_n_epochs
    steps_aligned = not every_steps or start_step % every_steps == 0
    epochs_aligned = not every_epochs or start_step % (every_epochs * steps_per_epoch) == 0
    return steps_aligned and epochs_aligned


def choose_resume_step(
    state_steps: Iterable[int], settings: TrainingSettings, steps_per_epoch: int
) -> int | None:
    """The latest saved step to resume from, or None to start over.

    A state at or past the end is no use: what follows it is only the final save.
    """
    if settings.lr_scheduler not in LENGTH_FREE_SCHEDULERS:
        return None
    end = total_steps(settings, steps_per_epoch)
    usable = [
        step
        for step in state_steps
        if 0 < step < end and keeps_saves_aligned(settings, steps_per_epoch, step)
    ]
    return max(usable, default=None)


def plan_segment(
    settings: TrainingSettings,
    steps_per_epoch: int | None,
    start_step: int = 0,
    resume_state: Path | None = None,
) -> SegmentOptions:
    """What one launch must do to finish the run from start_step (0: the whole run).

    Remaining epochs = total - done when the segment starts on an epoch boundary of an epoch-long
    run; remaining steps otherwise. An epoch save is kept only if it lands on run epochs.
    """
    if start_step == 0:
        epochs = None if settings.max_train_steps else settings.max_train_epochs
        return SegmentOptions(
            epochs,
            settings.max_train_steps,
            settings.save_every_n_epochs,
            settings.save_every_n_steps,
        )
    if not steps_per_epoch:
        raise ValueError("resuming needs the run's steps per epoch")
    done_epochs, into_epoch = divmod(start_step, steps_per_epoch)
    by_epochs = not settings.max_train_steps and into_epoch == 0
    every_epochs = settings.save_every_n_epochs
    keep_epoch_saves = every_epochs and into_epoch == 0 and done_epochs % every_epochs == 0
    every_steps = settings.save_every_n_steps
    return SegmentOptions(
        max_train_epochs=settings.max_train_epochs - done_epochs if by_epochs else None,
        max_train_steps=None if by_epochs else total_steps(settings, steps_per_epoch) - start_step,
        save_every_n_epochs=every_epochs if keep_epoch_saves else None,
        save_every_n_steps=every_steps if every_steps and start_step % every_steps == 0 else None,
        resume_state=resume_state,
    )


@dataclass
class Journal:
    """What survives a killed run: which run it is, and where each of its segments started.

    identity: a fingerprint of everything that shapes the run (training set, settings, sections,
    name): a journal of another run is never resumed.
    """

    path: Path
    identity: str
    steps_per_epoch: int | None = None
    segment_starts: list[int] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path, identity: str) -> Journal | None:
        """The journal at path if it is this run's, else None."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if data.get("format") != JOURNAL_FORMAT or data.get("identity") != identity:
            return None
        return cls(path, identity, data["steps_per_epoch"], list(data["segment_starts"]))

    def save(self) -> None:
        data = {
            "format": JOURNAL_FORMAT,
            "identity": self.identity,
            "steps_per_epoch": self.steps_per_epoch,
            "segment_starts": self.segment_starts,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(data, indent=1), encoding="utf-8")
        temporary.replace(self.path)

    def segment_dir(self, index: int) -> Path:
        return segment_dir(self.path.parent, index)

    def complete_states(self, output_name: str) -> dict[int, Path]:
        """Run step -> state folder, for every complete epoch or step state of every segment."""
        if not self.steps_per_epoch:
            return {}
        found = {}
        for index, start in enumerate(self.segment_starts):
            for folder in sorted(self.segment_dir(index).glob(f"{output_name}*-state")):
                saved = parse_state_name(output_name, folder.name)
                if saved and saved.kind != "last" and state_complete(folder):
                    found[run_step(saved, start, self.steps_per_epoch, 0)] = folder
        return found


def segment_dir(run_dir: Path, index: int) -> Path:
    """musubi's --output_dir for the index-th launch of a run."""
    return run_dir / f"segment-{index:02d}"


def state_complete(folder: Path) -> bool:
    return (folder / STATE_COMPLETE_MARKER).is_file()


def _parse(output_name: str, name: str, suffix: str) -> Saved | None:
    if re.fullmatch(re.escape(output_name) + suffix, name):
        return Saved("last")
    match = re.fullmatch(re.escape(output_name) + r"-(?:(\d{6})|step(\d{8}))" + suffix, name)
    if match is None:
        return None
    epoch, step = match.groups()
    return Saved("epoch", int(epoch)) if epoch else Saved("step", int(step))
