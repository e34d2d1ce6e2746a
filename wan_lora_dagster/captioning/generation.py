"""What the captioner backends share: dtype per device, greedy decoding, decoding new tokens."""

from __future__ import annotations

import copy

import torch
from transformers import GenerationConfig, PreTrainedModel

from wan_lora_dagster.captioning.rules import clean_generated


def model_dtype(device: str) -> torch.dtype:
    """bfloat16 on a GPU (half the memory, same captions in practice), float32 on a CPU."""
    return torch.bfloat16 if device.startswith("cuda") else torch.float32


def greedy_generation_config(model: PreTrainedModel, max_new_tokens: int) -> GenerationConfig:
    """The model's own generation config (its end-of-text tokens), made greedy: the same frames
    and prompt always give the same caption."""
    config = copy.deepcopy(model.generation_config)
    config.update(
        do_sample=False,
        num_beams=1,
        temperature=None,
        top_p=None,
        top_k=None,
        max_new_tokens=max_new_tokens,
    )
    return config


def decode_new_tokens(
    tokenizer, output_ids: torch.Tensor, prompt_length: int, prompt: str
) -> list[str]:
    """Cleaned text of the tokens generated after the prompt.

    Args:
        tokenizer: the model's tokenizer.
        output_ids: (batch_size, prompt_length + new_tokens) token ids returned by `generate`.
        prompt_length: number of prompt tokens at the start of each row.
        prompt: the prompt text, removed should the model repeat it.
    """
    texts = tokenizer.batch_decode(output_ids[:, prompt_length:], skip_special_tokens=True)
    return [clean_generated(text, prompt) for text in texts]
