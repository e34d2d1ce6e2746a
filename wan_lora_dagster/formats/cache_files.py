"""The torch-free half of musubi-tuner's file formats: cache file names and safetensors headers.

`wan-lora status`, lineage and the manifest need names and headers only; keeping them apart from
the tensor code (musubi_cache.py, lora.py) spares every command the second it takes to import
torch. Names follow musubi-tuner's rules, documented in musubi_cache.py.

A safetensors file is an 8-byte little-endian header length, the JSON header (with the string
map `__metadata__`), then the tensors' bytes, addressed relative to the header's end: so the
header can be read, and rewritten, without touching a tensor.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

from wan_lora_dagster.disk_full import writing_into
from wan_lora_dagster.errors import UserError
from wan_lora_dagster.file_modes import create_temporary
from wan_lora_dagster.tasks import VAES, WAN21_VAE

ARCHITECTURE = WAN21_VAE.architecture
"""musubi-tuner's name of every Wan cache: the text caches' and the Wan 2.1 VAE's latents'."""
LATENT_ARCHITECTURES = tuple(vae.architecture for vae in VAES)
"""Latents of the Wan 2.2 VAE (TI2V-5B: 48 channels, 16x spatial) are not the Wan 2.1 VAE's: their
names and headers say so, so neither is ever read as the other (musubi has no such model)."""
NAME_MAX_BYTES = 255  # a file name's limit on Linux's file systems (ext4, xfs, btrfs, tmpfs)
# The longest name an item's id is part of: a video window's latent cache of the VAE with the
# longest name, as an atomic write's temporary file (".<name>.<8 hex digits>.tmp") names it.
_LONGEST_SUFFIX = f"_00000-000_0000x0000_{max(LATENT_ARCHITECTURES, key=len)}.safetensors"
LONGEST_ITEM_ID_BYTES = NAME_MAX_BYTES - len(f".{_LONGEST_SUFFIX}.12345678.tmp")
_HEADER_LENGTH = struct.Struct("<Q")
# Unicode's control characters (category Cc): one regex search, not a lookup per character of
# 30,000 clip ids
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_MAX_HEADER_BYTES = 100 * 1024 * 1024  # safetensors' own limit
_LATENT_NAME = re.compile(
    r"^(?P<item_id>.+?)(?:_(?P<start_frame>\d{5,})-(?P<num_frames>\d{3,}))?"
    r"_(?P<width>\d{4,})x(?P<height>\d{4,})_(?P<architecture>"
    + "|".join(LATENT_ARCHITECTURES)
    + r")\.safetensors$"
)


class CacheFileError(UserError):
    """A cache or LoRA file cannot be read or does not hold what its name promises."""


@dataclass(frozen=True)
class LatentCacheName:
    """What a latent cache file name says: musubi-tuner reads a file's meaning from its name."""

    item_id: str
    width: int
    height: int
    start_frame: int | None = None
    num_frames: int | None = None
    architecture: str = ARCHITECTURE


def latent_cache_name(
    item_id: str,
    width: int,
    height: int,
    start_frame: int | None = None,
    num_frames: int | None = None,
    architecture: str = ARCHITECTURE,
) -> str:
    """The file name musubi-tuner gives a latent: a video window when start_frame is given.

    width, height: the frames' size after bucketing for a video, the original size for an image.
    architecture: the VAE's (tasks.Vae.architecture): WAN22_VAE's for latents of the Wan 2.2 VAE.
    """
    _check_item_id(item_id)
    if architecture not in LATENT_ARCHITECTURES:
        raise ValueError(f"unknown latent architecture {architecture!r}")
    size = f"{width:04d}x{height:04d}_{architecture}.safetensors"
    if (start_frame is None) != (num_frames is None):
        raise ValueError("give both start_frame and num_frames for a video window, or neither")
    if start_frame is None:
        return f"{item_id}_{size}"
    return f"{item_id}_{start_frame:05d}-{num_frames:03d}_{size}"


def parse_latent_cache_name(name: str) -> LatentCacheName:
    """The inverse of latent_cache_name (a name with a frame range is read as a video window)."""
    match = _LATENT_NAME.match(name)
    if match is None:
        raise CacheFileError(
            f"{name}: not a musubi-tuner Wan latent cache name "
            f"(<item>[_<start>-<frames>]_<width>x<height>_{ARCHITECTURE}.safetensors)"
        )
    fields = {key: value for key, value in match.groupdict().items() if value is not None}
    texts = ("item_id", "architecture")
    numbers = {key: int(value) for key, value in fields.items() if key not in texts}
    return LatentCacheName(fields["item_id"], architecture=fields["architecture"], **numbers)


def text_cache_name(item_id: str) -> str:
    _check_item_id(item_id)
    return f"{item_id}_{ARCHITECTURE}_te.safetensors"


def ema_file(checkpoint: Path) -> Path:
    """The EMA weights saved beside a checkpoint (engines/diffusers/ema.py); a name the
    graph's records check, so here, with no torch to import."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(f"{checkpoint.stem}.ema{checkpoint.suffix}")


def read_safetensors_metadata(path: Path) -> dict[str, str]:
    """The `__metadata__` of a safetensors header; no tensor is read."""
    return dict(_read_header(Path(path))[0].get("__metadata__") or {})


MODEL_HEADER_FILE = "wan_lora.json"  # a fully fine-tuned model folder's header (full_model.py)


def read_lora_header(path: Path) -> dict[str, str]:
    """The metadata of a LoRA file (what musubi-tuner and ComfyUI show as its header), or of a
    full fine-tune's folder (its wan_lora.json; {} without one)."""
    if os.path.isdir(path):
        header = Path(path) / MODEL_HEADER_FILE
        return json.loads(header.read_text(encoding="utf-8")) if header.is_file() else {}
    return read_safetensors_metadata(path)


def safetensors_complete(path: Path) -> bool:
    """Whether all the bytes the header promises are there, and no more (a file being written,
    or cut by a full disk or a crash, is shorter)."""
    try:
        header, data_start = _read_header(Path(path))
        size = os.stat(path).st_size
        tensors = (value for key, value in header.items() if key != "__metadata__")
        data_end = max((tensor["data_offsets"][1] for tensor in tensors), default=0)
    except (CacheFileError, OSError, KeyError, TypeError, IndexError):
        return False
    return size == data_start + data_end


def update_lora_header(path: Path, fields: dict[str, str]) -> None:
    """Add or replace metadata fields, keeping the tensors' bytes and the other fields; atomic:
    a reader sees the old file or the whole new one."""
    path = Path(path)
    bad = sorted(key for key, value in fields.items() if not isinstance(value, str))
    if bad:
        raise ValueError(f"safetensors metadata values must be strings: {bad}")
    header, data_start = _read_header(path)
    header["__metadata__"] = {**(header.get("__metadata__") or {}), **fields}
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # tensors stay 8-byte aligned, as safetensors writes
    handle, temporary = create_temporary(path)
    try:
        with writing_into(path.parent):
            with os.fdopen(handle, "wb") as target, open(path, "rb") as source:
                target.write(_HEADER_LENGTH.pack(len(encoded)) + encoded)
                source.seek(data_start)
                shutil.copyfileobj(source, target)
            os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _read_header(path: Path) -> tuple[dict, int]:
    """(the JSON header, where the tensors' bytes start)."""
    try:
        with open(path, "rb") as handle:
            prefix = handle.read(_HEADER_LENGTH.size)
            (length,) = _HEADER_LENGTH.unpack(prefix)
            if length > _MAX_HEADER_BYTES:
                raise ValueError(f"header length {length} is not plausible")
            header = json.loads(handle.read(length))
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
    except (OSError, ValueError, struct.error) as error:
        raise CacheFileError(f"{path}: not a readable safetensors file ({error})") from None
    return header, _HEADER_LENGTH.size + length


def item_id_problem(item_id: str) -> str | None:
    """Why `item_id` cannot name its item's files (clip, caption, caches, records), or None.

    Every other name Linux allows works, a backslash, quotes, spaces and `[*?%` among them.
    """
    if not item_id:
        return "is empty"
    if item_id.startswith("."):
        return "starts with '.', which hides its cache files from musubi-tuner"
    if "/" in item_id:
        return "has a '/', which would put its files in another folder"
    try:
        length = len(item_id.encode("utf-8"))
    except UnicodeEncodeError:
        return "has bytes that are not UTF-8 text"
    if control := _CONTROL.search(item_id):
        # A line per item (`status`, the problems, musubi's prompt files) would break apart.
        return f"has the control character {control.group()!r}"
    if length > LONGEST_ITEM_ID_BYTES:
        return (
            f"is {length} bytes long; its cache files' names would pass the {NAME_MAX_BYTES} "
            f"bytes a file name may have: at most {LONGEST_ITEM_ID_BYTES} bytes"
        )
    return None


def _check_item_id(item_id: str) -> None:
    if (problem := item_id_problem(item_id)) is not None:
        raise ValueError(f"item id {item_id!r} cannot name a cache file: it {problem}")
