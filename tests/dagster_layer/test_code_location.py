"""The UI's own path: `dagster` loads the code location from workspace.yaml."""

import os
import subprocess
import sys
from pathlib import Path

from wan_lora_dagster.definitions import build_definitions
from wan_lora_dagster.pipeline.asset_table import ASSETS
from wan_lora_dagster.scaffold import init_project

REPO = Path(__file__).resolve().parents[2]


def test_dagster_loads_the_code_location_from_workspace_yaml(tmp_path):
    project = init_project(tmp_path / "project")
    env = {**os.environ, "WAN_LORA_PROJECT": str(project), "DAGSTER_HOME": str(tmp_path)}
    dagster = Path(sys.executable).with_name("dagster")
    result = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "wan_lora" in result.stdout + result.stderr


def test_every_asset_of_the_design_is_defined_with_a_description_and_code_version(tmp_path):
    defs = build_definitions(init_project(tmp_path / "project"))
    graph = defs.resolve_asset_graph()
    names = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert names >= {spec.name for spec in ASSETS}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description, f"{key.to_user_string()} has no description"
        if node.is_materializable:
            assert node.code_version, f"{key.to_user_string()} has no code_version"


def test_gpu_stages_share_the_gpu_pool(tmp_path):
    defs = build_definitions(init_project(tmp_path / "project"))
    graph = defs.resolve_asset_graph()
    pools = {
        key.to_user_string(): graph.get(key).pools
        for key in graph.get_all_asset_keys()
        if graph.get(key).is_materializable
    }
    gpu_stages = ("text_cache", "latent_cache", "still_text_cache", "still_latent_cache")
    for asset in (*gpu_stages, "lora_checkpoints", "eval_videos"):
        assert pools[asset] == {"gpu"}, asset
