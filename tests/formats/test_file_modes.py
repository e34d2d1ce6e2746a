"""Files written under out/ get the mode the user's umask gives any new file: a team sharing
storage under umask 002 reads each other's records, caches and checkpoints."""

import os
import stat

import pytest
import torch

from wan_lora_dagster.disk_full import write_text_atomic
from wan_lora_dagster.file_modes import with_umask_mode
from wan_lora_dagster.formats.cache_files import update_lora_header
from wan_lora_dagster.formats.musubi_cache import write_safetensors


@pytest.fixture(params=[0o002, 0o022, 0o077], ids=["umask002", "umask022", "umask077"])
def umask(request):
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_every_writer_makes_files_as_the_umask_says(tmp_path, umask):
    expected = 0o666 & ~umask
    record, tensors = tmp_path / "records" / "a.json", tmp_path / "cache" / "a.safetensors"

    write_text_atomic(record, "{}")
    write_safetensors(tensors, {"x": torch.zeros(2)}, {"format": "pt"})
    assert (mode(record), mode(tensors)) == (expected, expected)
    update_lora_header(tensors, {"ss_steps": "4"})
    assert mode(tensors) == expected
    assert sorted(os.listdir(tmp_path / "cache")) == ["a.safetensors"], "no temporary file left"


def test_a_folder_a_library_wrote_gets_the_umasks_mode(tmp_path, umask):
    (tmp_path / "model" / "sub").mkdir(parents=True)
    for name in ("model/config.json", "model/sub/weights.safetensors"):
        (tmp_path / name).write_bytes(b"{}")
        os.chmod(tmp_path / name, 0o600)  # as safetensors' save_file leaves its files

    with_umask_mode(tmp_path / "model")

    assert mode(tmp_path / "model/config.json") == 0o666 & ~umask
    assert mode(tmp_path / "model/sub/weights.safetensors") == 0o666 & ~umask
