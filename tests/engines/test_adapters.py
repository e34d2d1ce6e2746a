"""LoKr, LoHa and DoRA (`[training] network`, `dora`) on the diffusers engine, tiny model, CPU:
each trains, saves a file in ComfyUI's key names (tests/comfy_lora_keys.py restates ComfyUI's
mapping and math), loads back for validation and eval through diffusers' loaders where diffusers
has one, and changes the output at strength 1 but not at 0."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from diffusers import WanPipeline, WanTransformer3DModel
from safetensors.torch import load_file

from wan_lora_dagster.engines.adapters import adapter_config, adapter_file_tensors, load_adapter
from wan_lora_dagster.engines.base import SampleRequest
from wan_lora_dagster.engines.diffusers.lora_network import LORA_TARGET_MODULES
from wan_lora_dagster.engines.diffusers.tiny import _build_transformer
from wan_lora_dagster.errors import EngineError
from wan_lora_dagster.formats.adapter_keys import file_to_peft
from wan_lora_dagster.formats.cache_files import read_lora_header
from wan_lora_dagster.formats.lora import save_lora
from wan_lora_dagster.media.frames import read_frames
from wan_lora_dagster.recipe.evaluation import EvalSettings
from wan_lora_dagster.testing.comfy_lora_keys import merged_weight, unloaded_keys
from wan_lora_dagster.testing.stripes import TRAINING, ignore_progress, train_request

ADAPTERS = {
    "dora": {"network": "lora", "dora": True},
    "lokr": {"network": "lokr"},
    "loha": {"network": "loha"},
}
EVAL = EvalSettings(
    prompts=("stripes drift to the left",), strengths=(0.0, 1.0), seeds=(3,),
    width=32, height=32, num_frames=5, num_inference_steps=2,
)  # fmt: skip


def transformer() -> WanTransformer3DModel:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(11)
        return _build_transformer(False)


def forward(model: WanTransformer3DModel) -> torch.Tensor:
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        return model(
            hidden_states=torch.randn(1, 4, 2, 4, 4, generator=generator),
            timestep=torch.tensor([500.0]),
            encoder_hidden_states=torch.randn(1, 8, 32, generator=generator),
            return_dict=False,
        )[0]


def randomised(model: WanTransformer3DModel, name: str) -> None:
    """Give a fresh adapter non-zero weights: a trained one's stand-in."""
    generator = torch.Generator().manual_seed(3)
    for parameter_name, parameter in model.named_parameters():
        mine = f".{name}." in parameter_name or parameter_name.endswith(f".{name}")
        if mine and "magnitude" not in parameter_name:
            parameter.data = torch.randn(parameter.shape, generator=generator) * 0.2
        elif mine:
            parameter.data *= 1 + 0.1 * torch.randn(parameter.shape, generator=generator)


@pytest.fixture(params=list(ADAPTERS), scope="module")
def adapter_file(request, tmp_path_factory):
    """A random adapter of each kind, its output, and the file it saves to."""
    settings = (
        replace(TRAINING, **ADAPTERS[request.param])
        if False
        else TRAINING.model_copy(update=ADAPTERS[request.param])
    )
    model = transformer()
    base = forward(model)
    model.add_adapter(adapter_config(settings, list(LORA_TARGET_MODULES)), adapter_name="trained")
    randomised(model, "trained")
    adapted = forward(model)
    path = tmp_path_factory.mktemp("adapters") / f"{request.param}.safetensors"
    save_lora(path, adapter_file_tensors(model, "trained", settings), {"kind": request.param})
    return request.param, path, base, adapted


def test_the_file_has_only_keys_comfyui_loads(adapter_file):
    kind, path, _, _ = adapter_file
    tensors = load_file(path)

    assert unloaded_keys(tensors, num_blocks=2) == []
    suffixes = {key.split(".", 1)[1] for key in tensors}
    expected = {"dora": "dora_scale", "lokr": "lokr_w1", "loha": "hada_w1_a"}[kind]
    assert expected in suffixes


def test_loading_the_file_gives_the_trained_output(adapter_file):
    kind, path, base, adapted = adapter_file
    model = transformer()
    load_adapter(model, path, "loaded")

    torch.testing.assert_close(forward(model), adapted, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(adapted, base, atol=1e-3)
    # eval's strength 0 disables the adapter (sampling._set_strength): peft's DoRA at scale 0
    # still rescales the base weight by its magnitudes, so only LoKr/LoHa check scale 0 too
    model.disable_lora()
    torch.testing.assert_close(forward(model), base)
    if kind != "dora":
        model.enable_lora()
        model.set_adapters(["loaded"], weights=[0.0])
        torch.testing.assert_close(forward(model), base)


def test_comfyui_merges_the_same_weights(adapter_file):
    """Every adapted linear: ComfyUI's merged weight (restated) gives the loaded layer's output."""
    _, path, _, _ = adapter_file
    tensors = load_file(path)
    model = transformer()
    load_adapter(model, path, "loaded")
    x = torch.randn(3, 16, generator=torch.Generator().manual_seed(1))
    for block, attention, module in [(0, "attn1", "to_q"), (1, "attn2", "to_out.0")]:
        layer = model.blocks[block].get_submodule(f"{attention}.{module}")
        musubi = {"attn1": "self_attn", "attn2": "cross_attn"}[attention]
        name = f"lora_unet_blocks_{block}_{musubi}_{module[3]}"
        weight = merged_weight(tensors, name, layer.base_layer.weight.detach())
        expected = torch.nn.functional.linear(x.double(), weight, layer.base_layer.bias.double())
        with torch.no_grad():
            torch.testing.assert_close(layer(x).double(), expected, rtol=1e-4, atol=1e-5)


def test_dora_and_lokr_load_through_diffusers_and_loha_through_peft(adapter_file, monkeypatch):
    kind, path, _, _ = adapter_file
    calls = []
    diffusers_loader = WanTransformer3DModel.load_lora_adapter
    monkeypatch.setattr(
        WanTransformer3DModel,
        "load_lora_adapter",
        lambda self, *args, **kwargs: (
            calls.append(kwargs) or diffusers_loader(self, *args, **kwargs)
        ),
    )
    load_adapter(transformer(), path, "loaded")

    assert len(calls) == (0 if kind == "loha" else 1)


@pytest.mark.parametrize("adapter_file", ["dora"], indirect=True)
def test_diffusers_pipeline_loads_the_dora_file_converted(adapter_file):
    """WanPipeline's loader takes a DoRA in peft names (lora_magnitude_vector); it wants 'lora'
    in every key, so LoKr and LoHa go through load_lora_adapter and peft instead."""
    _, path, _, adapted = adapter_file
    model = transformer()
    state = file_to_peft(load_file(path))
    load_adapter(model, path, "reference")
    magnitudes = {
        name.replace(".lora_magnitude_vector.reference", ".lora_magnitude_vector"): value
        for name, value in model.state_dict().items()
        if "lora_magnitude_vector" in name
    }
    model.delete_adapters("reference")
    state = {key: value for key, value in state.items() if not key.endswith("dora_scale")}
    pipeline = WanPipeline(
        tokenizer=None, text_encoder=None, vae=None, scheduler=None, transformer=model
    )
    pipeline.load_lora_weights(
        {f"transformer.{k}": v for k, v in {**state, **magnitudes}.items()}, adapter_name="p"
    )
    torch.testing.assert_close(forward(model), adapted, rtol=1e-4, atol=1e-5)


@pytest.fixture(params=list(ADAPTERS), scope="module")
def trained(request, tmp_path_factory, engine, training_set):
    settings = TRAINING.model_copy(update=ADAPTERS[request.param])
    run = replace(train_request(training_set, tmp_path_factory.mktemp("run")), settings=settings)
    return request.param, run, engine.train(run, ignore_progress, lambda checkpoint: None)


def test_each_adapter_trains_validates_and_samples(trained, engine, training_set, tmp_path):
    kind, run, checkpoints = trained
    final = checkpoints[-1].path
    header = read_lora_header(final)

    assert [c.epoch for c in checkpoints] == [5, 10]
    assert header["clip_count"] == run.header["clip_count"]  # the lineage header is kept
    assert header["ss_network_module"] == {"dora": "networks.lora_wan"}.get(
        kind, f"networks.{kind}"
    )
    base_loss = engine.validation_loss(None, training_set, run.settings)
    assert engine.validation_loss(final, training_set, run.settings) < base_loss

    videos = engine.sample(SampleRequest(final, EVAL, tmp_path), ignore_progress)
    frames = [read_frames(video.path) for video in videos]
    assert [video.strength for video in videos] == [0.0, 1.0]
    assert not np.array_equal(frames[0], frames[1])


def test_dora_with_fp8_base_is_refused_before_any_work(engine, training_set, tmp_path):
    settings = TRAINING.model_copy(update={"dora": True, "fp8_base": True})
    request = replace(train_request(training_set, tmp_path), settings=settings)
    with pytest.raises(EngineError, match="dora = true with fp8_base = true"):
        engine.train(request, ignore_progress, lambda checkpoint: None)
    assert not any(tmp_path.iterdir())
