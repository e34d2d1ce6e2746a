"""A musubi-format DiT file loads into diffusers' WanTransformer3DModel, with no download."""

import pytest
import torch
from diffusers import WanTransformer3DModel
from safetensors.torch import save_file

from wan_lora_dagster.engines.diffusers.tiny import ensure_tiny_model
from wan_lora_dagster.engines.musubi.single_file import load_transformer, transformer_config
from wan_lora_dagster.errors import EngineError
from wan_lora_dagster.tasks import wan_task
from wan_lora_dagster.testing.tiny_dit import write_tiny_musubi_dit


@pytest.mark.parametrize("task", ["t2v-1.3B", "i2v-14B"])
def test_the_tiny_dit_loads_back_with_every_weight_and_its_config(tiny_model_dir, tmp_path, task):
    folder = ensure_tiny_model(tiny_model_dir.parent / wan_task(task).tiny_model, task)
    dit = write_tiny_musubi_dit(folder, tmp_path / "dit.safetensors")
    expected = WanTransformer3DModel.from_pretrained(folder, subfolder="transformer")

    loaded = load_transformer(dit, tmp_path / "config", torch.float32, False)

    assert settings(loaded) == settings(expected)
    want = expected.state_dict()
    assert loaded.state_dict().keys() == want.keys()
    for key, tensor in loaded.state_dict().items():
        assert torch.equal(tensor, want[key]), key


def test_fp8_storage_keeps_the_linear_weights_in_fp8(tiny_model_dir, tmp_path):
    dit = write_tiny_musubi_dit(tiny_model_dir, tmp_path / "dit.safetensors")
    loaded = load_transformer(dit, tmp_path / "config", torch.float32, True)
    assert loaded.blocks[0].attn1.to_q.weight.dtype == torch.float8_e4m3fn


def test_a_file_that_is_no_wan_dit_is_named(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"weight": torch.zeros(2)}, str(path))
    with pytest.raises(EngineError, match=r"other\.safetensors: not a Wan 2.1 DiT"):
        transformer_config(path)


def settings(model: WanTransformer3DModel) -> dict:
    return {key: value for key, value in model.config.items() if not key.startswith("_")}
