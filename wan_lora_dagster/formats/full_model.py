"""A fully fine-tuned Wan transformer on disk: a diffusers-format folder with its lineage, and the
single file ComfyUI loads.

The folder is what `WanTransformer3DModel.save_pretrained` writes (`config.json`, safetensors
shards and their index), so `WanTransformer3DModel.from_pretrained(folder)` and
`WanPipeline.from_pretrained(base, transformer=...)` load it; beside them `wan_lora.json` holds
the header a LoRA file carries in its safetensors metadata (the training set, the settings, the
loss), because save_pretrained writes no metadata of ours.

The single file has the key names of Wan's original code, which ComfyUI's Wan model
(comfy/ldm/wan/model.py) uses and its model detection looks for (`head.modulation`,
`blocks.0.ffn.0.weight`, `patch_embedding.weight`): diffusers' own converter
(`convert_wan_transformer_to_diffusers` in diffusers' single_file_utils) reads such a file into a
diffusers model, and the tables below are its renames read backwards, one module path at a time
so that each name maps one way and back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors import safe_open

from wan_lora_dagster.disk_full import write_text_atomic
from wan_lora_dagster.formats.cache_files import MODEL_HEADER_FILE as HEADER_FILE
from wan_lora_dagster.formats.cache_files import read_lora_header
from wan_lora_dagster.formats.musubi_cache import write_safetensors

INDEX_FILE = "diffusion_pytorch_model.safetensors.index.json"
SINGLE_FILE = "diffusion_pytorch_model.safetensors"

# Module paths inside `blocks.N.` (diffusers -> Wan's original names).
_BLOCK_MODULES = {
    "attn1.to_q": "self_attn.q",
    "attn1.to_k": "self_attn.k",
    "attn1.to_v": "self_attn.v",
    "attn1.to_out.0": "self_attn.o",
    "attn1.norm_q": "self_attn.norm_q",
    "attn1.norm_k": "self_attn.norm_k",
    "attn2.to_q": "cross_attn.q",
    "attn2.to_k": "cross_attn.k",
    "attn2.to_v": "cross_attn.v",
    "attn2.to_out.0": "cross_attn.o",
    "attn2.norm_q": "cross_attn.norm_q",
    "attn2.norm_k": "cross_attn.norm_k",
    "attn2.add_k_proj": "cross_attn.k_img",  # image-to-video: CLIP features
    "attn2.add_v_proj": "cross_attn.v_img",
    "attn2.norm_added_k": "cross_attn.norm_k_img",
    "norm2": "norm3",  # the cross-attention norm (Wan numbers it 3, diffusers 2)
    "ffn.net.0.proj": "ffn.0",
    "ffn.net.2": "ffn.2",
}
# Module paths outside the blocks.
_TOP_MODULES = {
    "patch_embedding": "patch_embedding",
    "condition_embedder.text_embedder.linear_1": "text_embedding.0",
    "condition_embedder.text_embedder.linear_2": "text_embedding.2",
    "condition_embedder.time_embedder.linear_1": "time_embedding.0",
    "condition_embedder.time_embedder.linear_2": "time_embedding.2",
    "condition_embedder.time_proj": "time_projection.1",
    "condition_embedder.image_embedder.norm1": "img_emb.proj.0",
    "condition_embedder.image_embedder.ff.net.0.proj": "img_emb.proj.1",
    "condition_embedder.image_embedder.ff.net.2": "img_emb.proj.3",
    "condition_embedder.image_embedder.norm2": "img_emb.proj.4",
    "proj_out": "head.head",
}
# Parameters that are no module's: the modulation tables.
_BLOCK_TABLES = {"scale_shift_table": "modulation"}
_TOP_TABLES = {"scale_shift_table": "head.modulation"}
_BLOCK_KEY = re.compile(r"^blocks\.(\d+)\.(.+)$")


def _renamed(key: str, modules: dict[str, str], tables: dict[str, str]) -> str | None:
    if key in tables:
        return tables[key]
    module, _, tensor = key.rpartition(".")
    return f"{modules[module]}.{tensor}" if module in modules else None


def _convert(key: str, modules, tables, block_modules, block_tables) -> str:
    block = _BLOCK_KEY.match(key)
    if block:
        renamed = _renamed(block.group(2), block_modules, block_tables)
        renamed = renamed and f"blocks.{block.group(1)}.{renamed}"
    else:
        renamed = _renamed(key, modules, tables)
    if renamed is None:
        raise ValueError(f"{key!r}: not a tensor of a Wan transformer this export knows")
    return renamed


def diffusers_to_original(key: str) -> str:
    """A diffusers WanTransformer3DModel state-dict key -> Wan's original (ComfyUI's) name."""
    return _convert(key, _TOP_MODULES, _TOP_TABLES, _BLOCK_MODULES, _BLOCK_TABLES)


def _inverse(table: dict[str, str]) -> dict[str, str]:
    return {original: diffusers for diffusers, original in table.items()}


def original_to_diffusers(key: str) -> str:
    """Wan's original (ComfyUI's) name -> the diffusers key: diffusers_to_original's inverse."""
    return _convert(
        key,
        _inverse(_TOP_MODULES),
        _inverse(_TOP_TABLES),
        _inverse(_BLOCK_MODULES),
        _inverse(_BLOCK_TABLES),
    )


def write_model_header(folder: Path, header: dict[str, str]) -> None:
    bad = sorted(key for key, value in header.items() if not isinstance(value, str))
    if bad:
        raise ValueError(f"header values must be strings, as in a LoRA file's: {bad}")
    write_text_atomic(Path(folder) / HEADER_FILE, json.dumps(header, indent=1, sort_keys=True))


def is_model_folder(path: Path) -> bool:
    return Path(path).is_dir() and (Path(path) / "config.json").is_file()


def weight_files(folder: Path) -> list[Path]:
    """The safetensors files of a saved transformer folder: its shards, or its one file."""
    folder = Path(folder)
    index = folder / INDEX_FILE
    if index.is_file():
        shards = json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()
        return [folder / name for name in sorted(set(shards))]
    if (folder / SINGLE_FILE).is_file():
        return [folder / SINGLE_FILE]
    raise ValueError(f"{folder}: no {SINGLE_FILE} or {INDEX_FILE}: not a saved transformer")


def model_tensors(
    folder: Path, names: set[str] | None = None
) -> Iterator[tuple[str, torch.Tensor]]:
    """(diffusers key, tensor) of the folder's weights, on the CPU; only `names` when given."""
    for path in weight_files(folder):
        with safe_open(path, framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 (a safe_open handle is no mapping)
                if names is None or key in names:
                    yield key, handle.get_tensor(key)


def export_single_file(folder: Path, target: Path, metadata: dict[str, str]) -> Path:
    """The folder's weights as one safetensors file with Wan's original key names (ComfyUI's
    "Load Diffusion Model"), its header the folder's lineage plus `metadata`."""
    tensors = {diffusers_to_original(key): tensor for key, tensor in model_tensors(folder)}
    write_safetensors(Path(target), tensors, {**read_lora_header(folder), **metadata})
    return Path(target)
