"""A full disk named as such: which folder could not be written, and what to do.

Writers under out/ write to a temporary name in the target's folder and rename it into place,
removing the temporary file on any failure, so a full disk leaves the old file or none, never
half of one. What reaches the user is this error, not "Errno 28" from deep inside a library (or
safetensors' `IoError(Os { code: 28, kind: StorageFull })`, or an ffmpeg log).
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from wan_lora_dagster.errors import UserError
from wan_lora_dagster.file_modes import create_temporary

# EFBIG: a file-size limit (ulimit -f) reads the same to a user: this file cannot grow here
FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
FULL_WORDS = (
    "No space left on device",
    "Disk quota exceeded",
    "File too large",
    "StorageFull",
    "FileTooLarge",
)


class DiskFullError(UserError):
    """A folder under out/ could not be written: its disk is full (or a size limit was hit)."""


def is_disk_full(error: BaseException) -> bool:
    while error is not None:
        if isinstance(error, OSError) and error.errno in FULL_ERRNOS:
            return True
        if any(words in str(error) for words in FULL_WORDS):
            return True
        error = error.__cause__ or error.__context__
    return False


def disk_full_error(folder: Path) -> DiskFullError:
    return DiskFullError(
        f"no space left on the disk of {folder} (or the file-size limit was hit): nothing "
        "half-written was kept. Free some space there and run `wan-lora run` again; it goes on "
        "from what was made."
    )


@contextmanager
def writing_into(folder: Path) -> Iterator[None]:
    """Turn a full-disk error of the block into a DiskFullError naming `folder`."""
    try:
        yield
    except DiskFullError:
        raise
    except Exception as error:
        if is_disk_full(error):
            raise disk_full_error(folder) from error
        raise


def write_text_atomic(path: Path, text: str) -> None:
    """Write a text file so that a crash or a full disk leaves the old file or the new one,
    never half of one, and no temporary file."""
    with writing_into(path.parent):  # making the folder or the temporary file can fail too
        _write_text_atomic(path, text)


def _write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = create_temporary(path)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A temporary name beside `path` for the block to write (a library's `save(name)`); renamed
    over `path` when the block ends, removed if it fails, a full disk named as such.

    The name keeps the suffix, so a writer that picks its format by the suffix still does, and
    is `.<stem>.<pid>.partial<suffix>`: pipeline/leftovers.py finds one a killed process left.
    """
    path = Path(path)
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.partial{path.suffix}")
    try:
        with writing_into(path.parent):
            path.parent.mkdir(parents=True, exist_ok=True)
            yield temporary
            temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)


@contextmanager
def building(directory: Path, is_complete: Callable[[Path], bool]) -> Iterator[Path]:
    """A partial folder beside `directory` for the block to fill; renamed into place when the
    block ends, removed if it fails (a full disk named as such), so a folder that loads is never
    half a folder. A complete build another process renamed first wins."""
    directory = Path(directory)
    partial = directory.with_name(f".{directory.name}.{os.getpid()}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        with writing_into(directory.parent):
            partial.mkdir(parents=True)
            yield partial
            if directory.exists() and not is_complete(directory):
                shutil.rmtree(directory)
            try:
                partial.rename(directory)
            except OSError:
                if not is_complete(directory):
                    raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
