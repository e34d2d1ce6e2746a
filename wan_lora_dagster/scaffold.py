"""New project folders: `wan-lora init` (a commented example) and `wan-lora demo` (runnable)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from wan_lora_dagster.errors import ConfigError
from wan_lora_dagster.project import CONFIG_NAME
from wan_lora_dagster.project_builder import demo_recipe, recipe_text

PROJECT_FOLDERS = ("films", "ranges", "stills", "captions")

DEMO_RECIPE = (
    "# The demo: a synthetic film, the offline `tiny` model and a tiny captioner. It proves the\n"
    "# plumbing and the training math on a CPU in minutes; its videos and captions are not art.\n"
    + recipe_text(**demo_recipe())
)

# Moments of the synthetic film (4 scenes of 6 s): one per scene, and one across a hard cut,
# which the clips check flags as a warning.
DEMO_RANGES = """\
# START END [name] [# note]
0.5 3.0            # scene 1: the opening shapes
7.0 +2.5           # scene 2
13.0 15.5 drift    # scene 3, named: its clip id is `drift`
19.0 21.5          # scene 4
5.0 7.5            # crosses the cut at 6 s: the no_hard_cuts check warns
"""


def _template(name: str) -> str:
    return (resources.files("wan_lora_dagster") / "templates" / name).read_text(encoding="utf-8")


def init_project(directory: Path, recipe: str | None = None) -> Path:
    """Create the folders and a commented wan_lora.toml; never overwrite a user's file."""
    config = directory / CONFIG_NAME
    if config.exists():
        raise ConfigError(f"{config} already exists; nothing was changed.")
    for folder in PROJECT_FOLDERS:
        (directory / folder).mkdir(parents=True, exist_ok=True)
    config.write_text(recipe or _template(CONFIG_NAME), encoding="utf-8")
    return directory


def create_demo_project(directory: Path) -> Path:
    """A runnable project: a synthetic film with hard cuts, ranges, and a tiny-model recipe."""
    from wan_lora_dagster.media.synthetic import make_synthetic_film  # PyAV: only the demo needs it

    if (directory / CONFIG_NAME).exists():
        return directory
    init_project(directory, DEMO_RECIPE)
    make_synthetic_film(directory / "films" / "shapes.mp4", duration=24.0, num_scenes=4)
    (directory / "ranges" / "shapes.txt").write_text(DEMO_RANGES, encoding="utf-8")
    return directory
