"""A diffusers-format Wan 2.1 folder, each component loaded on first use and kept.

The graph encodes many clips in one process, so a component loads once per engine, not per clip,
and a stage that needs only the VAE never loads the 14B transformer.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Collection
from functools import cached_property
from pathlib import Path

import torch
from diffusers import AutoencoderKLWan, WanPipeline, WanTransformer3DModel
from transformers import AutoImageProcessor, AutoTokenizer, CLIPVisionModel, UMT5EncoderModel

from wan_lora_dagster.engines.fp8 import store_linears_in_fp8
from wan_lora_dagster.errors import EngineError
from wan_lora_dagster.tasks import Vae, vae_with_spatial_compression

REQUIRED_COMPONENTS = ("transformer", "vae", "text_encoder", "tokenizer", "scheduler")
TEXT_LENGTH = 512  # Wan pads every caption to 512 tokens, in musubi-tuner and in diffusers


def pick_device(device: str | None) -> torch.device:
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def compute_dtype(device: torch.device, mixed_precision: str = "bf16") -> torch.dtype:
    """fp32 on a CPU (no fast half precision there); on a GPU what `mixed_precision` says."""
    if device.type == "cpu" or mixed_precision == "no":
        return torch.float32
    return torch.float16 if mixed_precision == "fp16" else torch.bfloat16


def check_model_folder(folder: Path) -> None:
    """Raise EngineError naming what is missing from a diffusers-format Wan 2.1 folder."""
    if not (folder / "model_index.json").is_file():
        raise EngineError(
            f"{folder}: no diffusers-format Wan 2.1 model here (model_index.json is missing). "
            "Set [training] model to a folder like Wan-AI/Wan2.1-T2V-1.3B-Diffusers, or to 'tiny'."
        )
    index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    wanted = REQUIRED_COMPONENTS + (("transformer_2",) if index.get("boundary_ratio") else ())
    missing = [name for name in wanted if not (folder / name).is_dir()]
    if missing:
        raise EngineError(
            f"{folder}: the model folder lacks {', '.join(name + '/' for name in missing)}. "
            "Download the whole "
            "diffusers-format repository (every subfolder), not only the transformer."
        )


def store_in_fp8(
    transformer: WanTransformer3DModel,
    compute_dtype: torch.dtype,
    kept: Collection[int] = (),
    scaled: bool = False,
) -> None:
    """Keep the transformer blocks' linear weights in fp8 and compute in `compute_dtype`: about
    half the memory of bf16 (the 14B fits where it would not otherwise). See engines.fp8:
    unlike diffusers' layerwise casting, this compiles with `[training] compile`. kept: blocks
    left in `compute_dtype` (those a full fine-tune trains); scaled: one scale per output row
    (`[training] fp8_scaled`)."""
    for index, block in enumerate(transformer.blocks):
        if index not in kept:
            store_linears_in_fp8(block, compute_dtype, scaled)


class WanModels:
    """The components of one Wan 2.1 folder on one device.

    The transformer and text encoder run in `dtype` (bf16 on a GPU); the VAE and CLIP image encoder
    stay float32, as the diffusers Wan examples recommend, except the bf16 copy of the VAE that
    encodes latent caches on a GPU (`encoding_vae`), as musubi-tuner's caches are encoded.
    """

    def __init__(
        self,
        folder: Path,
        device: torch.device,
        dtype: torch.dtype,
        fp8_base: bool,
        timestep_boundary: float | None = None,
        fp8_t5: bool = False,
        full_blocks: Collection[int] = (),
        fp8_scaled: bool = False,
    ):
        self.folder = folder
        self.device = device
        self.dtype = dtype
        self.fp8_base = fp8_base
        self.timestep_boundary = timestep_boundary  # the recipe's, over the model's
        self.fp8_t5 = fp8_t5
        self.full_blocks = full_blocks  # trained by a full fine-tune: never stored in fp8
        self.fp8_scaled = fp8_scaled  # fp8_base's weights with one scale per output row

    @cached_property
    def model_index(self) -> dict:
        return json.loads((self.folder / "model_index.json").read_text(encoding="utf-8"))

    @property
    def is_image_to_video(self) -> bool:
        # Wan 2.2 I2V has no CLIP image encoder: the pipeline class says what the model is.
        return self.model_index.get("_class_name") == "WanImageToVideoPipeline" or self.uses_clip

    @property
    def uses_clip(self) -> bool:
        """Wan 2.1 I2V: the transformer also cross-attends to CLIP features of the first frame."""
        return (self.folder / "image_encoder").is_dir()

    @property
    def expands_timesteps(self) -> bool:
        """Wan 2.2 TI2V-5B: a timestep per token, so a clean first frame can sit at timestep 0
        (diffusers' Wan pipelines sample it text-to-video or image-to-video)."""
        return bool(self.model_index.get("expand_timesteps"))

    @property
    def boundary_ratio(self) -> float | None:
        """Wan 2.2 A14B: `transformer` denoises t >= this, `transformer_2` below (None: one)."""
        boundary = self.model_index.get("boundary_ratio")
        return (self.timestep_boundary or boundary) if boundary else None

    @cached_property
    def vae_config(self) -> dict:
        return json.loads((self.folder / "vae" / "config.json").read_text(encoding="utf-8"))

    @property
    def vae_layout(self) -> Vae:
        """The Wan VAE the folder holds, told by its spatial stride (Wan 2.1's config has none)."""
        return vae_with_spatial_compression(self.vae_config.get("scale_factor_spatial", 8))

    @property
    def latent_architecture(self) -> str:
        """The latent cache name suffix: the Wan 2.2 VAE (16x spatial) gets its own."""
        return self.vae_layout.architecture

    @property
    def resolution_step(self) -> int:
        """Frame sides divide by the VAE's spatial stride times the transformer's 2x2 patch."""
        return self.vae_layout.resolution_step

    @cached_property
    def vae(self) -> AutoencoderKLWan:
        vae = AutoencoderKLWan.from_pretrained(
            self.folder, subfolder="vae", torch_dtype=torch.float32
        )
        return vae.to(self.device).eval().requires_grad_(False)

    @cached_property
    def encoding_vae(self) -> AutoencoderKLWan:
        """The VAE that encodes caches: on a GPU in bf16 (as musubi-tuner encodes) with its 3D
        convolution weights channels-last, the layout cuDNN runs fastest (on an H100 at
        768x416x21, 1.3x over fp32 weights under autocast); on a CPU the float32 VAE itself."""
        if self.device.type != "cuda" or self.dtype != torch.bfloat16:
            return self.vae
        vae = copy.deepcopy(self.vae).to(torch.bfloat16)
        for parameter in vae.parameters():
            if parameter.dim() == 5:
                parameter.data = parameter.data.contiguous(memory_format=torch.channels_last_3d)
        return vae

    @cached_property
    def tokenizer(self):
        return AutoTokenizer.from_pretrained(self.folder / "tokenizer")

    @cached_property
    def text_encoder(self) -> UMT5EncoderModel:
        encoder = UMT5EncoderModel.from_pretrained(
            self.folder / "text_encoder", torch_dtype=self.dtype
        )
        if self.fp8_t5:  # [training] fp8_t5: UMT5-XXL's 11 GB of linears in half the memory
            store_linears_in_fp8(encoder.encoder, self.dtype)
        return encoder.to(self.device).eval().requires_grad_(False)

    @cached_property
    def transformer(self) -> WanTransformer3DModel:
        return self._load_transformer("transformer")

    @cached_property
    def transformer_2(self) -> WanTransformer3DModel:
        """Wan 2.2 A14B's low-noise expert (`transformer` is the high-noise one)."""
        if not (self.folder / "transformer_2").is_dir():
            raise EngineError(f"{self.folder}: no transformer_2/ (not a Wan 2.2 A14B model)")
        return self._load_transformer("transformer_2")

    def _load_transformer(self, subfolder: str) -> WanTransformer3DModel:
        transformer = WanTransformer3DModel.from_pretrained(
            self.folder, subfolder=subfolder, torch_dtype=self.dtype
        )
        if self.fp8_base:  # before moving: a 14B in bf16 would not fit a 24 GB card
            store_in_fp8(transformer, self.dtype, self.full_blocks, self.fp8_scaled)
        return transformer.to(self.device).eval().requires_grad_(False)

    @cached_property
    def image_encoder(self) -> CLIPVisionModel:
        """CLIP vision tower of an I2V model (its penultimate hidden states condition the DiT)."""
        encoder = CLIPVisionModel.from_pretrained(
            self.folder / "image_encoder", torch_dtype=torch.float32
        )
        return encoder.to(self.device).eval().requires_grad_(False)

    @cached_property
    def image_processor(self):
        # Auto picks the PIL or torchvision CLIP processor, whichever is installed, silently.
        return AutoImageProcessor.from_pretrained(self.folder / "image_processor")

    def text_to_video_pipeline(self) -> WanPipeline:
        """A WanPipeline over the already-loaded components (building it loads nothing twice)."""
        if self.is_image_to_video:
            raise EngineError(
                f"{self.folder}: sampling an image-to-video model needs a start image, which "
                "[eval] does not give; the diffusers engine samples text-to-video models only."
            )
        two_experts = (
            {"transformer_2": self.transformer_2, "boundary_ratio": self.boundary_ratio}
            if self.boundary_ratio
            else {}
        )
        return self.pipeline(WanPipeline, **two_experts)

    def pipeline(self, pipeline_class: type, **components):
        """`pipeline_class` over the already-loaded transformer, VAE and text encoder, plus
        `components`: building it loads nothing twice, and a LoRA loaded into it is in the
        engine's transformer."""
        pipeline = pipeline_class.from_pretrained(
            self.folder,
            transformer=self.transformer,
            vae=self.vae,
            text_encoder=self.text_encoder,
            tokenizer=self.tokenizer,
            **components,
        )
        pipeline.set_progress_bar_config(disable=True)
        return pipeline.to(self.device)
