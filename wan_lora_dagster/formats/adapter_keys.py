"""LoRA, DoRA, LoKr and LoHa files in the key names ComfyUI loads, converted from and to peft's.

A file's tensors are named `lora_unet_` + the musubi / Wan module (formats.lora: e.g.
`lora_unet_blocks_0_self_attn_q`) + a LyCORIS suffix, the names ComfyUI's LoRA loader reads
(comfy/lora.py `model_lora_keys_unet` maps `lora_unet_<module with _>` to each Wan weight;
`load_lora` and comfy/weight_adapter/lora.py, lokr.py, loha.py read the suffixes):

- LoRA: `lora_down.weight`, `lora_up.weight`, `alpha` (scale alpha / rank), DoRA adds `dora_scale`
- LoKr: `lokr_w1` or `lokr_w1_a`/`lokr_w1_b`, `lokr_w2` or `lokr_w2_a`/`lokr_w2_b`; ComfyUI scales
  by alpha / rank only when a factor is split in two and `alpha` is given, so our LoKr files
  carry peft's scale inside `lokr_w1` and no `alpha` (scale 1 in every loader)
- LoHa: `hada_w1_a`, `hada_w1_b`, `hada_w2_a`, `hada_w2_b`, `alpha` (scale alpha / rank)

diffusers' Wan loader reads the LoRA keys only (its `_convert_musubi_wan_lora_to_diffusers`);
`file_to_peft` gives the other kinds in the peft names its `load_lora_adapter` (LoKr, DoRA) and
peft itself (LoHa) take, every scale folded into the weights (peft scale 1).
"""

from __future__ import annotations

import re

import torch

from wan_lora_dagster.formats.lora import DIFFUSERS_TO_MUSUBI, MUSUBI_PREFIX, peft_to_musubi

# musubi-tuner's --network_module of each network (commit 30c658c, docs/loha_lokr.md), also
# written to a file's ss_network_module as musubi writes it
NETWORK_MODULES = {"lora": "networks.lora_wan", "lokr": "networks.lokr", "loha": "networks.loha"}
_SAME_NAME = ("lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b")
_SAME_NAME += tuple(f"hada_w{i}_{ab}" for i in (1, 2) for ab in "ab")
# peft's tensor names -> the file's (a DoRA magnitude becomes dora_scale, see engines.adapters)
PEFT_TO_FILE_SUFFIX = {
    "lora_A.weight": "lora_down.weight",
    "lora_B.weight": "lora_up.weight",
    "lora_magnitude_vector": "dora_scale",
    **{name: name for name in _SAME_NAME},
}
FILE_TO_PEFT_SUFFIX = {file: peft for peft, file in PEFT_TO_FILE_SUFFIX.items()}
_MUSUBI_TO_DIFFUSERS = {musubi: diffusers for diffusers, musubi in DIFFUSERS_TO_MUSUBI.items()}

_PEFT_KEY = re.compile(
    r"^blocks\.(\d+)\.(.+?)\.(" + "|".join(map(re.escape, PEFT_TO_FILE_SUFFIX)) + ")$"
)
_FILE_KEY = re.compile(r"^lora_unet_blocks_(\d+)_(\w+?)\.(.+)$")


def network_of_keys(keys) -> str:
    """ "lokr", "loha" or "lora", told by the tensor names (as ComfyUI tells them)."""
    names = " ".join(keys)
    return "lokr" if ".lokr_" in names else "loha" if ".hada_" in names else "lora"


def file_module(peft_module: str, block: str) -> str:
    """`attn1.to_q` of block 0 -> `lora_unet_blocks_0_self_attn_q`."""
    if peft_module not in DIFFUSERS_TO_MUSUBI:
        raise ValueError(
            f"blocks.{block}.{peft_module}: no Wan module of that name in ComfyUI's LoRA keys; "
            f"supported: {', '.join(DIFFUSERS_TO_MUSUBI)}"
        )
    return f"{MUSUBI_PREFIX}blocks_{block}_{DIFFUSERS_TO_MUSUBI[peft_module]}"


def peft_to_file(
    state_dict: dict[str, torch.Tensor], network: str, alpha: float, rank: int
) -> dict[str, torch.Tensor]:
    """peft weights (`get_peft_model_state_dict`, no prefix) -> the file's names and scales.

    A DoRA magnitude must have been turned into a dora_scale already (engines.adapters). LoKr's
    scale alpha / rank is folded into lokr_w1 (or lokr_w1_a); LoRA and LoHa get an `alpha`.
    """
    if network == "lora" and not any(key.endswith("lora_magnitude_vector") for key in state_dict):
        return peft_to_musubi(state_dict, alpha)  # a plain LoRA, as it always was
    converted: dict[str, torch.Tensor] = {}
    for key, tensor in state_dict.items():
        match = _PEFT_KEY.match(key)
        if match is None:
            raise ValueError(f"not a peft adapter weight of a Wan transformer block: {key!r}")
        block, module, suffix = match.groups()
        name = file_module(module, block)
        if network == "lokr" and suffix in ("lokr_w1", "lokr_w1_a"):
            tensor = tensor * (alpha / rank)
        converted[f"{name}.{PEFT_TO_FILE_SUFFIX[suffix]}"] = tensor
        if network != "lokr":
            converted[f"{name}.alpha"] = torch.tensor(float(alpha), dtype=torch.float32)
    return converted


def file_to_peft(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A file's tensors -> peft names (`blocks.N.<diffusers module>.<peft tensor>`), each module's
    scale folded in as ComfyUI applies it (LoRA and LoHa: alpha / rank; LoKr: alpha / rank of
    the split factor, else 1). Keys that are no module's (musubi's `lokr_factor`) are left out.
    A DoRA dora_scale keeps its file name and value: engines.adapters needs the base weights."""
    modules: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for key, tensor in state_dict.items():
        match = _FILE_KEY.match(key)
        if match is None:
            continue
        block, module, suffix = match.groups()
        if module not in _MUSUBI_TO_DIFFUSERS or (
            suffix not in FILE_TO_PEFT_SUFFIX and suffix != "alpha"
        ):
            raise ValueError(f"{key!r}: not a key of a Wan LoRA, LoKr or LoHa that ComfyUI loads")
        modules.setdefault((block, _MUSUBI_TO_DIFFUSERS[module]), {})[suffix] = tensor
    converted: dict[str, torch.Tensor] = {}
    for (block, module), tensors in modules.items():
        scale, folded_into = _file_scale(tensors)
        for suffix, tensor in tensors.items():
            if suffix == "alpha":
                continue
            value = tensor * scale if suffix == folded_into else tensor
            name = "dora_scale" if suffix == "dora_scale" else FILE_TO_PEFT_SUFFIX[suffix]
            converted[f"blocks.{block}.{module}.{name}"] = value
    return converted


def _file_scale(tensors: dict[str, torch.Tensor]) -> tuple[float, str]:
    """(the scale ComfyUI multiplies a module's delta by, the tensor it is folded into)."""
    alpha = float(tensors["alpha"].item()) if "alpha" in tensors else None
    if "lora_down.weight" in tensors:
        rank = tensors["lora_down.weight"].shape[0]
        return (1.0 if alpha is None else alpha / rank), "lora_down.weight"
    if "hada_w1_b" in tensors:
        return (1.0 if alpha is None else alpha / tensors["hada_w1_b"].shape[0]), "hada_w1_a"
    first = "lokr_w1" if "lokr_w1" in tensors else "lokr_w1_a"
    split = (
        "lokr_w2_b" if "lokr_w2_b" in tensors else "lokr_w1_b" if "lokr_w1_b" in tensors else None
    )
    if alpha is None or split is None:
        return 1.0, first
    return alpha / tensors[split].shape[0], first
