"""The arithmetic that continues a killed musubi run as one run (pure functions)."""

from __future__ import annotations

from pathlib import Path

import pytest

from wan_lora_dagster.engines.musubi.resume import (
    Journal,
    Saved,
    SegmentOptions,
    choose_resume_step,
    parse_checkpoint_name,
    parse_state_name,
    plan_segment,
    run_step,
    state_name,
)
from wan_lora_dagster.engines.training_plan import plan_run
from wan_lora_dagster.recipe.training import TrainingSettings

STEPS_PER_EPOCH = 12


def settings(**overrides) -> TrainingSettings:
    return TrainingSettings(**{"max_train_epochs": 16, "save_every_n_epochs": 2, **overrides})


def test_a_fresh_run_is_the_whole_run():
    assert plan_segment(settings(), None) == SegmentOptions(16, None, 2, None)
    by_steps = settings(max_train_steps=500, save_every_n_steps=100)
    assert plan_segment(by_steps, None) == SegmentOptions(None, 500, 2, 100)


def test_resuming_at_an_epoch_boundary_runs_the_remaining_epochs():
    state = Path("lora-000006-state")
    segment = plan_segment(settings(), STEPS_PER_EPOCH, 6 * STEPS_PER_EPOCH, state)
    assert segment == SegmentOptions(10, None, 2, None, resume_state=state)


def test_resuming_off_the_epoch_saves_drops_them_rather_than_misname_them():
    """From epoch 3, musubi's "every 2 epochs" would save at run epochs 5, 7...: not the plan."""
    segment = plan_segment(settings(), STEPS_PER_EPOCH, 3 * STEPS_PER_EPOCH)
    assert (segment.max_train_epochs, segment.save_every_n_epochs) == (13, None)


def test_resuming_mid_epoch_runs_the_remaining_steps():
    step_saves = settings(save_every_n_steps=10)
    segment = plan_segment(step_saves, STEPS_PER_EPOCH, 30)
    total = 16 * STEPS_PER_EPOCH
    assert segment == SegmentOptions(None, total - 30, None, 10)


def test_resuming_needs_the_steps_per_epoch():
    with pytest.raises(ValueError, match="steps per epoch"):
        plan_segment(settings(), None, 24)


@pytest.mark.parametrize(
    ("overrides", "states", "expected"),
    [
        ({}, [24, 48, 72], 72),  # the latest epoch state
        ({}, [24, 48, 30], 48),  # 30 is not on an every-2-epochs save point
        ({"save_every_n_epochs": None, "save_every_n_steps": 10}, [24, 30, 40], 40),
        ({"save_every_n_epochs": None, "save_every_n_steps": 10}, [24, 48], None),
        ({"save_every_n_steps": 10}, [24, 30, 40], None),  # both schedules: none is on both
        ({"save_every_n_steps": 10}, [120, 130], 120),  # on every 10 steps and every 2 epochs
        ({}, [16 * STEPS_PER_EPOCH], None),  # at the end only the final save is left
        ({}, [], None),
        ({"lr_scheduler": "constant_with_warmup", "lr_warmup_steps": 5}, [24, 48], 48),
        ({"lr_scheduler": "cosine"}, [24, 48], None),  # its schedule would be squeezed
    ],
)
def test_the_resume_point_keeps_the_planned_saves(overrides, states, expected):
    assert choose_resume_step(states, settings(**overrides), STEPS_PER_EPOCH) == expected


@pytest.mark.parametrize(
    ("overrides", "saved", "start", "segment_steps", "run", "name"),
    [
        ({}, Saved("epoch", 2), 0, 24, 24, "lora-000002.safetensors"),
        ({}, Saved("epoch", 2), 48, 24, 72, "lora-000006.safetensors"),  # segment 2 = run 6
        (
            {"save_every_n_steps": 10},
            Saved("step", 10),
            30,
            10,
            40,
            "lora-step00000040.safetensors",
        ),
        ({}, Saved("last"), 48, 144, 192, "lora-000016.safetensors"),  # final: the last epoch
        (
            {"max_train_steps": 50},
            Saved("last"),
            30,
            20,
            50,
            "lora-000005.safetensors",
        ),  # mid-epoch
    ],
)
def test_files_are_numbered_over_the_whole_run(overrides, saved, start, segment_steps, run, name):
    step = run_step(saved, start, STEPS_PER_EPOCH, segment_steps)
    assert step == run
    plan = plan_run(settings(**overrides), STEPS_PER_EPOCH, "lora")
    assert plan.at_step(step).file_name == name


@pytest.mark.parametrize(
    ("file_name", "saved"),
    [
        ("lora-abc-000003.safetensors", Saved("epoch", 3)),
        ("lora-abc-step00000120.safetensors", Saved("step", 120)),
        ("lora-abc.safetensors", Saved("last")),
        ("lora-abc-000003-state", None),
        ("lora-abcd-000003.safetensors", None),
        (".lora-abc.safetensors.1234.tmp", None),
    ],
)
def test_musubi_checkpoint_names(file_name, saved):
    assert parse_checkpoint_name("lora-abc", file_name) == saved


@pytest.mark.parametrize("saved", [Saved("epoch", 3), Saved("step", 120), Saved("last")])
def test_state_names_round_trip(saved):
    assert parse_state_name("lora-abc", state_name("lora-abc", saved)) == saved


def test_a_journal_of_another_run_is_not_resumed(tmp_path):
    journal = Journal(tmp_path / "journal.json", "run-one", STEPS_PER_EPOCH, [0, 24])
    journal.save()
    assert Journal.load(journal.path, "run-two") is None
    assert Journal.load(journal.path, "run-one") == journal


def test_only_complete_states_count(tmp_path):
    journal = Journal(tmp_path / "journal.json", "run", STEPS_PER_EPOCH, [0, 24])
    complete = journal.segment_dir(0) / "lora-000002-state"
    half_written = journal.segment_dir(1) / "lora-000002-state"  # run epoch 4
    resumed_step = journal.segment_dir(1) / "lora-step00000006-state"
    for folder in (complete, half_written, resumed_step):
        folder.mkdir(parents=True)
        (folder / "optimizer.bin").write_bytes(b"")
    for folder in (complete, resumed_step):
        (folder / "random_states_0.pkl").write_bytes(b"")
    assert journal.complete_states("lora") == {24: complete, 30: resumed_step}
