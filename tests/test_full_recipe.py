"""`network = "full"` in wan_lora.toml: its settings checked against the engine and the task,
each mistake named with the file and the line; a LoRA recipe's fingerprint unchanged by them."""

import pytest

from wan_lora_dagster.engines.training_plan import plan_run
from wan_lora_dagster.recipe.reading import load_recipe
from wan_lora_dagster.recipe.training import TrainingSettings
from wan_lora_dagster.testing.recipes import MINIMAL, error_for, write

pytestmark = pytest.mark.fast  # the unit tier: make test-fast


def test_a_full_fine_tune_with_chosen_blocks_loads(tmp_path):
    recipe = (
        MINIMAL + '[training]\nnetwork = "full"\nfull_blocks = [0, 1, 5]\nfull_dtype = "bf16"\n'
    )
    training = load_recipe(write(tmp_path, recipe)).training
    assert (training.network, training.full_blocks, training.full_dtype) == (
        "full",
        (0, 1, 5),
        "bf16",
    )


def test_musubi_has_no_full_fine_tune(tmp_path):
    message = error_for(tmp_path, MINIMAL + '[training]\nengine = "musubi"\nnetwork = "full"\n')
    assert "wan_lora.toml:5: training:" in message  # the [training] table
    assert "musubi-tuner has no full fine-tune" in message
    assert "use engine = 'diffusers'" in message


@pytest.mark.parametrize(
    ("training", "expected"),
    [
        ('network = "full"\nfull_blocks = [30]', "from 0 to 29 (t2v-1.3B has 30 blocks)"),
        ('network = "full"\nfull_blocks = [1, 1]', "each once, got [1, 1]"),
        ('network = "full"\nfull_blocks = []', "list block indices"),
        ('network = "full"\ntask = "t2v-A14B"', "trains one transformer; t2v-A14B has two"),
        ("full_blocks = [0]", "full_blocks and full_dtype are for network = 'full'"),
        ('network = "dora"', "training.network: Input should be 'lora', 'lokr', 'loha' or 'full'"),
    ],
)
def test_mistakes_are_named(tmp_path, training, expected):
    message = error_for(tmp_path, MINIMAL + f"[training]\n{training}\n")
    assert "wan_lora.toml:" in message and expected in message


def test_a_full_fine_tune_gets_its_own_fingerprint():
    # a LoRA recipe's fingerprint, pinned to main's: tests/test_training_modes_recipe.py
    lora = TrainingSettings()
    assert TrainingSettings(network="full").settings_fingerprint() != lora.settings_fingerprint()
    assert (
        TrainingSettings(network="full", full_dtype="bf16").settings_fingerprint()
        != TrainingSettings(network="full").settings_fingerprint()
    )


def test_a_full_fine_tune_saves_folders_not_files():
    plan = plan_run(TrainingSettings(network="full", max_train_epochs=2), 3, "run")
    assert [point.file_name for point in plan.save_points] == ["run-000002"]
