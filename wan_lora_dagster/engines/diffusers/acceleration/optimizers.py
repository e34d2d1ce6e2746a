"""The optimizer named by `[training] optimizer`, over the LoRA's parameters."""

from __future__ import annotations

import torch

from wan_lora_dagster.errors import EngineError

TORCH_ADAMW = ("adamw", "adamw_torch", "torch.optim.adamw")
# bitsandbytes' 8-bit AdamW: its two moments in 8 bits, block-wise quantised (2 bytes a parameter
# instead of 8). musubi-tuner calls it "AdamW8bit" too. bitsandbytes runs it on CPUs and GPUs.
EIGHT_BIT_ADAMW = ("adamw8bit", "bitsandbytes.optim.adamw8bit")
OPTIMIZER_NAMES = TORCH_ADAMW + EIGHT_BIT_ADAMW


def require_known_optimizer(name: str) -> None:
    if name.lower() not in OPTIMIZER_NAMES:
        raise EngineError(
            f"wan_lora.toml: [training] optimizer = {name!r} is not available in the diffusers "
            "engine; use 'adamw' or 'adamw8bit', or engine = 'musubi' for its optimizers."
        )


def optimizer_state_bytes_per_parameter(name: str, element_size: int = 4) -> int:
    """What the optimizer keeps per trained parameter (the memory estimate's term): AdamW's two
    moments in the parameter's dtype (fp32 for a LoRA, bf16 for `full_dtype = "bf16"`)."""
    return 2 if name.lower() in EIGHT_BIT_ADAMW else 2 * element_size


def build_optimizer(name: str, parameters: list[torch.nn.Parameter], learning_rate: float):
    require_known_optimizer(name)
    if name.lower() in TORCH_ADAMW:
        return torch.optim.AdamW(parameters, lr=learning_rate)
    try:
        from bitsandbytes.optim import AdamW8bit
    except ImportError:
        raise EngineError(
            "wan_lora.toml: [training] optimizer = 'adamw8bit' needs bitsandbytes: "
            "pip install 'wan-lora-dagster[speed]' (or bitsandbytes==0.50.2)."
        ) from None
    return AdamW8bit(parameters, lr=learning_rate)
