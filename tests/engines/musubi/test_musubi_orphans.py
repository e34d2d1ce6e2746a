"""`wan-lora run` SIGKILLed while the FAKE musubi-tuner trains: nothing of it can clean up, yet
no trainer (nor its data-loader worker) is left behind, and the next run resumes the training."""

import time

import pytest

from wan_lora_dagster.testing.gpu_watch import live_processes
from wan_lora_dagster.testing.graph_scenario import (
    CliRun,
    check_resumed,
    checkpoint_digests,
    checkpoint_events,
    fake_musubi_demo_project,
    wait_for_checkpoint_event,
)

pytestmark = pytest.mark.slow

EPOCHS = 3
STEP_SECONDS = "0.2"
GONE_WITHIN_SECONDS = 60  # the watch polls every 0.5 s, then gives the trainer its grace


@pytest.fixture(scope="module")
def killed(captioned_demo, tmp_path_factory):
    root = tmp_path_factory.mktemp("musubi-orphans")
    project = fake_musubi_demo_project(root, EPOCHS, made=captioned_demo)
    environment = {
        "FAKE_MUSUBI_STEP_SECONDS": STEP_SECONDS,
        "FAKE_MUSUBI_GRANDCHILD": "1",
        "FAKE_MUSUBI_HOLD_AFTER_EPOCH": "1",  # the kill lands mid-training, never after its end
    }
    run = CliRun.start(project, environment)
    wait_for_checkpoint_event(project, run, timeout=300)
    assert live_processes("fake-musubi-tuner"), "the trainer runs"
    run.process.kill()
    run.process.wait()
    deadline = time.monotonic() + GONE_WITHIN_SECONDS
    while _left(run.process.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    return {"project": project, "left": _left(run.process.pid)}


def _left(command_group: int) -> dict[int, int]:
    """The trainer's processes, and any process of the killed command's own group."""
    trainer = live_processes("fake-musubi-tuner")
    in_group = {pid: g for pid, g in live_processes("").items() if g == command_group}
    return {**trainer, **in_group}


def test_no_process_outlives_a_sigkilled_run(killed):
    assert killed["left"] == {}


def test_the_next_run_resumes_the_training(killed):
    project = killed["project"]
    before = checkpoint_digests(project)
    run = CliRun.start(project)
    assert run.finish(timeout=600) == 0, run.text
    check_resumed(project, before, checkpoint_events(project), EPOCHS)
