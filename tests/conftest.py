import json
from collections.abc import Callable
from pathlib import Path

import pytest

SHARED_MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media"


@pytest.fixture(scope="session")
def shared_media() -> Path:
    """The real test films in ../shared/media; skips where a clone has no ../shared beside it."""
    if not SHARED_MEDIA.is_dir():
        pytest.skip(f"test media not found at {SHARED_MEDIA} (it lives in ../shared/media)")
    return SHARED_MEDIA


def _made_contents(project: Path) -> dict[str, object]:
    """The files a run made, as a user compares two projects: bytes; a safetensors file's header
    fields and tensors (safetensors writes the fields in no fixed order, so the bytes and their
    hash may differ); records without file times.

    Left out: training logs (TensorBoard names its file after the time and process) and
    out/.state (the hashes of films already read, by absolute path).
    """
    files = {}
    for folder in (project / "out", project / "captions"):
        for path in sorted(folder.rglob("*")):
            name = str(path.relative_to(project))
            if path.is_dir() or name.startswith(("out/logs/", "out/.state/")):
                continue
            files[name] = path.read_bytes()
            if name.endswith(".safetensors") and _whole(path):
                files[name] = _tensors(path)
            elif name.startswith("out/records/"):
                files[name] = _without_times(json.loads(files[name]))
    return files


def _whole(path: Path) -> bool:
    """Whether a safetensors file reads (a damaged one compares as its bytes)."""
    from wan_lora_dagster.formats.cache_files import safetensors_complete

    return safetensors_complete(path)


def _tensors(path: Path) -> tuple[dict, dict[str, bytes]]:
    import torch  # here: the fast tier's tests never load it
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), "pt") as handle:
        metadata = handle.metadata()
    tensors = load_file(path)
    return metadata, {
        key: tensor.reshape(-1).view(torch.uint8).numpy().tobytes()
        for key, tensor in tensors.items()
    }


def _without_times(record: dict) -> dict:
    for name, made in record.get("made_files", {}).items():
        made.pop("mtime_ns")
        if name.endswith(".safetensors"):
            made.pop("hash")
    return record


@pytest.fixture(scope="session")
def made_contents() -> Callable[[Path], dict[str, object]]:
    """made_contents(project): what a run made, file by file, to compare two projects."""
    return _made_contents
