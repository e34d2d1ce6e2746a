"""The embedded `tiny` model: a Wan 2.1 pipeline with RANDOM weights, for plumbing, not art.

It has the real architecture (diffusers `WanTransformer3DModel`, `AutoencoderKLWan`, transformers
`UMT5EncoderModel`, a T5 unigram tokenizer, a flow-matching UniPC scheduler) at a few thousand
parameters each, built offline from fixed seeds and saved in the layout of the diffusers Wan 2.1
repositories, so `WanPipeline.from_pretrained(folder)` loads it. It proves that caching, training,
LoRA files and sampling work end to end on a laptop CPU in minutes; its videos are noise-like
patterns and say nothing about the quality of a real LoRA.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKLWan,
    UniPCMultistepScheduler,
    WanImageToVideoPipeline,
    WanPipeline,
    WanTransformer3DModel,
)
from transformers import (
    CLIPVisionConfig,
    CLIPVisionModel,
    T5Tokenizer,
    UMT5Config,
    UMT5EncoderModel,
)

from wan_lora_dagster.disk_full import building
from wan_lora_dagster.file_modes import with_umask_mode
from wan_lora_dagster.tasks import DEFAULT_TASK, WAN21_VAE, WanTask, wan_task

logger = logging.getLogger(__name__)

TINY_MODEL_VERSION = "1"
COMPLETE_MARKER = "TINY_MODEL_COMPLETE"  # written last: a folder without it is rebuilt
SEED = 20250225
TEXT_DIM = 32
LATENT_CHANNELS = 4  # smaller still works, but 4 distinct channels keep per-channel bugs visible
CLIP_DIM = 16
CLIP_IMAGE_SIZE = 32

# The tokenizer's whole vocabulary: words a caption of a film clip is likely to use. Anything else
# falls back to single characters, so every prompt still tokenizes.
_VOCABULARY_TEXT = """
a an the of in on at to from with and or but by for over under into onto through across near
behind between above below while as then this that these those it its his her their one two
three man woman person people child girl boy crowd figure character hero villain soldier dancer
face hand hands arm arms eyes hair body head shadow shadows silhouette reflection sword gun car
train street city road forest tree trees river sea ocean water rain snow fire smoke sky cloud
clouds sun moon night day morning evening light lights room window door wall floor table chair
stairs house building bridge field mountain hill desert beach boat ship horse dog cat bird
walks walking runs running jumps jumping fights fighting falls falling turns turning looks
looking stands standing sits sitting moves moving dances dancing flies flying drives driving
holds holding opens opening closes closing smiles smiling cries crying speaks speaking waves
explodes burning glowing flashing spinning swinging punches kicks dodges slashes chases escapes
camera shot close up wide medium tracking panning pan tilt zoom slow fast motion static
handheld scene frame clip video film anime cartoon animation style studio drawn painted cel
shaded colorful dark bright dim soft hard warm cold blue red green yellow orange purple pink
black white gray golden silver neon vivid muted grainy sharp blurry cinematic dramatic quiet
calm intense action fight battle chase dance kiss talk dialogue background foreground detailed
simple flat lines line ink watercolor sketch texture grain noise glow rim lighting backlit low
high angle overhead view perspective short long quick sudden gentle heavy small large big tiny
old young new ancient modern futuristic urban rural wet dry windy stormy foggy misty
"""
VOCABULARY = tuple(_VOCABULARY_TEXT.split())
SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>")  # T5 ids 0, 1, 2
CHARACTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;:!?'\"-()[]/&%+=*#@_"


def ensure_tiny_model(directory: Path, task: str = DEFAULT_TASK) -> Path:
    """Build the tiny random-weight Wan pipeline of `task` into `directory` once; return it.

    The variant has the task's layout (tasks.WanTask): a Wan 2.1 image-to-video task's has a CLIP
    image encoder and first-frame conditioning, like Wan2.1-I2V-14B-480P-Diffusers; a text-to-video
    one is like Wan2.1-T2V-1.3B-Diffusers; the Wan 2.2 tasks' are built by engines.diffusers.tiny22.

    Idempotent: a complete folder is returned as it is. The build is deterministic (fixed seeds,
    CPU float32), so two builds hold identical tensors, and it is atomic (built beside the
    target, then renamed), so an interrupted build never leaves a half model that loads.
    """
    directory = Path(directory)
    if _is_complete(directory):
        return directory
    logger.info(
        "building the tiny Wan model (random weights, for plumbing, not art) in %s", directory
    )
    with building(directory, _is_complete) as partial:
        pipeline = build_tiny_variant(wan_task(task))
        pipeline.save_pretrained(partial, safe_serialization=True)
        (partial / "README.md").write_text(_README, encoding="utf-8")
        (partial / COMPLETE_MARKER).write_text(TINY_MODEL_VERSION, encoding="utf-8")
        with_umask_mode(partial)
    return directory


def build_tiny_variant(task: WanTask):
    """The tiny pipeline of `task`'s layout, in memory."""
    if task.experts or task.vae != WAN21_VAE:  # Wan 2.2's layouts
        from wan_lora_dagster.engines.diffusers.tiny22 import (
            build_tiny_wan22_pipeline,
        )  # imports tiny

        return build_tiny_wan22_pipeline(task)
    return build_tiny_pipeline(task.image_to_video)


def build_tiny_pipeline(image_to_video: bool = False) -> WanPipeline | WanImageToVideoPipeline:
    """The tiny pipeline in memory: every component from its own fixed seed, on the CPU."""
    components = {**build_tiny_components(), "vae": build_tiny_vae()}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED + 2)
        components["transformer"] = _build_transformer(image_to_video)
        torch.manual_seed(SEED + 3)
        image_encoder = _build_image_encoder() if image_to_video else None
    if not image_to_video:
        return WanPipeline(**components)
    # Imported here: importing it warns when torchvision is missing, and only I2V needs it.
    from transformers import CLIPImageProcessor

    image_processor = CLIPImageProcessor(
        size={"shortest_edge": CLIP_IMAGE_SIZE},
        crop_size={"height": CLIP_IMAGE_SIZE, "width": CLIP_IMAGE_SIZE},
    )
    return WanImageToVideoPipeline(
        **components, image_encoder=image_encoder, image_processor=image_processor
    )


def build_tiny_tokenizer() -> T5Tokenizer:
    """A T5 unigram tokenizer over VOCABULARY: whole words win, characters cover the rest.

    Unigram picks the segmentation with the highest total log-probability, so a word piece
    (score -1) beats spelling the word out of character pieces (score -4 each).
    """
    words = sorted(set(VOCABULARY))
    vocab = [(token, 0.0) for token in SPECIAL_TOKENS]
    vocab += [("▁", -3.0)]
    vocab += [(f"▁{word}", -1.0) for word in words]
    vocab += [(character, -4.0) for character in CHARACTERS]
    vocab += [(f"▁{character}", -4.0) for character in CHARACTERS]
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=512)


def build_tiny_components() -> dict:
    """The components every tiny variant shares: tokenizer, UMT5 encoder, scheduler (Wan 2.2
    keeps Wan 2.1's T5, so text caches are shared)."""
    with torch.random.fork_rng(devices=[]):
        tokenizer = build_tiny_tokenizer()
        torch.manual_seed(SEED)
        text_encoder = _build_text_encoder(vocab_size=len(tokenizer))
    return {
        "tokenizer": tokenizer,
        "text_encoder": text_encoder,
        "scheduler": UniPCMultistepScheduler(
            prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0
        ),
    }


def _build_text_encoder(vocab_size: int) -> UMT5EncoderModel:
    config = UMT5Config(
        vocab_size=vocab_size,
        d_model=TEXT_DIM,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        feed_forward_proj="gated-gelu",
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    return UMT5EncoderModel(config).eval()


def build_tiny_vae() -> AutoencoderKLWan:
    """The tiny Wan 2.1 VAE from its own seed (the A14B variants share it, as the real ones do)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED + 1)
        return _build_vae()


def _build_vae() -> AutoencoderKLWan:
    """A Wan VAE (8x spatial, 4x temporal compression, like the real one) with a 3-wide base.

    latents_mean/std are measured on a fixed synthetic video, so normalised latents are about
    unit scale, as they are with the real VAE's published statistics.
    """
    vae = AutoencoderKLWan(
        base_dim=3,
        z_dim=LATENT_CHANNELS,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        latents_mean=[0.0] * LATENT_CHANNELS,
        latents_std=[1.0] * LATENT_CHANNELS,
    ).eval()
    return calibrate_latent_statistics(vae)


def calibrate_latent_statistics(vae: AutoencoderKLWan) -> AutoencoderKLWan:
    """Set latents_mean/std to those of a fixed synthetic video's latents (seeded by the caller)."""
    calibration_video = torch.rand(1, 3, 9, 64, 64) * 2 - 1
    with torch.no_grad():
        latents = vae.encode(calibration_video).latent_dist.mode()
    mean = latents.mean(dim=(0, 2, 3, 4))
    std = latents.std(dim=(0, 2, 3, 4)).clamp_min(1e-3)
    vae.register_to_config(
        latents_mean=[round(float(value), 4) for value in mean],
        latents_std=[round(float(value), 4) for value in std],
    )
    return vae


def _build_image_encoder() -> CLIPVisionModel:
    """A CLIP vision tower: 32-pixel images in 16-pixel patches, so 4 + 1 tokens."""
    config = CLIPVisionConfig(
        hidden_size=CLIP_DIM,
        intermediate_size=2 * CLIP_DIM,
        projection_dim=CLIP_DIM,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=CLIP_IMAGE_SIZE,
        patch_size=16,
    )
    return CLIPVisionModel(config).eval()


def _build_transformer(
    image_to_video: bool,
    latent_channels: int = LATENT_CHANNELS,
    clip: bool | None = None,
) -> WanTransformer3DModel:
    """clip: cross-attends to CLIP image features (default: when image_to_video, as Wan 2.1)."""
    inner_dim = 2 * 8  # heads x head dim
    clip = image_to_video if clip is None else clip
    # I2V input: noisy latents, the first-frame mask (4 channels) and the first-frame latents
    in_channels = 2 * latent_channels + 4 if image_to_video else latent_channels
    return WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=8,
        in_channels=in_channels,
        out_channels=latent_channels,
        image_dim=CLIP_DIM if clip else None,
        added_kv_proj_dim=inner_dim if clip else None,
        text_dim=TEXT_DIM,
        freq_dim=32,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
    ).eval()


def _is_complete(directory: Path) -> bool:
    marker = directory / COMPLETE_MARKER
    return marker.is_file() and marker.read_text(encoding="utf-8") == TINY_MODEL_VERSION


_README = """# tiny Wan 2.1 model: random weights, for plumbing, not art

Built offline by wan_lora_dagster.engines.diffusers.tiny from fixed seeds. It has the Wan 2.1
architecture at a few thousand parameters per component, so the whole graph (caching, training, LoRA
files, sampling) runs on a CPU in minutes. Its videos are noise-like patterns: they prove the
plumbing and the training math, nothing about what a LoRA trained on a real model would look like.
"""
