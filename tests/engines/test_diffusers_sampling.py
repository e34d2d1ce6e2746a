from dataclasses import replace

import av
import numpy as np
import pytest
import torch
from diffusers import WanPipeline

from wan_lora_dagster.engines.base import SampleRequest
from wan_lora_dagster.errors import EngineError
from wan_lora_dagster.recipe.evaluation import EvalSettings

EVAL = EvalSettings(
    prompts=("stripes drift to the left", "a dark room"),
    strengths=(0.0, 1.0),
    seeds=(3,),
    width=32,
    height=48,
    num_frames=5,
    num_inference_steps=2,
)


def ignore_progress(progress) -> None:
    pass


def generate(pipeline: WanPipeline) -> np.ndarray:
    return pipeline(
        EVAL.prompts[0],
        num_frames=EVAL.num_frames,
        height=EVAL.height,
        width=EVAL.width,
        num_inference_steps=EVAL.num_inference_steps,
        generator=torch.Generator().manual_seed(0),
        output_type="np",
    ).frames


@pytest.fixture(scope="module")
def pipeline(tiny_model_dir) -> WanPipeline:
    """A pipeline of our own, apart from the engine's: a client of the LoRA file, nothing more."""
    return WanPipeline.from_pretrained(tiny_model_dir)


def test_trained_lora_loads_in_diffusers_and_strength_zero_is_the_base_model(
    pipeline, training_run
):
    base = generate(pipeline)

    pipeline.load_lora_weights(str(training_run.returned[-1].path), adapter_name="stripes")
    try:
        pipeline.set_adapters(["stripes"], adapter_weights=[0.0])
        at_zero = generate(pipeline)
        pipeline.set_adapters(["stripes"], adapter_weights=[1.0])
        at_one = generate(pipeline)
    finally:
        pipeline.delete_adapters("stripes")

    np.testing.assert_array_equal(at_zero, base)
    assert np.abs(at_one - base).max() > 1e-4


def test_sample_writes_one_video_per_prompt_strength_and_seed(engine, training_run, tmp_path):
    request = SampleRequest(training_run.returned[-1].path, EVAL, tmp_path)
    reports = []

    videos = engine.sample(request, reports.append)

    assert [(v.path.name, v.prompt, v.strength, v.seed) for v in videos] == [
        ("p00_strength0.00_seed3.mp4", EVAL.prompts[0], 0.0, 3),
        ("p01_strength0.00_seed3.mp4", EVAL.prompts[1], 0.0, 3),
        ("p00_strength1.00_seed3.mp4", EVAL.prompts[0], 1.0, 3),
        ("p01_strength1.00_seed3.mp4", EVAL.prompts[1], 1.0, 3),
    ]
    for video in videos:
        assert decoded_shape(video.path) == (EVAL.num_frames, EVAL.height, EVAL.width)
    assert [(r.stage, r.done, r.total) for r in reports][-1] == ("sample", 4, 4)


def test_sampling_leaves_no_lora_behind(engine, training_run, training_set, tmp_path):
    """The engine keeps one transformer: after eval videos (ending at strength 0, the LoRA
    disabled), the base model must be the base model and the next LoRA must be active again."""
    settings = training_run.request.settings
    checkpoint = training_run.returned[0].path
    before = [engine.validation_loss(c, training_set, settings) for c in (None, checkpoint)]
    strength_zero_last = EVAL.model_copy(update={"strengths": (1.0, 0.0), "prompts": ("a",)})

    engine.sample(SampleRequest(checkpoint, strength_zero_last, tmp_path), ignore_progress)

    after = [engine.validation_loss(c, training_set, settings) for c in (None, checkpoint)]
    assert after == before and before[0] != before[1]


def test_a_checkpoint_seed_and_strength_give_the_same_video_bytes_on_one_or_two_threads(
    engine, training_run, tmp_path
):
    """An eval video is made in-process or in a device worker of one thread: the same file."""
    request = SampleRequest(training_run.returned[-1].path, EVAL, tmp_path / "two")
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        on_two = engine.sample(request, ignore_progress)
        torch.set_num_threads(1)
        on_one = engine.sample(replace(request, output_dir=tmp_path / "one"), ignore_progress)
    finally:
        torch.set_num_threads(threads)

    for two, one in zip(on_two, on_one, strict=True):
        assert two.path.read_bytes() == one.path.read_bytes()


def test_sampling_a_missing_checkpoint_names_it(engine, tmp_path):
    request = SampleRequest(tmp_path / "lora-000003.safetensors", EVAL, tmp_path)
    with pytest.raises(EngineError, match=r"lora-000003\.safetensors"):
        engine.sample(request, ignore_progress)


def decoded_shape(path) -> tuple[int, int, int]:
    with av.open(str(path)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    return (len(frames), *frames[0].shape[:2])
