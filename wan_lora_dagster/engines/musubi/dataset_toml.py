"""musubi-tuner's dataset config, written from our dataset sections, with JSONL item lists.

The schema is musubi-tuner's `src/musubi_tuner/dataset/config_utils.py` (`ConfigSanitizer`, commit
30c658c): a `[[datasets]]` table per section with `video_jsonl_file` or `image_jsonl_file` (one
JSON object a line: `{"video_path"|"image_path": ..., "caption": ...}`, read by
`dataset/datasources.py`), `cache_directory`, `resolution` ([width, height]), `batch_size`,
`num_repeats`, `enable_bucket`, `bucket_no_upscale`, and for videos `target_frames`,
`frame_extraction`, `frame_stride`, `frame_sample`, `max_frames`. Image tables must not carry the
video keys: its schema rejects unknown keys.

Naming facts we rely on (`dataset/image_video_dataset.py`): a cache file is named after the
basename of the item's path without its extension; training globs `*_wan.safetensors` in
`cache_directory` and expects each item's text cache `<item>_wan_te.safetensors` in the SAME
folder. Lists, not folders, keep musubi to exactly the items we name.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from wan_lora_dagster.engines.base import TrainRequest
from wan_lora_dagster.errors import EngineError
from wan_lora_dagster.formats.cache_files import (
    CacheFileError,
    parse_latent_cache_name,
    text_cache_name,
)
from wan_lora_dagster.formats.manifest import TrainingSetManifest
from wan_lora_dagster.recipe.datasets import DatasetSection

# docs/wan.md caches text with `--batch_size 16`; the dataset's batch size is what batches captions.
TEXT_BATCH_SIZE = 16
# musubi opens no item file when it caches captions (datasources.py, caption_only) or trains
# (prepare_for_training globs the caches): there a path only names the item, by its basename.
PLACEHOLDER_SUFFIX = ".item"

JsonlRow = dict[str, str]


@dataclass(frozen=True)
class DatasetGroup:
    """One `[[datasets]]` table: the items of one section, cached in one folder.

    settings: the section's musubi keys (see `section_settings`) without the list and folder.
    rows: the JSONL lines, one item each.
    """

    name: str
    settings: dict
    cache_dir: Path
    rows: tuple[JsonlRow, ...]
    is_image: bool = False


def section_settings(section: DatasetSection) -> dict:
    """Our section as musubi's keys; images take no frame keys (config_utils.py rejects them)."""
    settings = {
        "resolution": list(section.resolution),
        "batch_size": section.batch_size,
        "num_repeats": section.num_repeats,
        "enable_bucket": section.enable_bucket,
        "bucket_no_upscale": section.bucket_no_upscale,
    }
    if section.source == "stills":
        return settings
    return {
        **settings,
        "target_frames": list(section.target_frames),
        "frame_extraction": section.frame_extraction,
        "frame_stride": section.frame_stride,
        "frame_sample": section.frame_sample,
        "max_frames": section.max_frames,
    }


def media_row(section: DatasetSection, media_path: Path, caption: str = "") -> JsonlRow:
    key = "image_path" if section.source == "stills" else "video_path"
    return {key: str(media_path), "caption": caption}


def placeholder_path(folder: Path, item_id: str) -> Path:
    return folder / f"{item_id}{PLACEHOLDER_SUFFIX}"


def named_media(item_id: str, media_path: Path, links_dir: Path) -> Path:
    """The media under a name whose stem is the item id (musubi names its caches by stem)."""
    if media_path.stem == item_id:
        return media_path
    link = links_dir / f"{item_id}{media_path.suffix}"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.unlink(missing_ok=True)
    _link(media_path, link)
    return link


def section_group(
    section: DatasetSection, cache_dir: Path, rows: Iterable[JsonlRow]
) -> DatasetGroup:
    return DatasetGroup(
        section.name,
        section_settings(section),
        cache_dir,
        tuple(rows),
        is_image=section.source == "stills",
    )


def caption_group(name: str, cache_dir: Path, captions: dict[str, str]) -> DatasetGroup:
    """Captions to encode, as a video list whose paths are never opened (item id -> caption)."""
    rows = (
        {"video_path": str(placeholder_path(cache_dir, item_id)), "caption": caption}
        for item_id, caption in captions.items()
    )
    return DatasetGroup(name, {"batch_size": TEXT_BATCH_SIZE}, cache_dir, tuple(rows))


def write_dataset_config(config_path: Path, groups: Sequence[DatasetGroup]) -> Path:
    """Write `config_path` and one `<stem>-NN-<name>.jsonl` per group beside it."""
    folders = [group.cache_dir.resolve() for group in groups]
    if len(set(folders)) != len(folders):
        # config_utils.generate_dataset_group_by_blueprint refuses shared cache folders.
        raise EngineError(f"musubi-tuner needs one cache folder per dataset section, got {folders}")
    config_path.parent.mkdir(parents=True, exist_ok=True)
    for old_list in config_path.parent.glob(f"{config_path.stem}-*.jsonl"):
        old_list.unlink()
    tables = []
    for index, group in enumerate(groups):
        jsonl = config_path.with_name(f"{config_path.stem}-{index:02d}-{group.name}.jsonl")
        jsonl.write_text("".join(json.dumps(row) + "\n" for row in group.rows), encoding="utf-8")
        list_key = "image_jsonl_file" if group.is_image else "video_jsonl_file"
        tables.append(
            {list_key: str(jsonl), "cache_directory": str(group.cache_dir), **group.settings}
        )
    config_path.write_text(to_toml({"datasets": tables}), encoding="utf-8")
    return config_path


def stage_training_set(
    manifest: TrainingSetManifest,
    sections: Sequence[DatasetSection],
    staging_dir: Path,
    require_files: bool = True,
) -> list[DatasetGroup]:
    """Link the manifest's training entries into one folder per section, as musubi trains them.

    musubi trains on every latent in a cache folder and looks for its text cache beside it, while
    the graph keeps latents per section and texts apart, and keeps held-out clips in the same
    folders: a folder of links holds exactly the manifest's entries, latents and texts together.
    require_files=False links to caches not made yet (a dry run shows the commands that make them).
    """
    by_name = {section.name: section for section in sections}
    entries = manifest.training_entries()
    unknown = sorted({entry.section for entry in entries} - by_name.keys())
    if unknown:
        raise EngineError(
            f"training-set entries name dataset sections {unknown} not in wan_lora.toml"
        )
    if require_files:
        _require_files(manifest, entries)
    if staging_dir.exists():
        shutil.rmtree(staging_dir)
    groups = []
    for name, section in by_name.items():
        members = [entry for entry in entries if entry.section == name]
        if not members:
            continue
        folder = staging_dir / name
        folder.mkdir(parents=True)
        for entry in members:
            for latent in entry.latent_files:
                _link(manifest.resolve(latent), folder / Path(latent).name)
            _link(manifest.resolve(entry.text_file), folder / text_cache_name(entry.item_id))
        rows = (
            media_row(section, placeholder_path(folder, entry.item_id), entry.caption)
            for entry in members
        )
        groups.append(section_group(section, folder, rows))
    return groups


def latent_files(cache_dir: Path, item_id: str) -> list[Path]:
    """The item's latent caches in cache_dir, by the name musubi gives them."""
    if not cache_dir.is_dir():
        return []
    return sorted(
        path for path in cache_dir.glob("*_wan.safetensors") if _item_of(path.name) == item_id
    )


def latent_items(cache_dir: Path) -> set[str]:
    if not cache_dir.is_dir():
        return set()
    return {_item_of(entry.name) for entry in os.scandir(cache_dir)} - {None}


def _item_of(name: str) -> str | None:
    try:
        return parse_latent_cache_name(name).item_id
    except CacheFileError:
        return None


def to_toml(document: dict) -> str:
    """TOML for musubi's config: top-level tables and arrays of tables of plain values.

    Read back by musubi with the `toml` package (0.10.2), so nothing newer than TOML 0.5 is used.
    """
    lines = ["# kohya-ss/musubi-tuner dataset config, written by wan-lora-dagster", ""]
    for key, value in document.items():
        tables = value if isinstance(value, list) else [value]
        header = f"[[{key}]]" if isinstance(value, list) else f"[{key}]"
        for table in tables:
            lines.append(header)
            lines += [f"{name} = {_toml_value(item)}" for name, item in table.items()]
            lines.append("")
    return "\n".join(lines)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        # JSON string escapes are TOML basic-string escapes; TOML also bans a raw DEL.
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def _require_files(manifest: TrainingSetManifest, entries) -> None:
    missing = [
        str(manifest.resolve(name))
        for entry in entries
        for name in (*entry.latent_files, entry.text_file)
        if not manifest.resolve(name).is_file()
    ]
    if missing:
        raise EngineError(
            f"{missing[0]}: cache file of the training set not found"
            f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}; "
            "materialize latent_cache and text_cache first."
        )


def _link(target: Path, link: Path) -> None:
    os.symlink(target.resolve(), link)


def training_config(request: TrainRequest, run_dir: Path, require_files: bool = True) -> Path:
    """The training set's caches staged under the run's folder, and the dataset config naming
    them."""
    groups = stage_training_set(
        request.manifest, request.sections, run_dir / "caches", require_files
    )
    if not groups:
        raise EngineError("the training set has no training entries (all held out or empty)")
    return write_dataset_config(run_dir / "dataset.toml", groups)
