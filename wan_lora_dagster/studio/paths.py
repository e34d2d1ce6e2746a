"""Where the studio may write: a file named by the page must stay inside its project folder.

A name comes from a web request, so it is checked twice: as text (one plain file name, no
separators, no "..", no leading dot) and after resolving symlinks (the file lands directly in
the folder it was meant for).
"""

from __future__ import annotations

import re
from pathlib import Path

from wan_lora_dagster.errors import UserError

# letters of any script, digits, "_", "-", "." and spaces inside; never a separator or a dot first
_PLAIN_NAME = re.compile(r"[^\W][\w .\-]{0,199}")


class UnsafePath(UserError):
    """A request named a file outside the folders the studio writes."""


def file_in(folder: Path, name: str, suffix: str) -> Path:
    """`folder/<name><suffix>`, refused unless `name` is a plain file name whose file, symlinks
    resolved, lies directly in `folder`."""
    if not _PLAIN_NAME.fullmatch(name) or ".." in name:
        raise UnsafePath(f"not a plain file name: {name!r}")
    path = folder / f"{name}{suffix}"
    if path.resolve().parent != folder.resolve():
        raise UnsafePath(f"{path} leads outside {folder}")
    return path
