"""The project builder: the recipe text it writes from keyword settings is the recipe it says."""

import pytest

from wan_lora_dagster.project_builder import DEMO_DATASET, demo_recipe, write_recipe
from wan_lora_dagster.recipe.reading import load_recipe
from wan_lora_dagster.scaffold import DEMO_RECIPE

pytestmark = pytest.mark.fast  # the unit tier: make test-fast


def test_the_demo_recipe_is_the_builders(tmp_path):
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "wan_lora.toml").write_text(DEMO_RECIPE)
    built = load_recipe(write_recipe(tmp_path, **demo_recipe()))
    assert built == load_recipe(tmp_path / "demo" / "wan_lora.toml")
    assert built.training.learning_rate == 1e-3
    assert built.captions.banned_words == ("bunny",)


def test_changes_update_a_table_remove_a_setting_or_a_table_and_replace_the_sections(tmp_path):
    settings = demo_recipe(
        datasets=[{**DEMO_DATASET, "num_repeats": 3}, {"source": "stills", "resolution": [16, 16]}],
        training={"task": "i2v-14B", "save_every_n_epochs": None},
        eval=None,
    )
    recipe = load_recipe(write_recipe(tmp_path, **settings))
    assert [section.num_repeats for section in recipe.datasets] == [3, 1]
    assert recipe.datasets[1].source == "stills"
    assert recipe.training.task == "i2v-14B"
    assert recipe.training.save_every_n_epochs is None
    assert recipe.training.max_train_epochs == 4  # the demo's, kept
    assert "[eval]" not in (tmp_path / "wan_lora.toml").read_text()


def test_strings_toml_must_escape_are_written_so_that_they_read_back(tmp_path):
    trigger = 'a "quoted" \\ back\\slash, ünïcödé\ttab'
    recipe = load_recipe(write_recipe(tmp_path, **demo_recipe(captions={"trigger": trigger})))
    assert recipe.captions.trigger == trigger
