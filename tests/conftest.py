"""Fixtures every test folder shares: the test media, and the demo project made once per worker
(pytest-xdist worker) at each of its stages, for tests to read or to copy before changing it."""

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from wan_lora_dagster.cli import main
from wan_lora_dagster.scaffold import create_demo_project

SHARED_MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media"
# The demo is made as a team member on shared storage makes it, under umask 002
# (tests/e2e/test_group_modes.py checks that every file it made is group-writable).
TEAM_UMASK = 0o002


@pytest.fixture(scope="session")
def shared_media() -> Path:
    """The real test films in ../shared/media; skips where a clone has no ../shared beside it."""
    if not SHARED_MEDIA.is_dir():
        pytest.skip(f"test media not found at {SHARED_MEDIA} (it lives in ../shared/media)")
    return SHARED_MEDIA


def _copy(source: Path, target: Path) -> Path:
    """A made project copied whole (its .dagster instance too): modes kept, links kept."""
    shutil.copytree(source, target, symlinks=True)
    return target


def _run_demo(source: Path | None, target: Path, *selection: str) -> Path:
    """The demo (a copy of `source`, the stage before, where given) run up to `selection`."""
    project = _copy(source, target) if source else create_demo_project(target)
    previous = os.umask(TEAM_UMASK)
    try:
        assert main(["run", "--project", str(project), *selection]) == 0
    finally:
        os.umask(previous)
    return project


@pytest.fixture(scope="session")
def team_umask() -> int:
    """The umask the shared demo projects are made under."""
    return TEAM_UMASK


@pytest.fixture(scope="session")
def captioned_demo(tmp_path_factory) -> Path:
    """The demo run up to its captions (clips cut, captions written). Read it, or copy it
    (`copy_project`) before changing it: every test of the worker shares it."""
    return _run_demo(None, tmp_path_factory.mktemp("demo") / "captioned", "--select", "+captions")


@pytest.fixture(scope="session")
def cached_demo(captioned_demo, tmp_path_factory) -> Path:
    """The demo run up to its training set (text and latent caches made), not trained: shared."""
    target = tmp_path_factory.mktemp("demo") / "cached"
    return _run_demo(captioned_demo, target, "--select", "+training_set")


@pytest.fixture(scope="session")
def built_demo(cached_demo, tmp_path_factory) -> Path:
    """The demo run from films to best_lora (two checkpoints, evaluated): shared."""
    return _run_demo(cached_demo, tmp_path_factory.mktemp("demo") / "built")


@pytest.fixture(scope="session")
def evaluated_demo(built_demo) -> Path:
    """The made demo through eval and best_lora (the studio tests' name for `built_demo`)."""
    return built_demo


@pytest.fixture
def copy_project(tmp_path) -> Callable[[Path, str], Path]:
    """copy(project, name="demo") -> a copy of a made project under this test's tmp_path."""

    def copy(project: Path, name: str = "demo") -> Path:
        return _copy(project, tmp_path / name)

    return copy


@pytest.fixture
def demo_copy(built_demo, copy_project) -> Path:
    """A copy of the made demo, this test's to change."""
    return copy_project(built_demo)
