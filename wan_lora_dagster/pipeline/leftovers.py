"""Half-written files of a killed attempt: the temporaries our writers rename into place.

Every writer under out/ writes `.<final name>.<something>` (`.partial` or `.tmp`, or a record's
`.<key>.json.<random>`) and renames it when complete, so a process killed mid-write (a worker
lost with SIGKILL) leaves such a file and never a truncated final one. A partition is made by one
step at a time, so when a step has made its partitions, any temporary still named after one of
them belongs to a dead attempt and goes.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def is_temporary(name: str) -> bool:
    return name.startswith(".") and (
        ".partial" in name or name.endswith(".tmp") or ".json." in name
    )


def remove_leftovers(out_dir: Path, keys: Iterable[str]) -> list[Path]:
    """Remove the temporaries under out_dir written for these partitions; returns them."""
    # a final name is `<key>.ext`, or `<key>_...` for a cache file
    prefixes = tuple(f".{key}{separator}" for key in keys for separator in "._")
    removed = []
    for path in out_dir.rglob(".*"):
        if is_temporary(path.name) and path.name.startswith(prefixes) and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
