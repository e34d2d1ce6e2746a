"""`wan-lora ui`'s studio server: where it listens and what address it prints."""

import json
import socket
import time
import urllib.request

from wan_lora_dagster.project import open_project
from wan_lora_dagster.scaffold import init_project
from wan_lora_dagster.studio.server import start_studio

START_SECONDS = 60


def test_a_taken_port_gives_the_studio_another_and_dagster_is_linked(tmp_path):
    project = open_project(init_project(tmp_path / "project"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        url, server = start_studio(project, "127.0.0.1", port, "http://127.0.0.1:3000")
        try:
            deadline = time.monotonic() + START_SECONDS
            while not server.started:  # uvicorn's flag: set once it accepts connections
                assert time.monotonic() < deadline, "the studio did not start"
                time.sleep(0.05)
            assert url.startswith("http://127.0.0.1:") and f":{port}/" not in url
            info_url = url.replace("/captions", "/api/info")
            with urllib.request.urlopen(info_url, timeout=30) as response:
                assert json.load(response)["dagster_url"] == "http://127.0.0.1:3000"
        finally:
            server.should_exit = True
