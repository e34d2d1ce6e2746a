"""Files under out/ get the mode the user's umask gives a new file, as `open()` and `cp` give it.

A team whose workers run as different users on shared storage sets a umask of 002 (a shared
group) and needs to read each other's records, caches and checkpoints. Two things made them
readable by their owner only (0600), whatever the umask: `tempfile.mkstemp`, which atomic writes
used for the file they rename into place, and safetensors, which writes through a temporary file
of its own (0600) renamed over the target, in `save_file` and every `save_pretrained`. Our atomic
writes create their temporary file here; a file or folder a library wrote is given the umask's
mode here before it is moved into place.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

# Mode bits before the umask: what open() and every other tool asks for a new file.
NEW_FILE_MODE = 0o666
ATTEMPTS = 100  # mkstemp's own bound on name collisions


def create_temporary(target: Path) -> tuple[int, str]:
    """(an open descriptor, the path) of a new empty file `.<name>.<random>.tmp` beside `target`,
    made as exclusively as mkstemp makes one, with the umask's mode.

    A ".tmp" name and a leading dot: no watcher of "*.json" or "*.safetensors", and no glob of
    musubi-tuner's, ever sees it.
    """
    for _ in range(ATTEMPTS):
        path = os.path.join(target.parent, f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, NEW_FILE_MODE), path
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {target}")


def with_umask_mode(path: Path | str) -> None:
    """Give a file, or every file in a folder, the mode a new file gets under the umask."""
    mode = NEW_FILE_MODE & ~current_umask()
    if os.path.isdir(path):
        for folder, _, names in os.walk(path):
            for name in names:
                os.chmod(os.path.join(folder, name), mode)
    else:
        os.chmod(path, mode)


def current_umask() -> int:
    """This process's umask, read without setting it (os.umask can only swap it, which another
    thread creating a file at that moment would see)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
