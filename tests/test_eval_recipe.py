"""[eval] images and [eval] walk in wan_lora.toml: what each needs of [training], checked when
the recipe is read, before any work."""

from pathlib import Path

import pytest

from wan_lora_dagster.errors import ConfigError
from wan_lora_dagster.recipe.reading import load_recipe

pytestmark = pytest.mark.fast  # the unit tier: make test-fast

DATASET = '[[datasets]]\nsource = "clips"\nresolution = [64, 48]\n'


def recipe_error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "wan_lora.toml"
    path.write_text(DATASET + text)
    with pytest.raises(ConfigError) as raised:
        load_recipe(path)
    return str(raised.value)


def test_walk_and_images_are_read(tmp_path):
    path = tmp_path / "wan_lora.toml"
    path.write_text(
        DATASET + '[training]\ntask = "i2v-14B"\n'
        '[eval]\nimages = ["stills/a.png"]\nwalk = { seeds = [1, 9], steps = 4 }\n'
    )
    evaluation = load_recipe(path).eval
    assert evaluation.images == ("stills/a.png",)
    assert (evaluation.walk.seeds, evaluation.walk.steps) == ((1, 9), 4)


def test_start_images_for_a_text_to_video_task_are_refused(tmp_path):
    error = recipe_error(tmp_path, '[eval]\nimages = ["stills/a.png"]\n')
    assert "wan_lora.toml" in error and "[eval] images" in error and "'t2v-1.3B'" in error


def test_a_walk_on_the_musubi_engine_is_refused(tmp_path):
    error = recipe_error(
        tmp_path, '[training]\nengine = "musubi"\n[eval]\nwalk = { seeds = [1, 2], steps = 3 }\n'
    )
    assert "[eval] walk" in error and "takes a seed only" in error


@pytest.mark.parametrize(
    "walk", ["{ seeds = [1], steps = 3 }", "{ seeds = [1, 2], steps = 1 }", "{ seed = [1, 2] }"]
)
def test_a_malformed_walk_names_its_key_and_line(tmp_path, walk):
    error = recipe_error(tmp_path, f"[eval]\nwalk = {walk}\n")
    assert "wan_lora.toml:5: eval.walk" in error
