"""The musubi engine inside the graph, with the FAKE musubi-tuner clone (no model, no GPU):
`wan-lora train --dry-run`, and `wan-lora run` cancelled after its first checkpoint, then resumed.
test_musubi_graph_gpu.py runs the same scenario against the real musubi-tuner on a GPU."""

import shlex
import signal

import pytest

from wan_lora_dagster.cli import main
from wan_lora_dagster.scaffold import create_demo_project
from wan_lora_dagster.testing.gpu_watch import live_processes
from wan_lora_dagster.testing.graph_scenario import (
    CliRun,
    check_resumed,
    checkpoint_digests,
    checkpoint_events,
    fake_musubi_demo_project,
    interrupt,
    wait_for_checkpoint_event,
)

pytestmark = pytest.mark.slow

EPOCHS = 3
STEP_SECONDS = "0.2"  # the fake trainer's pace
# the trainer waits after its first checkpoint: the Ctrl-C lands mid-training, never after its end
HOLD = {"FAKE_MUSUBI_HOLD_AFTER_EPOCH": "1"}


@pytest.fixture(scope="module")
def musubi_project(captioned_demo, tmp_path_factory):
    root = tmp_path_factory.mktemp("musubi-graph")
    return fake_musubi_demo_project(root, EPOCHS, made=captioned_demo)


def test_dry_run_prints_every_command_and_runs_none(musubi_project, capsys):
    assert main(["run", "--project", str(musubi_project), "--select", "+captions"]) == 0
    capsys.readouterr()
    assert main(["train", "--project", str(musubi_project), "--dry-run"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    commands = [shlex.split(line) for line in lines]
    scripts = [next(a for a in c if a.endswith(".py")).rsplit("/", 1)[-1] for c in commands]
    assert scripts == [
        "wan_cache_latents.py",
        "wan_cache_text_encoder_outputs.py",
        "wan_train_network.py",
    ]
    assert all("--keep_cache" in c for c in commands[:2])
    assert "--output_name" in commands[2]
    assert commands[2][commands[2].index("--output_name") + 1].startswith("lora-")
    assert list((musubi_project / "out" / "musubi").rglob("*.toml")), "the dataset TOML is written"
    assert not list((musubi_project / "out").glob("cache/*/*.safetensors")), "nothing ran"
    assert not (musubi_project / "out" / "checkpoints").exists()


@pytest.fixture(scope="module")
def cancelled(musubi_project):
    """`wan-lora run` stopped with Ctrl-C once its first checkpoint was recorded."""
    run = CliRun.start(musubi_project, {"FAKE_MUSUBI_STEP_SECONDS": STEP_SECONDS, **HOLD})
    wait_for_checkpoint_event(musubi_project, run, timeout=300)
    code, seconds = interrupt(run, signal.SIGINT)
    return {
        "code": code,
        "seconds": seconds,
        "output": run.text,
        "left": live_processes("fake-musubi-tuner"),
        "events": checkpoint_events(musubi_project),
        "files": checkpoint_digests(musubi_project),
    }


@pytest.fixture(scope="module")
def resumed(musubi_project, cancelled):
    run = CliRun.start(musubi_project)
    code = run.finish(timeout=300)
    return {"code": code, "output": run.text, "events": checkpoint_events(musubi_project)}


def test_ctrl_c_stops_the_run_and_its_trainer(cancelled):
    # No time limit here: on a loaded CI machine the stop took 10.6 s; `interrupt` bounds the wait
    # at a minute so a hang fails, and the GPU test measures the seconds on an idle machine.
    assert cancelled["code"] == 130, cancelled["output"]
    assert cancelled["left"] == {}, "a musubi process outlived the cancel"
    assert "cancelled during lora_checkpoints" in cancelled["output"]
    assert "Traceback" not in cancelled["output"]
    assert "eval_videos" not in cancelled["output"], "the run went on after the cancel"


def test_the_checkpoint_saved_before_the_cancel_is_in_dagster_with_its_lineage(cancelled):
    (key, metadata), *others = cancelled["events"].items()
    assert not others
    assert key.endswith("-e0001")
    assert metadata["epoch"] == 1
    assert "demostyle" in metadata["captions"].records[0].data["text"]
    assert metadata["training_set"]


def test_the_next_run_resumes_without_rewriting_a_checkpoint(musubi_project, cancelled, resumed):
    assert resumed["code"] == 0, resumed["output"]
    check_resumed(musubi_project, cancelled["files"], resumed["events"], EPOCHS)


def test_every_checkpoint_gets_its_eval_video_and_the_best_is_exported(musubi_project, resumed):
    videos = sorted((musubi_project / "out" / "eval").glob("*/*.mp4"))
    assert len(videos) == EPOCHS, "one prompt x one strength x one seed per checkpoint"
    assert (musubi_project / "out" / "best" / "adapter_model.safetensors").is_file()
    assert main(["status", "--project", str(musubi_project)]) == 0


def test_dry_run_with_the_diffusers_engine_says_why_not(tmp_path, capsys):
    project = create_demo_project(tmp_path / "demo")
    assert main(["train", "--project", str(project), "--dry-run"]) == 2
    assert "engine is 'diffusers'" in capsys.readouterr().err
