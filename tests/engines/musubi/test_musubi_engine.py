"""The musubi engine end to end against the FAKE musubi (fake_musubi_scripts.py): caches,
training with checkpoints landing under run-wide names, resume, sampling, dry runs."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import av
import pytest

from wan_lora_dagster.engines.base import LatentJob, Resumed, SampleRequest
from wan_lora_dagster.engines.eval_plan import sample_video_name
from wan_lora_dagster.engines.musubi import EngineCancelled, format_commands
from wan_lora_dagster.engines.musubi.resume import Journal
from wan_lora_dagster.engines.musubi.training_run import run_identity
from wan_lora_dagster.engines.training_plan import plan_run
from wan_lora_dagster.errors import EngineError
from wan_lora_dagster.formats.cache_files import (
    latent_cache_name,
    read_lora_header,
    read_safetensors_metadata,
)
from wan_lora_dagster.recipe.evaluation import EvalSettings
from wan_lora_dagster.testing.musubi_fixtures import (
    CAPTIONS,
    HEADER,
    STEPS_PER_EPOCH,
    latent_name,
    train_request,
    write_safetensors,
)


def ignore(report) -> None:
    """A progress callback for tests that check files, not reports."""


@pytest.fixture
def argv_log(tmp_path, monkeypatch) -> Path:
    log = tmp_path / "argv.jsonl"
    monkeypatch.setenv("FAKE_MUSUBI_ARGV_LOG", str(log))
    return log


def launches(log: Path, script: str) -> list[list[str]]:
    if not log.exists():
        return []
    runs = [json.loads(line) for line in log.read_text().splitlines()]
    return [run[1:] for run in runs if run[0] == script]


def value_of(command: list[str], option: str) -> str:
    return command[command.index(option) + 1]


def test_latents_replace_the_items_stale_files_and_nothing_else(make_engine, project):
    motion = project.latent_jobs[0]
    stale = write_safetensors(
        motion.cache_dir / latent_cache_name("fight_0001", 384, 208, 0, 33), {"x": "BF16"}
    )
    others = [
        write_safetensors(
            motion.cache_dir / latent_cache_name(item, 384, 208, 0, 45), {"x": "BF16"}
        )
        for item in ("fight_0099", "fight_0001_extra")  # not in the jobs; one shares a prefix
    ]
    reports = []
    written = make_engine().encode_latents(project.latent_jobs, reports.append)

    assert not stale.exists(), "musubi would have trained on the stale window"
    assert all(path.exists() for path in others), "--keep_cache keeps other items' caches"
    for job in project.latent_jobs:
        assert job.cache_dir / latent_name(job) in written[job.item_id]
    motion, long = (job for job in project.latent_jobs if job.item_id == "fight_0001")
    assert written["fight_0001"] == [
        motion.cache_dir / latent_name(motion),
        long.cache_dir / latent_name(long),
    ]
    assert (reports[-1].done, reports[-1].total) == (len(project.latent_jobs),) * 2


def test_texts_are_encoded_from_the_exact_captions(make_engine, project):
    text_dir = project.cache_root / "text"
    stale = write_safetensors(
        text_dir / "fight_0001_wan_te.safetensors", {"x": "BF16"}, {"caption1": "old"}
    )
    other = write_safetensors(
        text_dir / "fight_0099_wan_te.safetensors", {"x": "BF16"}, {"caption1": "kept"}
    )
    written = make_engine().encode_texts(project.text_jobs, ignore)

    assert set(written) == set(CAPTIONS)
    for item_id, path in written.items():
        assert read_safetensors_metadata(path)["caption1"] == CAPTIONS[item_id]
    assert written["fight_0001"] == stale
    assert read_safetensors_metadata(other)["caption1"] == "kept"


def test_a_failing_script_reports_its_last_lines_and_command(make_engine, project, monkeypatch):
    monkeypatch.setenv("FAKE_MUSUBI_CRASH", "1")
    with pytest.raises(EngineError) as raised:
        make_engine().encode_latents(project.latent_jobs, ignore)
    message = str(raised.value)
    assert "wan_cache_latents failed with exit status 1" in message
    assert "RuntimeError: CUDA out of memory (fake)" in message
    assert message.endswith("--keep_cache"), "the command closes the message, to run it again"


def test_missing_media_is_named_before_launch(make_engine, project, tmp_path, argv_log):
    job = project.latent_jobs[0]
    gone = LatentJob(job.item_id, tmp_path / "gone.mp4", job.section, job.cache_dir)
    with pytest.raises(EngineError, match=r"gone\.mp4: media to encode not found"):
        make_engine().encode_latents([gone], ignore)
    assert not argv_log.exists()


def test_a_hub_failure_says_what_to_provide(make_engine, project, monkeypatch):
    monkeypatch.setenv("FAKE_MUSUBI_HUB_ERROR", "1")
    with pytest.raises(EngineError) as raised:
        make_engine().encode_texts(project.text_jobs, ignore)
    message = str(raised.value)
    assert "[training] tokenizer" in message
    assert "huggingface-cli download Wan-AI/Wan2.1-T2V-14B --include 'google/umt5-xxl/*'" in message


def test_training_lands_each_checkpoint_under_its_run_name(
    make_engine, manifest, tmp_path, argv_log, output_lines
):
    engine = make_engine()
    request = train_request(manifest, engine.settings, tmp_path / "checkpoints")
    announced, reports = [], []
    returned = engine.train(request, reports.append, announced.append)

    assert returned == announced
    assert [(c.path.name, c.epoch, c.step) for c in announced] == [
        (f"lora-abc123-{epoch:06d}.safetensors", epoch, epoch * STEPS_PER_EPOCH)
        for epoch in (1, 2, 3, 4)
    ]
    for checkpoint in announced:
        header = read_lora_header(checkpoint.path)
        assert {key: header[key] for key in HEADER} == HEADER
        assert (header["ss_epoch"], header["ss_steps"]) == (
            str(checkpoint.epoch),
            str(checkpoint.step),
        )
    assert (reports[-1].done, reports[-1].total, reports[-1].epoch) == (28, 28, 4)
    assert announced[-1].loss == pytest.approx(1 / 29, rel=0.01)
    (launch,) = launches(argv_log, "wan_train_network")
    assert value_of(launch, "--max_train_epochs") == "4" and "--resume" not in launch
    run_dir = engine.work_dir / "train" / request.output_name
    assert not list(run_dir.glob("segment-*")), "a finished run keeps no optimizer states"
    assert "epoch 4/4" in output_lines and output_lines[-1].startswith("saving checkpoint")


def test_a_cancelled_run_resumes_where_its_state_was_saved(
    make_engine, manifest, tmp_path, argv_log, monkeypatch
):
    monkeypatch.setenv("FAKE_MUSUBI_STEP_SECONDS", "0.05")
    engine = make_engine()
    request = train_request(manifest, engine.settings, tmp_path / "checkpoints")
    first = []

    def cancel_on_first(checkpoint) -> None:
        first.append(checkpoint)
        engine.cancel()

    with pytest.raises(EngineCancelled):
        engine.train(request, ignore, cancel_on_first)
    second, reports = [], []
    make_engine().train(request, reports.append, second.append)

    # The resumed launch announces every checkpoint of the run, once: those the first launch
    # landed again (its caller may have been stopped before recording them; the asset skips
    # what it recorded), the rest as they land.
    landed = second
    assert sorted((c.epoch, c.step) for c in landed) == [
        (e, e * STEPS_PER_EPOCH) for e in (1, 2, 3, 4)
    ]
    assert sorted(c.path.name for c in landed) == [
        f"lora-abc123-{e:06d}.safetensors" for e in (1, 2, 3, 4)
    ]
    assert {c.path for c in first} <= {c.path for c in second}
    _, resumed = launches(argv_log, "wan_train_network")
    state = Path(value_of(resumed, "--resume")).name
    assert state.startswith("lora-abc123-") and state.endswith("-state")
    resumed_from = int(state.split("-")[-2])
    # A state the trainer finished while the cancel was on its way counts too: never less.
    assert resumed_from >= max(c.epoch for c in first)
    assert value_of(resumed, "--max_train_epochs") == str(4 - resumed_from)
    assert read_lora_header(landed[-1].path)["ss_steps"] == "28"
    step = resumed_from * STEPS_PER_EPOCH
    assert reports[0].resumed == Resumed(step, resumed_from, Path(value_of(resumed, "--resume")))
    assert all(report.resumed is None for report in reports[1:]), "said once"


def test_step_saves_are_numbered_by_run_step(make_engine, manifest, tmp_path):
    engine = make_engine(max_train_steps=20, save_every_n_steps=5, save_every_n_epochs=None)
    request = train_request(manifest, engine.settings, tmp_path / "checkpoints")
    announced = engine.train(request, ignore, lambda checkpoint: None)
    assert [(c.path.name, c.epoch, c.step) for c in announced] == [
        ("lora-abc123-step00000005.safetensors", 1, 5),
        ("lora-abc123-step00000010.safetensors", 2, 10),
        ("lora-abc123-step00000015.safetensors", 3, 15),
        # musubi saves step 20 twice (a step save, then its final save): the plan's one file
        ("lora-abc123-000003.safetensors", 3, 20),
    ]
    assert sorted(path.name for path in request.output_dir.iterdir()) == sorted(
        c.path.name for c in announced
    )


@pytest.mark.parametrize(
    ("epochs", "every_steps"),
    [(3, 5), (4, 2 * STEPS_PER_EPOCH)],  # apart; or meeting the epoch saves and the last step
)
def test_with_both_save_settings_each_planned_checkpoint_lands_once(
    make_engine, manifest, tmp_path, epochs, every_steps
):
    engine = make_engine(
        max_train_epochs=epochs, save_every_n_epochs=1, save_every_n_steps=every_steps
    )
    request = train_request(manifest, engine.settings, tmp_path / "checkpoints")
    announced = engine.train(request, ignore, lambda checkpoint: None)
    plan = plan_run(engine.settings, STEPS_PER_EPOCH, request.output_name)
    assert [(c.path.name, c.epoch, c.step) for c in announced] == [
        (point.file_name, point.epoch, point.step) for point in plan.save_points
    ]
    assert sorted(path.name for path in request.output_dir.iterdir()) == sorted(
        point.file_name for point in plan.save_points
    )


def test_a_fresh_run_never_overwrites_a_checkpoint(make_engine, manifest, tmp_path):
    engine = make_engine()
    request = train_request(manifest, engine.settings, tmp_path / "checkpoints")
    existing = write_safetensors(
        request.output_dir / "lora-abc123-000001.safetensors", {"x": "F32"}
    )
    with pytest.raises(EngineError, match="never overwritten"):
        engine.train(request, ignore, lambda checkpoint: None)
    assert read_lora_header(existing) == {}


def test_samples_take_the_diffusers_engines_names(make_engine, tmp_path, argv_log):
    lora = write_safetensors(tmp_path / "lora-abc123-000004.safetensors", {"x": "F32"})
    evaluation = EvalSettings(prompts=("a kick", "a punch"), strengths=(0.0, 1.0), seeds=(1, 2))
    videos = make_engine().sample(SampleRequest(lora, evaluation, tmp_path / "eval"), ignore)

    expected = [
        (strength, index, prompt, seed)
        for strength in (0.0, 1.0)
        for index, prompt in enumerate(evaluation.prompts)
        for seed in (1, 2)
    ]
    assert [(v.strength, v.prompt, v.seed) for v in videos] == [
        (s, p, d) for s, _, p, d in expected
    ]
    for video, (strength, index, prompt, _) in zip(videos, expected, strict=True):
        assert video.path == tmp_path / "eval" / sample_video_name(index, strength, video.seed)
        with av.open(str(video.path)) as container:
            content = container.metadata["comment"]
        assert content.startswith(prompt)
        assert ("lora: none" in content) == (strength == 0)
    assert len(launches(argv_log, "wan_generate_video")) == 2, "one generation run per strength"


@pytest.mark.parametrize("prompt", ["a kick --d 7", "two\nlines", "# a comment"])
def test_prompts_musubis_prompt_file_cannot_hold_are_refused(make_engine, tmp_path, prompt):
    lora = write_safetensors(tmp_path / "lora.safetensors", {"x": "F32"})
    request = SampleRequest(lora, EvalSettings(prompts=(prompt,)), tmp_path / "eval")
    with pytest.raises(EngineError, match="prompt file"):
        make_engine().sample(request, ignore)


def test_image_to_video_eval_without_start_images_is_refused(make_engine, weights, tmp_path):
    lora = write_safetensors(tmp_path / "lora.safetensors", {"x": "F32"})
    engine = make_engine(task="i2v-14B", clip=weights["clip"])
    with pytest.raises(EngineError, match="start from images"):
        engine.sample(SampleRequest(lora, EvalSettings(), tmp_path / "eval"), ignore)


def test_the_dry_run_pastes_into_a_shell(make_engine, project, manifest, tmp_path, argv_log):
    engine = make_engine(max_train_epochs=2)
    request = train_request(manifest, engine.settings, tmp_path / "checkpoints")
    commands = engine.plan(request, project.latent_jobs, project.text_jobs)
    text = format_commands(commands)

    assert [shlex.split(line) for line in text.splitlines()] == commands
    assert not argv_log.exists(), "a dry run runs nothing"
    subprocess.run(["bash", "-e", "-c", text], check=True, capture_output=True)
    scripts = ("wan_cache_latents", "wan_cache_text_encoder_outputs", "wan_train_network")
    assert [len(launches(argv_log, name)) for name in scripts] == [1, 1, 1]
    segment = engine.work_dir / "train" / request.output_name / "segment-00"
    assert sorted(path.name for path in segment.glob("*.safetensors")) == [
        "lora-abc123-000001.safetensors",
        "lora-abc123.safetensors",
    ]


def test_the_validation_loss_of_a_dit_that_is_no_wan_model_names_the_file(make_engine, manifest):
    """The loss is ours (test_musubi_validation.py); this fake DiT file holds one tensor."""
    with pytest.raises(EngineError, match=r"dit_BF16\.safetensors: not a Wan 2\.1 DiT"):
        make_engine().validation_loss(None, manifest, make_engine().settings)


def test_a_checkpoint_saved_but_not_landed_before_a_kill_lands_on_resume(
    make_engine, manifest, tmp_path, argv_log
):
    """Killed after musubi saved epoch 1 and its state, and half of epoch 2's state."""
    engine = make_engine()
    request = train_request(manifest, engine.settings, tmp_path / "checkpoints")
    run_dir = engine.work_dir / "train" / request.output_name
    Journal(run_dir / "journal.json", run_identity(request), STEPS_PER_EPOCH, [0]).save()
    segment = run_dir / "segment-00"
    for epoch in (1, 2):
        metadata = {"ss_steps": str(epoch * STEPS_PER_EPOCH), "ss_epoch": str(epoch)}
        write_safetensors(segment / f"lora-abc123-{epoch:06d}.safetensors", {"x": "F32"}, metadata)
        state = segment / f"lora-abc123-{epoch:06d}-state"
        state.mkdir()
        (state / "optimizer.bin").write_bytes(b"")
    (segment / "lora-abc123-000001-state" / "random_states_0.pkl").write_bytes(b"")

    announced = []
    engine.train(request, ignore, announced.append)
    assert [(c.path.name, c.step) for c in announced] == [
        (f"lora-abc123-{epoch:06d}.safetensors", epoch * STEPS_PER_EPOCH) for epoch in (1, 2, 3, 4)
    ]
    (launch,) = launches(argv_log, "wan_train_network")
    assert value_of(launch, "--resume") == str(segment / "lora-abc123-000001-state")
    assert value_of(launch, "--max_train_epochs") == "3"
