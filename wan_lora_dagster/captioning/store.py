"""The caption files of a project, and the record of what the captioner last wrote in each.

`captions/<clip_id>.txt` belongs to the user: the captioner writes it, the user may edit it, and an
edit is never overwritten. The captioner tells its own text from an edit by keeping, under `out/`,
a record of the exact text it last wrote (`<records_dir>/<clip_id>.json`). A file that holds that
text (ignoring whitespace at the ends) is "auto" and may be rewritten; any other file is "edited".
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from wan_lora_dagster.disk_full import write_text_atomic
from wan_lora_dagster.errors import ConfigError
from wan_lora_dagster.small_files import read_bytes

logger = logging.getLogger(__name__)

ORPHANED_FOLDER = "_orphaned"


@dataclass(frozen=True)
class CaptionState:
    """One caption file as found on disk.

    Args:
        clip_id: the clip the caption belongs to.
        path: `captions/<clip_id>.txt`.
        text: the file's text without surrounding whitespace; None if the file is absent.
        origin: "auto" (the file holds exactly the captioner's last text), "edited" (it holds
            something else, or was written by hand with no record), or "missing".
    """

    clip_id: str
    path: Path
    text: str | None
    origin: str


class CaptionStore:
    """Reads and writes `captions/<clip_id>.txt`, never overwriting a hand edit.

    Args:
        captions_dir: the project's `captions/` folder (the user's).
        records_dir: a folder under `out/` for the captioner's records (derived data).
    """

    def __init__(self, captions_dir: Path, records_dir: Path):
        self.captions_dir = Path(captions_dir)
        self.records_dir = Path(records_dir)
        # plain strings: a sync and `wan-lora status` read a caption per clip, 30,000 at a time
        self._captions = str(self.captions_dir)
        self._records = str(self.records_dir)

    def caption_path(self, clip_id: str) -> Path:
        return self.captions_dir / f"{_checked(clip_id)}.txt"

    def state(self, clip_id: str) -> CaptionState:
        return self._state(clip_id, has_caption=True, has_record=True)

    def states(self, clip_ids: list[str]) -> dict[str, CaptionState]:
        """Clip -> its state, for many clips: each folder is listed once, so an absent caption
        or record costs no failed open."""
        captions, records = _file_names(self._captions), _file_names(self._records)
        return {
            clip_id: self._state(
                clip_id, f"{clip_id}.txt" in captions, f"{clip_id}.json" in records
            )
            for clip_id in clip_ids
        }

    def _state(self, clip_id: str, has_caption: bool, has_record: bool) -> CaptionState:
        name = _checked(clip_id)
        text = _read_caption(os.path.join(self._captions, f"{name}.txt")) if has_caption else None
        path = self.captions_dir / f"{name}.txt"
        if text is None:
            return CaptionState(clip_id, path, None, "missing")
        auto = has_record and text in self._captioner_texts(clip_id)
        return CaptionState(clip_id, path, text, "auto" if auto else "edited")

    def write_auto(self, clip_id: str, text: str, settings_fingerprint: str) -> CaptionState:
        """Write the captioner's `text` unless the file was edited by hand.

        The file gets the stripped text and a trailing newline; the record gets the text and
        `settings_fingerprint`. An edited file is left alone and its state ("edited") returned.
        """
        current = self.state(clip_id)
        if current.origin == "edited":
            return current
        text = text.strip()
        # The record names both texts while the file is replaced, so that an interrupted write
        # leaves a file the next run still recognises as the captioner's, not as a hand edit.
        self._write_record(clip_id, text, settings_fingerprint, replacing=current.text)
        write_text_atomic(current.path, text + "\n")
        self._write_record(clip_id, text, settings_fingerprint)
        return CaptionState(clip_id, current.path, text, "auto")

    def last_auto(self, clip_id: str) -> tuple[str, str] | None:
        """(text, settings_fingerprint) that the captioner last wrote for `clip_id`, if any."""
        record = self._read_record(clip_id)
        return None if record is None else (record.text, record.settings_fingerprint)

    def orphan(self, clip_id: str) -> Path | None:
        """Move the caption of a clip that no longer exists to `captions/_orphaned/`.

        Never deletes: an earlier orphan of the same id is kept and this one gets a numeric suffix
        (`<clip_id>.1.txt`, `<clip_id>.2.txt`, ...). Returns the new path, or None if there was
        no caption file.
        """
        path = self.caption_path(clip_id)
        if not path.exists():
            return None
        folder = self.captions_dir / ORPHANED_FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / path.name
        suffix = 0
        while target.exists():
            suffix += 1
            target = folder / f"{clip_id}.{suffix}.txt"
        path.rename(target)
        return target

    def _captioner_texts(self, clip_id: str) -> set[str]:
        """Texts a file may hold and still be the captioner's (two while a write is in flight)."""
        record = self._read_record(clip_id)
        if record is None:
            return set()
        return {text for text in (record.text, record.replacing) if text is not None}

    def _record_path(self, clip_id: str) -> Path:
        return self.records_dir / f"{_checked(clip_id)}.json"

    def _read_record(self, clip_id: str) -> _Record | None:
        path = os.path.join(self._records, f"{_checked(clip_id)}.json")
        try:
            return _Record(**json.loads(read_bytes(path).decode("utf-8")))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as error:
            # Without a record the caption counts as a hand edit: the safe side, it is kept.
            logger.warning("ignoring unreadable captioner record %s: %s", path, error)
            return None

    def _write_record(
        self, clip_id: str, text: str, settings_fingerprint: str, replacing: str | None = None
    ) -> None:
        record = _Record(text, settings_fingerprint, replacing)
        content = json.dumps(record._asdict(), ensure_ascii=False) + "\n"
        write_text_atomic(self._record_path(clip_id), content)


class LazyCaptionStates(Mapping[str, CaptionState]):
    """Each item's state read when first asked, then kept: a studio page shows 60 captions of
    30,000, and reads only those. `forget` has an item read again at its next ask."""

    def __init__(self, store: CaptionStore, item_ids: list[str]):
        self._store, self._ids, self._known = store, item_ids, set(item_ids)
        self._read: dict[str, CaptionState] = {}

    def __getitem__(self, item_id: str) -> CaptionState:
        if item_id not in self._read:
            if item_id not in self._known:
                raise KeyError(item_id)
            self._read[item_id] = self._store.state(item_id)
        return self._read[item_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def forget(self, item_id: str) -> None:
        self._read.pop(item_id, None)


class _Record(NamedTuple):
    """What the captioner wrote last; `replacing`: the previous text, while a write is under way."""

    text: str
    settings_fingerprint: str
    replacing: str | None = None


def _checked(clip_id: str) -> str:
    """`clip_id`, if it names a file inside a folder (no separators, not hidden)."""
    if not clip_id or os.sep in clip_id or clip_id.startswith("."):
        raise ValueError(f"not a clip id usable as a file name: {clip_id!r}")
    return clip_id


def _file_names(folder: str) -> set[str]:
    try:
        return set(os.listdir(folder))
    except FileNotFoundError:
        return set()


def _read_caption(path: str) -> str | None:
    """The caption text without surrounding whitespace; None if there is no file."""
    try:
        # utf-8-sig: editors on Windows may start the file with a byte-order mark. Bytes decoded
        # at once (a text-mode file sets up a decoder per file, a third of the time), with the
        # newlines text mode would translate.
        text = read_bytes(path).decode("utf-8-sig")
        return text.replace("\r\n", "\n").replace("\r", "\n").strip()
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{path}: caption is not UTF-8 text ({error.reason} at byte {error.start}). "
            "Save the file as UTF-8."
        ) from error
