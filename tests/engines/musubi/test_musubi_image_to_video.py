"""Image-to-video eval videos through (FAKE) musubi-tuner: each video's line of the prompt file
names its start image with `--i`, which wan_generate_video's `parse_prompt_line` (commit 30c658c)
reads as that line's `--image_path`; one run per strength still loads the DiT once."""

import json
from pathlib import Path

import pytest
from PIL import Image

from wan_lora_dagster.engines.base import SampleRequest, StartImage
from wan_lora_dagster.errors import EngineError
from wan_lora_dagster.recipe.evaluation import EvalSettings, WalkSettings
from wan_lora_dagster.testing.musubi_fixtures import write_safetensors

EVAL = EvalSettings(prompts=("a kick",), strengths=(0.0, 1.0), seeds=(1, 2))


def ignore(report) -> None:
    pass


@pytest.fixture
def start_images(tmp_path) -> tuple[StartImage, ...]:
    images = []
    for index, name in enumerate(("held -- out.png", "still.jpg")):
        path = tmp_path / "images" / name
        path.parent.mkdir(exist_ok=True)
        Image.new("RGB", (32, 32), (40 * index, 80, 120)).save(path)
        images.append(StartImage(name, path))
    return tuple(images)


def prompt_lines(argv_log) -> list[list[str]]:
    """Per wan_generate_video run, its prompt file's lines."""
    runs = [json.loads(line) for line in argv_log.read_text().splitlines()]
    files = [run[run.index("--from_file") + 1] for run in runs if run[0] == "wan_generate_video"]
    return [Path(name).read_text(encoding="utf-8").splitlines() for name in files]


def test_each_i2v_video_names_its_start_image(
    make_engine, weights, tmp_path, start_images, monkeypatch
):
    log = tmp_path / "argv.jsonl"
    monkeypatch.setenv("FAKE_MUSUBI_ARGV_LOG", str(log))
    lora = write_safetensors(tmp_path / "lora.safetensors", {"x": "F32"})
    engine = make_engine(task="i2v-14B", clip=weights["clip"])
    request = SampleRequest(lora, EVAL, tmp_path / "eval", start_images)

    videos = engine.sample(request, ignore)

    assert [(v.strength, v.start_image.name, v.seed) for v in videos] == [
        (strength, image.name, seed)
        for strength in (0.0, 1.0)
        for image in start_images
        for seed in (1, 2)
    ]
    runs = prompt_lines(log)
    assert len(runs) == 2, "one generation run per strength"
    for lines in runs:
        assert len(lines) == 4, "a line per start image x seed"
        for line, video in zip(lines, videos, strict=False):
            prompt, option, staged, seed_option, seed = line.rsplit(" ", 4)
            assert (prompt, option, seed_option, seed) == ("a kick", "--i", "--d", str(video.seed))
            assert Path(staged).read_bytes() == video.start_image.path.read_bytes()
            assert " --" not in staged, "a path with ' --' would end musubi's option"
    assert videos[0].path.name == "p00_i00_strength0.00_seed1.mp4"


def test_the_walk_is_refused_before_any_run(make_engine, tmp_path):
    lora = write_safetensors(tmp_path / "lora.safetensors", {"x": "F32"})
    walk = EVAL.model_copy(update={"walk": WalkSettings(seeds=(1, 2), steps=3)})
    with pytest.raises(EngineError, match="takes a seed only"):
        make_engine().sample(SampleRequest(lora, walk, tmp_path / "eval"), ignore)
