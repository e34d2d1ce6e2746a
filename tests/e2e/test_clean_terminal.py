"""What a user's terminal shows during `wan-lora run`: our progress bars and our summary, with
the warnings that matter once each at its end, and none of the libraries' own chatter."""

import os
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from wan_lora_dagster.media.synthetic import make_synthetic_film
from wan_lora_dagster.project_builder import recipe_text
from wan_lora_dagster.scaffold import init_project
from wan_lora_dagster.testing.commands import CHATTER, WAN_LORA, wan_lora_in_shell
from wan_lora_dagster.testing.processes import default_signals

RECIPE = recipe_text(
    datasets=[{"source": "clips", "resolution": [64, 48], "target_frames": [9]}],
    captions={"captioner": "blip2", "model": "tiny"},
)


@pytest.fixture
def small_project(tmp_path) -> Path:
    """One film of two shots (a cut at 2 s) with three ranges, and one film without ranges."""
    project = init_project(tmp_path / "small")
    (project / "wan_lora.toml").write_text(RECIPE)
    films = project / "films"
    make_synthetic_film(films / "shots.mp4", duration=4, size=(64, 48), num_scenes=2)
    make_synthetic_film(films / "lonely.mp4", duration=1, size=(64, 48), num_scenes=1)
    (project / "ranges" / "shots.txt").write_text("0.25 1.25\n1.5 2.5 across\n1 1.5 again\n")
    return project


def test_a_run_shows_our_bars_and_each_warning_once_at_the_end(small_project):
    run = wan_lora_in_shell(small_project, "run", "--select", "+captions")

    assert run.returncode == 0, run.stdout + run.stderr
    for chatter in CHATTER:
        assert chatter not in run.stderr + run.stdout, chatter
    assert "clips: 100%" in run.stderr and "captions: 100%" in run.stderr
    ranges = small_project / "ranges" / "shots.txt"
    lonely = small_project / "films" / "lonely.mp4"
    warnings = run.stdout[run.stdout.index("\n\n3 warnings:\n") :].strip().splitlines()
    assert warnings[0] == "3 warnings:"
    assert (
        warnings[1]
        == f"  {lonely} has no ranges file: create {lonely.parents[1] / 'ranges'}/lonely.txt"
    )
    assert warnings[2].startswith(f"  {ranges}:1 ") and f"overlaps {ranges}:3" in warnings[2]
    assert warnings[3] == (
        f"  {ranges}:2: clip across crosses a scene cut at 00:02.000 of the film; training on "
        "it teaches the cut: end the range before it or start after it"
    )
    assert len(warnings) == 4, "each warning once, and last"


def test_ctrl_c_during_a_run_prints_no_traceback(tmp_path):
    """Ctrl-C sends SIGINT to the terminal's whole foreground process group: wan-lora and every
    process of it there (Dagster's helpers that copy a step's output were, and each printed a
    KeyboardInterrupt traceback)."""
    project = init_project(tmp_path / "many")
    make_synthetic_film(project / "films" / "long.mp4", duration=20, size=(64, 48), num_scenes=1)
    (project / "ranges" / "long.txt").write_text("".join(f"{i} +0.5\n" for i in range(19)))
    run = subprocess.Popen(
        [str(WAN_LORA), "run", "--project", str(project), "--select", "clips"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # a group of its own, as a shell gives a command it starts
        preexec_fn=default_signals,
    )
    output, cutting = bytearray(), threading.Event()

    def read() -> None:
        while chunk := os.read(run.stdout.fileno(), 4096):
            output.extend(chunk)
            if b"clips: " in output:
                cutting.set()
        cutting.set()  # ended before: the assertions below say so

    reader = threading.Thread(target=read)
    reader.start()
    assert cutting.wait(600), "no progress of clips"
    os.killpg(run.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
    run.wait(timeout=600)
    reader.join(timeout=600)
    text = output.decode(errors="replace")

    assert run.returncode == 130, text
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text
    assert "`wan-lora run --project" in text, "says how to go on"
