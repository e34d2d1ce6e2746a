"""The task table: each Wan task's facts, the recipe's task choices, and that the table is the
bottom layer (it imports nothing of the package). Fast: no torch, no model."""

import ast
from pathlib import Path

import pytest

from wan_lora_dagster import tasks
from wan_lora_dagster.errors import ConfigError
from wan_lora_dagster.recipe.reading import load_recipe
from wan_lora_dagster.tasks import (
    HIGH_NOISE,
    LOW_NOISE,
    TASK_NAMES,
    TASKS,
    WAN21_VAE,
    WAN22_VAE,
    vae_with_spatial_compression,
    wan_task,
)

pytestmark = pytest.mark.fast  # the unit tier: make test-fast

# name: (blocks, experts' boundary, image to video, CLIP, VAE, tiny variant, musubi's --task)
FACTS = {
    "t2v-1.3B": (30, None, False, False, WAN21_VAE, "tiny", "t2v-1.3B"),
    "t2v-14B": (40, None, False, False, WAN21_VAE, "tiny", "t2v-14B"),
    "i2v-14B": (40, None, True, True, WAN21_VAE, "tiny-i2v", "i2v-14B"),
    "t2v-A14B": (40, 0.875, False, False, WAN21_VAE, "tiny-t2v-A14B", "t2v-A14B"),
    "i2v-A14B": (40, 0.9, True, False, WAN21_VAE, "tiny-i2v-A14B", "i2v-A14B"),
    "ti2v-5B": (30, None, False, False, WAN22_VAE, "tiny-ti2v-5B", None),
}


def test_the_table_holds_exactly_the_wan_tasks_this_product_trains():
    assert tuple(FACTS) == TASK_NAMES
    assert all(name == task.name for name, task in TASKS.items())


@pytest.mark.parametrize("name", FACTS)
def test_each_task_has_its_facts(name):
    blocks, boundary, image_to_video, clip, vae, tiny_model, musubi_task = FACTS[name]
    task = wan_task(name)
    assert task.num_blocks == blocks
    assert task.boundary == boundary
    assert task.experts == ((HIGH_NOISE, LOW_NOISE) if boundary else ())
    assert (task.image_to_video, task.clip) == (image_to_video, clip)
    assert task.vae == vae
    assert task.tiny_model == tiny_model
    assert task.musubi_task == musubi_task


def test_the_vaes_latent_layouts():
    """Wan 2.1's VAE: 16 channels, 4x8x8; Wan 2.2's (TI2V-5B): 48 channels, 4x16x16. With the
    transformer's 2x2 patch, frame sides divide by 16 and 32."""
    layouts = [
        (v.latent_channels, v.temporal_compression, v.spatial_compression, v.resolution_step)
        for v in (WAN21_VAE, WAN22_VAE)
    ]
    assert layouts == [(16, 4, 8, 16), (48, 4, 16, 32)]
    assert WAN21_VAE.architecture == "wan"  # musubi-tuner's name of every Wan cache
    assert WAN22_VAE.architecture != WAN21_VAE.architecture
    assert vae_with_spatial_compression(16) == WAN22_VAE
    with pytest.raises(ValueError, match="4x"):
        vae_with_spatial_compression(4)


def test_tasks_that_share_a_tiny_variant_share_its_layout():
    """A tiny variant's caches are told apart by its name only (pipeline.caches)."""
    by_variant: dict[str, set] = {}
    for task in TASKS.values():
        layout = (task.image_to_video, task.clip, task.experts, task.boundary, task.vae)
        by_variant.setdefault(task.tiny_model, set()).add(layout)
    assert all(len(layouts) == 1 for layouts in by_variant.values())


def recipe_text(task: str) -> str:
    return (
        '[[datasets]]\nsource = "clips"\nresolution = [64, 64]\n'
        f'[training]\nnetwork_dim = 4\ntask = "{task}"\n'
    )


@pytest.mark.parametrize("name", TASK_NAMES)
def test_the_recipe_accepts_every_task_of_the_table(tmp_path, name):
    path = tmp_path / "wan_lora.toml"
    path.write_text(recipe_text(name))
    assert load_recipe(path).training.task == name


@pytest.mark.parametrize("name", ["t2v-7B", "T2V-1.3B", "ti2v-5b", ""])
def test_an_unknown_task_is_named_with_the_file_line_and_the_tables_tasks(tmp_path, name):
    path = tmp_path / "wan_lora.toml"
    path.write_text(recipe_text(name))
    with pytest.raises(ConfigError) as raised:
        load_recipe(path)
    message = str(raised.value)
    assert f"{path}:6: training.task" in message
    assert f"unknown task {name!r}" in message and ", ".join(TASK_NAMES) in message


def test_the_table_imports_nothing_of_the_package():
    """The bottom layer: the recipe and the file formats read it, never the other way."""
    tree = ast.parse(Path(tasks.__file__).read_text(encoding="utf-8"))
    imported = [
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    ]
    assert not [name for name in imported if name and name.startswith("wan_lora_dagster")]
