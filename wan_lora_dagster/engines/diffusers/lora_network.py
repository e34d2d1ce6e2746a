"""The LoRA (or LoKr, LoHa, DoRA: engines.adapters) that the training loop trains: peft's adapter
on the transformer's linears for the run, and a ComfyUI/musubi-format file per checkpoint
(engines.diffusers.full_training.FullFineTune is the other network)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from diffusers import WanTransformer3DModel
from diffusers.training_utils import cast_training_params

from wan_lora_dagster.engines.adapters import adapter_config, adapter_file_tensors
from wan_lora_dagster.engines.wan_models import WanModels
from wan_lora_dagster.formats.adapter_keys import NETWORK_MODULES
from wan_lora_dagster.formats.lora import save_lora
from wan_lora_dagster.recipe.training import TrainingSettings

TRAINING_ADAPTER = "trained_lora"  # not "training": peft adapter names become module attributes
# Every linear of every attention block and feed-forward, as musubi-tuner's networks.lora_wan.
LORA_TARGET_MODULES = ("to_q", "to_k", "to_v", "to_out.0", "ffn.net.0.proj", "ffn.net.2")
IMAGE_TO_VIDEO_TARGET_MODULES = ("add_k_proj", "add_v_proj")  # cross-attention to CLIP features


class LoraNetwork:
    """The adapter as the training loop sees it: its trainable parameters, and its file."""

    def __init__(self, models: WanModels):
        self.models = models

    def trainable(self, settings: TrainingSettings):
        return training_adapter(self.models.transformer, settings, self.models.is_image_to_video)

    def swappable(self, settings: TrainingSettings) -> None:
        return None  # every block's base weights are frozen

    def write(self, path: Path, settings: TrainingSettings, metadata: dict[str, str]) -> None:
        state = adapter_file_tensors(self.models.transformer, TRAINING_ADAPTER, settings)
        metadata = {
            **metadata,
            "ss_network_module": NETWORK_MODULES[settings.network],
            "ss_network_dim": str(settings.network_dim),
            "ss_network_alpha": str(settings.network_alpha),
        }
        save_lora(path, state, metadata)


@contextmanager
def training_adapter(
    transformer: WanTransformer3DModel, settings: TrainingSettings, image_to_video: bool
) -> Iterator[list[torch.nn.Parameter]]:
    """Add a fresh trainable adapter (engines.adapters) for the duration of a run, then remove it.

    The engine keeps one transformer for training, validation and sampling, so the base weights
    must come out of a run exactly as they went in: only the LoRA is trainable, and it is deleted.
    """
    targets = LORA_TARGET_MODULES + (IMAGE_TO_VIDEO_TARGET_MODULES if image_to_video else ())
    config = adapter_config(settings, list(targets))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)  # the LoRA's initial down-projections
        transformer.add_adapter(config, adapter_name=TRAINING_ADAPTER)
    transformer.set_adapter(TRAINING_ADAPTER)
    cast_training_params(transformer, dtype=torch.float32)  # LoRA in fp32, base in bf16
    checkpointing = settings.gradient_checkpointing and transformer._supports_gradient_checkpointing
    if checkpointing:
        transformer.enable_gradient_checkpointing()
    transformer.train()
    try:
        yield [parameter for parameter in transformer.parameters() if parameter.requires_grad]
    finally:
        transformer.eval()
        if checkpointing:
            transformer.disable_gradient_checkpointing()
        transformer.delete_adapters(TRAINING_ADAPTER)
        transformer.requires_grad_(False)
