"""The one Definitions object of the code location: assets, checks, resources, automation.

Which project it serves: $WAN_LORA_PROJECT (set by `wan-lora ui`), else ./demo.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from wan_lora_dagster import assets
from wan_lora_dagster.automation import (
    FOLLOWS_INPUT_VERSIONS,
    project_files_sensor,
    retrain_schedule,
)
from wan_lora_dagster.errors import UserError
from wan_lora_dagster.executor import project_executor
from wan_lora_dagster.pipeline.asset_table import ASSETS, SPECS
from wan_lora_dagster.project import open_project
from wan_lora_dagster.recipe.training import TrainingSettings
from wan_lora_dagster.resources import build_resources

PROJECT_ENV = "WAN_LORA_PROJECT"


def table_assets() -> list[dg.AssetsDefinition]:
    """Every asset the modules of assets/ define, in the table's order; the table and the
    modules must name the same assets, or the UI and `wan-lora status` would disagree."""
    found = {
        asset.key.to_user_string(): asset for asset in dg.load_assets_from_package_module(assets)
    }
    if set(found) != set(SPECS):
        raise ValueError(
            f"pipeline/asset_table.py and assets/ disagree: only in the table "
            f"{sorted(set(SPECS) - set(found))}, only in assets/ {sorted(set(found) - set(SPECS))}"
        )
    return [found[spec.name] for spec in ASSETS]


def project_root() -> Path:
    return Path(os.environ.get(PROJECT_ENV, Path.cwd() / "demo")).resolve()


def _retrain_cron(root: Path) -> str:
    try:
        return open_project(root).recipe.training.schedule
    except UserError:
        return TrainingSettings().schedule  # the UI still loads and the sensor shows the error


def build_definitions(root: Path) -> dg.Definitions:
    follows = {spec.name for spec in ASSETS if spec.follows_inputs and not spec.is_source}
    graph = [
        asset.with_attributes(automation_condition=FOLLOWS_INPUT_VERSIONS)
        if asset.key.to_user_string() in follows
        else asset
        for asset in table_assets()
    ]
    cheap = [asset for asset in graph if asset.key.to_user_string() in follows]
    return dg.Definitions(
        assets=graph,
        resources=build_resources(str(root)),
        sensors=[
            project_files_sensor,
            dg.AutomationConditionSensorDefinition(
                "cheap_stages_follow_inputs",
                target=dg.AssetSelection.assets(*cheap),
                default_status=dg.DefaultSensorStatus.RUNNING,
                use_user_code_server=True,
            ),
        ],
        schedules=[retrain_schedule(_retrain_cron(root))],
        executor=project_executor,
    )


defs = build_definitions(project_root())
