"""A Ctrl-C between a checkpoint's landing and its record (the musubi engine had moved the file
into out/checkpoints; the graph had not written its record): the next `wan-lora run` records it
and goes on, and no checkpoint is trained twice or rewritten. Found in CI: the resumed run
re-trained past it and recorded nothing after it."""

import os
import signal

import pytest

from wan_lora_dagster.fault_injection import VARIABLE
from wan_lora_dagster.testing.graph_scenario import (
    CliRun,
    check_resumed,
    checkpoint_digests,
    checkpoint_events,
    fake_musubi_demo_project,
)

pytestmark = pytest.mark.slow

EPOCHS = 3
STOPPED_WITHIN_SECONDS = 600  # a bound for a hang, not a timing: the wait ends on the stop


def test_a_checkpoint_landed_but_not_recorded_is_recorded_by_the_next_run(captioned_demo, tmp_path):
    project = fake_musubi_demo_project(tmp_path, EPOCHS, made=captioned_demo)
    run = CliRun.start(
        project,
        {
            VARIABLE: "lora_checkpoints:made",  # stops itself: first file landed, no record
            "FAKE_MUSUBI_STEP_SECONDS": "0.2",
            "FAKE_MUSUBI_HOLD_AFTER_EPOCH": "1",
        },
    )
    _, status = os.waitpid(run.process.pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status), run.text
    assert not (project / "out" / "records" / "lora_checkpoints").is_dir() or not any(
        (project / "out" / "records" / "lora_checkpoints").glob("*.json")
    )
    os.killpg(run.process.pid, signal.SIGINT)  # Ctrl-C, delivered as it goes on
    os.killpg(run.process.pid, signal.SIGCONT)
    assert run.finish(timeout=STOPPED_WITHIN_SECONDS) == 130, run.text
    landed = checkpoint_digests(project)
    assert landed, "the first checkpoint was landed before the stop"
    assert checkpoint_events(project) == {}, "and not recorded"

    resumed = CliRun.start(project)
    assert resumed.finish(timeout=STOPPED_WITHIN_SECONDS) == 0, resumed.text
    check_resumed(project, landed, checkpoint_events(project), EPOCHS)
