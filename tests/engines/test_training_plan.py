"""The training plan: a run's steps, save points and checkpoint names, for the graph and engines.

Pure arithmetic on settings and a manifest: no model, no file is read.
"""

import pytest

from wan_lora_dagster.engines.training_plan import plan_run, plan_training, steps_on_gpus
from wan_lora_dagster.errors import ConfigError, EngineError
from wan_lora_dagster.formats.manifest import ManifestEntry, TrainingSetManifest
from wan_lora_dagster.pipeline.training import CheckpointPlan, checkpoint_key
from wan_lora_dagster.recipe.datasets import DatasetSection
from wan_lora_dagster.recipe.training import TrainingSettings

pytestmark = pytest.mark.fast  # the unit tier: make test-fast

CLIPS = DatasetSection(name="clips", source="clips", resolution=(64, 64), batch_size=2)
PHOTOS = DatasetSection(name="photos", source="stills", resolution=(64, 64), batch_size=4)


def entry(item_id: str, section: str, windows: int = 1, repeats: int = 1, held_out=False):
    return ManifestEntry(
        item_id=item_id,
        kind="still" if section == PHOTOS.name else "clip",
        section=section,
        latent_files=tuple(f"cache/{item_id}-{window}.safetensors" for window in range(windows)),
        text_file=f"cache/{item_id}_te.safetensors",
        caption="a kick",
        caption_origin="auto",
        caption_version="v1",
        latent_version="l1",
        text_version="t1",
        num_repeats=repeats,
        held_out=held_out,
    )


def saves(plan):
    return [(point.step, point.epoch, point.file_name) for point in plan.save_points]


def test_step_saves_and_the_final_save_are_planned_by_name():
    plan = plan_run(TrainingSettings(max_train_steps=10, save_every_n_steps=4), 3, "run")

    assert (plan.total_steps, plan.last_epoch) == (10, 4)
    assert saves(plan) == [
        (4, 2, "run-step00000004.safetensors"),
        (8, 3, "run-step00000008.safetensors"),
        (10, 4, "run-000004.safetensors"),  # the final one, in the epoch it ended in
    ]


def test_epoch_saves_end_with_the_last_epoch():
    plan = plan_run(TrainingSettings(max_train_epochs=5, save_every_n_epochs=2), 3, "run")

    assert saves(plan) == [
        (6, 2, "run-000002.safetensors"),
        (12, 4, "run-000004.safetensors"),
        (15, 5, "run-000005.safetensors"),
    ]
    assert [point.label for point in plan.save_points] == ["e0002", "e0004", "e0005"]


def test_without_save_settings_only_the_end_is_saved():
    plan = plan_run(TrainingSettings(max_train_epochs=3), 7, "run")

    assert saves(plan) == [(21, 3, "run-000003.safetensors")]


def test_both_save_settings_save_the_union_of_both_schedules_each_step_once():
    settings = TrainingSettings(max_train_epochs=4, save_every_n_epochs=1, save_every_n_steps=5)

    plan = plan_run(settings, 3, "run")

    assert saves(plan) == [
        (3, 1, "run-000001.safetensors"),
        (5, 2, "run-step00000005.safetensors"),
        (6, 2, "run-000002.safetensors"),
        (9, 3, "run-000003.safetensors"),
        (10, 4, "run-step00000010.safetensors"),
        (12, 4, "run-000004.safetensors"),  # the final save
    ]
    both = plan_run(settings.model_copy(update={"save_every_n_steps": 3}), 3, "run")
    assert saves(both) == [  # where the schedules meet, the epoch's name
        (step, step // 3, f"run-{step // 3:06d}.safetensors") for step in (3, 6, 9, 12)
    ]


def test_with_both_settings_every_file_either_engine_saves_is_a_recorded_checkpoint():
    """The graph's partitions are the plan's save points: each file of each schedule has one."""
    settings = TrainingSettings(max_train_epochs=4, save_every_n_epochs=1, save_every_n_steps=5)
    plan = CheckpointPlan("abc", plan_run(settings, 3, "lora-abc"))
    # musubi-tuner's own schedules: every N steps (the last step too), every M epochs but the
    # last, and its final save
    musubi_steps = [*range(5, 13, 5), *(epoch * 3 for epoch in range(1, 4)), 12]

    keys = [checkpoint_key(plan, plan.training.epoch_of(step), step) for step in musubi_steps]

    assert None not in keys
    assert sorted(set(keys)) == sorted(plan.keys)
    assert len(set(plan.keys)) == len(plan.keys) == 6
    assert plan.keys[0] == "abc-s000003"  # step-labelled: keys of step-only runs stay as they were


def test_steps_per_epoch_count_batches_per_section_on_every_gpu():
    manifest = TrainingSetManifest(
        (
            *(entry(f"clip{n}", CLIPS.name, windows=1) for n in range(4)),
            entry("long", CLIPS.name, windows=2),  # 6 clip samples: 3 batches of 2
            entry("photo", PHOTOS.name, repeats=5),  # 5 photo samples: 2 batches of 4
            entry("held", CLIPS.name, windows=9, held_out=True),
        )
    )
    settings = TrainingSettings(max_train_epochs=2)

    on_one = plan_training(manifest, settings, (CLIPS, PHOTOS), 1, "run")
    on_two = plan_training(manifest, settings, (CLIPS, PHOTOS), 2, "run")

    assert (on_one.steps_per_epoch, on_one.total_steps) == (5, 10)
    assert (on_two.steps_per_epoch, on_two.total_steps) == (3, 6)  # 5 batches over 2 GPUs
    assert steps_on_gpus(12, 2) == 6
    assert steps_on_gpus(13, 2) == 7  # the last step's second GPU takes the epoch's first batch


def test_a_training_set_without_training_entries_is_refused():
    manifest = TrainingSetManifest((entry("held", CLIPS.name, held_out=True),))

    with pytest.raises(EngineError, match="no training entries"):
        plan_training(manifest, TrainingSettings(), (CLIPS,), 1, "run")


def test_a_section_the_recipe_no_longer_has_is_named():
    manifest = TrainingSetManifest((entry("clip", "renamed"),))

    with pytest.raises(ConfigError, match=r"section 'renamed'.*materialize training_set"):
        plan_training(manifest, TrainingSettings(), (CLIPS,), 1, "run")


@pytest.mark.parametrize("steps_per_epoch", [0, -3])
def test_a_run_needs_steps(steps_per_epoch):
    with pytest.raises(ValueError, match="at least one step per epoch"):
        plan_run(TrainingSettings(), steps_per_epoch, "run")


def test_training_needs_a_process():
    with pytest.raises(ValueError, match="at least one process"):
        steps_on_gpus(4, 0)
