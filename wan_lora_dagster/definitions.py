"""The one Definitions object of the code location: assets, checks, resources, automation.

Which project it serves: $WAN_LORA_PROJECT (set by `wan-lora ui`), else ./demo.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from wan_lora_dagster.assets import caches, dataset, evaluation, training
from wan_lora_dagster.assets.sources import SOURCE_ASSETS
from wan_lora_dagster.automation import (
    FOLLOWS_INPUT_VERSIONS,
    project_files_sensor,
    retrain_schedule,
)
from wan_lora_dagster.errors import UserError
from wan_lora_dagster.executor import project_executor
from wan_lora_dagster.project import TrainingSettings, open_project
from wan_lora_dagster.resources import build_resources

PROJECT_ENV = "WAN_LORA_PROJECT"
CHEAP_STAGES = [
    dataset.clips,
    dataset.captions,
    caches.text_cache,
    caches.latent_cache,
    dataset.still_captions,
    caches.still_text_cache,
    caches.still_latent_cache,
    training.training_set,
    training.dataset_report,
    evaluation.best_lora,
]
GPU_STAGES = [training.lora_checkpoints, evaluation.eval_videos]


def project_root() -> Path:
    return Path(os.environ.get(PROJECT_ENV, Path.cwd() / "demo")).resolve()


def _retrain_cron(root: Path) -> str:
    try:
        return open_project(root).recipe.training.schedule
    except UserError:
        return TrainingSettings().schedule  # the UI still loads and the sensor shows the error


def build_definitions(root: Path) -> dg.Definitions:
    cheap = [
        asset.with_attributes(automation_condition=FOLLOWS_INPUT_VERSIONS) for asset in CHEAP_STAGES
    ]
    return dg.Definitions(
        assets=[*SOURCE_ASSETS, *cheap, *GPU_STAGES],
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
