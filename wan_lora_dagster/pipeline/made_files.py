"""The files a record's step made, checked rather than trusted.

A record names the files it made under out/ (a clip, a cache, a checkpoint). When it is written,
each one's size, modification time and content hash are kept in it; reading it back, a file that
is gone, whose size differs, or whose content differs (hashed again only when its mtime moved)
is damaged: a cache truncated by a full disk or a crash, a checkpoint rewritten by hand. Its
partition is then not fresh, so it is made again and never trained on.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wan_lora_dagster.pipeline.records import Record

CHUNK_BYTES = 4 << 20


def content_hash(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def describe(project_root: Path, names: list[str]) -> dict[str, dict]:
    """Path (relative to the project) -> size, mtime and hash of each of the made files `names`
    that lies under out/ (not out/records); a folder's files, each."""
    out = project_root / "out"
    described = {}
    for path in _files(project_root, names):
        if not path.is_relative_to(out) or path.is_relative_to(out / "records"):
            continue
        stat = path.stat()
        described[str(path.relative_to(project_root))] = {
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "hash": content_hash(path),
        }
    return described


def _files(project_root: Path, names: list[str]) -> list[Path]:
    """The files named, a folder (a full fine-tune's checkpoint) standing for every file in it."""
    files = []
    for name in names:
        path = Path(name) if Path(name).is_absolute() else project_root / name
        if path.is_dir():
            files += sorted(inside for inside in path.rglob("*") if inside.is_file())
        elif path.is_file():
            files.append(path)
    return files


def damage(project_root: Path, record: Record, only: list[str] | None = None) -> dict[str, str]:
    """Path -> what is wrong with it, for each made file of the record that is not as made.

    Cheap: a stat per file; a file is hashed only when its size is right but its mtime moved.
    (Plain strings and os.stat: `wan-lora status` checks every made file, 90,000 at 30,000
    clips.)
    """
    problems = {}
    root = str(project_root)
    for name, made in record.made_files.items():
        if only is not None and name not in only:
            continue
        try:
            stat = os.stat(os.path.join(root, name))
        except FileNotFoundError:
            problems[name] = "deleted"
            continue
        if stat.st_size != made["size"]:
            problems[name] = f"{made['size']} bytes when made, {stat.st_size} now"
        elif (
            stat.st_mtime_ns != made["mtime_ns"]
            and content_hash(project_root / name) != made["hash"]
        ):
            problems[name] = "its content changed"
    return problems


def damage_message(problems: dict[str, str]) -> str:
    return "; ".join(f"{name}: {problem}" for name, problem in problems.items())
