"""The team deployment's run launcher: the name a project's `.dagster/dagster.yaml` gives.

Dagster refuses unknown keys in dagster.yaml, so the team's settings (instance/team.py) ride on
its run launcher: a `TeamRunLauncher` launches UI runs as the default launcher does (a process
beside the webserver) and carries them.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from wan_lora_dagster.dagster_internals import ConfigurableClassData
from wan_lora_dagster.instance.team import (
    DEFAULT_RUNS_IN_FLIGHT,
    DEFAULT_VISIBILITY_TIMEOUT_S,
    TeamSettings,
)


class TeamRunLauncher(dg.DefaultRunLauncher):
    """Dagster's default run launcher, holding the team deployment's settings."""

    def __init__(self, inst_data: ConfigurableClassData | None = None, **settings: Any):
        super().__init__(inst_data=inst_data)
        settings.setdefault("backend", settings["broker"])
        self.settings = TeamSettings(**settings)

    @classmethod
    def config_type(cls) -> dict:
        return {
            "broker": dg.Field(dg.StringSource, description="redis://host:6379/0"),
            "backend": dg.Field(
                dg.StringSource, is_required=False, description="results; default: the broker"
            ),
            "visibility_timeout_s": dg.Field(
                int,
                default_value=DEFAULT_VISIBILITY_TIMEOUT_S,
                description="seconds after its worker's last heartbeat that a batch goes to "
                "another worker",
            ),
            "runs_in_flight": dg.Field(
                int,
                default_value=DEFAULT_RUNS_IN_FLIGHT,
                description="batch runs one `wan-lora run` keeps going at once",
            ),
        }

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: dict[str, Any]
    ) -> TeamRunLauncher:
        return cls(inst_data=inst_data, **config_value)
