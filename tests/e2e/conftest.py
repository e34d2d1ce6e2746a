import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from wan_lora_dagster.cli import main
from wan_lora_dagster.scaffold import create_demo_project

TEAM_UMASK = 0o002


def wan_lora(capsys, *args: str) -> tuple[int, str]:
    """Run the `wan-lora` command in this process; returns (exit status, stdout)."""
    capsys.readouterr()
    status = main([str(arg) for arg in args])
    return status, capsys.readouterr().out


def run_json(capsys, project: Path, *extra: str) -> tuple[int, dict]:
    status, out = wan_lora(capsys, "run", "--project", project, "--json", *extra)
    return status, json.loads(out)


def made(summary: dict) -> dict[str, list[str]]:
    """Asset -> partitions materialized, for the assets that made any."""
    return {
        asset: stage["materialized"] for asset, stage in summary.items() if stage["materialized"]
    }


@pytest.fixture(scope="session")
def built_demo(tmp_path_factory) -> Path:
    """The demo project run once from films to best_lora; tests copy it before changing it.

    It runs as a team member on shared storage runs it, under umask 002 (test_group_modes.py
    checks that every file it made is group-writable)."""
    project = create_demo_project(tmp_path_factory.mktemp("demo") / "demo")
    previous = os.umask(TEAM_UMASK)
    try:
        assert main(["run", "--project", str(project)]) == 0
    finally:
        os.umask(previous)
    return project


@pytest.fixture
def demo_copy(built_demo, tmp_path) -> Path:
    target = tmp_path / "demo"
    shutil.copytree(built_demo, target, symlinks=True)
    return target


REPORTS = pytest.StashKey[list[tuple[str, str]]]()


@pytest.fixture
def report_at_the_end(request) -> Callable[[str, str], None]:
    """report(title, text): shown in the terminal summary at the end of the session, where `-q`
    shows it too (tests/e2e/test_fault_matrix.py's stage x fault matrix)."""

    def report(title: str, text: str) -> None:
        request.config.stash.setdefault(REPORTS, []).append((title, text))

    return report


def pytest_terminal_summary(terminalreporter, config) -> None:
    for title, text in config.stash.get(REPORTS, []):
        terminalreporter.write_sep("=", title)
        terminalreporter.write_line(text)
