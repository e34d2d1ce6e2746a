"""The diffusers engine inside the graph: `wan-lora run` stopped with Ctrl-C once its first
checkpoint is recorded exits with 130, and the next `wan-lora run` resumes the training from its
saved state to the end, keeping the checkpoint already recorded (issue 10: it used to abort, then
refuse to run again because that checkpoint existed)."""

import signal

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from wan_lora_dagster.engines.diffusers.training_log import LOSS_TAG
from wan_lora_dagster.testing.graph_scenario import (
    CliRun,
    check_resumed,
    checkpoint_digests,
    checkpoint_events,
    interrupt,
    musubi_demo_project,
    project_instance,
    wait_for_checkpoint_event,
)

pytestmark = pytest.mark.slow

EPOCHS = 3
REPEATS = 6  # 96 steps an epoch of the tiny model: the Ctrl-C lands in the second


@pytest.fixture(scope="module")
def project(cached_demo, tmp_path_factory):
    """A copy of the demo made up to its training set (its caches stay), trained afresh."""
    training = {
        "model": "tiny",
        "network_dim": 4,
        "network_alpha": 4,
        "learning_rate": 1e-3,
        "max_train_epochs": EPOCHS,
        "save_every_n_epochs": 1,
    }
    root = tmp_path_factory.mktemp("diffusers-graph")
    return musubi_demo_project(root / "demo", training, REPEATS, made=cached_demo)


@pytest.fixture(scope="module")
def cancelled(project):
    instance = project_instance(project)  # the copy's: open before, so a poll is one query
    run = CliRun.start(project)
    wait_for_checkpoint_event(project, run, timeout=600, instance=instance)
    code, _ = interrupt(run, signal.SIGINT)
    return {
        "code": code,
        "output": run.text,
        "events": checkpoint_events(project),
        "files": checkpoint_digests(project),
        "states": sorted(path.name for path in (project / "out/checkpoints/state").iterdir()),
    }


@pytest.fixture(scope="module")
def resumed(project, cancelled):
    run = CliRun.start(project)
    code = run.finish(timeout=600)
    return {"code": code, "output": run.text, "events": checkpoint_events(project)}


def test_ctrl_c_exits_130_and_leaves_a_state_to_resume_from(cancelled):
    assert cancelled["code"] == 130, cancelled["output"]
    assert "terminate called" not in cancelled["output"]
    assert "Traceback" not in cancelled["output"]
    assert "cancelled during lora_checkpoints" in cancelled["output"]
    (key,) = cancelled["events"]
    assert key.endswith("-e0001")
    (state,) = cancelled["states"]
    step = int(state.rsplit("step", 1)[1])
    assert step > cancelled["events"][key]["step"], "the state is the cancel's, past the checkpoint"


def test_the_next_run_resumes_to_the_end_keeping_the_recorded_checkpoint(
    project, cancelled, resumed
):
    assert resumed["code"] == 0, resumed["output"]
    check_resumed(project, cancelled["files"], resumed["events"], EPOCHS)
    (state,) = cancelled["states"]
    step = int(state.rsplit("step", 1)[1])
    (first,) = cancelled["events"].values()
    epoch = -(-step // first["step"])  # the first checkpoint's step is an epoch's steps
    folder = project / "out" / "checkpoints" / "state" / state
    said = f"lora_checkpoints: resumed after step {step} (epoch {epoch}) from {folder}"
    assert said in resumed["output"], resumed["output"]
    left = [path.name for path in (project / "out" / "checkpoints" / "state").iterdir()]
    assert all(name.endswith(".finished.json") for name in left), "no state, the loss curve"


def test_tensorboard_has_every_step_once_and_the_checkpoint_links_it(project, resumed):
    (_, metadata), *_ = sorted(resumed["events"].items())
    folder = project / metadata["tensorboard"]
    events = EventAccumulator(str(folder))
    events.Reload()
    steps = [event.step for event in events.Scalars(LOSS_TAG)]
    total = max(event["step"] for event in resumed["events"].values())
    assert sorted(steps) == list(range(1, total + 1)), "a step logged twice or not at all"
    assert {"lr/unet", "speed/seconds_per_step", "memory/peak_gib"} <= set(events.Tags()["scalars"])
