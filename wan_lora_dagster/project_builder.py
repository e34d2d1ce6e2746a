"""Recipes written from keyword settings: the one writer of `wan_lora.toml` text that the demo,
the tests and the benchmarks share, so that no recipe is written by hand in many files.

A table is a dict of its settings, written in the order given; every value TOML takes here
(strings, numbers, booleans, lists of them) is written as JSON writes it, which TOML reads the
same. `with_changes` gives a recipe's settings with some changed, and `demo_recipe(**changes)`
the demo's, for the many tests that run a variant of the demo.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from wan_lora_dagster.project import CONFIG_NAME

Table = Mapping[str, Any]

DEMO_DATASET: dict[str, Any] = {
    "name": "video",
    "source": "clips",
    "resolution": [64, 48],
    "target_frames": [9],
    "frame_extraction": "chunk",
}
DEMO_TABLES: dict[str, dict[str, Any]] = {
    "captions": {
        "captioner": "blip2",
        "model": "tiny",
        "trigger": "demostyle",
        "banned_words": ["bunny"],
    },
    "training": {
        "model": "tiny",
        "network_dim": 4,
        "network_alpha": 4,
        "learning_rate": 1e-3,
        "max_train_epochs": 4,
        "save_every_n_epochs": 2,
    },
    "eval": {
        "prompts": ["demostyle, shapes moving on a coloured background"],
        "strengths": [0.0, 1.0],
        "seeds": [1],
        "width": 64,
        "height": 48,
        "num_frames": 9,
        "num_inference_steps": 4,
        "num_held_out": 1,
    },
}
TABLE_ORDER = ("captions", "training", "eval")
DEMO: dict[str, Any] = {"datasets": [DEMO_DATASET], **DEMO_TABLES}


def recipe_text(datasets: Sequence[Table] = (), **tables: Table | None) -> str:
    """The recipe: one `[[datasets]]` per entry of `datasets`, then each named table
    (`captions`, `training`, `eval`, or any other) that is not None."""
    unknown = set(tables) - set(TABLE_ORDER)
    order = [*TABLE_ORDER, *sorted(unknown)]
    blocks = [_table("[[datasets]]", dataset) for dataset in datasets]
    blocks += [_table(f"[{name}]", tables[name]) for name in order if tables.get(name) is not None]
    return "\n".join(blocks)


def write_recipe(project: Path, datasets: Sequence[Table] = (), **tables: Table | None) -> Path:
    """`recipe_text(...)` written as the project's wan_lora.toml; returns its path."""
    path = project / CONFIG_NAME
    path.write_text(recipe_text(datasets, **tables), encoding="utf-8")
    return path


def with_changes(
    settings: Mapping[str, Any], datasets: Sequence[Table] | None = None, **changes: Table | None
) -> dict[str, Any]:
    """`settings` (as `recipe_text` takes them) with `changes` applied: a table given updates
    the one there (a value None removes that setting; the table None removes the table);
    `datasets`, where given, replaces the sections."""
    changed: dict[str, Any] = copy.deepcopy(dict(settings))  # the caller may change it
    if datasets is not None:
        changed["datasets"] = datasets
    for name, change in changes.items():
        if change is None:
            changed[name] = None
            continue
        merged = {**(changed.get(name) or {}), **change}
        changed[name] = {key: value for key, value in merged.items() if value is not None}
    return changed


def demo_recipe(datasets: Sequence[Table] | None = None, **changes: Table | None) -> dict[str, Any]:
    """The demo's settings with `changes` applied (`with_changes`)."""
    return with_changes(DEMO, datasets, **changes)


def _table(header: str, settings: Table) -> str:
    return (
        header + "\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in settings.items())
    )
