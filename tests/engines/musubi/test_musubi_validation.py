"""Validation loss on the musubi path: every checkpoint the (FAKE) musubi-tuner trains gets a
held-out loss from our in-process evaluator, and best_lora is the lowest, plotted on its page.

The fake clone writes random caches of the tiny model's shapes and LoRA files with musubi's key
names for every linear of the `dit` it is given; that DiT is the tiny model's transformer saved
in musubi's format, so the evaluator's loss is real math on real (tiny, random) weights.
"""

import json

import dagster as dg
import pytest

from wan_lora_dagster.cli import main
from wan_lora_dagster.engines.diffusers.tiny import LATENT_CHANNELS, TEXT_DIM
from wan_lora_dagster.testing.graph_scenario import musubi_demo_project, project_instance
from wan_lora_dagster.testing.musubi_fixtures import make_fake_musubi, make_weights
from wan_lora_dagster.testing.tiny_dit import write_tiny_musubi_dit

pytestmark = pytest.mark.slow
EPOCHS = 3


@pytest.fixture(scope="module")
def trained(captioned_demo, tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("musubi-validation")
    weights = make_weights(root / "weights", dit_dtype="F32")
    weights["dit"] = str(
        write_tiny_musubi_dit(tiny_model_dir, root / "weights" / "dit.safetensors")
    )
    training = {
        "engine": "musubi",
        "musubi_dir": str(make_fake_musubi(root / "fake-musubi-tuner")),
        **weights,
        "network_dim": 4,
        "network_alpha": 4,
        "max_train_epochs": EPOCHS,
        "save_every_n_epochs": 1,
        "mixed_precision": "no",
    }
    project = musubi_demo_project(root / "demo", training, made=captioned_demo)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FAKE_MUSUBI_LATENT_CHANNELS", str(LATENT_CHANNELS))
        patch.setenv("FAKE_MUSUBI_TEXT_DIM", str(TEXT_DIM))
        assert main(["run", "--project", str(project)]) == 0
    return project


def records(project, asset):
    folder = project / "out" / "records" / asset
    return {path.stem: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}


def test_every_musubi_checkpoint_has_a_validation_loss_and_the_best_is_the_lowest(trained):
    evaluations = records(trained, "eval_videos")
    losses = {key: record["validation_loss"] for key, record in evaluations.items()}
    assert len(losses) == EPOCHS
    assert all(isinstance(loss, float) for loss in losses.values()), losses
    assert len(set(losses.values())) == EPOCHS, "each checkpoint's LoRA changes the loss"
    bases = {record["validation_loss_base"] for record in evaluations.values()}
    assert len(bases) == 1 and None not in bases, "one base model, the same fixed inputs"
    best = records(trained, "best_lora")["__all__"]
    assert best["checkpoint"] == min(losses, key=losses.get)
    assert best["validation_loss"] == min(losses.values())


def test_best_lora_shows_the_losses_as_a_plot(trained):
    best = records(trained, "best_lora")["__all__"]
    plot = trained / best["validation_loss_plot"]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    event = project_instance(trained).get_latest_materialization_event(dg.AssetKey("best_lora"))
    metadata = event.asset_materialization.metadata
    assert metadata["validation_loss_plot"].value.startswith("![losses](data:image/png;base64,")
