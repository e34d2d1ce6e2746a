"""A full fine-tune's checkpoint: saved as a diffusers transformer folder, and put into the
engine's one transformer for validation and sampling (at a strength, as a LoRA is).

Saving builds the state of the model as trained: the trained tensors as they are (fp32 master
weights stay fp32), every other tensor as loaded, except the frozen blocks stored in fp8
(`fp8_base`), whose exact weights are read again from the base model's folder, so the saved model
is the base model with the trained tensors changed and nothing else rounded.

Loading keeps the base values of the trained tensors in CPU memory and sets each to
base + strength x (trained - base): strength 0 is the base model, 1 the fine-tuned one, as a
LoRA's strength scales its difference.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from diffusers import WanTransformer3DModel

from wan_lora_dagster.disk_full import building
from wan_lora_dagster.engines.fp8 import FP8
from wan_lora_dagster.errors import EngineError
from wan_lora_dagster.formats.cache_files import read_lora_header
from wan_lora_dagster.formats.full_model import is_model_folder, model_tensors, write_model_header

TRAINED_FIELD = "wan_lora.trained_tensors"  # the header's list of the tensors the run trained
MAX_SHARD_SIZE = "5GB"


def save_model_folder(
    transformer: WanTransformer3DModel,
    trained: list[str],
    base_folder: Path,
    target: Path,
    header: dict[str, str],
    max_shard_size: str = MAX_SHARD_SIZE,
) -> Path:
    """Write `transformer` as trained into the folder `target` (whole, or not at all)."""
    state = {key: value.detach().to("cpu") for key, value in transformer.state_dict().items()}
    return save_state_folder(
        state, transformer.config, trained, base_folder, target, header, max_shard_size
    )


def save_state_folder(
    state: dict[str, torch.Tensor],
    config: dict,
    trained: list[str],
    base_folder: Path,
    target: Path,
    header: dict[str, str],
    max_shard_size: str = MAX_SHARD_SIZE,
) -> Path:
    """Write a transformer's whole state (its tensors on the CPU, as `config` names them) into
    the folder `target`: a sharded training gathers it into one process."""
    stored_in_fp8 = {key for key, value in state.items() if value.dtype == FP8}
    if stored_in_fp8:
        state.update(model_tensors(base_folder, stored_in_fp8))
    with torch.device("meta"):
        shell = WanTransformer3DModel.from_config(config)
    shell.load_state_dict(state, strict=True, assign=True)
    with building(target, is_model_folder) as partial:
        shell.save_pretrained(partial, safe_serialization=True, max_shard_size=max_shard_size)
        write_model_header(partial, {**header, TRAINED_FIELD: json.dumps(trained)})
    return target


@contextmanager
def model_strengths(
    transformer: WanTransformer3DModel, folder: Path
) -> Iterator[Callable[[float], None]]:
    """A setter of the checkpoint's strength on `transformer`; the base weights again after."""
    if not is_model_folder(folder):
        raise EngineError(f"{folder}: not a saved model folder (no config.json).")
    names = json.loads(read_lora_header(folder).get(TRAINED_FIELD, "null") or "null")
    if names is None:
        raise EngineError(f"{folder}: its wan_lora.json does not say which tensors were trained.")
    parameters = dict(transformer.named_parameters())
    missing = sorted(set(names) - set(parameters))
    if missing:
        raise EngineError(
            f"{folder}: trained tensors {missing[:3]} are not in this model: another architecture"
        )
    trained = dict(model_tensors(folder, set(names)))
    base = {name: parameters[name].detach().to("cpu", copy=True) for name in names}

    def set_strength(strength: float) -> None:
        with torch.no_grad():
            for name in names:
                delta = trained[name].to(base[name].dtype) - base[name]
                value = base[name] + strength * delta if strength != 1 else trained[name]
                parameter = parameters[name]
                parameter.data = value.to(parameter.device, parameter.dtype)

    try:
        yield set_strength
    finally:
        for name in names:
            parameter = parameters[name]
            parameter.data = base[name].to(parameter.device)
