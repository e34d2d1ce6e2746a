"""Offline tokenizers for musubi-tuner, which always asks the Hugging Face hub for them.

musubi-tuner (commit 30c658c) has no option for a tokenizer folder: `wan/modules/t5.py`
(T5EncoderModel) loads `AutoTokenizer.from_pretrained("Wan-AI/Wan2.1-T2V-14B",
subfolder="google/umt5-xxl")` and `wan/modules/clip.py` (CLIPModel, I2V latents and generation)
`"Wan-AI/Wan2.1-I2V-14B-720P", subfolder="xlm-roberta-large"`. Text caching and generation load
the UMT5 one; training from caches loads neither.

Offline, that works from a pre-filled hub cache (HF_HUB_OFFLINE=1 and the user's own cache), or
from `[training] tokenizer = <folder>`: we lay the folder out as a private hub cache (links, a
`refs/main`, and `.no_exist` markers for the files the folder lacks, which transformers otherwise
treats as a failed download) and point HF_HUB_CACHE at it.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from wan_lora_dagster.errors import ConfigError


@dataclass(frozen=True)
class HubTokenizer:
    repo: str
    subfolder: str
    model_type: str  # of the text model it belongs to


T5_TOKENIZER = HubTokenizer("Wan-AI/Wan2.1-T2V-14B", "google/umt5-xxl", "umt5")
CLIP_TOKENIZER = HubTokenizer("Wan-AI/Wan2.1-I2V-14B-720P", "xlm-roberta-large", "xlm-roberta")
# Files transformers looks for when it loads a tokenizer; one of the first three must exist.
TOKENIZER_FILES = ("tokenizer.json", "spiece.model", "sentencepiece.bpe.model")
PROBED_FILES = (
    *TOKENIZER_FILES,
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "config.json",
    "chat_template.jinja",
    "generation_config.json",
)
_HUB_FAILURE = re.compile(
    r"couldn't connect to 'https://huggingface\.co'|LocalEntryNotFoundError|OfflineModeIsEnabled"
    r"|outgoing traffic has been disabled|Can't load tokenizer|Max retries exceeded with url"
    r"|Temporary failure in name resolution|huggingface_hub\.errors\.\w+Error",
    re.IGNORECASE,
)


def offline_environment(
    tokenizer_dir: str | None, hub_cache: Path, needs_clip_tokenizer: bool
) -> dict[str, str]:
    """Environment for a script that loads tokenizers: {} to use the hub (or the user's cache).

    tokenizer_dir: `[training] tokenizer`, a UMT5 tokenizer folder, or a folder laid out like the
    Wan repository (`google/umt5-xxl/` and, for I2V, `xlm-roberta-large/` inside).
    """
    if not tokenizer_dir:
        return {}
    root = Path(tokenizer_dir).expanduser().resolve()
    folders = {T5_TOKENIZER: _tokenizer_folder(root, T5_TOKENIZER)}
    if needs_clip_tokenizer:
        folders[CLIP_TOKENIZER] = _tokenizer_folder(root, CLIP_TOKENIZER)
    for tokenizer, folder in folders.items():
        fill_hub_cache(hub_cache, tokenizer, folder)
    return {"HF_HUB_CACHE": str(hub_cache), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def fill_hub_cache(hub_cache: Path, tokenizer: HubTokenizer, folder: Path) -> Path:
    """Make `folder` what the hub cache holds for tokenizer.repo/tokenizer.subfolder."""
    repo_dir = hub_cache / f"models--{tokenizer.repo.replace('/', '--')}"
    revision = hashlib.sha1(str(folder).encode()).hexdigest()  # any 40-hex name: ours is stable
    snapshot = repo_dir / "snapshots" / revision / tokenizer.subfolder
    missing = repo_dir / ".no_exist" / revision / tokenizer.subfolder
    for directory in (snapshot, missing, repo_dir / "refs"):
        directory.mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(revision)
    for name in PROBED_FILES:
        source, link, marker = folder / name, snapshot / name, missing / name
        link.unlink(missing_ok=True)
        marker.unlink(missing_ok=True)
        if source.is_file():
            link.symlink_to(source)
        elif name == "config.json":
            # AutoTokenizer reads the model's config first, and offline some transformers
            # releases (5.17) take a missing one for a failed download even with its marker.
            link.write_text(json.dumps({"model_type": tokenizer.model_type}))
        else:
            marker.touch()
    return snapshot


def hub_failure(lines: list[str]) -> str | None:
    """The first output line that shows a failed tokenizer download, if any."""
    return next((line for line in lines if _HUB_FAILURE.search(line)), None)


def hub_failure_message(script: str, line: str, needs_clip_tokenizer: bool) -> str:
    wanted = [T5_TOKENIZER, *([CLIP_TOKENIZER] if needs_clip_tokenizer else [])]
    names = " and ".join(f"{t.repo}/{t.subfolder}" for t in wanted)
    download = " ".join(
        f"`huggingface-cli download {t.repo} --include '{t.subfolder}/*'`" for t in wanted
    )
    return (
        f"{script} could not load the tokenizer {names} from the Hugging Face hub "
        f"({line.strip()}). "
        "musubi-tuner downloads it on every run. Offline, set [training] tokenizer in "
        "wan_lora.toml to a folder holding it (tokenizer.json or spiece.model, and "
        "tokenizer_config.json; for I2V a folder with google/umt5-xxl/ and xlm-roberta-large/ "
        f"inside), or fill the hub cache once while online: {download}."
    )


def _tokenizer_folder(root: Path, tokenizer: HubTokenizer) -> Path:
    """`root/<subfolder>` if there is one; `root` itself may hold the UMT5 tokenizer."""
    if not root.is_dir():
        raise ConfigError(f"wan_lora.toml: [training] tokenizer = {str(root)!r}: no such folder")
    candidates = [root / tokenizer.subfolder, *([root] if tokenizer == T5_TOKENIZER else [])]
    for folder in candidates:
        if any((folder / name).is_file() for name in TOKENIZER_FILES):
            return folder
    raise ConfigError(
        f"wan_lora.toml: [training] tokenizer = {str(root)!r} holds no {tokenizer.subfolder} "
        f"tokenizer: put its files ({' or '.join(TOKENIZER_FILES)}, and tokenizer_config.json) "
        f"in {root / tokenizer.subfolder}"
    )


def script_failure_message(
    command: list[str], status: int, tail: list[str], needs_clip_tokenizer: bool
) -> str:
    """What a failed musubi script is told as: a hub lookup it could not make offline, named
    with its fix, or its last lines and the command."""
    script = next((Path(part).stem for part in command if part.endswith(".py")), command[0])
    failure = hub_failure(tail)
    if failure:
        return hub_failure_message(script, failure, needs_clip_tokenizer)
    shown = "\n".join(tail) or "(no output)"
    return (
        f"{script} failed with exit status {status}. Its last lines:\n{shown}\n"
        f"The command was: {shlex.join(command)}"
    )
