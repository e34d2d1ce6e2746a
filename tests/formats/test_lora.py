"""LoRA files: musubi/ComfyUI key names, exact conversion, and loading through diffusers.

Key names checked against musubi-tuner commit 30c658c: networks/lora_wan.py (prefix "lora_unet",
WAN_TARGET_REPLACE_MODULES = ["WanAttentionBlock"]), networks/lora.py:LoRANetwork.create_modules
(lora_name = f"{pfx}.{original_name}".replace(".", "_")), LoRAModule (lora_down / lora_up,
register_buffer("alpha")), and wan/modules/model.py (WanAttentionBlock: self_attn.q/k/v/o,
cross_attn.q/k/v/o, cross_attn.k_img/v_img for I2V, ffn.0 / ffn.2).
"""

import pytest
import torch
from diffusers import WanTransformer3DModel
from diffusers.loaders import WanLoraLoaderMixin
from peft import LoraConfig, get_peft_model_state_dict
from safetensors import safe_open

from wan_lora_dagster.errors import UserError
from wan_lora_dagster.formats.cache_files import read_lora_header, update_lora_header
from wan_lora_dagster.formats.lora import (
    PEFT_TARGET_MODULES,
    musubi_to_peft,
    peft_to_musubi,
    save_lora,
)

pytestmark = pytest.mark.fast  # the unit tier: make test-fast

RANK, ALPHA = 4, 2.0
TINY = {
    "patch_size": (1, 2, 2),
    "num_attention_heads": 2,
    "attention_head_dim": 8,
    "in_channels": 4,
    "out_channels": 4,
    "text_dim": 16,
    "freq_dim": 16,
    "ffn_dim": 32,
    "num_layers": 2,
}
MUSUBI_MODULES_OF_BLOCK_0 = [
    "self_attn_q",
    "self_attn_k",
    "self_attn_v",
    "self_attn_o",
    "cross_attn_q",
    "cross_attn_k",
    "cross_attn_v",
    "cross_attn_o",
    "ffn_0",
    "ffn_2",
]


def _tiny_transformer(**extra) -> WanTransformer3DModel:
    torch.manual_seed(0)
    return WanTransformer3DModel(**TINY, **extra).eval()


def _with_lora(transformer: WanTransformer3DModel, targets=PEFT_TARGET_MODULES):
    transformer.add_adapter(LoraConfig(r=RANK, lora_alpha=ALPHA, target_modules=list(targets)))
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, parameter in transformer.named_parameters():
            if "lora_B" in name:  # peft starts B at zero, which would hide a wrong scale
                parameter.copy_(torch.randn(parameter.shape, generator=generator))
    return transformer


def _forward(transformer: WanTransformer3DModel) -> torch.Tensor:
    generator = torch.Generator().manual_seed(2)
    with torch.no_grad():
        return transformer(
            hidden_states=torch.randn(1, 4, 2, 4, 4, generator=generator),
            timestep=torch.tensor([500]),
            encoder_hidden_states=torch.randn(1, 6, 16, generator=generator),
            return_dict=False,
        )[0]


def test_musubi_keys_are_exactly_musubis_names():
    peft = get_peft_model_state_dict(_with_lora(_tiny_transformer()))
    musubi = peft_to_musubi(peft, ALPHA)
    expected = {
        f"lora_unet_blocks_{block}_{module}.{tensor}"
        for block in (0, 1)
        for module in MUSUBI_MODULES_OF_BLOCK_0
        for tensor in ("lora_down.weight", "lora_up.weight", "alpha")
    }
    assert set(musubi) == expected
    alpha = musubi["lora_unet_blocks_0_self_attn_q.alpha"]
    assert alpha.dim() == 0 and alpha.dtype == torch.float32 and alpha.item() == ALPHA
    assert musubi["lora_unet_blocks_1_ffn_0.lora_down.weight"].shape == (RANK, 16)
    assert musubi["lora_unet_blocks_1_ffn_0.lora_up.weight"].shape == (32, RANK)


def test_round_trip_is_exact_and_keeps_dtypes():
    peft = get_peft_model_state_dict(_with_lora(_tiny_transformer()))
    peft["blocks.0.attn1.to_q.lora_A.weight"] = peft["blocks.0.attn1.to_q.lora_A.weight"].bfloat16()
    back, alpha = musubi_to_peft(peft_to_musubi(peft, ALPHA))
    assert alpha == ALPHA
    assert back.keys() == peft.keys()
    for key, tensor in peft.items():
        assert back[key].dtype == tensor.dtype and torch.equal(back[key], tensor), key


@pytest.mark.parametrize("prefix", ["transformer.", "base_model.model."])
def test_prefixed_peft_keys_convert_the_same(prefix):
    tensors = {"lora_A.weight": torch.ones(RANK, 16), "lora_B.weight": torch.ones(16, RANK)}
    peft = {f"{prefix}blocks.3.attn2.to_out.0.{k}": v for k, v in tensors.items()}
    assert set(peft_to_musubi(peft, ALPHA)) == {
        "lora_unet_blocks_3_cross_attn_o.lora_down.weight",
        "lora_unet_blocks_3_cross_attn_o.lora_up.weight",
        "lora_unet_blocks_3_cross_attn_o.alpha",
    }


def test_a_file_we_save_loads_through_diffusers_and_gives_the_same_output(tmp_path):
    trained = _with_lora(_tiny_transformer())
    path = tmp_path / "lora.safetensors"
    save_lora(
        path, peft_to_musubi(get_peft_model_state_dict(trained), ALPHA), {"ss_network_dim": "4"}
    )

    loaded = WanLoraLoaderMixin.lora_state_dict(str(path))
    base = _tiny_transformer()
    modules = dict(base.named_modules())
    for key in loaded:
        module_path = key.removeprefix("transformer.").rsplit(".", 2)[0]
        assert isinstance(modules.get(module_path), torch.nn.Linear), key
    assert len(loaded) == 2 * 10 * 2  # blocks x modules x (A, B): every tensor kept

    reference = _forward(trained)
    assert not torch.allclose(reference, _forward(base), atol=1e-3)  # the LoRA does something
    base.load_lora_adapter(loaded, prefix="transformer", adapter_name="ours")
    assert torch.allclose(_forward(base), reference, atol=1e-5)


def test_i2v_image_projections_map_to_musubis_k_img_v_img_and_load_in_diffusers(tmp_path):
    transformer = _tiny_transformer(image_dim=16, added_kv_proj_dim=16)
    targets = (*PEFT_TARGET_MODULES, "add_k_proj", "add_v_proj")
    musubi = peft_to_musubi(get_peft_model_state_dict(_with_lora(transformer, targets)), ALPHA)
    assert "lora_unet_blocks_0_cross_attn_k_img.lora_down.weight" in musubi
    assert "lora_unet_blocks_1_cross_attn_v_img.alpha" in musubi
    path = tmp_path / "i2v.safetensors"
    save_lora(path, musubi, {})
    loaded = WanLoraLoaderMixin.lora_state_dict(str(path))
    assert "transformer.blocks.1.attn2.add_v_proj.lora_B.weight" in loaded
    assert len(loaded) == 2 * 12 * 2


def test_diffusers_scaled_weights_carry_alpha_over_rank():
    down, up = torch.randn(RANK, 16), torch.randn(16, RANK)
    peft = {}
    for module in ("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0"):
        for side in ("attn1", "attn2"):
            name = module.replace("attn1", side)
            peft[f"blocks.0.{name}.lora_A.weight"] = down
            peft[f"blocks.0.{name}.lora_B.weight"] = up
    for name in ("ffn.net.0.proj", "ffn.net.2"):
        peft[f"blocks.0.{name}.lora_A.weight"] = down
        peft[f"blocks.0.{name}.lora_B.weight"] = up
    loaded = WanLoraLoaderMixin.lora_state_dict(peft_to_musubi(peft, ALPHA))
    a = loaded["transformer.blocks.0.attn1.to_q.lora_A.weight"]
    b = loaded["transformer.blocks.0.attn1.to_q.lora_B.weight"]
    assert torch.allclose(b @ a, (up @ down) * ALPHA / RANK)


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("condition_embedder.time_proj.lora_A.weight", "not a peft LoRA weight"),
        ("blocks.0.attn1.to_q.lora_A.default.weight", "not a peft LoRA weight"),
        ("blocks.0.attn1.norm_q.lora_A.weight", "has no module for 'attn1.norm_q'"),
    ],
)
def test_peft_keys_musubi_cannot_hold_are_refused(key, message):
    with pytest.raises(ValueError, match=message):
        peft_to_musubi({key: torch.zeros(RANK, 16)}, ALPHA)


def test_a_half_module_is_refused():
    with pytest.raises(ValueError, match="only one of"):
        peft_to_musubi({"blocks.0.attn1.to_q.lora_A.weight": torch.zeros(RANK, 16)}, ALPHA)


def test_musubi_files_with_mixed_alphas_cannot_become_one_peft_config():
    tensors = {"lora_down.weight": torch.zeros(RANK, 16), "lora_up.weight": torch.zeros(16, RANK)}
    musubi = {}
    for module, alpha in (("self_attn_q", 1.0), ("self_attn_k", 2.0)):
        musubi |= {f"lora_unet_blocks_0_{module}.{k}": v for k, v in tensors.items()}
        musubi[f"lora_unet_blocks_0_{module}.alpha"] = torch.tensor(alpha)
    with pytest.raises(ValueError, match="different alphas"):
        musubi_to_peft(musubi)
    with pytest.raises(ValueError, match="not a musubi-tuner Wan LoRA key"):
        musubi_to_peft({"lora_unet_blocks_0_norm1.lora_down.weight": torch.zeros(1)})


def test_header_fields_survive_an_update_and_tensors_stay(tmp_path):
    path = tmp_path / "lora.safetensors"
    weights = {"lora_unet_blocks_0_ffn_2.alpha": torch.tensor(2.0)}
    save_lora(path, weights, {"ss_network_dim": "4", "wan_lora.training_set": "abc"})
    update_lora_header(path, {"wan_lora.training_set": "def", "wan_lora.val_loss": "0.12"})
    assert read_lora_header(path) == {
        "ss_network_dim": "4",
        "wan_lora.training_set": "def",
        "wan_lora.val_loss": "0.12",
    }
    with safe_open(str(path), framework="pt") as handle:
        assert handle.get_tensor("lora_unet_blocks_0_ffn_2.alpha").item() == 2.0
    assert [p.name for p in tmp_path.iterdir()] == ["lora.safetensors"]


def test_header_values_must_be_strings(tmp_path):
    with pytest.raises(ValueError, match="must be strings"):
        save_lora(tmp_path / "lora.safetensors", {"x": torch.zeros(1)}, {"epoch": 3})
    assert not any(tmp_path.iterdir())


def test_reading_a_missing_lora_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match=r"missing\.safetensors"):
        read_lora_header(tmp_path / "missing.safetensors")
