"""`wan_lora.toml` -> a typed, validated recipe; every problem of the file named with its line,
because the user wrote that file by hand."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from pydantic import ValidationError

from wan_lora_dagster.problems import Problems, read_text
from wan_lora_dagster.recipe.whole import Recipe


def load_recipe(path: Path) -> Recipe:
    """The recipe, or a ConfigError listing every problem of the file with its line."""
    problems = Problems()
    recipe = read_recipe(path, problems)
    problems.raise_errors()
    return recipe


def read_recipe(path: Path, problems: Problems) -> Recipe | None:
    """The recipe, or None with every problem of the file (each with its line) in `problems`."""
    text = read_text(path, problems)
    if text is None:
        return None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        problems.error(path, _toml_error_line(error, text), f"not valid TOML: {error}")
        return None
    try:
        return Recipe.model_validate(data)
    except ValidationError as error:
        _describe(error, path, text, problems)
        return None


def _toml_error_line(error: tomllib.TOMLDecodeError, text: str) -> int:
    """tomllib (Python 3.11) says where only in its message: `(at line 3, column 5)`."""
    found = re.search(r"at line (\d+)", str(error))
    return int(found[1]) if found else text.count("\n") + 1  # "at end of document"


def _describe(error: ValidationError, path: Path, text: str, problems: Problems) -> None:
    for issue in error.errors():
        location = tuple(part for part in issue["loc"] if not isinstance(part, str) or part)
        key = ".".join(str(part) for part in location) or "(top level)"
        reason = "unknown key" if issue["type"] == "extra_forbidden" else issue["msg"]
        # a missing key has no line of its own: its table's header, else the top of the file
        problems.error(path, _line_of(text, location) or 1, f"{key}: {reason}")


_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.-]+)\s*\]\]?")
_KEY = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*=")


def _line_of(text: str, location: tuple) -> int | None:
    """The 1-based line where a pydantic error location is written (best effort)."""
    table: tuple = ()
    array_counts: dict[str, int] = {}
    best = None
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            name = header.group(2)
            if header.group(1) == "[[":
                array_counts[name] = array_counts.get(name, -1) + 1
                table = (name, array_counts[name])
            else:
                table = (name,)
            if location[: len(table)] == table:
                best = best or number
            continue
        key = _KEY.match(line)
        if key and (*table, key.group(1)) == location[: len(table) + 1]:
            return number
    return best
