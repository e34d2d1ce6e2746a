"""The tiny model, a synthetic training set and one training run, shared by the engine tests.

Everything is built once per session: the tiny model takes seconds, the run about a second.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from wan_lora_dagster.engines.diffusers.engine import DiffusersEngine
from wan_lora_dagster.engines.diffusers.tiny import ensure_tiny_model
from wan_lora_dagster.formats.manifest import TrainingSetManifest
from wan_lora_dagster.recipe.datasets import DatasetSection
from wan_lora_dagster.testing.stripes import (
    NUM_CLIPS,
    NUM_HELD_OUT,
    SECTION,
    TRAINING,
    TrainingRun,
    cache_training_set,
    stripes_clip,
    train_request,
)


@pytest.fixture(scope="session")
def make_clip():
    return stripes_clip


@pytest.fixture(scope="session")
def section() -> DatasetSection:
    return SECTION


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return ensure_tiny_model(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="session")
def engine(tiny_model_dir) -> DiffusersEngine:
    """One engine for the session, as one Dagster run keeps one: models load once."""
    return DiffusersEngine(TRAINING, models_dir=tiny_model_dir.parent, device="cpu")


@pytest.fixture(scope="session")
def training_set(tmp_path_factory, engine) -> TrainingSetManifest:
    return cache_training_set(engine, tmp_path_factory.mktemp("project"), NUM_CLIPS, NUM_HELD_OUT)


@pytest.fixture(scope="session")
def make_training_set():
    return cache_training_set


@pytest.fixture(scope="session")
def training_run(tmp_path_factory, engine, training_set) -> TrainingRun:
    request = train_request(training_set, tmp_path_factory.mktemp("checkpoints"))
    announced, progress = [], []
    returned = engine.train(request, progress.append, announced.append)
    return TrainingRun(request, returned, announced, progress)
