"""Offline tokenizers: musubi-tuner always asks the hub for Wan-AI/Wan2.1-T2V-14B's
google/umt5-xxl tokenizer (wan/modules/t5.py, commit 30c658c); a local folder stands in for it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from wan_lora_dagster.engines.musubi import hub
from wan_lora_dagster.errors import ConfigError
from wan_lora_dagster.testing.musubi_fixtures import train_request

# What musubi's HuggingfaceTokenizer (wan/modules/tokenizers.py) does with the T5 tokenizer.
LOAD_AS_MUSUBI_DOES = """
from transformers import AutoTokenizer
tokenizer = AutoTokenizer.from_pretrained("Wan-AI/Wan2.1-T2V-14B", subfolder="google/umt5-xxl")
print(tokenizer("a film clip").input_ids)
"""
# transformers 5.23's message when the hub is off and the cache lacks the files (seen here).
OFFLINE_FAILURE = [
    "Traceback (most recent call last):",
    "huggingface_hub.errors.LocalEntryNotFoundError: Cannot find the requested files in the disk "
    "cache and outgoing traffic has been disabled. To enable hf.co look-ups and downloads "
    "online, set 'local_files_only' to False.",
    "OSError: We couldn't connect to 'https://huggingface.co' to load the files, and couldn't "
    "find them in the cached files.",
]


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    from wan_lora_dagster.engines.diffusers.tiny import build_tiny_tokenizer

    folder = tmp_path_factory.mktemp("umt5-tokenizer")
    build_tiny_tokenizer().save_pretrained(folder)
    return folder


def test_a_tokenizer_folder_loads_as_musubi_loads_it_offline(tokenizer_dir, tmp_path):
    environment = hub.offline_environment(str(tokenizer_dir), tmp_path / "hub", False)
    assert environment["HF_HUB_OFFLINE"] == "1"
    result = subprocess.run(
        [sys.executable, "-c", LOAD_AS_MUSUBI_DOES],
        env={**os.environ, **environment},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1])[-1] == 1  # ends with </s>


def test_a_wan_laid_out_folder_serves_both_tokenizers(tokenizer_dir, tmp_path):
    root = tmp_path / "Wan2.1-tokenizers"
    for tokenizer in (hub.T5_TOKENIZER, hub.CLIP_TOKENIZER):
        (root / tokenizer.subfolder).parent.mkdir(parents=True, exist_ok=True)
        (root / tokenizer.subfolder).symlink_to(tokenizer_dir)
    cache = tmp_path / "hub"
    hub.offline_environment(str(root), cache, needs_clip_tokenizer=True)
    for repo, subfolder in (
        ("Wan-AI--Wan2.1-T2V-14B", "google/umt5-xxl"),
        ("Wan-AI--Wan2.1-I2V-14B-720P", "xlm-roberta-large"),
    ):
        (snapshot,) = (cache / f"models--{repo}" / "snapshots").iterdir()
        assert (snapshot / subfolder / "tokenizer.json").is_file()


def test_no_tokenizer_folder_leaves_the_hub_to_musubi(tmp_path):
    assert hub.offline_environment(None, tmp_path / "hub", False) == {}


def test_a_folder_without_tokenizer_files_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="holds no google/umt5-xxl tokenizer"):
        hub.offline_environment(str(tmp_path), tmp_path / "hub", False)


def test_image_to_video_needs_the_clip_tokenizer_too(tokenizer_dir, tmp_path):
    with pytest.raises(ConfigError, match="xlm-roberta-large"):
        hub.offline_environment(str(tokenizer_dir), tmp_path / "hub", needs_clip_tokenizer=True)


def test_text_caching_runs_offline_with_a_tokenizer_folder(
    make_engine, project, manifest, tokenizer_dir, tmp_path
):
    engine = make_engine(tokenizer=str(tokenizer_dir))
    request = train_request(manifest, engine.settings, tmp_path / "checkpoints")
    _, text_command, train_command = engine.plan(request, project.latent_jobs, project.text_jobs)
    assert "HF_HUB_OFFLINE=1" in text_command
    assert f"HF_HUB_CACHE={engine.work_dir / 'hub-cache'}" in text_command
    assert "HF_HUB_OFFLINE=1" not in train_command  # training from caches loads no tokenizer


def test_hub_failures_are_recognised():
    assert hub.hub_failure(["INFO: loading T5", *OFFLINE_FAILURE]) == OFFLINE_FAILURE[1]
    assert hub.hub_failure(["RuntimeError: CUDA out of memory"]) is None
