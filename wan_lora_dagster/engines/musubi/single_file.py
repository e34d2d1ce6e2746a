"""A Wan 2.1 DiT from one musubi-tuner / ComfyUI-format safetensors file (`[training] dit`),
loaded into diffusers' WanTransformer3DModel for forward passes (the held-out loss).

diffusers' `from_single_file` converts the original key names (`blocks.0.self_attn.q.weight`,
optionally under `model.diffusion_model.`) itself; the model config it would fetch from the Hub
is instead read off the file's tensor shapes, so nothing is downloaded and any size loads.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import torch
from diffusers import WanTransformer3DModel

from wan_lora_dagster.engines.musubi.checkpoints import read_safetensors_header
from wan_lora_dagster.engines.wan_models import store_in_fp8
from wan_lora_dagster.errors import EngineError

ORIGINAL_PREFIX = "model.diffusion_model."
WAN_HEAD_DIM = 128  # every Wan 2.1 and 2.2 DiT: 1536 = 12 x 128, 5120 = 40 x 128
HEAD_DIM_FIELD = "attention_head_dim"  # header field of a file of other heads (the tiny model)
_BLOCK = re.compile(r"^blocks\.(\d+)\.")


def transformer_config(path: Path) -> dict:
    """WanTransformer3DModel's config from the file's header: shapes, not tensors, are read."""
    try:
        _, header = read_safetensors_header(path)
    except (OSError, ValueError, struct.error) as error:
        raise EngineError(f"{path}: not a readable safetensors DiT file ({error})") from None
    metadata = header.pop("__metadata__", None) or {}
    shapes = {key.removeprefix(ORIGINAL_PREFIX): entry["shape"] for key, entry in header.items()}
    try:
        dim, in_channels, *patch = shapes["patch_embedding.weight"]
        blocks = {int(match.group(1)) for key in shapes if (match := _BLOCK.match(key))}
        head_dim = int(metadata.get(HEAD_DIM_FIELD, WAN_HEAD_DIM))
        image_to_video = "img_emb.proj.1.weight" in shapes
        return {
            "patch_size": patch,
            "num_attention_heads": dim // head_dim,
            "attention_head_dim": head_dim,
            "in_channels": in_channels,
            "out_channels": shapes["head.head.weight"][0] // (patch[0] * patch[1] * patch[2]),
            "text_dim": shapes["text_embedding.0.weight"][1],
            "freq_dim": shapes["time_embedding.0.weight"][1],
            "ffn_dim": shapes["blocks.0.ffn.0.weight"][0],
            "num_layers": max(blocks) + 1,
            "cross_attn_norm": "blocks.0.norm3.weight" in shapes,
            "qk_norm": "rms_norm_across_heads",
            "image_dim": shapes["img_emb.proj.1.weight"][1] if image_to_video else None,
            "added_kv_proj_dim": dim if image_to_video else None,
        }
    except (KeyError, ValueError) as error:
        raise EngineError(
            f"{path}: not a Wan 2.1 DiT in musubi-tuner's format (no tensor {error})"
        ) from None


def load_transformer(
    path: Path, config_dir: Path, dtype: torch.dtype, fp8: bool
) -> WanTransformer3DModel:
    """Loaded into CPU memory for inference only, stored in fp8 there when `fp8` (half the bytes
    of bf16: a 14B fits a 24 GB card as it does in musubi's training); the caller moves it.

    config_dir: a folder for the config.json that from_single_file reads the model shape from.
    """
    config_dir.mkdir(parents=True, exist_ok=True)
    config = {"_class_name": "WanTransformer3DModel", **transformer_config(path)}
    (config_dir / "config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
    transformer = WanTransformer3DModel.from_single_file(
        str(path), config=str(config_dir), torch_dtype=dtype, local_files_only=True
    )
    transformer = transformer.eval().requires_grad_(False)
    if fp8:
        store_in_fp8(transformer, dtype)
    return transformer
