"""ComfyUI's Wan LoRA loading, restated for tests (read in Comfy-Org/ComfyUI, not copied):

- comfy/lora.py `model_lora_keys_unet`: every model weight `diffusion_model.<path>.weight` is
  addressed as `lora_unet_<path with . -> _>` (and as `diffusion_model.<path>`); Wan's native
  module paths are blocks.N.self_attn.{q,k,v,o}, cross_attn.{q,k,v,o,k_img,v_img}, ffn.{0,2}
  (comfy/ldm/wan/model.py, the same as musubi-tuner's WanAttentionBlock).
- comfy/lora.py `load_lora`: per module, `<key>.alpha` and `<key>.dora_scale`, then each
  weight adapter's `load`; keys no adapter takes are logged "lora key not loaded".
- comfy/weight_adapter/lora.py: `lora_up.weight` @ `lora_down.weight` * alpha / rank.
- comfy/weight_adapter/lokr.py: kron(w1, w2), w1 = lokr_w1 or lokr_w1_a @ lokr_w1_b, w2 alike;
  the scale is alpha / rank of a split factor (w2's if split, else w1's) when alpha is given,
  else 1.
- comfy/weight_adapter/loha.py: (hada_w1_a @ hada_w1_b) * (hada_w2_a @ hada_w2_b) * alpha /
  hada_w1_b rows (1 without alpha).
- comfy/weight_adapter/base.py `weight_decompose` (DoRA): with dora_scale of shape (out, 1),
  (W + delta) * dora_scale / (||W|| per output row + eps); at strength s: W + s * (that - W).
"""

from __future__ import annotations

import torch

WAN_BLOCK_MODULES = (
    *(f"self_attn.{p}" for p in "qkvo"),
    *(f"cross_attn.{p}" for p in ("q", "k", "v", "o", "k_img", "v_img")),
    "ffn.0",
    "ffn.2",
)
ADAPTER_SUFFIXES = {
    "lora": ("lora_up.weight", "lora_down.weight", "lora_mid.weight"),
    "lokr": ("lokr_w1", "lokr_w2", "lokr_w1_a", "lokr_w1_b", "lokr_w2_a", "lokr_w2_b", "lokr_t2"),
    "loha": ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2"),
}
SHARED_SUFFIXES = ("alpha", "dora_scale")


def comfy_key_map(num_blocks: int) -> dict[str, str]:
    """The `lora_unet_...` names ComfyUI maps to a Wan model's weights (model_lora_keys_unet)."""
    return {
        f"lora_unet_blocks_{block}_{module.replace('.', '_')}": (
            f"diffusion_model.blocks.{block}.{module}.weight"
        )
        for block in range(num_blocks)
        for module in WAN_BLOCK_MODULES
    }


def unloaded_keys(tensors: dict[str, torch.Tensor], num_blocks: int) -> list[str]:
    """The keys ComfyUI's load_lora would log as "lora key not loaded"."""
    known = comfy_key_map(num_blocks)
    suffixes = sum(ADAPTER_SUFFIXES.values(), SHARED_SUFFIXES)
    return [
        key
        for key in tensors
        if key.split(".", 1)[0] not in known or key.split(".", 1)[1] not in suffixes
    ]


def merged_weight(
    tensors: dict[str, torch.Tensor], module: str, weight: torch.Tensor, strength: float = 1.0
) -> torch.Tensor:
    """The weight ComfyUI computes for `module` (a `lora_unet_...` name) from `weight`."""
    get = {key.split(".", 1)[1]: value.double() for key, value in tensors.items()
           if key.split(".", 1)[0] == module}  # fmt: skip
    weight = weight.double()
    alpha = get["alpha"].item() if "alpha" in get else None
    if "lora_up.weight" in get:
        delta = get["lora_up.weight"] @ get["lora_down.weight"]
        scale = alpha / get["lora_down.weight"].shape[0] if alpha is not None else 1.0
    elif "hada_w1_a" in get:
        delta = (get["hada_w1_a"] @ get["hada_w1_b"]) * (get["hada_w2_a"] @ get["hada_w2_b"])
        scale = alpha / get["hada_w1_b"].shape[0] if alpha is not None else 1.0
    else:
        w1 = get["lokr_w1"] if "lokr_w1" in get else get["lokr_w1_a"] @ get["lokr_w1_b"]
        w2 = get["lokr_w2"] if "lokr_w2" in get else get["lokr_w2_a"] @ get["lokr_w2_b"]
        rank = get["lokr_w2_b"].shape[0] if "lokr_w2_b" in get else (
            get["lokr_w1_b"].shape[0] if "lokr_w1_b" in get else None)  # fmt: skip
        scale = alpha / rank if alpha is not None and rank is not None else 1.0
        delta = torch.kron(w1, w2).reshape(weight.shape)
    if "dora_scale" not in get:
        return weight + strength * scale * delta
    merged = weight + scale * delta
    norm = weight.norm(dim=1, keepdim=True) + torch.finfo(torch.float32).eps
    decomposed = merged * (get["dora_scale"] / norm)
    return weight + strength * (decomposed - weight)
