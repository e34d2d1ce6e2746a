"""TI2V-5B trained image-to-video (`[training] i2v = true`) on the tiny TI2V-5B model, CPU.

Its first latent frame is the clip's clean first frame at timestep 0, as diffusers'
WanImageToVideoPipeline (expand_timesteps) samples it: the frame conditions the prediction of
the others and stays out of the loss. Eval samples from start images through that pipeline.
"""

from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from wan_lora_dagster.engines.base import SampleRequest, StartImage
from wan_lora_dagster.engines.diffusers.engine import DiffusersEngine
from wan_lora_dagster.engines.diffusers.tiny import _build_transformer
from wan_lora_dagster.engines.diffusers.tiny22 import WAN22_LATENT_CHANNELS
from wan_lora_dagster.engines.flow_matching import FlowMatchingBatch, flow_matching_loss
from wan_lora_dagster.media.frames import read_frames
from wan_lora_dagster.recipe.evaluation import EvalSettings
from wan_lora_dagster.testing.stripes import TRAINING, ignore_progress, train_request

FRAMES, HEIGHT, WIDTH = 3, 2, 4  # latent frames and sides: 1 x 2 patches per frame
I2V = TRAINING.model_copy(update={"task": "ti2v-5B", "i2v": True, "max_train_epochs": 2,
                                  "save_every_n_epochs": 1})  # fmt: skip
EVAL = EvalSettings(strengths=(0.0, 1.0), seeds=(3,), width=32, height=32, num_frames=5,
                    num_inference_steps=2)  # fmt: skip


@pytest.fixture(scope="module")
def transformer():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(2)
        return _build_transformer(False, WAN22_LATENT_CHANNELS)


def inputs(seed: int):
    generator = torch.Generator().manual_seed(seed)
    shape = (1, WAN22_LATENT_CHANNELS, FRAMES, HEIGHT, WIDTH)
    latents = torch.randn(shape, generator=generator)
    text = torch.randn(1, 512, 32, generator=generator)
    return latents, text, torch.randn(shape, generator=generator)


def loss(transformer, latents, text, noise, given=True) -> float:
    batch = FlowMatchingBatch(latents, text)
    return flow_matching_loss(transformer, batch, noise, torch.tensor([0.6]), torch.float32, given)


def test_the_first_frame_is_clean_at_timestep_zero(transformer, monkeypatch):
    seen = {}
    forward = transformer.forward

    def spy(hidden_states, timestep, **kwargs):
        seen.update(hidden_states=hidden_states, timestep=timestep)
        return forward(hidden_states=hidden_states, timestep=timestep, **kwargs)

    monkeypatch.setattr(transformer, "forward", spy)
    latents, text, noise = inputs(0)
    loss(transformer, latents, text, noise)

    per_frame = (HEIGHT // 2) * (WIDTH // 2)
    assert seen["timestep"].shape == (1, FRAMES * per_frame)
    assert seen["timestep"][0, :per_frame].eq(0).all()
    assert seen["timestep"][0, per_frame:].eq(600).all()
    torch.testing.assert_close(seen["hidden_states"][:, :, 0], latents[:, :, 0])
    torch.testing.assert_close(
        seen["hidden_states"][:, :, 1:], 0.4 * latents[:, :, 1:] + 0.6 * noise[:, :, 1:]
    )


def test_the_start_frame_conditions_and_frame_zero_is_not_in_the_loss(transformer):
    latents, text, noise = inputs(1)
    other_start = latents.clone()
    other_start[:, :, 0] = torch.randn(other_start[:, :, 0].shape)
    other_noise = noise.clone()
    other_noise[:, :, 0] = torch.randn(other_noise[:, :, 0].shape)

    with torch.no_grad():
        reference = loss(transformer, latents, text, noise)
        assert loss(transformer, other_start, text, noise) != reference  # conditioned on it
        assert loss(transformer, latents, text, other_noise) == reference  # frame 0 unlearned
        assert loss(transformer, latents, text, other_noise, given=False) != reference


@pytest.fixture(scope="module")
def ti2v(tmp_path_factory, make_training_set):
    engine = DiffusersEngine(I2V, tmp_path_factory.mktemp("models"), device="cpu")
    manifest = make_training_set(engine, tmp_path_factory.mktemp("ti2v"), 4, 1)
    request = train_request(manifest, tmp_path_factory.mktemp("out"))
    request = replace(request, settings=I2V)
    checkpoints = engine.train(request, ignore_progress, lambda checkpoint: None)
    return engine, manifest, checkpoints


def test_ti2v_trains_validates_on_first_frames_and_samples_from_start_images(ti2v, tmp_path):
    engine, manifest, checkpoints = ti2v
    final = checkpoints[-1].path
    as_text = I2V.model_copy(update={"i2v": False})

    conditioned = engine.validation_loss(final, manifest, I2V)
    assert conditioned != engine.validation_loss(final, manifest, as_text)
    assert conditioned != engine.validation_loss(None, manifest, I2V)

    [held_out] = manifest.held_out_entries()
    first = read_frames(manifest.resolve(f"clips/{held_out.item_id}.mp4"), [0])[0]
    images = []
    for name, pixels in [("held_out", first), ("grey", np.full_like(first, 128))]:
        Image.fromarray(pixels).save(tmp_path / f"{name}.png")
        images.append(StartImage(name, tmp_path / f"{name}.png"))
    request = SampleRequest(final, EVAL, tmp_path / "videos", tuple(images))
    videos = engine.sample(request, ignore_progress)

    assert [(v.start_image.name, v.strength) for v in videos] == [
        ("held_out", 0.0), ("grey", 0.0), ("held_out", 1.0), ("grey", 1.0)]  # fmt: skip
    frames = [read_frames(video.path) for video in videos]
    assert not np.array_equal(frames[0], frames[1])  # the start image conditions the video
    assert not np.array_equal(frames[0], frames[2])  # the LoRA changes it
