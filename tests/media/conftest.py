from pathlib import Path

import pytest

from wan_lora_dagster.media.synthetic import make_synthetic_film


@pytest.fixture(scope="session")
def shapes_film(tmp_path_factory) -> Path:
    """The default synthetic film: 20 s at 24 fps, 320x192, hard cuts at 5, 10 and 15 s."""
    return make_synthetic_film(tmp_path_factory.mktemp("synthetic") / "shapes.mp4")


@pytest.fixture(scope="session")
def shapes_scene_starts() -> tuple[float, ...]:
    """Where the scenes of `shapes_film` start: make_synthetic_film's defaults, 20 s, 4 scenes."""
    return (5.0, 10.0, 15.0)
