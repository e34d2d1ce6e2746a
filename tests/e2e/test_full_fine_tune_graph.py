"""`network = "full"` through the whole graph on the diffusers engine: the demo retrained as a
full fine-tune of the tiny model saves model folders that trace back to their captions, is
evaluated with a validation loss, and `best_lora` exports the best model twice: the diffusers
folder and the single file with ComfyUI's key names."""

import json
import shutil
from pathlib import Path

import pytest
from diffusers import WanPipeline, WanTransformer3DModel
from safetensors.torch import load_file

from wan_lora_dagster.cli import main
from wan_lora_dagster.formats.cache_files import read_lora_header
from wan_lora_dagster.testing.commands import wan_lora

pytestmark = pytest.mark.slow


def record(project: Path, asset: str, key: str = "__all__") -> dict:
    return json.loads((project / "out/records" / asset / f"{key}.json").read_text())


@pytest.fixture(scope="module")
def full_project(built_demo, tmp_path_factory) -> Path:
    """The built demo (a LoRA run, exported) retrained as a full fine-tune."""
    project = tmp_path_factory.mktemp("full") / "demo"
    shutil.copytree(built_demo, project, symlinks=True)
    recipe = project / "wan_lora.toml"
    text = recipe.read_text()
    assert "network_dim = 4" in text
    recipe.write_text(text.replace("network_dim = 4", 'network = "full"\nnetwork_dim = 4'))
    assert main(["run", "--project", str(project)]) == 0
    return project


def current_checkpoints(project: Path) -> dict[str, dict]:
    """The full fine-tune's checkpoints (the demo's LoRA run, on the same training set, stays)."""
    records = {
        path.stem: json.loads(path.read_text())
        for path in sorted((project / "out/records/lora_checkpoints").glob("*.json"))
    }
    train_id = record(project, "best_lora")["checkpoint"].split("-")[0]
    return {key: rec for key, rec in records.items() if rec["train_id"] == train_id}


def test_each_checkpoint_is_a_model_folder_that_names_its_training_set(full_project):
    checkpoints = current_checkpoints(full_project)
    assert len(checkpoints) == 2  # 4 epochs, a checkpoint every 2
    for checkpoint in checkpoints.values():
        folder = full_project / checkpoint["file"]
        assert (folder / "config.json").is_file() and folder.name.endswith(("-000002", "-000004"))
        header = read_lora_header(folder)
        assert header["wan_lora.training_set"] == checkpoint["training_set"]
        assert header["wan_lora.train_id"] == checkpoint["train_id"]


def test_each_checkpoint_is_evaluated_with_a_validation_loss(full_project):
    for key in current_checkpoints(full_project):
        evaluation = record(full_project, "eval_videos", key)
        assert evaluation["validation_loss"] is not None
        assert evaluation["validation_loss_base"] is not None
        assert [video["strength"] for video in evaluation["videos"]] == [0.0, 1.0]


def test_best_lora_exports_the_best_model_as_a_folder_and_a_comfyui_file(full_project, capsys):
    best = record(full_project, "best_lora")
    assert best["checkpoint"] in current_checkpoints(full_project)
    assert (best["file"], best["model_folder"]) == (
        "out/best/wan_model.safetensors",
        "out/best/model",
    )
    assert not list((full_project / "out/best").glob("adapter_model*")), "the LoRA's best is gone"
    folder = full_project / best["model_folder"]
    loaded = WanTransformer3DModel.from_pretrained(folder)
    WanPipeline.from_pretrained(full_project / "out/models/tiny", transformer=loaded)
    single = full_project / best["file"]
    assert {"head.modulation", "blocks.0.ffn.0.weight"} <= set(load_file(single))
    header = read_lora_header(single)
    assert header["wan_lora.checkpoint"] == best["checkpoint"]
    assert read_lora_header(folder)["wan_lora.checkpoint"] == best["checkpoint"]
    status, out = wan_lora(capsys, "lineage", "--project", full_project, "--json", single)
    assert status == 0 and json.loads(out)["clips"], "the exported file traces to its captions"


def test_everything_is_fresh_after_the_run(full_project, capsys):
    status, out = wan_lora(capsys, "status", "--project", full_project, "--json")
    assert status == 0, out
