"""The adapter a run trains (`[training] network`, `dora`) through peft, the tensors its file
holds, and loading any such file into a transformer for eval and validation.

Files are in ComfyUI's key names (formats.adapter_keys). Loading goes through diffusers' own
loaders where it has them: a LoRA file through `WanPipeline.lora_state_dict` (its musubi-key
conversion) and `load_lora_adapter`; DoRA and LoKr through `load_lora_adapter`, which builds
peft's config from the tensors (WanPipeline.load_lora_weights refuses LoKr: it wants "lora" in
every key); LoHa, which diffusers does not load, through peft's LoHa layers.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import torch
from diffusers import WanPipeline, WanTransformer3DModel
from peft import LoHaConfig, LoKrConfig, LoraConfig, PeftConfig
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict
from safetensors.torch import load_file

from wan_lora_dagster.errors import EngineError
from wan_lora_dagster.formats.adapter_keys import file_to_peft, network_of_keys, peft_to_file
from wan_lora_dagster.formats.expert_lora import lora_experts
from wan_lora_dagster.recipe.training import TrainingSettings
from wan_lora_dagster.tasks import HIGH_NOISE, LOW_NOISE

_MAGNITUDE = "lora_magnitude_vector"
_DORA_SCALE = "dora_scale"


def adapter_config(settings: TrainingSettings, target_modules: list[str]) -> PeftConfig:
    """peft's config of the adapter a run trains, starting as a no-op (its delta is zero)."""
    rank, alpha = settings.network_dim, settings.network_alpha
    if settings.network == "lokr":
        return LoKrConfig(r=rank, alpha=alpha, target_modules=target_modules, init_weights=True)
    if settings.network == "loha":
        return LoHaConfig(r=rank, alpha=alpha, target_modules=target_modules, init_weights=True)
    return LoraConfig(
        r=rank,
        lora_alpha=alpha,
        target_modules=target_modules,
        init_lora_weights=True,
        use_dora=settings.dora,
    )


def require_supported_adapter(settings: TrainingSettings) -> None:
    """Refuse, before any work, an adapter that cannot train with the other settings."""
    if settings.dora and settings.fp8_base:
        raise EngineError(
            "wan_lora.toml: [training] dora = true with fp8_base = true: DoRA rescales by the "
            "norms of the base weights, which peft cannot compute from fp8 storage; set "
            "fp8_base = false or dora = false"
        )


def adapter_file_tensors(
    transformer: WanTransformer3DModel, adapter_name: str, settings: TrainingSettings
) -> dict[str, torch.Tensor]:
    """The trained adapter's tensors in the file's names, float32 on the CPU."""
    state = get_peft_model_state_dict(transformer, adapter_name=adapter_name)
    state = {key: value.detach().float().cpu().contiguous() for key, value in state.items()}
    scale = settings.network_alpha / settings.network_dim
    for key in [key for key in state if key.endswith(_MAGNITUDE)]:
        module = key.removesuffix("." + _MAGNITUDE)
        weight = _base_weight(transformer, module)
        state[key] = _dora_scale(state, module, weight, state[key], scale)
    return peft_to_file(state, settings.network, settings.network_alpha, settings.network_dim)


def load_adapter(transformer: WanTransformer3DModel, path: Path, adapter_name: str) -> None:
    """Add the adapter of the file at `path` to `transformer` as `adapter_name`, at strength 1."""
    tensors = load_file(str(path))
    network = network_of_keys(tensors)
    if network == "lora" and not any(key.endswith(_DORA_SCALE) for key in tensors):
        state_dict = WanPipeline.lora_state_dict(str(path))
        transformer.load_lora_adapter(state_dict, adapter_name=adapter_name, prefix="transformer")
        return
    try:
        state = file_to_peft(tensors)
    except ValueError as error:
        raise EngineError(f"{path}: {error}") from error
    for key in [key for key in state if key.endswith(_DORA_SCALE)]:
        module = key.removesuffix("." + _DORA_SCALE)
        weight = _base_weight(transformer, module)
        state[f"{module}.{_MAGNITUDE}"] = _magnitude(state, module, weight, state.pop(key))
    if network == "loha":
        transformer.add_adapter(_loha_config(state), adapter_name=adapter_name)
        set_peft_model_state_dict(transformer, state, adapter_name=adapter_name)
        return
    prefixed = {f"transformer.{key}": value for key, value in state.items()}
    transformer.load_lora_adapter(prefixed, adapter_name=adapter_name, prefix="transformer")


def load_into_pipeline(pipeline, checkpoint: Path, adapter_name: str) -> None:
    """load_adapter for sampling: a Wan 2.2 A14B expert's file into its transformer."""
    experts = lora_experts(checkpoint) or {HIGH_NOISE: checkpoint}
    for expert, path in experts.items():
        transformer = pipeline.transformer_2 if expert == LOW_NOISE else pipeline.transformer
        load_adapter(transformer, path, adapter_name)


def _loha_config(state: dict[str, torch.Tensor]) -> LoHaConfig:
    """Each module's rank from its tensors; the scale is in the weights (alpha = rank)."""
    modules = {key.rsplit(".", 1)[0] for key in state}
    ranks = {module: state[f"{module}.hada_w1_b"].shape[0] for module in modules}
    rank = Counter(ranks.values()).most_common(1)[0][0]
    pattern = {module: other for module, other in ranks.items() if other != rank}
    return LoHaConfig(
        r=rank,
        alpha=rank,
        rank_pattern=pattern,
        alpha_pattern=pattern,
        target_modules=sorted(ranks),
    )


def _base_weight(transformer: WanTransformer3DModel, module: str) -> torch.Tensor:
    layer = transformer.get_submodule(module)
    weight = getattr(layer, "base_layer", layer).weight
    return weight.detach().float().cpu()


def _merged_row_norms(
    state: dict[str, torch.Tensor], module: str, weight: torch.Tensor, scale: float
) -> torch.Tensor:
    """||W + scale * B A|| of each output row, as peft's DoRA divides by."""
    down, up = state[f"{module}.lora_A.weight"], state[f"{module}.lora_B.weight"]
    return (weight + scale * up.float() @ down.float()).norm(dim=1)


def _dora_scale(state, module: str, weight: torch.Tensor, magnitude, scale) -> torch.Tensor:
    """peft's magnitude -> ComfyUI's per-output-row dora_scale, shape (out, 1).

    ComfyUI (comfy/weight_adapter/base.py `weight_decompose`, dora_scale on the output axis)
    scales W + delta by dora_scale / ||W|| (the base weight's row norms), where peft scales by
    magnitude / ||W + delta||: folding the ratio of the two norms in gives the same weight.
    """
    merged = _merged_row_norms(state, module, weight, scale)
    return (magnitude * weight.norm(dim=1) / merged).unsqueeze(1)


def _magnitude(state, module: str, weight: torch.Tensor, dora_scale) -> torch.Tensor:
    """The inverse of _dora_scale, for a file whose LoRA scale is folded in (scale 1)."""
    merged = _merged_row_norms(state, module, weight, 1.0)
    return dora_scale.flatten() * merged / weight.norm(dim=1)
