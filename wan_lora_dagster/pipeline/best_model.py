"""`best_lora` for a full fine-tune: the chosen checkpoint's model, exported twice under out/best/.

- `out/best/model/`: the diffusers transformer folder as trained (its shards, config.json and
  wan_lora.json, naming the checkpoint), for `WanTransformer3DModel.from_pretrained` and
  `WanPipeline.from_pretrained(base, transformer=...)`;
- `out/best/wan_model.safetensors`: one file with Wan's original key names, for ComfyUI's
  "Load Diffusion Model", its header the lineage a LoRA file carries (`wan-lora lineage` reads it).

The folder is copied, not linked: a checkpoint is never rewritten, and an exported model edited
in place must not change the checkpoint it came from.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from wan_lora_dagster.disk_full import building
from wan_lora_dagster.formats.cache_files import MODEL_HEADER_FILE, read_lora_header

BEST_MODEL_FOLDER = "model"
BEST_MODEL_FILE = "wan_model.safetensors"
CHECKPOINT_FIELD = "wan_lora.checkpoint"


def export_model(source: Path, best_dir: Path, key: str) -> tuple[Path, Path]:
    """(the folder, the single file) of checkpoint `key`'s model folder `source`."""
    # formats.full_model imports torch: only a full fine-tune's export pays for it
    from wan_lora_dagster.formats.full_model import (
        export_single_file,
        is_model_folder,
        write_model_header,
    )

    folder = best_dir / BEST_MODEL_FOLDER
    shutil.rmtree(folder, ignore_errors=True)  # building() would keep a previous whole one
    with building(folder, is_model_folder) as partial:
        shutil.rmtree(partial)
        shutil.copytree(source, partial, ignore=shutil.ignore_patterns(MODEL_HEADER_FILE))
        write_model_header(partial, {**read_lora_header(source), CHECKPOINT_FIELD: key})
    single = export_single_file(source, best_dir / BEST_MODEL_FILE, {CHECKPOINT_FIELD: key})
    return folder, single


def remove_other_exports(best_dir: Path, keep: set[str]) -> None:
    """A previous best of the other kind (a LoRA's file, or a model's folder and file)."""
    if not best_dir.is_dir():
        return
    for path in best_dir.iterdir():
        is_export = path.name in (BEST_MODEL_FOLDER, BEST_MODEL_FILE) or (
            path.name.startswith("adapter_model") and path.suffix == ".safetensors"
        )
        if is_export and path.name not in keep:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
