"""The timestep schemes: each draws what musubi-tuner's scheme of that name draws, inside its
range; min_timestep / max_timestep and an expert's range cut the draws, keeping their shape."""

import math

import pytest
import torch

from wan_lora_dagster.engines.timesteps import (
    TimestepRange,
    TimestepSampling,
    shift_timesteps,
    training_range,
)
from wan_lora_dagster.errors import ConfigError
from wan_lora_dagster.recipe.training import TrainingSettings

pytestmark = pytest.mark.fast  # the unit tier: make test-fast

METHODS = (
    "uniform", "sigmoid", "shift", "sigma",
    "logit_normal", "logsnr", "flux_shift", "qinglong_flux", "qinglong_qwen",
)  # fmt: skip
LATENT_SIZE = (60, 104)  # 832x480 pixels


def draw(method: str, count: int = 4000, **fields) -> torch.Tensor:
    sampling = TimestepSampling(method, **{"shift": 3.0, **fields})
    return sampling.sample(count, torch.Generator().manual_seed(0), LATENT_SIZE)


@pytest.mark.parametrize("method", METHODS)
def test_every_scheme_draws_inside_zero_one(method):
    t = draw(method)
    assert t.shape == (4000,) and t.min() > 0 and t.max() <= 1


@pytest.mark.parametrize("method", METHODS)
def test_min_and_max_timestep_keep_every_schemes_draws_inside_them(method):
    settings = TrainingSettings(timestep_sampling=method, min_timestep=200, max_timestep=700)
    sampling = TimestepSampling.of(settings)
    t = sampling.sample(2000, torch.Generator().manual_seed(1), LATENT_SIZE)
    assert t.shape == (2000,) and t.min() >= 0.2 and t.max() <= 0.7


def test_a_range_keeps_the_shape_inside_it_not_a_rescaled_one():
    inside = draw("logsnr", 20000, logit_mean=-1.0)
    inside = inside[(inside >= 0.3) & (inside <= 0.6)]
    cut = draw("logsnr", 4000, logit_mean=-1.0, within=TimestepRange(0.3, 0.6, True))
    assert abs(cut.median() - inside.median()) < 0.01


def test_shift_spends_more_steps_at_high_noise_like_musubi():
    assert draw("shift").median() > draw("sigmoid").median() + 0.1
    torch.testing.assert_close(shift_timesteps(torch.tensor([0.0, 0.5, 1.0]), 3.0),
                               torch.tensor([0.0, 0.75, 1.0]))  # fmt: skip


def test_sigma_draws_from_the_shifted_thousand_step_schedule():
    grid = shift_timesteps(1 - torch.arange(1000) / 1000, 3.0)
    assert torch.isin(draw("sigma"), grid).all()


def normal_cdf(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


@pytest.mark.parametrize(("mean", "std"), [(0.0, 1.0), (0.8, 0.5)])
def test_logit_normal_timesteps_follow_its_density(mean, std):
    """musubi's sigma + logit_normal weighting: t = 1 - floor(1000 u) / 1000, u = sigmoid of
    N(mean, std); so P(t <= x) = P(u >= 1 - x) up to the 1/1000 grid. Kolmogorov-Smirnov: the
    largest gap between the empirical and the true CDF stays under the 99.9 % bound."""
    count = 20000
    t = draw("logit_normal", count, logit_mean=mean, logit_std=std).sort().values
    assert torch.isin(t, 1 - torch.arange(1000) / 1000).all()  # the scheduler's 1000 steps
    gap = 0.0
    for index, x in enumerate(t.tolist()):
        # P(t <= x) = P(u > 1 - x - 0.001): the step of 1 - x and those above
        true = 1 - normal_cdf((math.log((1 - x) / x) - mean) / std) if x < 1 else 1.0
        gap = max(gap, abs((index + 1) / count - true), abs(index / count - true))
    assert gap < 1.95 / math.sqrt(count) + 0.002  # 0.002: the grid moves the CDF by a step


def test_logsnr_is_the_sigmoid_of_half_the_negated_log_snr():
    t = draw("logsnr", 20000, logit_mean=-2.0, logit_std=1.5)
    logsnr = -2 * torch.logit(t.double())
    assert abs(logsnr.mean() + 2.0) < 0.05 and abs(logsnr.std() - 1.5) < 0.05


def test_flux_shift_grows_with_the_resolution_as_flux_does():
    def flux_shift(latent_size):
        return TimestepSampling("flux_shift").sample(4000, torch.Generator().manual_seed(0),
                                                     latent_size)  # fmt: skip

    # 256 patches of 2x2: mu = 0.5; 4096 patches: mu = 1.15; the same draws, shifted by exp(mu)
    small, large = flux_shift((32, 32)), flux_shift((128, 128))
    unshifted = small / (math.exp(0.5) - (math.exp(0.5) - 1) * small)
    torch.testing.assert_close(large, shift_timesteps(unshifted, math.exp(1.15)))


def test_qinglong_flux_mixes_its_three_parts_in_musubis_shares():
    t = draw("qinglong_flux", 20000, logit_mean=0.0)
    # below t = 0.11 is the late logsnr part (mean 5.36) all but alone
    late_share = (t < torch.sigmoid(torch.tensor(-5.36 / 2 + 0.6))).float().mean()
    assert abs(late_share - 0.10 * 0.88) < 0.015  # 88 % of N(5.36, 1) lies above 4.16


def test_resolution_dependent_schemes_need_the_latent_size():
    with pytest.raises(ValueError, match="latent"):
        TimestepSampling("flux_shift").sample(4, torch.Generator())


def test_min_and_max_timestep_cut_an_experts_range():
    settings = TrainingSettings(min_timestep=100, max_timestep=950)
    assert training_range(settings, (0.875, 1.0)) == TimestepRange(0.875, 0.95, True)
    assert training_range(settings, (0.0, 0.875)) == TimestepRange(0.1, 0.875, False)
    with pytest.raises(ConfigError, match="min_timestep = 900, max_timestep = None"):
        training_range(TrainingSettings(min_timestep=900), (0.0, 0.875))
