"""The training run: the checkpoint plan, the checkpoints' records and the retrain rule
(the training set it trains on: pipeline/training_set.py)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from wan_lora_dagster.engines import gpus, training_plan
from wan_lora_dagster.engines.base import TrainRequest
from wan_lora_dagster.engines.training_plan import TrainingPlan
from wan_lora_dagster.fingerprints import fingerprint
from wan_lora_dagster.formats.cache_files import (
    CacheFileError,
    ema_file,
    read_lora_header,
)
from wan_lora_dagster.formats.expert_lora import lora_experts
from wan_lora_dagster.formats.manifest import TrainingSetManifest
from wan_lora_dagster.pipeline.asset_spec import GPU_POOL, AssetSpec, Partitioning
from wan_lora_dagster.pipeline.caches import (
    empty_caption_job,
    model_identity,
)
from wan_lora_dagster.pipeline.catalog import Catalog
from wan_lora_dagster.pipeline.records import Record, record_of
from wan_lora_dagster.pipeline.training_set import TRAINING_GROUP
from wan_lora_dagster.recipe.whole import Recipe

if TYPE_CHECKING:
    from wan_lora_dagster.pipeline.status import Expectations

LORA_CODE_VERSION = "1"


@record_of("lora_checkpoints")
@dataclass(frozen=True, kw_only=True)
class CheckpointRecord(Record):
    file: str  # the LoRA file (of the high-noise expert's, for a Wan 2.2 pair)
    epoch: int
    step: int
    loss: float | None
    train_id: str
    training_set: str
    expert_files: dict[str, str] | None = None  # Wan 2.2 A14B: expert -> its LoRA file
    ema_files: list[str] | None = None  # the EMA weights beside each file, when kept

    def made_paths(self) -> list[str]:
        return [self.file, *(self.expert_files or {}).values(), *(self.ema_files or [])]


@dataclass(frozen=True)
class CheckpointPlan:
    """The checkpoints one training run will save: one `lora_checkpoints` partition each."""

    train_id: str
    training: TrainingPlan

    @property
    def output_name(self) -> str:
        return output_name(self.train_id)

    @cached_property
    def keys(self) -> tuple[str, ...]:
        return tuple(f"{self.train_id}-{point.label}" for point in self.training.save_points)


def output_name(train_id: str) -> str:
    return f"lora-{train_id}"


def checkpoint_plan(manifest: TrainingSetManifest, recipe: Recipe) -> CheckpointPlan:
    """The run that trains on this training set, as the engine will run it on this machine."""
    settings = recipe.training
    train_id = fingerprint(
        "train",
        LORA_CODE_VERSION,
        manifest.version,
        settings.settings_fingerprint(),
        model_identity(settings, "dit"),
    )[:10]
    plan = training_plan.plan_training(
        manifest, settings, recipe.datasets, gpus.resolve_gpus(settings), output_name(train_id)
    )
    return CheckpointPlan(train_id, plan)


def checkpoint_dir(catalog: Catalog) -> Path:
    return catalog.project.out("checkpoints")


def checkpoint_header(manifest: TrainingSetManifest, recipe: Recipe, plan: CheckpointPlan) -> dict:
    """Fields every LoRA file of the run carries, so a file found on disk can be traced."""
    return {
        "wan_lora.training_set": manifest.version,
        "wan_lora.train_id": plan.train_id,
        "wan_lora.training_settings": recipe.training.model_dump_json(),
        "wan_lora.note": "trained by wan-lora-dagster; manifest in out/training_set/",
        **gpus.batch_metadata(recipe.datasets, gpus.resolve_gpus(recipe.training)),
    }


def train_request(
    catalog: Catalog, manifest: TrainingSetManifest, plan: CheckpointPlan
) -> TrainRequest:
    """What the engine trains: the manifest's caches, named and headed for the plan."""
    recipe = catalog.project.recipe
    return TrainRequest(
        manifest=manifest,
        settings=recipe.training,
        sections=recipe.datasets,
        output_dir=checkpoint_dir(catalog),
        output_name=plan.output_name,
        header=checkpoint_header(manifest, recipe, plan),
        log_dir=log_dir(catalog, plan),
        empty_caption=empty_caption_job(catalog.project, recipe.training),
    )


def log_dir(catalog: Catalog, plan: CheckpointPlan) -> Path:
    """The run's TensorBoard event files (`tensorboard --logdir out/logs`)."""
    return catalog.project.out("logs", plan.output_name)


def checkpoint_key(plan: CheckpointPlan, epoch: int, step: int) -> str | None:
    """The planned partition a saved file belongs to (None for a file the plan did not expect).

    Epoch-labelled save points match by epoch: they stay found if the engine counted the steps of
    an epoch otherwise (musubi-tuner's buckets may).
    """
    by_step = plan.training.labelled_by_step
    for key, point in zip(plan.keys, plan.training.save_points, strict=True):
        if (point.step == step) if by_step else (point.epoch == epoch):
            return key
    return None


def checkpoint_record(
    catalog: Catalog, plan: CheckpointPlan, key: str, manifest: TrainingSetManifest, info
) -> CheckpointRecord:
    project = catalog.project
    experts = lora_experts(info.path)  # Wan 2.2 A14B: one partition per step holds both files
    record = CheckpointRecord(
        fingerprint=fingerprint("lora_checkpoints", plan.train_id, key),
        data_version=fingerprint("lora-file", plan.train_id, key, info.path.stat().st_size),
        file=str(info.path.relative_to(project.root)),
        epoch=info.epoch,
        step=info.step,
        loss=info.loss,
        train_id=plan.train_id,
        training_set=manifest.version,
        expert_files={
            expert: str(path.relative_to(project.root)) for expert, path in experts.items()
        }
        or None,
        ema_files=[
            str(ema_file(path).relative_to(project.root))
            for path in (experts.values() or [info.path])
            if ema_file(path).is_file()
        ]
        or None,
    )
    return catalog.records.write("lora_checkpoints", key, record)


def recorded_files(record: CheckpointRecord) -> list[str]:
    """Every LoRA file a checkpoint record holds: one, or one per Wan 2.2 expert."""
    return list((record.expert_files or {}).values()) or [record.file]


def set_aside_unrecorded(catalog: Catalog, plan: CheckpointPlan) -> list[Path]:
    """Move files of this plan that no record lists and that are not this run's, never recorded
    ones: the new run then never overwrites them, and a recorded checkpoint stays where its record
    says. A file whose header names this plan's train id is the interrupted run's own: it stays,
    for the engine to keep and announce when it resumes.
    """
    directory = checkpoint_dir(catalog)
    records = [catalog.records.read("lora_checkpoints", key) for key in plan.keys]
    recorded = {file for record in records if record for file in recorded_files(record)}
    moved = []
    for path in sorted(directory.glob(f"{plan.output_name}*.safetensors")):
        if str(path.relative_to(catalog.project.root)) in recorded or _of_plan(path, plan):
            continue
        target = directory / "_interrupted" / f"{path.stem}.{int(path.stat().st_mtime)}.safetensors"
        target.parent.mkdir(parents=True, exist_ok=True)
        path.replace(target)
        moved.append(target)
    return moved


def _of_plan(path: Path, plan: CheckpointPlan) -> bool:
    try:
        return read_lora_header(path).get("wan_lora.train_id") == plan.train_id
    except CacheFileError:
        return False  # not a whole safetensors file


def latest_checkpoint(catalog: Catalog) -> CheckpointRecord | None:
    """The record of the most recently saved checkpoint of any training run."""
    records = sorted(
        catalog.records.root.joinpath("lora_checkpoints").glob("*.json"),
        key=lambda path: path.stat().st_mtime_ns,
    )
    return catalog.records.read("lora_checkpoints", records[-1].stem) if records else None


def retrain_reason(catalog: Catalog, current_training_set: str | None) -> tuple[bool, str]:
    """Retrain when, and only when, the training set differs from the latest checkpoint's."""
    if current_training_set is None:
        return False, "the training set is not up to date yet (its caches are still being made)"
    latest = latest_checkpoint(catalog)
    if latest and latest.training_set == current_training_set:
        return False, f"the latest checkpoint was trained on training set {current_training_set}"
    return True, f"training set {current_training_set} has not been trained on"


def _checkpoint_rule(snapshot: Expectations, key: str) -> str | None:
    """A checkpoint belongs to one training run: the plan's train id names it."""
    plan = snapshot.plan
    return fingerprint("lora_checkpoints", plan.train_id, key) if plan else None


LORA_CHECKPOINTS = AssetSpec(
    "lora_checkpoints",
    TRAINING_GROUP,
    Partitioning.CHECKPOINTS,
    ("training_set", "dataset_report"),
    _checkpoint_rule,
    pool=GPU_POOL,
    follows_inputs=False,
    made_in_one_run=True,
)
