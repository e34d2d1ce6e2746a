"""The built demo retrained with another task: what the Wan 2.2 and training-mode tests share."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from wan_lora_dagster.cli import main
from wan_lora_dagster.project_builder import DEMO_DATASET, demo_recipe, write_recipe

SHORT = {
    "training": {"max_train_epochs": 1, "save_every_n_epochs": None},
    "eval": {"num_frames": 5, "num_inference_steps": 2},
}
# TI2V-5B's sides divide by 32: its VAE compresses 16x and its transformer patches 2x2.
TI2V_SIZES = {
    "datasets": [{**DEMO_DATASET, "resolution": [64, 32]}],
    "eval": {**SHORT["eval"], "height": 32},
}


def run_project(built_demo: Path, target: Path, task: str, *selection: str, changes=None) -> Path:
    """A copy of the built demo (its clips and captions stay) retrained for `task`."""
    project = target / task
    shutil.copytree(built_demo, project, symlinks=True)
    changes = {**SHORT, **(changes or {})}
    training = {**changes.pop("training"), "task": task}
    write_recipe(project, **demo_recipe(training=training, **changes))
    assert main(["run", "--project", str(project), *selection]) == 0
    return project


def record(project: Path, asset: str, key: str = "__all__") -> dict:
    return json.loads((project / "out/records" / asset / f"{key}.json").read_text())
