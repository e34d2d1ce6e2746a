"""Evaluation: videos from each checkpoint at several LoRA strengths, a contact sheet, and a
held-out validation loss so checkpoints are compared by a number, not only by eye."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from PIL import Image, ImageDraw

from wan_lora_dagster.engines.base import Engine, SampleRequest, SampleVideo
from wan_lora_dagster.errors import EngineError, UserError
from wan_lora_dagster.formats.cache_files import update_lora_header
from wan_lora_dagster.formats.manifest import TrainingSetManifest
from wan_lora_dagster.media.frames import read_frames
from wan_lora_dagster.pipeline.catalog import Catalog
from wan_lora_dagster.project import Recipe, fingerprint

logger = logging.getLogger(__name__)
EVAL_CODE_VERSION = "1"
BEST_CODE_VERSION = "1"
SHEET_CELL = 96


def eval_fingerprint(checkpoint_version: str, recipe: Recipe) -> str:
    return fingerprint(
        "eval_videos",
        EVAL_CODE_VERSION,
        checkpoint_version,
        recipe.eval.model_dump(exclude={"pin"}),
    )


def best_fingerprint(eval_versions: list[str], recipe: Recipe) -> str:
    return fingerprint("best_lora", BEST_CODE_VERSION, eval_versions, recipe.eval.pin)


def evaluate_checkpoint(
    catalog: Catalog, key: str, engine: Engine, manifest: TrainingSetManifest, progress
) -> dict:
    """Sample every prompt x strength x seed, draw a contact sheet, measure the held-out loss."""
    project = catalog.project
    recipe = project.recipe
    checkpoint = catalog.records.read("lora_checkpoints", key)
    lora_path = project.root / checkpoint["file"]
    output_dir = project.out("eval", key)
    videos = engine.sample(SampleRequest(lora_path, recipe.eval, output_dir), progress)
    sheet = contact_sheet(videos, output_dir / "contact_sheet.png")
    loss_with, loss_without = validation_losses(engine, lora_path, manifest, recipe)
    record = {
        "fingerprint": eval_fingerprint(checkpoint["data_version"], recipe),
        "videos": [
            {
                "file": str(v.path.relative_to(project.root)),
                "prompt": v.prompt,
                "strength": v.strength,
                "seed": v.seed,
            }
            for v in videos
        ],
        "contact_sheet": str(sheet.relative_to(project.root)),
        "validation_loss": loss_with,
        "validation_loss_base": loss_without,
    }
    record["data_version"] = fingerprint(record)
    catalog.records.write("eval_videos", key, record)
    return record


def validation_losses(engine: Engine, lora: Path, manifest: TrainingSetManifest, recipe: Recipe):
    """(with the LoRA, without it); (None, None) when no clip is held out or the engine has no
    held-out loss (musubi-tuner has none): checkpoints are then compared by eye."""
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


def contact_sheet(videos: list[SampleVideo], path: Path) -> Path:
    """One row per prompt and seed, one column per strength: the middle frame of each video."""
    strengths = sorted({video.strength for video in videos})
    rows = sorted({(video.prompt, video.seed) for video in videos})
    sheet = Image.new("RGB", (SHEET_CELL * len(strengths), (SHEET_CELL + 14) * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for video in videos:
        frames = read_frames(video.path)
        cell = Image.fromarray(frames[len(frames) // 2]).resize((SHEET_CELL, SHEET_CELL))
        x = strengths.index(video.strength) * SHEET_CELL
        y = rows.index((video.prompt, video.seed)) * (SHEET_CELL + 14)
        sheet.paste(cell, (x, y + 14))
        draw.text((x + 2, y), f"strength {video.strength:g}", fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, optimize=True)
    return path


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
    losses = {key: catalog.records.read("eval_videos", key)["validation_loss"] for key in keys}
    measured = {key: loss for key, loss in losses.items() if loss is not None}
    return min(measured, key=measured.get) if measured else keys[-1]


def best_file_name(expert: str | None) -> str:
    """`adapter_model.safetensors`; a Wan 2.2 expert's file says its expert in its name the way
    checkpoints do, so formats.expert_lora finds the pair from either file."""
    return f"adapter_model-{expert}-best.safetensors" if expert else "adapter_model.safetensors"


def export_best(catalog: Catalog, key: str, eval_versions: list[str]) -> dict:
    project = catalog.project
    checkpoint = catalog.records.read("lora_checkpoints", key)
    exported = {
        best_file_name(expert): project.root / file
        for expert, file in (checkpoint.get("expert_files") or {None: checkpoint["file"]}).items()
    }
    for name, source in exported.items():
        target = project.out("best", name)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_suffix(".tmp")
        shutil.copyfile(source, temporary)
        update_lora_header(temporary, {"wan_lora.checkpoint": key})
        temporary.replace(target)
    for stale in project.out("best").glob("adapter_model*.safetensors"):
        if stale.name not in exported:  # a previous best of another shape: a single or a pair
            stale.unlink()
    target = project.out("best", next(iter(exported)))
    evaluation = catalog.records.read("eval_videos", key)
    record = {
        "fingerprint": best_fingerprint(eval_versions, project.recipe),
        "data_version": fingerprint("best", checkpoint["data_version"]),
        "checkpoint": key,
        "file": str(target.relative_to(project.root)),
        "validation_loss": evaluation["validation_loss"],
        "validation_loss_base": evaluation["validation_loss_base"],
    }
    catalog.records.write("best_lora", "__all__", record)
    return record
