"""One training run's lifetime across launches: start it, or resume it, and clear it up.

A run lives in `<work_dir>/train/<output_name>/`: `dataset.toml` and its lists, `caches/` (links
to the manifest's cache files, per section), `journal.json` and one `segment-NN/` per launch
(musubi's --output_dir: its checkpoints before they land, and its saved states).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from wan_lora_dagster.engines.base import CheckpointInfo, Resumed, TrainRequest, run_identity
from wan_lora_dagster.engines.musubi.checkpoints import CheckpointLander, landed_as
from wan_lora_dagster.engines.musubi.progress import TrainingLog
from wan_lora_dagster.engines.musubi.resume import (
    LENGTH_FREE_SCHEDULERS,
    Journal,
    SegmentOptions,
    choose_resume_step,
    plan_segment,
)
from wan_lora_dagster.engines.training_plan import SavePoint, epoch_of, plan_run
from wan_lora_dagster.errors import EngineError
from wan_lora_dagster.formats.cache_files import CacheFileError

logger = logging.getLogger(__name__)

JOURNAL_NAME = "journal.json"


@dataclass(frozen=True)
class Launch:
    """What the next launch of the trainer does, and what earlier launches left to land."""

    journal: Journal
    start_step: int
    options: SegmentOptions
    landed: list[CheckpointInfo]

    @property
    def folder(self) -> Path:
        return self.journal.segment_dir(len(self.journal.segment_starts) - 1)

    @property
    def resumed(self) -> Resumed | None:
        """Where this launch goes on from, when it resumes an interrupted run."""
        state = self.options.resume_state
        if state is None:
            return None
        return Resumed(
            self.start_step, epoch_of(self.start_step, self.journal.steps_per_epoch), state
        )


def next_launch(
    request: TrainRequest, run_dir: Path, on_checkpoint: Callable[[CheckpointInfo], None]
) -> Launch:
    """Resume this request's interrupted run from its latest usable state, or start it afresh.

    A fresh start refuses to run over existing checkpoints of the same name.
    """
    journal = Journal.load(run_dir / JOURNAL_NAME, run_identity(request))
    landed, start, state = [], 0, None
    if journal is not None:
        landed = _land_leftovers(request, journal, on_checkpoint)
        landed += _announce_landed(request, journal, landed, on_checkpoint)
        start, state = _resume_point(journal, request)
    if start == 0:
        if journal is not None:
            logger.warning(
                "%s: starting over, no saved state to resume from (lr_scheduler %r resumes only "
                "if it is one of %s)",
                run_dir,
                request.settings.lr_scheduler,
                LENGTH_FREE_SCHEDULERS,
            )
        journal = _start_over(request, run_dir)
    options = plan_segment(request.settings, journal.steps_per_epoch, start, state)
    journal.segment_starts.append(start)
    journal.save()
    launch = Launch(journal, start, options, landed)
    shutil.rmtree(launch.folder, ignore_errors=True)
    return launch


def finish_run(journal: Journal) -> None:
    """A finished run needs no optimizer states; its configs and links stay for inspection."""
    for index in range(len(journal.segment_starts)):
        shutil.rmtree(journal.segment_dir(index), ignore_errors=True)
    journal.path.unlink(missing_ok=True)


def _resume_point(journal: Journal, request: TrainRequest) -> tuple[int, Path | None]:
    """(run step, state folder) to continue from; (0, None) to start over."""
    if not journal.steps_per_epoch:
        return 0, None
    states = journal.complete_states(request.output_name)
    step = choose_resume_step(states, request.settings, journal.steps_per_epoch)
    return (step, states[step]) if step else (0, None)


def _land_leftovers(
    request: TrainRequest, journal: Journal, on_checkpoint: Callable[[CheckpointInfo], None]
) -> list[CheckpointInfo]:
    """Checkpoints an interrupted launch finished, with their states, but did not land."""
    landed = []
    for index, start in enumerate(journal.segment_starts):
        log = TrainingLog(start)
        log.steps_per_epoch = journal.steps_per_epoch
        lander = CheckpointLander(request, journal, log, on_checkpoint, segment=index)
        lander.poll()
        landed += lander.landed
    return landed


def _announce_landed(
    request: TrainRequest,
    journal: Journal,
    just_landed: list[CheckpointInfo],
    on_checkpoint: Callable[[CheckpointInfo], None],
) -> list[CheckpointInfo]:
    """Checkpoints earlier launches landed, announced again: a caller interrupted between a
    landing and its record would never record them otherwise (the asset skips what it
    recorded), as the diffusers engine announces what an interrupted launch kept. Their loss
    went with that launch's log."""
    if not journal.steps_per_epoch:
        return []
    plan = plan_run(request.settings, journal.steps_per_epoch, request.output_name)
    announced = {info.path for info in just_landed}
    again = []
    for point in plan.save_points:
        path = request.output_dir / point.file_name
        if path in announced or not path.is_file() or not _whole_and_landed(path, request, point):
            continue
        info = CheckpointInfo(path, point.epoch, point.step, None)
        on_checkpoint(info)
        again.append(info)
    return again


def _whole_and_landed(path: Path, request: TrainRequest, point: SavePoint) -> bool:
    try:
        return landed_as(path, request, point.epoch, point.step)
    except CacheFileError:
        return False  # cut short: the next launch saves it again


def _start_over(request: TrainRequest, run_dir: Path) -> Journal:
    existing = sorted(request.output_dir.glob(f"{request.output_name}-*.safetensors"))
    if existing:
        raise EngineError(
            f"{existing[0]}: this training run's checkpoint exists already. Checkpoints are "
            "never overwritten: choose another output name or remove the files."
        )
    for stale in (run_dir / JOURNAL_NAME, *run_dir.glob("segment-*")):
        if stale.is_dir():
            shutil.rmtree(stale)
        else:
            stale.unlink(missing_ok=True)
    return Journal(run_dir / JOURNAL_NAME, run_identity(request))
