"""The studio's pages in Debian's Chromium (headless, driven by Playwright): where Chromium is,
how it is started, the studio served for it, and the screenshots its tests take."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from wan_lora_dagster.project import open_project
from wan_lora_dagster.studio.server import start_studio
from wan_lora_dagster.testing.servers import free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DOCS = Path(__file__).resolve().parents[2] / "docs"
START_SECONDS = 60
SHOWS_A_FRAME = """video => video.readyState >= 2 || new Promise(
  shown => video.addEventListener("loadeddata", () => shown(true), { once: true }))"""
PAGE_TIMEOUT_MS = 30_000  # a loaded 2-core machine


@contextmanager
def serving(project: Path, dagster: str = "") -> Iterator[str]:
    """The studio of `project` on a free port of this machine: its captions page's address."""
    url, server = start_studio(open_project(project), "127.0.0.1", free_port(), dagster)
    deadline = time.monotonic() + START_SECONDS
    while not server.started:  # uvicorn's own flag: set once it accepts connections
        assert time.monotonic() < deadline, "the studio did not start"
        time.sleep(0.05)
    try:
        yield url
    finally:
        server.should_exit = True


def screenshot(page, project: Path, name: str) -> None:
    """The page into the project's out/screenshots/; with WAN_LORA_UPDATE_DOCS=1 also over
    docs/<name>, the README's picture."""
    path = project / "out" / "screenshots" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=path)
    if os.environ.get("WAN_LORA_UPDATE_DOCS") == "1":
        shutil.copyfile(path, DOCS / name)
