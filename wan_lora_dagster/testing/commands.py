"""The `wan-lora` command as the tests run it: in the test's own process (`wan_lora`, its exit
status and what it printed, read through pytest's capsys), or as a user's shell starts it
(`wan_lora_in_shell`, a process of its own); and the ffmpeg the tests make odd films with."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from wan_lora_dagster.cli import main
from wan_lora_dagster.testing.processes import default_signals

WAN_LORA = Path(sys.executable).with_name("wan-lora")  # the installed command
# What transformers and diffusers print on their own: bars while loading and saving weights,
# and a notice that torchvision is missing. No command of ours lets it through.
CHATTER = ("Loading weights", "Writing model shards", "torchvision", "Loading pipeline components")


def wan_lora(capsys, *args) -> tuple[int, str]:
    """Run the `wan-lora` command in this process; returns (exit status, stdout)."""
    capsys.readouterr()
    status = main([str(arg) for arg in args])
    return status, capsys.readouterr().out


def run_json(capsys, project: Path, *extra) -> tuple[int, dict]:
    """`wan-lora run --json` in this process: (exit status, its summary per asset)."""
    status, out = wan_lora(capsys, "run", "--project", project, "--json", *extra)
    return status, json.loads(out)


def made(summary: dict) -> dict[str, list[str]]:
    """Asset -> partitions materialized, for the assets of a run summary that made any."""
    return {
        asset: stage["materialized"] for asset, stage in summary.items() if stage["materialized"]
    }


def wan_lora_in_shell(cwd: Path, *arguments) -> subprocess.CompletedProcess:
    """The real command, as a shell starts it: its exit status and all it printed."""
    return subprocess.run(
        [str(WAN_LORA), *map(str, arguments)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=default_signals,
    )


def ffmpeg(*arguments) -> None:
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *map(str, arguments)], check=True)
