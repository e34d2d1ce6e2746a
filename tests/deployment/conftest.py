"""A real team deployment per test: PostgreSQL and Redis on 127.0.0.1, Celery workers as
separate `wan-lora worker` processes, on a demo project switched by its dagster.yaml."""

from __future__ import annotations

import os
import shutil

import pytest

from wan_lora_dagster.scaffold import create_demo_project
from wan_lora_dagster.testing.servers import postgres_bin, postgres_server, redis_server
from wan_lora_dagster.testing.team import Servers, Team, open_instance_of, switch_to_team


@pytest.fixture(scope="session")
def servers() -> Servers:
    if postgres_bin() is None or shutil.which("redis-server") is None:
        pytest.skip(
            "PostgreSQL or redis-server not installed (`make test` installs them: "
            "apt-get install postgresql redis-server)"
        )
    with postgres_server() as postgres, redis_server() as redis:
        yield Servers(postgres, redis)


@pytest.fixture
def team_factory(servers, tmp_path, monkeypatch):
    """make(name, **launcher options) -> a demo project on the team deployment, no workers yet."""
    # the runner points $WAN_LORA_PROJECT at the project for the workers' pointer; restore it
    monkeypatch.delenv("WAN_LORA_PROJECT", raising=False)
    monkeypatch.setenv("DAGSTER_HOME", os.environ.get("DAGSTER_HOME", str(tmp_path)))
    teams: list[Team] = []

    def make(name: str = "team", **options) -> Team:
        project = create_demo_project(tmp_path / name / "demo")
        open_instance_of(project)
        switch_to_team(project, servers.new_database(), servers.new_broker(), **options)
        teams.append(Team(project))
        return teams[-1]

    yield make
    for team in teams:
        team.stop()
