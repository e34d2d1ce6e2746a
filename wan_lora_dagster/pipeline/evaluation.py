"""Evaluation: videos from each checkpoint at several LoRA strengths, a contact sheet, and a
held-out validation loss so checkpoints are compared by a number, not only by eye."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from wan_lora_dagster.disk_full import replacing
from wan_lora_dagster.engines.base import Engine, SampleRequest, SampleVideo
from wan_lora_dagster.errors import EngineError, UserError
from wan_lora_dagster.fingerprints import fingerprint
from wan_lora_dagster.formats.cache_files import ema_file, update_lora_header
from wan_lora_dagster.formats.manifest import TrainingSetManifest
from wan_lora_dagster.pipeline.asset_spec import GPU_POOL, AssetSpec, Partitioning
from wan_lora_dagster.pipeline.best_model import export_model, remove_other_exports
from wan_lora_dagster.pipeline.catalog import Catalog
from wan_lora_dagster.pipeline.contact_sheet import contact_sheet
from wan_lora_dagster.pipeline.records import Record, record_of
from wan_lora_dagster.pipeline.retraining import changed_checkpoints
from wan_lora_dagster.pipeline.start_images import listed_images_version, start_images
from wan_lora_dagster.pipeline.training import CheckpointRecord
from wan_lora_dagster.pipeline.validation_plot import CheckpointLoss, validation_loss_plot
from wan_lora_dagster.project import Project
from wan_lora_dagster.recipe.whole import Recipe

if TYPE_CHECKING:
    from wan_lora_dagster.pipeline.status import Expectations

logger = logging.getLogger(__name__)
EVAL_CODE_VERSION = "1"
BEST_CODE_VERSION = "2"  # 2: the validation-loss plot
EVALUATION_GROUP = "evaluation"
NEWER_EVAL_KEYS = ("images", "walk", "use_ema")


@dataclass(frozen=True, kw_only=True)
class EvalVideo:
    file: str
    prompt: str
    strength: float
    seed: int
    start_image: str | None = None  # an image-to-video LoRA's first frame
    walk_position: float | None = None  # a frame of the [eval] walk


@record_of("eval_videos")
@dataclass(frozen=True, kw_only=True)
class EvalRecord(Record):
    videos: list[EvalVideo]
    contact_sheet: str
    validation_loss: float | None
    validation_loss_base: float | None

    def made_paths(self) -> list[str]:
        starts = [video.start_image for video in self.videos if video.start_image]
        return [*(video.file for video in self.videos), *starts, self.contact_sheet]

    @classmethod
    def from_json(cls, data: dict) -> EvalRecord:
        return cls(**{**data, "videos": [EvalVideo(**video) for video in data["videos"]]})


@record_of("best_lora")
@dataclass(frozen=True, kw_only=True)
class BestRecord(Record):
    checkpoint: str
    file: str  # out/best/adapter_model.safetensors (a Wan 2.2 pair: the first expert's)
    validation_loss: float | None
    validation_loss_base: float | None
    validation_loss_plot: str | None = None
    model_folder: str | None = None  # a full fine-tune: out/best/model/ (`file`: its single file)

    def made_paths(self) -> list[str]:
        extra = [path for path in (self.validation_loss_plot, self.model_folder) if path]
        return [self.file, *extra]


def eval_fingerprint(checkpoint_version: str, project: Project) -> str:
    """Keys added since version 1 count only when set: a recipe without them keeps its
    fingerprint, so no existing eval (hours of 14B sampling) is redone for nothing."""
    settings = project.recipe.eval
    unset = {key for key in NEWER_EVAL_KEYS if not getattr(settings, key)}
    parts = ["eval_videos", EVAL_CODE_VERSION, checkpoint_version]
    parts.append(settings.model_dump(exclude={"pin", *unset}))
    if settings.images:
        parts.append(listed_images_version(project))
    return fingerprint(*parts)


def best_fingerprint(eval_versions: list[str], recipe: Recipe) -> str:
    return fingerprint("best_lora", BEST_CODE_VERSION, eval_versions, recipe.eval.pin)


def evaluate_checkpoint(
    catalog: Catalog, key: str, engine: Engine, manifest: TrainingSetManifest, progress
) -> EvalRecord:
    """Sample every prompt x strength x seed, draw a contact sheet, measure the held-out loss."""
    project = catalog.project
    recipe = project.recipe
    checkpoint: CheckpointRecord = catalog.records.read("lora_checkpoints", key)
    lora_path = evaluated_file(project, checkpoint.file)
    output_dir = project.out("eval", key)
    request = SampleRequest(lora_path, recipe.eval, output_dir, start_images(catalog, manifest))
    try:
        videos = engine.sample(request, progress)
        sheet = contact_sheet(videos, output_dir / "contact_sheet.png")
    except BaseException:
        if output_dir.is_dir() and not any(output_dir.iterdir()):
            output_dir.rmdir()  # made for videos a full disk (or a cancel) kept out: no trace
        raise
    loss_with, loss_without = validation_losses(engine, lora_path, manifest, recipe)
    record = EvalRecord(
        fingerprint=eval_fingerprint(checkpoint.data_version, project),
        data_version="",
        videos=[_video_record(video, project.root) for video in videos],
        contact_sheet=str(sheet.relative_to(project.root)),
        validation_loss=loss_with,
        validation_loss_base=loss_without,
    )
    record = replace(record, data_version=_content_version(record))
    return catalog.records.write("eval_videos", key, record)


def evaluated_file(project: Project, file: str) -> Path:
    """A checkpoint's file, or its EMA weights' with `[eval] use_ema`: evaluated and exported."""
    path = project.root / file
    return ema_file(path) if project.recipe.eval.use_ema else path


def _content_version(record: EvalRecord) -> str:
    """An evaluation's data version: the hash of all it holds (its videos, its losses)."""
    content = record.to_json()
    del content["data_version"], content["made_files"]
    return fingerprint(content)


def validation_losses(engine: Engine, lora: Path, manifest: TrainingSetManifest, recipe: Recipe):
    """(with the LoRA, without it); (None, None) when no clip is held out or the engine cannot
    measure (a musubi `dit` that does not load, say: the warning says why): checkpoints are then
    compared by eye."""
    if not manifest.held_out_entries():
        return None, None
    settings = recipe.training
    try:
        return (
            engine.validation_loss(lora, manifest, settings),
            engine.validation_loss(None, manifest, settings),
        )
    except EngineError as error:
        logger.warning("no validation loss: %s", error)
        return None, None


def _video_record(video: SampleVideo, root: Path) -> EvalVideo:
    start = video.start_image
    return EvalVideo(
        file=str(video.path.relative_to(root)),
        prompt=video.prompt,
        strength=video.strength,
        seed=video.seed,
        start_image=str(start.path.relative_to(root)) if start else None,
        walk_position=video.walk_position,
    )


def _export_file(source: Path, target: Path, key: str) -> None:
    """Copy a checkpoint's file into place whole, its header naming the checkpoint."""
    with replacing(target) as temporary:
        shutil.copyfile(source, temporary)
        update_lora_header(temporary, {"wan_lora.checkpoint": key})


def choose_best(catalog: Catalog, keys: list[str]) -> str:
    """The pinned checkpoint, else the one with the lowest held-out loss, else the last."""
    pin = catalog.project.recipe.eval.pin
    if pin:
        if pin not in keys:
            raise UserError(
                f"wan_lora.toml: [eval] pin = '{pin}' is not a checkpoint of the current "
                f"training run ({', '.join(keys)})"
            )
        return pin
    losses = {key: catalog.records.read("eval_videos", key).validation_loss for key in keys}
    measured = {key: loss for key, loss in losses.items() if loss is not None}
    return min(measured, key=measured.get) if measured else keys[-1]


def best_file_name(expert: str | None) -> str:
    """`adapter_model.safetensors`; a Wan 2.2 expert's file says its expert in its name the way
    checkpoints do, so formats.expert_lora finds the pair from either file."""
    return f"adapter_model-{expert}-best.safetensors" if expert else "adapter_model.safetensors"


def export_best(
    catalog: Catalog, key: str, keys: list[str], eval_versions: list[str]
) -> BestRecord:
    """Copy checkpoint `key` of the run's `keys` (a Wan 2.2 pair: both files) to out/best/, and
    plot the run's losses."""
    project = catalog.project
    checkpoint: CheckpointRecord = catalog.records.read("lora_checkpoints", key)
    if changed := changed_checkpoints(catalog, [key]):
        raise UserError(f"{changed[key]} It is not exported.")
    model_folder = None
    if (project.root / checkpoint.file).is_dir():  # a full fine-tune: the model (best_model.py)
        model_folder, target = export_model(
            evaluated_file(project, checkpoint.file), project.out("best"), key
        )
        exported = {model_folder.name: model_folder, target.name: target}
    else:
        exported = {
            best_file_name(expert): evaluated_file(project, file)
            for expert, file in (checkpoint.expert_files or {None: checkpoint.file}).items()
        }
        for name, source in exported.items():
            _export_file(source, project.out("best", name), key)
        target = project.out("best", next(iter(exported)))
    # a previous best of another shape: a single LoRA, a pair, or a model
    remove_other_exports(project.out("best"), set(exported))
    evaluation: EvalRecord = catalog.records.read("eval_videos", key)
    plot = loss_plot(catalog, keys, key, project.out("best", "validation_loss.png"))
    record = BestRecord(
        fingerprint=best_fingerprint(eval_versions, project.recipe),
        data_version=fingerprint("best", checkpoint.data_version),
        checkpoint=key,
        file=str(target.relative_to(project.root)),
        validation_loss=evaluation.validation_loss,
        validation_loss_base=evaluation.validation_loss_base,
        validation_loss_plot=str(plot.relative_to(project.root)) if plot else None,
        model_folder=str(model_folder.relative_to(project.root)) if model_folder else None,
    )
    return catalog.records.write("best_lora", "__all__", record)


def loss_plot(catalog: Catalog, keys: list[str], chosen: str, path: Path) -> Path | None:
    """The validation loss of each of `keys` (the run's checkpoints) against its step; None when
    none has one (no clip held out)."""
    points, base = [], None
    for key in keys:
        evaluation = catalog.records.read("eval_videos", key)
        step = catalog.records.read("lora_checkpoints", key).step
        points.append(CheckpointLoss(key, step, evaluation.validation_loss))
        base = evaluation.validation_loss_base if base is None else base
    if all(point.loss is None for point in points):
        return None
    return validation_loss_plot(points, chosen, base, path)


def _eval_rule(snapshot: Expectations, key: str) -> str | None:
    checkpoint_version = snapshot.fresh_data_version("lora_checkpoints", key)
    return checkpoint_version and eval_fingerprint(checkpoint_version, snapshot.catalog.project)


def _best_rule(snapshot: Expectations, _key: str) -> str | None:
    """The best of the current run's checkpoints, once every one of them is evaluated."""
    plan = snapshot.plan
    if plan is None:
        return None
    versions = [snapshot.fresh_data_version("eval_videos", key) for key in plan.keys]
    if None in versions:
        return None
    return best_fingerprint(versions, snapshot.recipe)


EVAL_VIDEOS = AssetSpec(
    "eval_videos",
    EVALUATION_GROUP,
    Partitioning.CHECKPOINTS,
    ("lora_checkpoints",),
    _eval_rule,
    pool=GPU_POOL,
    follows_inputs=False,
)
BEST_LORA = AssetSpec(
    "best_lora", EVALUATION_GROUP, Partitioning.NONE, ("eval_videos",), _best_rule
)
