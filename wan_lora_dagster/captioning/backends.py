"""Captioner backends: which model captions the clips, and how it is loaded.

Two families, chosen by `[captions] captioner`:

- "blip2": BLIP-2 (`Blip2ForConditionalGeneration`), an image captioner (see `blip2.py`);
- "vlm": a Qwen2-VL, Qwen2.5-VL or Qwen3-VL chat model, which sees the sampled frames of a clip
  as one video (see `vlm.py`); the folder's config.json (`architectures`) says which.

Models load from a local folder only (never from the Hub at run time), once per run;
`caption_batch()` is then called per batch of clips with greedy, deterministic decoding.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from wan_lora_dagster.errors import EngineError
from wan_lora_dagster.recipe.datasets import DEFAULT_CAPTION_BATCH_SIZE

if TYPE_CHECKING:
    from PIL import Image

# Bump when a change here alters captions for the same model and settings.
CAPTIONER_CODE_VERSION = "2"  # 2: Qwen-VL models see a clip as a video, not as images

# What to download for each backend, and the architectures its config.json may name.
_DOWNLOAD_HINTS = {
    "blip2": "Salesforce/blip2-opt-2.7b",
    "vlm": "Qwen/Qwen2.5-VL-7B-Instruct",
}
ARCHITECTURES = {
    "blip2": ("Blip2ForConditionalGeneration",),
    "vlm": (
        "Qwen2VLForConditionalGeneration",
        "Qwen2_5_VLForConditionalGeneration",
        "Qwen3VLForConditionalGeneration",
    ),
}

# A model file's content is identified by its size and first and last MiB (see `_model_digest`).
_SAMPLE_BYTES = 1 << 20


class Captioner(Protocol):
    def caption_batch(self, clips: list[list[Image.Image]], prompt: str) -> list[str]:
        """One caption per clip, from its frames (RGB images in time order) and `prompt`."""
        ...


@dataclass(frozen=True)
class CaptionerSettings:
    """Which captioner to load and how it captions.

    Args:
        captioner: "blip2", "vlm" or "none".
        model: local folder of a transformers model (`huggingface-cli download ... --local-dir`).
        prompt: the instruction given with the frames.
        frames_per_clip: how many frames, evenly spread over a clip, the captioner sees.
        max_new_tokens: the longest caption, in tokens.
        device: torch device to run on ("cpu", "cuda", "cuda:1", ...).
        batch_size: clips captioned by one generate call.
    """

    captioner: str
    model: str | None
    prompt: str = "Describe this video clip in one sentence."
    frames_per_clip: int = 3
    max_new_tokens: int = 40
    device: str = "cpu"
    batch_size: int = DEFAULT_CAPTION_BATCH_SIZE

    def fingerprint(self) -> str:
        """A short hash of everything that changes the captions.

        The model enters by content (files in its folder), not by path, so moving the folder
        changes nothing. The device and batch size are left out on purpose: greedy decoding
        gives the same or nearly the same words on any device and in any batch (bfloat16 on a
        GPU may change a word), which is no reason to re-caption a whole project.
        """
        fields = asdict(self)
        del fields["device"], fields["batch_size"]
        fields["model"] = _model_digest_of(self.model)
        fields["code_version"] = CAPTIONER_CODE_VERSION
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def load_captioner(settings: CaptionerSettings) -> Captioner | None:
    """The captioner of `settings`, loaded and ready; None for captioner "none".

    Raises:
        EngineError: the captioner is unknown, or its model folder is missing or unloadable;
            the message names the folder and says what to download.
    """
    if settings.captioner == "none":
        return None
    if settings.captioner not in ARCHITECTURES:
        raise EngineError(
            f"unknown captioner '{settings.captioner}': set [captions] captioner to one of "
            f"{', '.join([*ARCHITECTURES, 'none'])} in wan_lora.toml"
        )
    model_directory = _checked_model_directory(settings)
    if settings.captioner == "blip2":
        from wan_lora_dagster.captioning.blip2 import Blip2Captioner as backend
    else:
        from wan_lora_dagster.captioning.vlm import QwenVideoCaptioner as backend
    try:
        return backend.load(model_directory, settings)
    except Exception as error:  # transformers raises many kinds; all mean "this folder won't load"
        raise EngineError(
            f"{model_directory}: cannot load the {settings.captioner} captioner "
            f"({type(error).__name__}: {error}). {_download_hint(settings.captioner)}"
        ) from error


def _download_hint(captioner: str) -> str:
    repository = _DOWNLOAD_HINTS[captioner]
    return (
        f"Download {repository} with `huggingface-cli download {repository} --local-dir <dir>` "
        f'and set [captions] model = "<dir>" in wan_lora.toml (or model = "tiny" for the '
        "offline plumbing model)."
    )


def _checked_model_directory(settings: CaptionerSettings) -> Path:
    """The model folder, once its config.json names an architecture the captioner supports."""
    hint = _download_hint(settings.captioner)
    if not settings.model:
        raise EngineError(f"captioner '{settings.captioner}' has no model folder. {hint}")
    directory = Path(settings.model).expanduser()
    config_path = directory / "config.json"
    if not config_path.is_file():
        what = "has no config.json" if directory.is_dir() else "does not exist"
        raise EngineError(f"{directory}: captioner model folder {what}. {hint}")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        architecture = (config.get("architectures") or [None])[0]
    except (ValueError, AttributeError, TypeError) as error:
        raise EngineError(f"{config_path}: not a model config ({error}). {hint}") from error
    supported = ARCHITECTURES[settings.captioner]
    if architecture not in supported:
        raise EngineError(
            f"{directory}: its config.json names the architecture '{architecture}' "
            f"(model_type '{config.get('model_type')}'), which captioner '{settings.captioner}' "
            f"does not support; it opens {', '.join(supported)}. {hint}"
        )
    return directory


def _model_digest_of(model: str | None) -> str | None:
    """The model folder's content digest; the path itself where it is no folder (yet)."""
    if not model or not Path(model).expanduser().is_dir():
        return model
    directory = Path(model).expanduser().resolve()
    return _model_digest(directory, _folder_signature(directory))


def _model_files(directory: Path) -> list[Path]:
    """Files of a model folder, without hidden ones (`huggingface-cli` keeps a `.cache/`)."""
    return sorted(
        path
        for path in directory.rglob("*")
        if path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(directory).parts)
    )


def _folder_signature(directory: Path) -> tuple:
    """Names, sizes and modification times: what tells whether the digest must be recomputed."""
    return tuple(
        (str(path.relative_to(directory)), stat.st_size, stat.st_mtime_ns)
        for path in _model_files(directory)
        for stat in [path.stat()]
    )


@lru_cache(maxsize=8)
def _model_digest(directory: Path, signature: tuple) -> str:
    """A hash of every file's name, size and sampled content (its first and last MiB).

    Sampling keeps this fast for weights of many GB; a replaced download or another model
    changes the header or the data at either end of a file. `signature` is the cache key.
    """
    digest = hashlib.sha256()
    for name, size, _ in signature:
        digest.update(f"{name}\0{size}\0".encode())
        with open(directory / name, "rb") as file:
            digest.update(file.read(_SAMPLE_BYTES))
            if size > 2 * _SAMPLE_BYTES:
                file.seek(-_SAMPLE_BYTES, os.SEEK_END)
            digest.update(file.read(_SAMPLE_BYTES))
    return digest.hexdigest()
