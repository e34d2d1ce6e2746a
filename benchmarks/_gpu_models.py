"""Random real-shape Wan transformers and caches for the GPU benchmarks (engine_gpu.py,
engine_profile_gpu.py): musubi's state-dict shapes and a file of random weights for musubi, the same
tensors as a diffusers transformer for our engine, and random latent and text caches in musubi's
format."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from wan_lora_dagster.formats.cache_files import latent_cache_name
from wan_lora_dagster.formats.manifest import ManifestEntry, TrainingSetManifest
from wan_lora_dagster.formats.musubi_cache import save_latent_cache
from wan_lora_dagster.recipe.datasets import DatasetSection

# wan_lora_dagster/testing/gpu_fixtures.py builds musubi's random weights and text caches
from wan_lora_dagster.testing.gpu_fixtures import (
    ClipSpec,
    _random_state,
    _save_atomically,
    write_text_cache,
)


@dataclass(frozen=True)
class ModelShape:
    dim: int
    ffn_dim: int
    heads: int
    layers: int


SHAPES = {
    "t2v-14B": ModelShape(5120, 13824, 40, 40),
    "t2v-1.3B": ModelShape(1536, 8960, 12, 30),
    "small": ModelShape(64, 128, 2, 4),
}


def musubi_state_shapes(task: str, shape: ModelShape, musubi: Path) -> dict[str, list[int]]:
    """musubi's WanModel state-dict keys and shapes (a subprocess: musubi sets up logging)."""
    code = f"""
import json, sys
from accelerate import init_empty_weights
from musubi_tuner.wan.modules.model import WanModel
with init_empty_weights():
    model = WanModel(model_type="t2v", dim={shape.dim}, eps=1e-6, ffn_dim={shape.ffn_dim},
        freq_dim=256, in_dim=16, num_heads={shape.heads}, num_layers={shape.layers}, out_dim=16,
        text_len=512, attn_mode="torch")
json.dump({{k: list(v.shape) for k, v in model.state_dict().items()}}, sys.stdout)
"""
    environment = {
        **os.environ,
        "PYTHONPATH": f"{musubi / 'src'}:{os.environ.get('PYTHONPATH', '')}",
    }
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment, check=True
    )
    return json.loads(done.stdout)


def build_weights(task: str, shape: ModelShape, musubi: Path, folder: Path) -> tuple[Path, dict]:
    """musubi's file on disk (for musubi) and the same tensors in memory (for ours)."""
    started = time.perf_counter()
    shapes = musubi_state_shapes(task, shape, musubi)
    state = _random_state(shapes, seed=0)
    path = folder / f"{task}_random_bf16.safetensors"
    _save_atomically(state, path)
    print(
        f"  built {task} weights: {sum(t.numel() for t in state.values()):,} parameters "
        f"in {time.perf_counter() - started:.0f} s",
        flush=True,
    )
    return path, state


def diffusers_transformer(shape: ModelShape, state: dict, image_to_video: bool = False):
    """image_to_video: Wan 2.1 I2V's (the image latent's 20 channels in, CLIP's 1280 features
    cross-attended), as single_file.transformer_config reads an I2V file."""
    from accelerate import init_empty_weights
    from diffusers import WanTransformer3DModel
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    image = {"image_dim": 1280, "added_kv_proj_dim": shape.dim} if image_to_video else {}
    with init_empty_weights(include_buffers=False):  # the rotary tables are computed, not loaded
        model = WanTransformer3DModel(
            patch_size=(1, 2, 2), num_attention_heads=shape.heads,
            attention_head_dim=shape.dim // shape.heads, out_channels=16,
            in_channels=36 if image_to_video else 16, text_dim=4096, freq_dim=256,
            ffn_dim=shape.ffn_dim, num_layers=shape.layers, cross_attn_norm=True,
            qk_norm="rms_norm_across_heads", eps=1e-6, **image,
        )  # fmt: skip
    if state is None:  # no musubi weights: the fixtures' random rule over diffusers' own names
        shapes = {name: list(parameter.shape) for name, parameter in model.named_parameters()}
        model.load_state_dict(_random_state(shapes, seed=0), strict=False, assign=True)
    else:
        converted = convert_wan_transformer_to_diffusers(dict(state))
        model.load_state_dict(converted, strict=True, assign=True)
    return model.eval().requires_grad_(False)


def keep_in_fp32(model) -> None:
    """What `from_pretrained(torch_dtype=bf16)` keeps in fp32 (norms, time embedder, tables)."""
    kept = set(model._keep_in_fp32_modules or ())
    for name, module in model.named_modules():
        if kept & set(name.split(".")):
            module.float()


def write_caches(
    root: Path, sections: tuple[DatasetSection, ...], count: int
) -> TrainingSetManifest:
    """`count` items per section: random latents of the section's largest shape (musubi's
    cache format and names) and random text caches."""
    entries = []
    generator = torch.Generator().manual_seed(0)
    for section in sections:
        width, height = section.resolution
        for index in range(count):
            item = f"{section.name}{index:02d}"
            cache_dir = root / "cache" / section.name
            frames_list = [None] if section.source == "stills" else list(section.target_frames)
            latents = []
            for frames in frames_list:
                latent_frames = 1 if frames is None else (frames - 1) // 4 + 1
                name = latent_cache_name(item, width, height, *((0, frames) if frames else ()))
                latent = torch.randn(
                    16, latent_frames, height // 8, width // 8, generator=generator
                )
                save_latent_cache(cache_dir / name, latent.to(torch.bfloat16))
                latents.append(str((cache_dir / name).relative_to(root)))
            text = write_text_cache(root / "cache" / "text", item, ClipSpec(), index)
            entries.append(ManifestEntry(
                item_id=item, kind="still" if section.source == "stills" else "clip",
                section=section.name, latent_files=tuple(latents),
                text_file=str(text.relative_to(root)), caption=f"random {item}",
                caption_origin="auto", caption_version="c", latent_version="l", text_version="t",
            ))  # fmt: skip
    return TrainingSetManifest(tuple(entries), root=root)


_loaded: dict = {}


def ours_models(
    shape: ModelShape, state: dict, device: torch.device, fp8: bool, scaled: bool = False
):
    """One WanModels per (shape, fp8, scaled), its transformer built from the shared weights: the
    configurations of one model reuse it (loading the 14B once). scaled: `fp8_scaled`."""
    from wan_lora_dagster.engines.wan_models import WanModels, store_in_fp8

    key = (shape, fp8, scaled)
    if key not in _loaded:
        _loaded.clear()
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        transformer = diffusers_transformer(shape, state).to(device=device, dtype=dtype)
        keep_in_fp32(transformer)
        if fp8:
            store_in_fp8(transformer, dtype, scaled=scaled)
        if device.type == "cuda":
            torch.cuda.empty_cache()
        models = WanModels(Path("unused"), device, dtype, fp8, fp8_scaled=scaled)
        models.__dict__["transformer"] = transformer  # built here, not loaded from a folder
        models.__dict__["model_index"] = {"_class_name": "WanPipeline"}  # text-to-video
        _loaded[key] = models
    return _loaded[key]
