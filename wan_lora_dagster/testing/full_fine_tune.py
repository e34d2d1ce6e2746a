"""Shared by the full fine-tune's tests (one process, sharded, the memory check): its settings on
the tiny model, a request, a forward pass to compare models by, and the real shapes on the meta
device."""

import torch
from diffusers import WanTransformer3DModel

from wan_lora_dagster.engines.base import TrainRequest
from wan_lora_dagster.recipe.training import TrainingSettings
from wan_lora_dagster.testing.stripes import HEADER, SECTION, TRAINING

FULL = TrainingSettings.model_validate(
    {
        **TRAINING.model_dump(),
        "network": "full",
        "learning_rate": 1e-3,
        "max_train_epochs": 4,
        "save_every_n_epochs": 2,
    }
)


def full_settings(**changes) -> TrainingSettings:
    return TrainingSettings.model_validate({**FULL.model_dump(), **changes})


def request_for(training_set, output_dir, settings=FULL) -> TrainRequest:
    return TrainRequest(training_set, settings, (SECTION,), output_dir, "stripes", dict(HEADER))


def base_transformer(tiny_model_dir) -> WanTransformer3DModel:
    return WanTransformer3DModel.from_pretrained(tiny_model_dir, subfolder="transformer").eval()


def forward(transformer, seed: int = 3) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    config = transformer.config
    latents = torch.randn(1, config.in_channels, 3, 8, 8, generator=generator)
    text = torch.randn(1, 6, config.text_dim, generator=generator)
    with torch.no_grad():
        return transformer(latents, torch.tensor([500]), text, return_dict=False)[0]


SHAPES = {
    "t2v-1.3B": (1536, 8960, 12, 30),
    "t2v-14B": (5120, 13824, 40, 40),
}  # dim, ffn, heads, blocks


def meta_transformer(task: str) -> WanTransformer3DModel:
    dim, ffn, heads, layers = SHAPES[task]
    with torch.device("meta"):
        model = WanTransformer3DModel(
            patch_size=(1, 2, 2), num_attention_heads=heads, attention_head_dim=dim // heads,
            in_channels=16, out_channels=16, text_dim=4096, freq_dim=256, ffn_dim=ffn,
            num_layers=layers, cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6,
        )  # fmt: skip
    return model.to(torch.bfloat16).requires_grad_(False)
