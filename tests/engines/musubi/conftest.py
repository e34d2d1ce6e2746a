"""Fixtures of the musubi engine tests: a fake musubi-tuner clone (no model, no GPU), fake
weights and a mixed project (two video sections, one image section)."""

from __future__ import annotations

from pathlib import Path

import pytest

from wan_lora_dagster.engines.musubi import MusubiEngine
from wan_lora_dagster.formats.manifest import TrainingSetManifest
from wan_lora_dagster.testing.musubi_fixtures import (
    MiniProject,
    make_caches,
    make_fake_musubi,
    make_project,
    make_weights,
    musubi_settings,
)


@pytest.fixture(scope="session")
def fake_musubi(tmp_path_factory) -> Path:
    return make_fake_musubi(tmp_path_factory.mktemp("musubi-tuner"))


@pytest.fixture(scope="session")
def weights(tmp_path_factory) -> dict[str, str]:
    return make_weights(tmp_path_factory.mktemp("weights"))


@pytest.fixture
def make_settings(fake_musubi, weights):
    def make(**overrides):
        return musubi_settings(fake_musubi, weights, **overrides)

    return make


@pytest.fixture
def project(tmp_path) -> MiniProject:
    return make_project(tmp_path / "project")


@pytest.fixture
def manifest(project) -> TrainingSetManifest:
    return make_caches(project)


@pytest.fixture
def output_lines() -> list[str]:
    return []


@pytest.fixture
def make_engine(project, make_settings, output_lines):
    """An engine over the fake clone, its work_dir in the project's out/musubi."""

    def make(**overrides) -> MusubiEngine:
        return MusubiEngine(
            make_settings(**overrides),
            project.root / "out" / "musubi",
            on_output=output_lines.append,
        )

    return make
