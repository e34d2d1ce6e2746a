"""From a checkpoint back to the exact captions that fed it, and from an item to its checkpoints.

The manifest a checkpoint was trained on is kept under out/training_set/<version>.json and named
in the LoRA file's header, so a LoRA found on disk is traced even after the project moved on.
"""

from __future__ import annotations

from pathlib import Path

from wan_lora_dagster.errors import UserError
from wan_lora_dagster.formats.cache_files import read_lora_header
from wan_lora_dagster.formats.manifest import TrainingSetManifest
from wan_lora_dagster.pipeline.catalog import Catalog
from wan_lora_dagster.pipeline.items import ITEM_KINDS
from wan_lora_dagster.pipeline.training_set import load_manifest

HEADER_TRAINING_SET = "wan_lora.training_set"


def checkpoint_lineage(catalog: Catalog, checkpoint: str) -> dict:
    """`checkpoint` is a partition key or a path to a LoRA file."""
    training_set, name = _training_set_of(catalog, checkpoint)
    manifest = _manifest(catalog, training_set)
    current = {
        item_id: catalog.records.read(kind.captions, item_id)
        for kind in ITEM_KINDS
        for item_id in kind.ids(catalog)
    }
    clips = []
    for entry in manifest.captions_by_item().values():
        now = current.get(entry.item_id)
        clips.append(
            {
                "clip": entry.item_id,
                "kind": entry.kind,
                "caption": entry.caption,
                "caption_version": entry.caption_version,
                "origin": entry.caption_origin,
                "held_out": entry.held_out,
                "changed_since": now is None or now.data_version != entry.caption_version,
                "caption_now": now.text if now else None,
            }
        )
    return {"checkpoint": name, "training_set": training_set, "clips": clips}


def clip_lineage(catalog: Catalog, clip_id: str) -> dict:
    """Every checkpoint whose training set held the clip (or still), with the caption it saw."""
    fed = []
    manifests: dict[str, TrainingSetManifest] = {}
    for record_path in sorted(catalog.records.root.joinpath("lora_checkpoints").glob("*.json")):
        record = catalog.records.read("lora_checkpoints", record_path.stem)
        version = record.training_set
        manifests.setdefault(version, _manifest(catalog, version))
        entry = manifests[version].captions_by_item().get(clip_id)
        if entry:
            fed.append(
                {
                    "checkpoint": record_path.stem,
                    "file": record.file,
                    "training_set": record.training_set,
                    "caption": entry.caption,
                    "caption_version": entry.caption_version,
                    "held_out": entry.held_out,
                }
            )
    return {"clip": clip_id, "checkpoints": fed}


def _training_set_of(catalog: Catalog, checkpoint: str) -> tuple[str, str]:
    record = catalog.records.read("lora_checkpoints", checkpoint)
    if record:
        return record.training_set, checkpoint
    path = Path(checkpoint)
    if path.is_file() or path.is_dir():  # a LoRA file, or a full fine-tune's model folder
        training_set = read_lora_header(path).get(HEADER_TRAINING_SET)
        if not training_set:
            raise UserError(f"{path}: this LoRA's header names no training set (not ours?)")
        return training_set, str(path)
    raise UserError(
        f"{checkpoint}: neither a checkpoint of this project nor a LoRA file. "
        "See `wan-lora status` for checkpoint partition keys."
    )


def _manifest(catalog: Catalog, version: str) -> TrainingSetManifest:
    try:
        return load_manifest(catalog, version)
    except FileNotFoundError:
        raise UserError(
            f"{catalog.project.root}/out/training_set/{version}.json: the manifest of that "
            "training set is gone"
        ) from None
