"""The timestep schemes on the musubi engine: passed as musubi-tuner's own options (its parser,
training/parser_common.py at commit 30c658c); caption dropout and EMA, which it lacks, refused
before anything runs, naming the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from wan_lora_dagster.engines.musubi import arguments
from wan_lora_dagster.engines.musubi.resume import SegmentOptions
from wan_lora_dagster.errors import ConfigError

SEGMENT = SegmentOptions(4, None, 1, None)


def value_of(command: list[str], option: str) -> str:
    return command[command.index(option) + 1]


def training_command(settings, timestep_range=(0.0, 1.0), expert=None) -> list[str]:
    return arguments.training_args(
        settings, Path("ds.toml"), Path("out"), "lora-x", SEGMENT, None, expert, timestep_range
    )


def test_logit_normal_is_musubis_sigma_sampling_with_logit_normal_weighting(make_settings):
    settings = make_settings(timestep_sampling="logit_normal", logit_mean=0.3, logit_std=0.8)
    command = training_command(settings)
    assert value_of(command, "--timestep_sampling") == "sigma"
    assert value_of(command, "--weighting_scheme") == "logit_normal"
    assert (value_of(command, "--logit_mean"), value_of(command, "--logit_std")) == ("0.3", "0.8")


@pytest.mark.parametrize("scheme", ["logsnr", "flux_shift", "qinglong_flux", "qinglong_qwen"])
def test_musubis_own_schemes_pass_by_their_names(make_settings, scheme):
    command = training_command(make_settings(timestep_sampling=scheme, logit_mean=-1.0))
    assert value_of(command, "--timestep_sampling") == scheme
    assert "--weighting_scheme" not in command
    assert ("--logit_mean" in command) == (scheme != "flux_shift")


def test_the_default_scheme_passes_no_logit_options_and_no_range(make_settings):
    command = training_command(make_settings())
    assert value_of(command, "--timestep_sampling") == "shift"
    for option in ("--logit_mean", "--min_timestep", "--preserve_distribution_shape"):
        assert option not in command


def test_min_and_max_timestep_keep_the_distributions_shape(make_settings):
    command = training_command(make_settings(min_timestep=100, max_timestep=900))
    assert (value_of(command, "--min_timestep"), value_of(command, "--max_timestep")) == (
        "100",
        "900",
    )
    assert "--preserve_distribution_shape" in command


def test_an_experts_range_is_cut_to_min_and_max_timestep(make_settings):
    settings = make_settings(task="t2v-A14B", dit_high_noise="high.safetensors", max_timestep=950)
    command = training_command(settings, (0.875, 1.0), expert="high_noise")
    assert (value_of(command, "--min_timestep"), value_of(command, "--max_timestep")) == (
        "875",
        "950",
    )


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ({"caption_dropout_rate": 0.1}, "caption_dropout_rate = 0.1: musubi-tuner has no caption"),
        ({"ema_decay": 0.999}, "ema_decay = 0.999: musubi-tuner keeps no EMA"),
        (
            {"timestep_sampling": "logit_normal", "min_timestep": 100},
            "timestep_sampling = 'logit_normal' with a range",
        ),
    ],
)
def test_what_musubi_lacks_is_refused_naming_the_setting(make_settings, setting, named):
    with pytest.raises(ConfigError, match=r"wan_lora.toml: \[training\]") as refused:
        arguments.check_settings(make_settings(**setting))
    assert named in str(refused.value) and "engine = 'diffusers'" in str(refused.value)
