"""Wan latent and text-encoder caches exactly as kohya-ss/musubi-tuner writes and reads them.

Facts from musubi-tuner (commit 30c658c, version 0.3.4), `src/musubi_tuner/dataset/`:

- names (`image_video_dataset.py`, `BaseDataset.get_latent_cache_path` and
  `get_text_encoder_output_cache_path`; video windows are named in
  `VideoDataset.retrieve_latent_cache_batches`):
  video `<item>_<start:05d>-<frames:03d>_<width:04d>x<height:04d>_wan.safetensors`,
  image `<item>_<width:04d>x<height:04d>_wan.safetensors`, text `<item>_wan_te.safetensors`.
  For a video the size is that of its frames after resizing to the bucket (its loader resizes while
  decoding); for an image it is the image's own size. Training finds latents by the glob
  `*_wan.safetensors` and parses these names back (`prepare_for_training`), so they are the format.
- tensors (`cache_io.py`, `save_latent_cache_wan`, `save_text_encoder_output_cache_wan`):
  `latents_{F}x{H}x{W}_{dtype}` of shape (channels, F, H, W), `clip_{dtype}` and
  `latents_image_{F}x{H}x{W}_{dtype}` for I2V (both named with the latent's dtype and shape), and
  `varlen_t5_{dtype}` of shape (tokens, 4096); the dtype name is `str(dtype).split(".")[-1]`.
- metadata (`save_latent_cache_common`, `save_text_encoder_output_cache_common`): latents
  `architecture`, `width`, `height`, `format_version` ("1.0.1") and, for videos, `frame_count`;
  texts `architecture`, `caption1`, `format_version`. All values are strings.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save

from wan_lora_dagster.disk_full import writing_into
from wan_lora_dagster.file_modes import create_temporary, with_umask_mode
from wan_lora_dagster.formats.cache_files import (
    ARCHITECTURE,
    CacheFileError,
    parse_latent_cache_name,
    read_safetensors_metadata,
)

logger = logging.getLogger(__name__)

FORMAT_VERSION = "1.0.1"
VAE_TEMPORAL_STRIDE = 4


@dataclass(frozen=True)
class LatentCache:
    """One latent cache file.

    latent: (channels, latent_frames, latent_height, latent_width), normalised with the VAE stats.
    clip_embedding: the CLIP image embedding of the first frame (I2V only), e.g. (257, 1280).
    image_latent: the I2V conditioning, mask channels first: (4 + channels, latent_frames, h, w).
    metadata: the safetensors header metadata (architecture, width, height, format_version...).
    """

    latent: torch.Tensor
    clip_embedding: torch.Tensor | None
    image_latent: torch.Tensor | None
    metadata: dict[str, str]


def save_latent_cache(
    path: Path,
    latent: torch.Tensor,
    *,
    clip_embedding: torch.Tensor | None = None,
    image_latent: torch.Tensor | None = None,
) -> None:
    """Write a latent cache; its metadata (size, frame count) is read from its musubi file name.

    latent: (channels, latent_frames, latent_height, latent_width), already normalised with the
    VAE's mean and std. A video window of N frames has (N - 1) // 4 + 1 latent frames.
    """
    if latent.dim() != 4:
        raise ValueError(
            f"latent must be (channels, frames, height, width), got {tuple(latent.shape)}"
        )
    name = parse_latent_cache_name(Path(path).name)
    _, latent_frames, latent_height, latent_width = latent.shape
    if name.num_frames is not None:
        expected = (name.num_frames - 1) // VAE_TEMPORAL_STRIDE + 1
        if latent_frames != expected:
            raise ValueError(
                f"{Path(path).name}: a {name.num_frames}-frame window has {expected} latent "
                f"frames, the latent has {latent_frames}"
            )
    shape = f"{latent_frames}x{latent_height}x{latent_width}"
    # musubi names the clip and image tensors with the latent's dtype, whatever their own dtype.
    dtype = dtype_name(latent.dtype)
    tensors = {f"latents_{shape}_{dtype}": latent}
    if clip_embedding is not None:
        tensors[f"clip_{dtype}"] = clip_embedding
    if image_latent is not None:
        tensors[f"latents_image_{shape}_{dtype}"] = image_latent
    metadata = {
        "architecture": name.architecture,
        "width": str(name.width),
        "height": str(name.height),
        "format_version": FORMAT_VERSION,
    }
    if name.num_frames is not None:
        metadata["frame_count"] = str(name.num_frames)
    write_safetensors(Path(path), _zero_nans(tensors, path), metadata)


def load_latent_cache(path: Path) -> LatentCache:
    tensors, metadata = _load_wan_file(path, parse_latent_cache_name(Path(path).name).architecture)
    found: dict[str, torch.Tensor] = {}
    for key, tensor in tensors.items():
        content = strip_dtype_suffix(key)
        if content.startswith("latents_"):
            content = content.rsplit("_", 1)[0]  # drop FxHxW, as musubi's batch loader does
        found[content] = tensor
    if "latents" not in found:
        raise CacheFileError(f"{path}: no `latents_FxHxW_<dtype>` tensor; delete it to re-encode")
    return LatentCache(
        latent=found["latents"],
        clip_embedding=found.get("clip"),
        image_latent=found.get("latents_image"),
        metadata=metadata,
    )


def save_text_cache(path: Path, embedding: torch.Tensor, *, caption: str = "") -> None:
    """Write a UMT5 embedding of shape (num_tokens, dim), trimmed to the caption's tokens.

    caption: the text it encodes; musubi stores it as `caption1` (and reads that key back when it
    re-caches into an existing file, so it is always written).
    """
    if embedding.dim() != 2:
        raise ValueError(f"embedding must be (num_tokens, dim), got {tuple(embedding.shape)}")
    tensors = {f"varlen_t5_{dtype_name(embedding.dtype)}": embedding}
    metadata = {"architecture": ARCHITECTURE, "caption1": caption, "format_version": FORMAT_VERSION}
    write_safetensors(Path(path), _zero_nans(tensors, path), metadata)


def load_text_cache(path: Path) -> torch.Tensor:
    """The (num_tokens, dim) embedding of a text cache."""
    tensors, _ = _load_wan_file(path)
    for key, tensor in tensors.items():
        if strip_dtype_suffix(key) == "varlen_t5":
            return tensor
    raise CacheFileError(f"{path}: no `varlen_t5_<dtype>` tensor; delete it to re-encode")


def dtype_name(dtype: torch.dtype) -> str:
    """musubi's dtype suffix: "bfloat16", "float32", "float8_e4m3fn"..."""
    return str(dtype).split(".")[-1]


def strip_dtype_suffix(key: str) -> str:
    """`latents_1x2x3_bfloat16` -> `latents_1x2x3`; a suffix may hold `_` (float8_e4m3fn)."""
    for dtype in _DTYPE_NAMES:
        if key.endswith("_" + dtype):
            return key[: -len(dtype) - 1]
    return key


_DTYPE_NAMES = sorted(
    {dtype_name(value) for value in vars(torch).values() if isinstance(value, torch.dtype)},
    key=len,
    reverse=True,
)


def write_safetensors(path: Path, tensors: Mapping[str, torch.Tensor], metadata: dict[str, str]):
    """Save atomically: a reader sees the old file or the whole new one, never a partial write.

    The temporary name ends in `.tmp`, so musubi's `*_wan.safetensors` glob never picks it up.
    """
    bad = sorted(key for key, value in metadata.items() if not isinstance(value, str))
    if bad:
        raise ValueError(f"safetensors metadata values must be strings: {bad}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    contiguous = {key: tensor.detach().cpu().contiguous() for key, tensor in tensors.items()}
    handle, temporary = create_temporary(path)
    os.close(handle)
    try:
        with writing_into(path.parent):
            Path(temporary).write_bytes(_safetensors_bytes(contiguous, metadata))
            with_umask_mode(temporary)
            os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _safetensors_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    """The safetensors file, its metadata in sorted order: the library writes it in a random
    order (a Rust HashMap), so the same cache would get other bytes on every write."""
    data = save(tensors, metadata=metadata)
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + length])
    header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)  # the tensors start 8-byte aligned, as the library pads
    return len(text).to_bytes(8, "little") + text + data[8 + length :]


def _load_wan_file(
    path: Path, architecture: str = ARCHITECTURE
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    metadata = read_safetensors_metadata(path)
    if metadata.get("architecture") != architecture:
        raise CacheFileError(
            f"{path}: cache of architecture {metadata.get('architecture')!r}, expected "
            f"{architecture!r}; delete it to re-encode"
        )
    return load_file(str(path)), metadata


_NAN_CHECKED = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _zero_nans(tensors: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """musubi replaces NaN with 0 and warns; so do we, without touching the caller's tensor."""
    cleaned = {}
    for key, tensor in tensors.items():
        if tensor.dtype in _NAN_CHECKED and torch.isnan(tensor).any():
            logger.warning("%s: tensor %s has NaN values, replaced with 0", path, key)
            tensor = torch.where(torch.isnan(tensor), torch.zeros_like(tensor), tensor)
        cleaned[key] = tensor
    return cleaned
