"""Every command of the README, except `make test` itself, run in order on a fresh clone."""

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from wan_lora_dagster.testing.commands import CHATTER
from wan_lora_dagster.testing.processes import default_signals, stop_group

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


def readme_commands() -> list[str]:
    """Each line of the README's ```sh blocks, without its comment."""
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", text, flags=re.DOTALL)
    lines = [line.split("#")[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line and line != "make test"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def check_ui(command: str, cwd: Path, env: dict, log: Path) -> None:
    """`wan-lora ui` runs until stopped: start it, see it serve, stop its whole process group.

    Its output goes to a file: the daemon logs every tick, and an unread pipe fills up and
    blocks it, so that it can no longer shut down."""
    port = free_port()
    with open(log, "w") as output:
        server = subprocess.Popen(
            f"{command} --port {port}",
            shell=True,
            cwd=cwd,
            env=env,
            start_new_session=True,
            preexec_fn=default_signals,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5):
                    return
            except OSError:
                assert server.poll() is None, log.read_text()
                time.sleep(2)
        pytest.fail(f"{command} did not serve on port {port} within 180 s:\n{log.read_text()}")
    finally:
        assert stop_group(server), f"{command} still ran 60 s after a SIGTERM"


def test_the_readme_commands_run_in_order(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    commands = readme_commands()
    assert commands[0] == "make demo" and any(c.startswith("wan-lora ui") for c in commands)
    for command in commands:
        if command.startswith("wan-lora ui"):
            check_ui(command, clone, env, tmp_path / "ui.log")
            continue
        if command == "make demo":  # the environment exists already: skip its set-up
            command = f"make demo VENV={VENV_BIN.parent} INSTALLED="
        result = subprocess.run(
            command, shell=True, cwd=clone, env=env, capture_output=True, text=True, timeout=900
        )
        assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
        if command.startswith("make demo"):  # diffusers' pipeline loading too: a whole graph
            for chatter in CHATTER:
                assert chatter not in result.stdout + result.stderr, chatter
    assert (clone / "demo" / "out" / "best" / "adapter_model.safetensors").is_file()
    assert (clone / "my_style" / "wan_lora.toml").is_file()
