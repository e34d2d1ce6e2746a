"""Safetensors headers read and rewritten without torch: what status, lineage and the engines'
checkpoint landing use on LoRA files of any size."""

import pytest
import torch
from safetensors.torch import load_file, save_file

from wan_lora_dagster.formats.cache_files import (
    CacheFileError,
    read_lora_header,
    update_lora_header,
)

pytestmark = pytest.mark.fast  # the unit tier: make test-fast


def test_a_header_update_keeps_every_tensor_byte_for_byte(tmp_path):
    path = tmp_path / "lora.safetensors"
    tensors = {  # odd sizes and mixed dtypes: the data block is copied, never re-laid out
        "a.lora_down.weight": torch.randn(3, 5, dtype=torch.bfloat16),
        "a.alpha": torch.tensor(4.0),
        "b.lora_up.weight": torch.arange(7, dtype=torch.int8),
    }
    save_file(tensors, str(path), metadata={"ss_epoch": "2"})
    update_lora_header(path, {"wan_lora.training_set": "abc" * 7})

    assert read_lora_header(path) == {"ss_epoch": "2", "wan_lora.training_set": "abc" * 7}
    loaded = load_file(str(path))
    assert all(torch.equal(loaded[key], value) for key, value in tensors.items())


def test_a_file_that_is_not_safetensors_is_named_in_the_error(tmp_path):
    path = tmp_path / "broken.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(CacheFileError, match=r"broken\.safetensors: not a readable safetensors"):
        read_lora_header(path)
    with pytest.raises(CacheFileError, match=r"broken\.safetensors"):
        update_lora_header(path, {"x": "y"})
    assert path.read_bytes().endswith(b"{not json"), "a failed update leaves the file alone"
