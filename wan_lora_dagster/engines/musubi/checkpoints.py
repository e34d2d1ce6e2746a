"""Checkpoints musubi-tuner saves, moved to the output folder as they land.

musubi writes a LoRA straight to its final name (safetensors' save_file, not atomic) and then,
with --save_state, the optimizer state beside it. A file is taken when it is whole (its size is
what its header says) and its state is complete, so that a resumed run never saves again a
checkpoint that was already announced; the final file has its state saved before it.

musubi saves twice where two of its schedules meet (a step save on an epoch save, or on the last
step); the training plan has one checkpoint there, so the second file is dropped as it lands.
"""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

from wan_lora_dagster.engines.base import CheckpointInfo, TrainRequest
from wan_lora_dagster.engines.musubi.progress import TrainingLog
from wan_lora_dagster.engines.musubi.resume import (
    Journal,
    Saved,
    choose_resume_step,
    parse_checkpoint_name,
    run_step,
    state_complete,
    state_name,
)
from wan_lora_dagster.engines.training_plan import plan_run
from wan_lora_dagster.errors import EngineError
from wan_lora_dagster.formats.cache_files import (
    read_lora_header,
    safetensors_complete,
    update_lora_header,
)

_HEADER_LIMIT = 100 * 1024 * 1024


def read_safetensors_header(path: Path) -> tuple[int, dict]:
    """(header length, header) of a safetensors file; raises OSError or ValueError."""
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        if length > _HEADER_LIMIT:
            raise ValueError(f"header of {length} bytes")
        return length, json.loads(handle.read(length))


class CheckpointLander:
    """Watches one segment's folder; lands each finished checkpoint in request.output_dir.

    Landing: add request.header and the run's epoch and step to the file's header, move it under
    the training plan's name for its step (never over another file), call on_checkpoint, drop
    older states.
    """

    def __init__(
        self,
        request: TrainRequest,
        journal: Journal,
        log: TrainingLog,
        on_checkpoint: Callable[[CheckpointInfo], None],
        segment: int | None = None,
    ):
        """segment: the index of the journal's segment to watch (default: the latest)."""
        self.request = request
        self.journal = journal
        self.log = log
        self.on_checkpoint = on_checkpoint
        self.segment = len(journal.segment_starts) - 1 if segment is None else segment
        self.folder = journal.segment_dir(self.segment)
        self.landed: list[CheckpointInfo] = []

    def poll(self, finished: bool = False) -> None:
        """Land what is ready; finished=True (the trainer exited well) takes stateless files too."""
        name = self.request.output_name
        saved_files = sorted(
            self.folder.glob(f"{name}*.safetensors"), key=lambda path: path.stat().st_mtime_ns
        )  # in the order musubi saved them
        for path in saved_files:
            saved = parse_checkpoint_name(name, path.name)
            if saved is None or not safetensors_complete(path):
                continue
            state = self.folder / state_name(name, saved)
            if saved.kind == "last" or finished or state_complete(state):
                self._land(path, saved)

    def _land(self, path: Path, saved: Saved) -> None:
        header = read_lora_header(path)
        steps_per_epoch = self._steps_per_epoch(header)
        start = self.journal.segment_starts[self.segment]
        step = run_step(saved, start, steps_per_epoch, int(header.get("ss_steps", 0)))
        plan = plan_run(self.request.settings, steps_per_epoch, self.request.output_name)
        point = plan.at_step(step)
        if point is None:
            raise EngineError(
                f"{path}: musubi-tuner saved at step {step}, where the training plan saves "
                "nothing (a bug of this program's model of musubi-tuner); the file is kept there."
            )
        epoch, target = point.epoch, self.request.output_dir / point.file_name
        run_position = {"ss_epoch": str(epoch), "ss_steps": str(step)}
        if target.exists():
            if landed_as(target, self.request, epoch, step):
                path.unlink()  # musubi's second save at this step: the plan's one file is there
                return
            raise EngineError(
                f"{target}: a checkpoint of this name exists already; checkpoints are never "
                f"overwritten. musubi-tuner's file is kept at {path}."
            )
        update_lora_header(path, {**self.request.header, **run_position})
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(path, target)
        info = CheckpointInfo(target, epoch, step, self.log.loss)
        self.landed.append(info)
        self.on_checkpoint(info)
        self._drop_states_before(step)

    def _steps_per_epoch(self, header: dict[str, str]) -> int:
        """From the output, else musubi's own metadata (one process, no gradient accumulation)."""
        found = self.log.steps_per_epoch or int(header.get("ss_num_batches_per_epoch", 0))
        if not found:
            raise EngineError(f"{self.folder}: musubi-tuner did not report its steps per epoch")
        return found

    def _drop_states_before(self, step: int) -> None:
        """States are large; a resume needs the newest one it can start from only, which is
        this landed checkpoint's or a later one's (a later checkpoint may be saved and not landed
        yet), or, with both save schedules set, an earlier one on both."""
        name = self.request.output_name
        states = self.journal.complete_states(name)
        settings, steps_per_epoch = self.request.settings, self.journal.steps_per_epoch
        resume_point = choose_resume_step(states, settings, steps_per_epoch) if states else None
        older = [folder for at, folder in states.items() if at < step and at != resume_point]
        # an incomplete state of an earlier segment will never complete
        older += [
            folder
            for index in range(self.segment)
            for folder in self.journal.segment_dir(index).glob(f"{name}*-state")
            if not state_complete(folder)
        ]
        for folder in older:
            shutil.rmtree(folder, ignore_errors=True)


def landed_as(target: Path, request: TrainRequest, epoch: int, step: int) -> bool:
    """Whether target is this run's checkpoint of this epoch and step, as a lander wrote it."""
    header = read_lora_header(target)
    expected = {**request.header, "ss_epoch": str(epoch), "ss_steps": str(step)}
    return all(header.get(key) == value for key, value in expected.items())
