"""Timestep schemes, caption dropout and EMA in wan_lora.toml: mistakes named with the file, the
key and the line; left at their defaults they change no fingerprint."""

import pytest

from wan_lora_dagster.recipe.reading import load_recipe
from wan_lora_dagster.recipe.training import TrainingSettings
from wan_lora_dagster.testing.recipes import MINIMAL, error_for, write

pytestmark = pytest.mark.fast  # the unit tier: make test-fast


@pytest.mark.parametrize(
    ("line", "named"),
    [
        ("caption_dropout_rate = 1.5", "wan_lora.toml:6: training.caption_dropout_rate"),
        ("logit_std = 0", "wan_lora.toml:6: training.logit_std"),
        ("ema_decay = 1.0", "wan_lora.toml:6: training.ema_decay"),
        ('ema_device = "tpu"', "wan_lora.toml:6: training.ema_device"),
        ('timestep_sampling = "qinglong"', "wan_lora.toml:6: training.timestep_sampling"),
        ("max_timestep = 1001", "wan_lora.toml:6: training.max_timestep"),
    ],
)
def test_a_bad_value_is_named_with_its_line(tmp_path, line, named):
    message = error_for(tmp_path, MINIMAL + f"[training]\n{line}\n")
    assert named in message


def test_an_unknown_scheme_lists_the_known_ones(tmp_path):
    message = error_for(tmp_path, MINIMAL + '[training]\ntimestep_sampling = "qinglong"\n')
    assert "'logit_normal'" in message and "'qinglong_flux'" in message


def test_min_timestep_lies_below_max_timestep(tmp_path):
    text = MINIMAL + "[training]\nmin_timestep = 600\nmax_timestep = 400\n"
    assert "min_timestep (600) must be below max_timestep (400)" in error_for(tmp_path, text)


def test_eval_on_the_ema_needs_an_ema(tmp_path):
    message = error_for(tmp_path, MINIMAL + "[eval]\nuse_ema = true\n")
    assert "set [training] ema_decay" in message
    text = MINIMAL + "[training]\nema_decay = 0.99\n[eval]\nuse_ema = true\n"
    assert load_recipe(write(tmp_path, text)).eval.use_ema


def test_the_new_settings_at_their_defaults_leave_the_fingerprint_as_it_was():
    """The default settings' fingerprint is the one from before them (main at 9a4a696)."""
    settings = TrainingSettings()
    assert settings.settings_fingerprint() == "583288ea6e199a19"
    for changed in ({"logit_mean": 0.5}, {"logit_std": 2.0}, {"min_timestep": 100},
                    {"max_timestep": 900}, {"caption_dropout_rate": 0.1}, {"ema_decay": 0.99},
                    {"ema_device": "cpu"}):  # fmt: skip
        other = TrainingSettings(**changed)
        assert other.settings_fingerprint() != settings.settings_fingerprint(), changed
