"""The captioners at their real sizes with random weights, built in memory (no download), for
benchmarks/caches_gpu.py: BLIP-2 OPT-2.7b, Qwen2-VL-2B, Qwen2.5-VL-7B and Qwen3-VL-8B, with the
sizes of their Hub config.json files, wrapped in our captioner classes. The tokenizers are the
tiny word-level ones (captioning/tiny.py): prompts of a few dozen tokens either way, while the
vision tokens and the generated tokens, which decide the time, are the real models'.

--small (the CPU run) loads the tiny offline models of captioning/tiny.py instead, through
`load_captioner` as a project loads them."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch
from transformers import (
    Blip2Config,
    Blip2ForConditionalGeneration,
    Blip2Processor,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen3VLConfig,
    Qwen3VLForConditionalGeneration,
)
from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil

from wan_lora_dagster.captioning.backends import CaptionerSettings, load_captioner
from wan_lora_dagster.captioning.blip2 import Blip2Captioner
from wan_lora_dagster.captioning.tiny import (
    TINY_QWEN_VL_TYPES,
    blip2_tokenizer,
    build_tiny_blip2,
    build_tiny_qwen_vl,
    qwen_vl_tokenizer,
)
from wan_lora_dagster.captioning.video_patches import MAX_PIXELS_PER_FRAME, VideoPatcher
from wan_lora_dagster.captioning.vlm import QwenVideoCaptioner

CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class QwenSpec:
    config_class: type
    model_class: type
    vision: dict
    text: dict
    patch_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


QWEN = {
    "Qwen2-VL-2B": QwenSpec(
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        dict(depth=32, embed_dim=1280, hidden_size=1536, mlp_ratio=4, num_heads=16),
        dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
             num_attention_heads=12, num_key_value_heads=2, vocab_size=151936,
             rope_parameters={"rope_type": "default", "rope_theta": 1e6,
                              "mrope_section": [16, 24, 24]}),
        14, CLIP_MEAN, CLIP_STD,
    ),
    "Qwen2.5-VL-7B": QwenSpec(
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16,
             out_hidden_size=3584, window_size=112, fullatt_block_indexes=[7, 15, 23, 31]),
        dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
             num_attention_heads=28, num_key_value_heads=4, vocab_size=152064,
             rope_parameters={"rope_type": "default", "rope_theta": 1e6,
                              "mrope_section": [16, 24, 24]}),
        14, CLIP_MEAN, CLIP_STD,
    ),
    "Qwen3-VL-8B": QwenSpec(
        Qwen3VLConfig,
        Qwen3VLForConditionalGeneration,
        dict(depth=27, hidden_size=1152, intermediate_size=4304, num_heads=16,
             out_hidden_size=4096, num_position_embeddings=2304,
             deepstack_visual_indexes=[8, 16, 24]),
        dict(hidden_size=4096, intermediate_size=12288, num_hidden_layers=36,
             num_attention_heads=32, num_key_value_heads=8, head_dim=128, vocab_size=151936,
             rope_parameters={"rope_type": "default", "rope_theta": 5e6,
                              "mrope_section": [24, 20, 20], "mrope_interleaved": True}),
        16, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5),
    ),
}  # fmt: skip
CAPTIONERS = ("BLIP-2-OPT-2.7b", *QWEN)
TINY_TYPES = dict(zip(QWEN, TINY_QWEN_VL_TYPES, strict=True))


def build_captioner(name: str, device: str, max_new_tokens: int, small: bool, scratch: Path):
    """Our captioner over a random model of `name`'s real sizes (small: the tiny model)."""
    settings = CaptionerSettings("vlm", None, device=device, max_new_tokens=max_new_tokens)
    captioner = _tiny(name, settings, scratch) if small else _real_size(name, settings)
    # random weights seldom say "end": every caption is max_new_tokens long, as a real one is
    captioner.generation_config.min_new_tokens = max_new_tokens
    return captioner


def _tiny(name: str, settings: CaptionerSettings, scratch: Path):
    if name.startswith("BLIP-2"):
        folder = build_tiny_blip2(scratch / "blip2")
        return load_captioner(replace(settings, captioner="blip2", model=str(folder)))
    folder = build_tiny_qwen_vl(scratch / TINY_TYPES[name], TINY_TYPES[name])
    return load_captioner(replace(settings, model=str(folder)))


def _real_size(name: str, settings: CaptionerSettings):
    device = settings.device
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    if name.startswith("BLIP-2"):
        tokenizer = blip2_tokenizer()
        config = _blip2_config(tokenizer)
        model = _random(Blip2ForConditionalGeneration, config, device, dtype)
        image_processor = BlipImageProcessorPil(size={"height": 224, "width": 224})
        processor = Blip2Processor(image_processor, tokenizer, num_query_tokens=32)
        captioner = Blip2Captioner(model, processor, settings)
    else:
        spec = QWEN[name]
        tokenizer = qwen_vl_tokenizer()
        tokenizer.padding_side = "left"
        model = _random(spec.model_class, _qwen_config(spec, tokenizer), device, dtype)
        patcher = VideoPatcher(
            spec.patch_size, 2, 2, spec.mean, spec.std, 56 * 56, MAX_PIXELS_PER_FRAME
        )
        captioner = QwenVideoCaptioner(model, tokenizer, patcher, settings)
    return captioner


def _random(model_class, config, device: str, dtype: torch.dtype):
    with torch.device(device):
        model = model_class._from_config(config, dtype=dtype)
    return model.eval().requires_grad_(False)


def _qwen_config(spec: QwenSpec, tokenizer):
    token_id = tokenizer.convert_tokens_to_ids
    vision = {**spec.vision, "patch_size": spec.patch_size, "spatial_merge_size": 2}
    text = dict(spec.text, eos_token_id=token_id("<|im_end|>"))
    text["pad_token_id"] = token_id("<|endoftext|>")
    return spec.config_class(
        vision_config=vision,
        text_config=text,
        image_token_id=token_id("<|image_pad|>"),
        video_token_id=token_id("<|video_pad|>"),
        vision_start_token_id=token_id("<|vision_start|>"),
        vision_end_token_id=token_id("<|vision_end|>"),
    )


def _blip2_config(tokenizer) -> Blip2Config:
    """Salesforce/blip2-opt-2.7b: ViT-g (the vision config's defaults), a 12-layer Q-Former,
    OPT-2.7b."""
    token_id = tokenizer.convert_tokens_to_ids
    return Blip2Config(
        vision_config={"num_hidden_layers": 39},
        qformer_config={"num_hidden_layers": 12},
        text_config=dict(
            model_type="opt", hidden_size=2560, ffn_dim=10240, num_hidden_layers=32,
            num_attention_heads=32, vocab_size=50272, word_embed_proj_dim=2560,
            max_position_embeddings=2048, pad_token_id=token_id("<pad>"),
            bos_token_id=token_id("<s>"), eos_token_id=token_id("</s>"),
        ),
        num_query_tokens=32,
        image_token_index=token_id("<image>"),
    )  # fmt: skip
