"""A diffusers-engine training stopped at any point goes on from its saved state and ends with
the LoRA an uninterrupted run of the same recipe ends with."""

from dataclasses import replace

import pytest

from wan_lora_dagster.engines.base import Resumed
from wan_lora_dagster.engines.diffusers.lora_training import STATE_FOLDER
from wan_lora_dagster.errors import EngineError
from wan_lora_dagster.formats.cache_files import read_lora_header, update_lora_header
from wan_lora_dagster.testing.resume import Killed, assert_same_lora, cancel_after, interrupted


def kill_at_checkpoint(step: int):
    def on_checkpoint(checkpoint):
        if checkpoint.step == step:
            raise Killed()

    return on_checkpoint


def lora_files(folder):
    return sorted(path.name for path in folder.glob("*.safetensors"))


def test_a_cancelled_run_resumes_to_the_uninterrupted_lora(engine, training_run, tmp_path):
    request = replace(training_run.request, output_dir=tmp_path)
    curve = []

    def progress_until_37(report):
        curve.append((report.done, report.loss))
        cancel_after(37)(report)

    first = interrupted(engine, request, progress=progress_until_37)  # mid-epoch 7 of 10
    assert [c.path.name for c in first] == ["stripes-000005.safetensors"]
    assert [p.name for p in (tmp_path / STATE_FOLDER).iterdir()] == ["stripes-step00000037"]
    kept_bytes = first[0].path.read_bytes()
    progress, announced = [], []

    returned = engine.train(request, progress.append, announced.append)

    state = tmp_path / STATE_FOLDER / "stripes-step00000037"
    assert progress[0].resumed == Resumed(37, 7, state, tuple(curve)), "says it resumed"
    assert str(progress[0].resumed) == f"resumed after step 37 (epoch 7) from {state}"
    assert [report.done for report in progress[1:]] == list(range(38, 61)), "went on from 37"
    assert returned == announced  # the kept checkpoint is announced again, then the new one
    assert [c.path.name for c in returned] == [c.path.name for c in training_run.returned]
    assert lora_files(tmp_path) == lora_files(training_run.request.output_dir)
    assert first[0].path.read_bytes() == kept_bytes, "a checkpoint was rewritten"
    assert_same_lora(returned[-1].path, training_run.returned[-1].path)
    assert returned[-1].loss == pytest.approx(training_run.returned[-1].loss, abs=1e-6)
    finished = [p.name for p in (tmp_path / STATE_FOLDER).iterdir()]
    assert finished == ["stripes.finished.json"], "a finished run keeps its loss curve, no state"


def test_a_run_killed_between_its_state_and_its_checkpoint_saves_that_checkpoint_on_resume(
    engine, training_run, tmp_path
):
    request = replace(training_run.request, output_dir=tmp_path)
    interrupted(engine, request, on_checkpoint=kill_at_checkpoint(30))
    (tmp_path / "stripes-000005.safetensors").unlink()  # the kill came before the LoRA's write

    returned = engine.train(request, lambda report: None, lambda checkpoint: None)

    assert [c.path.name for c in returned] == [c.path.name for c in training_run.returned]
    for resumed, uninterrupted in zip(returned, training_run.returned, strict=True):
        assert_same_lora(resumed.path, uninterrupted.path)


def test_another_runs_checkpoint_is_never_taken_for_this_ones(engine, training_run, tmp_path):
    request = replace(training_run.request, output_dir=tmp_path)
    first = interrupted(engine, request, progress=cancel_after(33))
    update_lora_header(first[0].path, {"training_set": "another training set"})
    before = first[0].path.read_bytes()

    with pytest.raises(EngineError, match=r"stripes-000005\.safetensors.*header differs"):
        engine.train(request, lambda report: None, lambda checkpoint: None)

    assert first[0].path.read_bytes() == before
    assert read_lora_header(first[0].path)["training_set"] == "another training set"


def test_a_finished_run_started_again_announces_its_checkpoints_with_its_whole_loss_curve(
    engine, training_run, tmp_path
):
    """A launch stopped after the training finished but before its checkpoints were recorded
    (Ctrl-C in the last steps): the next launch draws their loss curves from the whole run."""
    request = replace(training_run.request, output_dir=tmp_path)
    first_progress = []
    first = engine.train(request, first_progress.append, lambda checkpoint: None)
    progress, announced = [], []

    again = engine.train(request, progress.append, announced.append)

    curve = tuple((report.done, report.loss) for report in first_progress)
    (report,) = progress
    assert report.resumed.loss_curve == curve and report.resumed.step == curve[-1][0]
    assert [c.path for c in again] == [c.path for c in announced] == [c.path for c in first]
