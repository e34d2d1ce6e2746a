"""Small JSON records of what each asset partition was made from and what it holds.

The files under out/ are the truth about what exists; a record says which inputs made them, so a
partition is fresh exactly when its record's fingerprint equals the one its inputs give now.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from wan_lora_dagster.disk_full import write_text_atomic
from wan_lora_dagster.pipeline.made_files import MADE_FILES, describe
from wan_lora_dagster.small_files import read_bytes

UNPARTITIONED = "__all__"


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that a crash leaves the old file or the new one, never half of one."""
    write_text_atomic(path, json.dumps(data, indent=1, sort_keys=True))


class RecordStore:
    """One record per asset partition, under out/records/<asset>/<partition>.json."""

    def __init__(self, root: Path):
        self.root = root
        self._root = str(root)

    def path(self, asset: str, partition: str = UNPARTITIONED) -> Path:
        return self.root / asset / f"{partition}.json"

    def read(self, asset: str, partition: str = UNPARTITIONED) -> dict | None:
        # Plain strings, no stat and no Path objects: `wan-lora status` reads a record per clip
        # per stage, 120,000 of them at 30,000 clips.
        try:
            return json.loads(read_bytes(f"{self._root}/{asset}/{partition}.json"))
        except (FileNotFoundError, IsADirectoryError):
            return None

    def write(self, asset: str, partition: str, record: dict) -> None:
        """Write the record with the size, mtime and hash of each file it names under out/."""
        record[MADE_FILES] = describe(self.root.parents[1], record)  # root: <project>/out/records
        write_json_atomic(self.path(asset, partition), record)

    def delete(self, asset: str, partition: str) -> None:
        self.path(asset, partition).unlink(missing_ok=True)

    def read_many(self, asset: str, partitions: list[str]) -> dict[str, dict | None]:
        return {partition: self.read(asset, partition) for partition in partitions}
