"""The way back from a damaged or lost checkpoint: train it again, never over anything.

A checkpoint whose file was truncated, changed or deleted after training is refused (never
evaluated or exported), and `wan-lora retrain <checkpoint>` makes it again:

- the damaged file is moved to out/checkpoints/_damaged/ (kept: nothing is lost), never deleted;
- the run is trained again into a folder of its own, out/checkpoints/_retrain/<run>/, from its
  last saved state there (a retrain cut short goes on) or from the start, so it never meets the
  run's sound checkpoints; the same recipe, seed and training set give the same tensors;
- when the wanted checkpoint lands there it is moved to its place and recorded (after its bytes
  are checked whole), the rest of that folder is dropped, and the retraining stops.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import time
from pathlib import Path

from wan_lora_dagster.engines.base import CheckpointInfo, TrainRequest
from wan_lora_dagster.errors import UserError
from wan_lora_dagster.formats.cache_files import CacheFileError, safetensors_complete
from wan_lora_dagster.formats.expert_lora import lora_experts
from wan_lora_dagster.pipeline.catalog import Catalog
from wan_lora_dagster.pipeline.made_files import damage, damage_message
from wan_lora_dagster.pipeline.training import CheckpointPlan, checkpoint_dir, recorded_files

DAMAGED_FOLDER = "_damaged"
RETRAIN_FOLDER = "_retrain"


def retrain_command(key: str) -> str:
    return f"`wan-lora retrain {key}`"


def way_back(key: str) -> str:
    """What a refused checkpoint's message ends with."""
    return (
        f"Restore the file, or train it again with {retrain_command(key)} (the damaged file is "
        f"moved to out/checkpoints/{DAMAGED_FOLDER}/)."
    )


def changed_checkpoints(catalog: Catalog, keys: list[str]) -> dict[str, str]:
    """Key -> what changed, for each recorded checkpoint whose file is no longer as trained.

    Training never rewrites a checkpoint, so one changed by hand (or by a failing disk) is named
    instead of trained over, and never exported.
    """
    changed = {}
    for key in keys:
        record = catalog.records.read("lora_checkpoints", key)
        if record and (problems := damage(catalog.project.root, record)):
            changed[key] = (
                f"checkpoint {key} was changed after training ({damage_message(problems)}). "
                + way_back(key)
            )
    return changed


def require_retrainable(catalog: Catalog, plan: CheckpointPlan | None, keys: list[str]) -> None:
    """Refuse keys that are not the current run's, and sound checkpoints (nothing to retrain)."""
    if plan is None:
        raise UserError(
            "there is no current training run yet: `wan-lora run` makes the training set first"
        )
    unknown = [key for key in keys if key not in plan.keys]
    if unknown:
        raise UserError(
            f"{', '.join(unknown)}: not a checkpoint of the current training run; "
            f"its checkpoints are {', '.join(plan.keys)}"
        )
    sound = [key for key in keys if _sound(catalog, key)]
    if sound:
        raise UserError(f"{', '.join(sound)}: sound, as trained; nothing to retrain")


def _sound(catalog: Catalog, key: str) -> bool:
    record = catalog.records.read("lora_checkpoints", key)
    return bool(record) and not damage(catalog.project.root, record)


def set_aside_damaged(catalog: Catalog, key: str) -> list[Path]:
    """Move the recorded files of checkpoint `key` that are still there (damaged) aside."""
    record = catalog.records.read("lora_checkpoints", key)
    files = [catalog.project.root / name for name in recorded_files(record)] if record else []
    return [set_aside(catalog, path) for path in files if path.exists()]


def kept_aside(catalog: Catalog) -> set[Path]:
    """Every file set aside so far."""
    return set((checkpoint_dir(catalog) / DAMAGED_FOLDER).glob("*"))


def set_aside(catalog: Catalog, path: Path) -> Path:
    """Move a checkpoint file out of the way into out/checkpoints/_damaged/, under a name that
    says when; returns where it went."""
    folder = checkpoint_dir(catalog) / DAMAGED_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(path.stat().st_mtime))
    target = folder / f"{path.stem}.{stamp}{path.suffix}"
    number = 1
    while target.exists():
        number += 1
        target = folder / f"{path.stem}.{stamp}-{number}{path.suffix}"
    path.replace(target)
    return target


def retrain_request(request: TrainRequest, plan: CheckpointPlan) -> TrainRequest:
    """The run's request, trained in a folder of its own (its own saved states and logs)."""
    folder = scratch_dir(request.output_dir, plan)
    return dataclasses.replace(request, output_dir=folder, log_dir=folder / "logs")


def scratch_dir(output_dir: Path, plan: CheckpointPlan) -> Path:
    return output_dir / RETRAIN_FOLDER / plan.output_name


def incomplete_files(catalog: Catalog, landed: CheckpointInfo) -> list[str]:
    """The files of a landed checkpoint that are not whole: never to be recorded as made."""
    broken = [path for path in _files_of(landed) if not _whole(path)]
    return [str(path.relative_to(catalog.project.root)) for path in broken]


def _whole(path: Path) -> bool:
    """A LoRA file whole; a full fine-tune's model folder with each of its weight files whole."""
    if path.is_dir():
        files = list(path.glob("*.safetensors"))
        return bool(files) and all(safetensors_complete(file) for file in files)
    return safetensors_complete(path)


def adopt(catalog: Catalog, landed: CheckpointInfo) -> tuple[CheckpointInfo, list[Path]]:
    """Move a retrained checkpoint (a Wan 2.2 pair: both files) to its place in out/checkpoints;
    a file in the way there is set aside. Returns it as placed, and what was set aside."""
    directory, moved = checkpoint_dir(catalog), []
    for path in _files_of(landed):
        target = directory / path.name
        if target.exists():
            moved.append(set_aside(catalog, target))
        path.replace(target)
    return dataclasses.replace(landed, path=directory / landed.path.name), moved


def _files_of(landed: CheckpointInfo) -> list[Path]:
    """Its file (a full fine-tune's: its folder), or each expert's of a Wan 2.2 pair."""
    if landed.path.is_dir():
        return [landed.path]
    try:
        return list(lora_experts(landed.path).values()) or [landed.path]
    except CacheFileError:  # a header cut short
        return [landed.path]


def drop_scratch(request: TrainRequest) -> None:
    """The retrained run's folder (its other checkpoints are copies of sound ones), and
    out/checkpoints/_retrain/ when no other retraining is left in it."""
    shutil.rmtree(request.output_dir, ignore_errors=True)
    with contextlib.suppress(OSError):  # not empty
        request.output_dir.parent.rmdir()
