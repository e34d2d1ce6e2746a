"""Recipe text for the parser tests: the smallest recipe, and the error a text gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from wan_lora_dagster.errors import ConfigError
from wan_lora_dagster.recipe.reading import load_recipe

MINIMAL = """\
[[datasets]]
source = "clips"
resolution = [384, 208]
target_frames = [17]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "wan_lora.toml"
    path.write_text(text)
    return path


def error_for(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as raised:
        load_recipe(write(tmp_path, text))
    return str(raised.value)
