"""The layout of a user's project folder: where every input lives and every output goes."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from wan_lora_dagster.errors import ConfigError
from wan_lora_dagster.recipe.reading import load_recipe
from wan_lora_dagster.recipe.whole import Recipe

CONFIG_NAME = "wan_lora.toml"
FILM_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ts")
STILL_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


@dataclass(frozen=True)
class Project:
    """A user's LoRA project folder: where every input lives and every output goes."""

    root: Path

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_NAME

    @cached_property
    def recipe(self) -> Recipe:
        return load_recipe(self.config_path)

    films_dir = property(lambda self: self.root / "films")
    ranges_dir = property(lambda self: self.root / "ranges")
    stills_dir = property(lambda self: self.root / "stills")
    captions_dir = property(lambda self: self.root / "captions")
    out_dir = property(lambda self: self.root / "out")
    dagster_home = property(lambda self: self.root / ".dagster")

    def out(self, *parts: str) -> Path:
        return self.out_dir.joinpath(*parts)

    def stills(self) -> dict[str, Path]:
        """Still stem (its id) -> path, for every image in stills/."""
        return _files_by_stem(self.stills_dir, STILL_SUFFIXES)


def _files_by_stem(directory: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    if not directory.is_dir():
        return {}
    # Hidden names (macOS "._x.png" resource forks) are no media and cannot name a partition.
    found = sorted(
        p
        for p in directory.iterdir()
        if p.suffix.lower() in suffixes and p.is_file() and not p.name.startswith(".")
    )
    return {path.stem: path for path in found}


def open_project(root: str | Path) -> Project:
    project = Project(Path(root).resolve())
    if not project.config_path.is_file():
        raise ConfigError(
            f"{project.config_path}: not found. Create a project with `wan-lora init {root}`."
        )
    return project


def find_project(start: Path) -> Path:
    """The nearest folder at or above `start` that holds a wan_lora.toml, as git finds its
    repository; ConfigError naming `start` when there is none."""
    start = Path(start).resolve()
    for folder in (start, *start.parents):
        if (folder / CONFIG_NAME).is_file():
            return folder
    raise ConfigError(
        f"no {CONFIG_NAME} in {start} or any folder above it: run this inside a project, "
        "give --project DIR, or create a project with `wan-lora init DIR`"
    )
