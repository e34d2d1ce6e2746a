"""Content hashes of the user's files, cached by size and modification time.

Touching a file changes its mtime, so it is hashed again, and the hash is the same: no change.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from wan_lora_dagster.pipeline.records import write_json_atomic

CHUNK_BYTES = 4 << 20


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()[:16]


class FileHashCache:
    """Path -> content hash, recomputed only when size or mtime changed."""

    def __init__(self, cache_path: Path):
        self.cache_path = cache_path
        self._entries: dict[str, dict] = {}
        if cache_path.is_file():
            self._entries = json.loads(cache_path.read_text(encoding="utf-8"))
        self._dirty = False

    def hash(self, path: Path) -> str:
        stat = path.stat()
        key = str(path.resolve())
        entry = self._entries.get(key)
        if entry and entry["size"] == stat.st_size and entry["mtime_ns"] == stat.st_mtime_ns:
            return entry["sha256"]
        digest = sha256_of(path)
        self._entries[key] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest}
        self._dirty = True
        return digest

    def save(self) -> None:
        if self._dirty:
            write_json_atomic(self.cache_path, self._entries)
            self._dirty = False
