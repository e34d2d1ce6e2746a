"""`wan-lora init --task` and `--like`: every recipe written is commented and loads as it is."""

import pytest

from wan_lora_dagster.cli import main
from wan_lora_dagster.recipe.reading import load_recipe
from wan_lora_dagster.starter_recipes import SEED_PROJECTS
from wan_lora_dagster.tasks import TASK_NAMES

pytestmark = pytest.mark.fast  # the unit tier: make test-fast


def init(tmp_path, *flags: str):
    directory = tmp_path / "project"
    assert main(["init", str(directory), *flags]) == 0
    path = directory / "wan_lora.toml"
    return path.read_text(), load_recipe(path)


@pytest.mark.parametrize("task", TASK_NAMES)
def test_init_writes_a_commented_recipe_of_each_task_that_loads(tmp_path, task):
    text, recipe = init(tmp_path, "--task", task)
    assert recipe.training.task == task
    assert text.count("#") > 20, "the recipe explains itself"
    if task.endswith("A14B"):
        assert recipe.training.experts == ("high", "low")
        assert "dit_high_noise" in text
    if task == "ti2v-5B":  # its VAE: sides divide by 32
        assert all(side % 32 == 0 for section in recipe.datasets for side in section.resolution)
        assert "musubi-tuner has no TI2V-5B" in text


def test_like_ghibli_writes_the_ghibli_projects_settings(tmp_path):
    _, recipe = init(tmp_path, "--like", "ghibli")
    sizes = {(s.source, s.resolution, s.target_frames) for s in recipe.datasets}
    assert sizes == {
        ("stills", (768, 768), (1,)),
        ("clips", (768, 416), (1, 21)),
        ("clips", (384, 208), (45,)),
    }
    training = recipe.training
    assert (training.engine, training.task) == ("musubi", "t2v-14B")
    assert training.fp8_base and training.fp8_scaled and training.blocks_to_swap > 0
    assert recipe.captions.trigger == "Studio Ghibli style"
    assert all(prompt.startswith("Studio Ghibli style") for prompt in recipe.eval.prompts)


def test_like_dragonball_writes_an_image_to_video_recipe_with_a_strength_sweep(tmp_path):
    _, recipe = init(tmp_path, "--like", "dragonball")
    assert recipe.training.task == "i2v-14B" and recipe.training.clip
    assert len(recipe.eval.strengths) >= 4 and recipe.eval.num_held_out > 0
    assert all(recipe.captions.trigger in prompt for prompt in recipe.eval.prompts)


def test_every_example_project_is_offered(tmp_path):
    for name in SEED_PROJECTS:
        _, recipe = init(tmp_path / name, "--like", name)
        assert recipe.datasets


def test_task_and_like_are_one_or_the_other(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["init", str(tmp_path / "p"), "--task", "t2v-A14B", "--like", "ghibli"])
    assert not (tmp_path / "p").exists()
