"""`wan-lora ui` (dagster dev) in tests: how long it may take to start and stop, and when its
webserver serves."""

from __future__ import annotations

import subprocess
import threading
import time
import urllib.error
import urllib.request

START_SECONDS = 180
STOP_SECONDS = 60


def webserver_says_it_serves(process: subprocess.Popen, port: int) -> threading.Event:
    """Set when the webserver says it serves on `port`; its output is read to the end so that
    no pipe fills."""
    ready = threading.Event()

    def read() -> None:
        for line in process.stdout:
            if f"Serving dagster-webserver on http://127.0.0.1:{port}" in line:
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    return ready


def wait_until_it_answers(port: int) -> None:
    """The webserver logs that it serves just before it binds: wait until it answers."""
    deadline = time.monotonic() + START_SECONDS
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=30).close()
            return
        except urllib.error.URLError as error:  # refused: not bound yet
            if not isinstance(error.reason, ConnectionRefusedError):
                raise
            assert time.monotonic() < deadline, "the UI said it serves, but does not answer"
            time.sleep(0.1)
