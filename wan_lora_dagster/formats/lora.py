"""Wan LoRA files with musubi-tuner / ComfyUI key names, converted from and to peft's names.

musubi-tuner (commit 30c658c, `networks/lora_wan.py` and `networks/lora.py`, `LoRANetwork`) wraps
every Linear inside a `WanAttentionBlock` and names it `lora_unet_` + its module path with dots
replaced by underscores: `lora_unet_blocks_0_self_attn_q`, with tensors `.lora_down.weight`
(rank, in), `.lora_up.weight` (out, rank) and `.alpha` (a 0-dim tensor; scale = alpha / rank, as
peft's lora_alpha / r). diffusers 0.42 loads such files in `WanLoraLoaderMixin.lora_state_dict`
through `_convert_musubi_wan_lora_to_diffusers`, which needs, in every block from 0 up, all of
self_attn q/k/v/o, cross_attn q/k/v/o and ffn_0/ffn_2, each with its alpha: train on
`PEFT_TARGET_MODULES` for a file that loads everywhere.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from wan_lora_dagster.formats.musubi_cache import (
    write_safetensors,
)

MUSUBI_PREFIX = "lora_unet_"

# diffusers WanTransformer3DModel module (inside blocks.N) -> musubi WanAttentionBlock module.
DIFFUSERS_TO_MUSUBI = {
    "attn1.to_q": "self_attn_q",
    "attn1.to_k": "self_attn_k",
    "attn1.to_v": "self_attn_v",
    "attn1.to_out.0": "self_attn_o",
    "attn2.to_q": "cross_attn_q",
    "attn2.to_k": "cross_attn_k",
    "attn2.to_v": "cross_attn_v",
    "attn2.to_out.0": "cross_attn_o",
    "attn2.add_k_proj": "cross_attn_k_img",  # I2V image-context projections
    "attn2.add_v_proj": "cross_attn_v_img",
    "ffn.net.0.proj": "ffn_0",
    "ffn.net.2": "ffn_2",
}
_MUSUBI_TO_DIFFUSERS = {musubi: diffusers for diffusers, musubi in DIFFUSERS_TO_MUSUBI.items()}

PEFT_TARGET_MODULES = ("to_q", "to_k", "to_v", "to_out.0", "ffn.net.0.proj", "ffn.net.2")
"""peft `target_modules` for a Wan T2V LoRA that ComfyUI, musubi-tuner and diffusers all load."""

_PEFT_PREFIXES = ("base_model.model.", "transformer.")
_PEFT_KEY = re.compile(r"^blocks\.(\d+)\.(.+)\.lora_([AB])\.weight$")
_MUSUBI_KEY = re.compile(
    r"^lora_unet_blocks_(\d+)_(.+)\.(lora_down\.weight|lora_up\.weight|alpha)$"
)
_PEFT_TO_MUSUBI_TENSOR = {"A": "lora_down.weight", "B": "lora_up.weight"}
_MUSUBI_TO_PEFT_TENSOR = {"lora_down.weight": "A", "lora_up.weight": "B"}


def peft_to_musubi(state_dict: dict[str, torch.Tensor], alpha: float) -> dict[str, torch.Tensor]:
    """peft LoRA weights of a diffusers WanTransformer3DModel -> musubi-tuner names.

    state_dict: as `peft.get_peft_model_state_dict` returns it, e.g.
    `blocks.0.attn1.to_q.lora_A.weight` (rank, in) and `...lora_B.weight` (out, rank), optionally
    prefixed by `transformer.` or `base_model.model.`. alpha: the LoRA config's lora_alpha.
    Tensors are passed through unchanged (same values, same dtype); each module gets a float32
    `.alpha`.
    """
    converted: dict[str, torch.Tensor] = {}
    for key, tensor in state_dict.items():
        block, module, matrix = _parse_peft_key(_strip_peft_prefix(key))
        name = f"{MUSUBI_PREFIX}blocks_{block}_{DIFFUSERS_TO_MUSUBI[module]}"
        converted[f"{name}.{_PEFT_TO_MUSUBI_TENSOR[matrix]}"] = tensor
        converted[f"{name}.alpha"] = torch.tensor(float(alpha), dtype=torch.float32)
    _require_pairs(converted, "lora_down.weight", "lora_up.weight")
    return converted


def musubi_to_peft(state_dict: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], float]:
    """musubi-tuner LoRA weights -> (peft state dict without prefix, lora_alpha).

    Every module must share one alpha, since a peft LoraConfig has one lora_alpha.
    """
    converted: dict[str, torch.Tensor] = {}
    alphas: dict[str, float] = {}
    for key, tensor in state_dict.items():
        match = _MUSUBI_KEY.match(key)
        if match is None or match.group(2) not in _MUSUBI_TO_DIFFUSERS:
            raise ValueError(f"not a musubi-tuner Wan LoRA key: {key!r}")
        block, module, kind = match.groups()
        if kind == "alpha":
            alphas[f"blocks_{block}_{module}"] = float(tensor.item())
            continue
        diffusers_module = _MUSUBI_TO_DIFFUSERS[module]
        converted[
            f"blocks.{block}.{diffusers_module}.lora_{_MUSUBI_TO_PEFT_TENSOR[kind]}.weight"
        ] = tensor
    _require_pairs(converted, "lora_A.weight", "lora_B.weight")
    modules = {key.rsplit(".", 2)[0] for key in state_dict if not key.endswith(".alpha")}
    missing = sorted(modules - {MUSUBI_PREFIX + name for name in alphas})
    if missing:
        raise ValueError(f"LoRA modules without `.alpha`: {missing[:3]}")
    distinct = sorted(set(alphas.values()))
    if len(distinct) != 1:
        raise ValueError(
            f"modules have different alphas {distinct}; peft needs a single lora_alpha"
        )
    return converted, distinct[0]


def save_lora(path: Path, state_dict: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Write a LoRA file atomically; metadata values must be strings (safetensors' rule)."""
    write_safetensors(Path(path), state_dict, metadata)


def _strip_peft_prefix(key: str) -> str:
    for prefix in _PEFT_PREFIXES:
        key = key.removeprefix(prefix)
    return key


def _parse_peft_key(key: str) -> tuple[str, str, str]:
    match = _PEFT_KEY.match(key)
    if match is None:
        raise ValueError(
            f"not a peft LoRA weight of a Wan transformer block: {key!r} (expected "
            "blocks.N.<module>.lora_A.weight / lora_B.weight, as get_peft_model_state_dict gives)"
        )
    block, module, matrix = match.groups()
    if module not in DIFFUSERS_TO_MUSUBI:
        raise ValueError(
            f"{key!r}: musubi-tuner's Wan LoRA has no module for {module!r}; "
            f"supported: {', '.join(DIFFUSERS_TO_MUSUBI)}"
        )
    return block, module, matrix


def _require_pairs(state_dict: dict[str, torch.Tensor], down: str, up: str) -> None:
    downs = {key.removesuffix(down) for key in state_dict if key.endswith(down)}
    ups = {key.removesuffix(up) for key in state_dict if key.endswith(up)}
    unpaired = sorted(downs ^ ups)
    if unpaired:
        raise ValueError(f"LoRA modules with only one of {down}/{up}: {unpaired[:3]}")
