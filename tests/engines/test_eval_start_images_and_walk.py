"""Eval videos of an image-to-video LoRA start from their image; a latent walk's ends are the
plain videos of its two seeds (the diffusers engine, tiny models on a CPU)."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from diffusers import WanImageToVideoPipeline
from PIL import Image

from wan_lora_dagster.engines.base import SampleRequest, StartImage
from wan_lora_dagster.engines.diffusers.engine import DiffusersEngine
from wan_lora_dagster.engines.diffusers.latent_walk import slerp
from wan_lora_dagster.media.frames import read_frames
from wan_lora_dagster.recipe.evaluation import EvalSettings, WalkSettings

CODEC_TOLERANCE = 12 / 255  # h264 at the clips' quality, in [0, 1] pixel units
EVAL = EvalSettings(
    prompts=("stripes drift to the left",),
    strengths=(1.0,),
    seeds=(3, 5),
    width=32,
    height=32,
    num_frames=5,
    num_inference_steps=2,
)


def ignore_progress(progress) -> None:
    pass


def test_slerp_keeps_the_ends_exactly_and_the_norm_between_them():
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.randn(4096, generator=generator) for _ in range(2))
    assert torch.equal(slerp(a, b, 0.0), a) and torch.equal(slerp(a, b, 1.0), b)
    middle = slerp(a, b, 0.5)
    assert abs(middle.norm() - (a.norm() + b.norm()) / 2) < 0.02 * a.norm()
    assert (a + b).norm() / 2 < 0.8 * middle.norm(), "a straight line would shrink the noise"


def test_the_walk_starts_and_ends_at_the_plain_videos_of_its_seeds(engine, training_run, tmp_path):
    walk = EVAL.model_copy(update={"walk": WalkSettings(seeds=(3, 5), steps=3)})
    videos = engine.sample(
        SampleRequest(training_run.returned[-1].path, walk, tmp_path), ignore_progress
    )

    plain = {v.seed: read_frames(v.path) for v in videos if v.walk_position is None}
    walked = [read_frames(v.path) for v in videos if v.walk_position is not None]
    assert [v.walk_position for v in videos][2:] == [0.0, 0.5, 1.0]
    assert {v.strength for v in videos} == {1.0}
    np.testing.assert_array_equal(walked[0], plain[3])
    np.testing.assert_array_equal(walked[-1], plain[5])
    assert not np.array_equal(walked[1], plain[3]) and not np.array_equal(walked[1], plain[5])


@pytest.fixture(scope="module")
def i2v_checkpoint(tmp_path_factory, tiny_model_dir, training_run, make_training_set):
    settings = training_run.request.settings.model_copy(
        update={"task": "i2v-14B", "max_train_epochs": 1}
    )
    engine = DiffusersEngine(settings, models_dir=tiny_model_dir.parent, device="cpu")
    folder = tmp_path_factory.mktemp("i2v-eval")
    manifest = make_training_set(engine, folder, 3, 1)
    request = replace(training_run.request, manifest=manifest, settings=settings, output_dir=folder)
    [checkpoint] = engine.train(request, ignore_progress, lambda saved: None)
    return engine, checkpoint.path, folder / "clips"


def test_each_i2v_eval_video_is_conditioned_on_its_start_image(
    i2v_checkpoint, make_clip, tmp_path, monkeypatch
):
    engine, checkpoint, clips = i2v_checkpoint
    held_out = clips / "stripes02.mp4"
    frame_path = tmp_path / "first.png"
    Image.fromarray(read_frames(held_out, [0])[0]).save(frame_path)
    original = read_frames(make_clip(tmp_path / "again.mp4", seed=2), [0])[0]  # same pixels
    conditions = []
    prepare = WanImageToVideoPipeline.prepare_latents

    def spy(self, image, *args, **kwargs):
        conditions.append(image.detach().cpu().clone())
        return prepare(self, image, *args, **kwargs)

    monkeypatch.setattr(WanImageToVideoPipeline, "prepare_latents", spy)
    request = SampleRequest(checkpoint, EVAL, tmp_path / "eval", (StartImage("held", frame_path),))

    videos = engine.sample(request, ignore_progress)

    assert [(v.start_image.name, v.seed) for v in videos] == [("held", 3), ("held", 5)]
    assert len(conditions) == 2
    for condition in conditions:
        pixels = (condition[0].permute(1, 2, 0).numpy() + 1) / 2  # [-1, 1] -> [0, 1], HWC
        assert np.abs(pixels - original / 255).max() < CODEC_TOLERANCE
    assert read_frames(videos[0].path).shape == (EVAL.num_frames, EVAL.height, EVAL.width, 3)
