"""The musubi engine inside the graph, with the fake musubi-tuner clone (no model, no GPU)."""

import shlex

import pytest
from musubi_fixtures import make_fake_musubi, make_weights

from wan_lora_dagster.cli import main
from wan_lora_dagster.scaffold import create_demo_project

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def musubi_project(tmp_path_factory):
    """The demo's clips and captions, with [training] switched to the musubi engine."""
    root = tmp_path_factory.mktemp("musubi-graph")
    project = create_demo_project(root / "demo")
    assert main(["run", "--project", str(project), "--select", "+captions"]) == 0
    clone = make_fake_musubi(root / "fake-musubi-tuner")
    weights = make_weights(root / "weights")
    recipe = project / "wan_lora.toml"
    recipe.write_text(
        recipe.read_text().replace(
            '[training]\nmodel = "tiny"',
            f'[training]\nengine = "musubi"\nmusubi_dir = "{clone}"\ndit = "{weights["dit"]}"\n'
            f'vae = "{weights["vae"]}"\nt5 = "{weights["t5"]}"',
        )
    )
    return project


def test_dry_run_prints_every_command_and_runs_none(musubi_project, capsys):
    capsys.readouterr()
    assert main(["train", "--project", str(musubi_project), "--dry-run"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    commands = [shlex.split(line) for line in lines]
    scripts = [next(a for a in c if a.endswith(".py")).rsplit("/", 1)[-1] for c in commands]
    assert scripts == [
        "wan_cache_latents.py",
        "wan_cache_text_encoder_outputs.py",
        "wan_train_network.py",
    ]
    assert all("--keep_cache" in c for c in commands[:2])
    assert "--output_name" in commands[2]
    assert commands[2][commands[2].index("--output_name") + 1].startswith("lora-")
    assert list((musubi_project / "out" / "musubi").rglob("*.toml")), "the dataset TOML is written"
    assert not list((musubi_project / "out").glob("cache/*/*.safetensors")), "nothing ran"
    assert not (musubi_project / "out" / "checkpoints").exists()


def test_dry_run_with_the_diffusers_engine_says_why_not(tmp_path, capsys):
    project = create_demo_project(tmp_path / "demo")
    assert main(["train", "--project", str(project), "--dry-run"]) == 2
    assert "engine is 'diffusers'" in capsys.readouterr().err
