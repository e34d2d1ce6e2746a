"""Tiny captioner models with RANDOM weights, built offline: plumbing models, not captioners.

`build_tiny_blip2` and `build_tiny_qwen_vl` save a BLIP-2 and a Qwen2-VL, Qwen2.5-VL or Qwen3-VL
of the real architectures,
with a few ten thousand parameters each and a word-level tokenizer over a small English
vocabulary, in the folder layout of their Hub repositories, so that `load_captioner` loads them
exactly as it loads the real ones. Built from configs with fixed seeds: no download, and the same
folder on every machine. Their captions are random words that depend on the frames (the same
frames give the same words); they prove that frames reach the caption files, nothing about
caption quality.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import (
    Blip2Config,
    Blip2ForConditionalGeneration,
    Blip2Processor,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen3VLConfig,
    Qwen3VLForConditionalGeneration,
)
from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from wan_lora_dagster.disk_full import building
from wan_lora_dagster.file_modes import with_umask_mode

TINY_CAPTIONER_VERSION = "2"  # 2: the Qwen chat template places videos
COMPLETE_MARKER = "TINY_CAPTIONER_COMPLETE"  # written last: a folder without it is (re)built
# Weights drawn with std GAIN / sqrt(fan_in). The models' own initialisations are so small that
# every image would give the same words; these make the words depend on the frames.
RANDOM_WEIGHT_GAIN = 3.0

_VOCABULARY = """
a an the of in on at to from with and or but by for over under into through across near behind
between above below while as then this that it its his her their one two three man woman person
people child girl boy crowd figure character hero soldier dancer face hand hands arm eyes hair
body head shadow silhouette reflection sword gun car train street city road forest tree river sea
water rain snow fire smoke sky cloud clouds sun moon night day morning evening light lights room
window door wall floor table chair stairs house building bridge field mountain hill desert beach
boat ship horse dog cat bird walks runs jumps fights falls turns looks stands sits moves dances
flies drives holds opens closes smiles cries speaks waves explodes burning glowing spinning
swinging punches kicks dodges chases escapes camera shot close up wide tracking panning tilt zoom
slow fast motion static handheld scene frame clip video film anime cartoon animation style drawn
painted colorful dark bright dim soft warm cold blue red green yellow orange purple pink black
white describe sentence question answer user assistant system what happens
. , : ? ! '
"""

# The Qwen-VL chat format, as their own templates write it for image, video and text content.
_QWEN2VL_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_QWEN2VL_SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<unk>",
]
_BLIP2_SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>", "<image>"]


def build_tiny_blip2(directory: Path, seed: int = 0) -> Path:
    """Save a tiny random BLIP-2 (OPT language model) and its `Blip2Processor` in `directory`.

    Returns `directory`; if it already holds this model (same version and seed), at once.
    """
    return _build_once(
        Path(directory),
        f"blip2 v{TINY_CAPTIONER_VERSION} seed {seed}",
        lambda folder: _save_tiny_blip2(folder, seed),
    )


def build_tiny_qwen_vl(directory: Path, model_type: str = "qwen2_vl", seed: int = 0) -> Path:
    """Save a tiny random Qwen-VL of `model_type` (one of TINY_QWEN_VL_TYPES), its tokenizer
    (with a chat template) and image processor.

    Returns `directory`; if it already holds this model (same version and seed), at once.
    """
    return _build_once(
        Path(directory),
        f"{model_type} v{TINY_CAPTIONER_VERSION} seed {seed}",
        lambda folder: _save_tiny_qwen_vl(folder, model_type, seed),
    )


def _build_once(directory: Path, identity: str, save: Callable[[Path], None]) -> Path:
    def is_built(folder: Path) -> bool:
        marker = folder / COMPLETE_MARKER
        return marker.is_file() and marker.read_text(encoding="utf-8") == identity

    if is_built(directory):
        return directory
    with building(directory, is_built) as partial:
        save(partial)
        with_umask_mode(partial)
        (partial / COMPLETE_MARKER).write_text(identity, encoding="utf-8")
    return directory


def _save_tiny_blip2(directory: Path, seed: int) -> None:
    tokenizer = blip2_tokenizer()
    token_id = tokenizer.convert_tokens_to_ids
    num_query_tokens = 4
    config = Blip2Config(
        vision_config=dict(
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
        ),
        qformer_config=dict(
            vocab_size=8,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            encoder_hidden_size=16,
            cross_attention_frequency=1,
            max_position_embeddings=32,
        ),
        text_config=dict(
            model_type="opt",
            vocab_size=len(tokenizer),
            hidden_size=32,
            ffn_dim=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            word_embed_proj_dim=32,
            max_position_embeddings=256,
            pad_token_id=token_id("<pad>"),
            bos_token_id=token_id("<s>"),
            eos_token_id=token_id("</s>"),
        ),
        num_query_tokens=num_query_tokens,
        image_token_index=token_id("<image>"),
    )
    model = _random_model(Blip2ForConditionalGeneration, config, seed, tokenizer.all_special_ids)
    image_processor = BlipImageProcessorPil(size={"height": 32, "width": 32})
    processor = Blip2Processor(image_processor, tokenizer, num_query_tokens=num_query_tokens)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)


def _save_tiny_qwen_vl(directory: Path, model_type: str, seed: int) -> None:
    tokenizer = qwen_vl_tokenizer()
    token_id = tokenizer.convert_tokens_to_ids
    config_class, model_class, vision_config, rope = TINY_QWEN_VL_TYPES[model_type]
    config = config_class(
        vision_config=vision_config,
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=16,
            max_position_embeddings=1024,
            bos_token_id=None,
            eos_token_id=token_id("<|im_end|>"),
            pad_token_id=token_id("<|endoftext|>"),
            # head_dim 16: 8 rotary frequencies, split over time, height and width
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, **rope},
        ),
        image_token_id=token_id("<|image_pad|>"),
        video_token_id=token_id("<|video_pad|>"),
        vision_start_token_id=token_id("<|vision_start|>"),
        vision_end_token_id=token_id("<|vision_end|>"),
    )
    model = _random_model(model_class, config, seed, tokenizer.all_special_ids)
    # 8-pixel vision tokens (4-pixel patches merged 2x2); at most 16 tokens a frame.
    image_processor = Qwen2VLImageProcessorPil(
        patch_size=4, merge_size=2, temporal_patch_size=2, min_pixels=16 * 16, max_pixels=32 * 32
    )
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    image_processor.save_pretrained(directory)


_TINY_VISION = dict(patch_size=4, spatial_merge_size=2, temporal_patch_size=2)
_TINY_QWEN25_VISION = dict(
    depth=1, hidden_size=16, intermediate_size=32, num_heads=2, out_hidden_size=32
)
# model_type -> (config class, model class, vision config, rotary split of the text model)
TINY_QWEN_VL_TYPES = {
    "qwen2_vl": (
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        dict(depth=1, embed_dim=16, hidden_size=32, mlp_ratio=2, num_heads=2, **_TINY_VISION),
        {"mrope_section": [2, 3, 3]},
    ),
    "qwen2_5_vl": (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        # 16-pixel attention windows: 2x2 merged tokens; the one block attends to the whole frame
        dict(**_TINY_QWEN25_VISION, window_size=16, fullatt_block_indexes=[0], **_TINY_VISION),
        {"mrope_section": [2, 3, 3]},
    ),
    "qwen3_vl": (
        Qwen3VLConfig,
        Qwen3VLForConditionalGeneration,
        # a 4x4 grid of learned positions, interpolated to the frame's patch grid
        dict(
            **_TINY_QWEN25_VISION,
            num_position_embeddings=16,
            deepstack_visual_indexes=[0],
            **_TINY_VISION,
        ),
        {"mrope_section": [2, 3, 3], "mrope_interleaved": True},
    ),
}


def qwen_vl_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer with the Qwen-VL special tokens and chat template."""
    tokenizer = _word_tokenizer(
        _QWEN2VL_SPECIAL_TOKENS,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<unk>",
    )
    tokenizer.chat_template = _QWEN2VL_CHAT_TEMPLATE
    return tokenizer


def blip2_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer with OPT's special tokens and BLIP-2's image token."""
    return _word_tokenizer(
        _BLIP2_SPECIAL_TOKENS,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
    )


def _word_tokenizer(
    special_tokens: list[str], **named_special_tokens: str
) -> PreTrainedTokenizerFast:
    """A lower-casing word-level tokenizer over `_VOCABULARY`, with `special_tokens` first.

    With a `bos_token`, it starts every text with it (as OPT's tokenizer does).
    """
    vocabulary = {token: index for index, token in enumerate(special_tokens)}
    for word in _VOCABULARY.split():
        vocabulary.setdefault(word, len(vocabulary))
    tokenizer = Tokenizer(models.WordLevel(vocabulary, unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    bos_token = named_special_tokens.get("bos_token")
    if bos_token:
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{bos_token} $A", special_tokens=[(bos_token, vocabulary[bos_token])]
        )
    tokenizer.add_special_tokens(special_tokens)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, **named_special_tokens)


def _random_model(
    model_class: type[PreTrainedModel], config, seed: int, silent_token_ids: list[int]
) -> PreTrainedModel:
    """`model_class(config)` with seeded random weights that never predict `silent_token_ids`
    (special tokens would be dropped from the text, leaving empty captions)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = model_class(config).eval()
        with torch.no_grad():
            for parameter in model.parameters():
                if parameter.dim() >= 2:
                    parameter.normal_(0.0, RANDOM_WEIGHT_GAIN / parameter.shape[-1] ** 0.5)
            model.get_output_embeddings().weight[silent_token_ids] = 0.0
    return model
