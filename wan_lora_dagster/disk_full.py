"""A full disk named as such: which folder could not be written, and what to do.

Writers under out/ write to a temporary name in the target's folder and rename it into place,
removing the temporary file on any failure, so a full disk leaves the old file or none, never
half of one. What reaches the user is this error, not "Errno 28" from deep inside a library (or
safetensors' `IoError(Os { code: 28, kind: StorageFull })`, or an ffmpeg log).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
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
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = create_temporary(path)
    try:
        with writing_into(path.parent):
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
