"""Which t in (0, 1] a training step trains on: musubi-tuner's `--timestep_sampling` schemes.

Each scheme is re-implemented from musubi-tuner's `training/trainer_base.py`
(`get_noisy_model_input_and_timesteps`, commit 30c658c), t = 1 being pure noise:

- "uniform": t ~ U(0, 1); "sigmoid": t = sigmoid(z), z ~ N(0, 1)
- "shift": the sigmoid draw, time-shifted by `discrete_flow_shift`
- "sigma": a uniform pick from the 1000 time-shifted steps of the flow-matching scheduler
- "logit_normal": musubi's `--timestep_sampling sigma --weighting_scheme logit_normal`: u =
  sigmoid(N(logit_mean, logit_std)) picks step floor(1000 u) of musubi's training schedule,
  t = 1 - step / 1000 (that schedule is not shifted), so logit(t) ~ N(-logit_mean, logit_std)
- "logsnr": log-SNR ~ N(logit_mean, logit_std), t = sigmoid(-logsnr / 2) (arXiv 2411.14793)
- "flux_shift": the sigmoid draw, time-shifted by exp(mu), mu growing linearly with the latent's
  2x2 patch count from 0.5 at 256 patches to 1.15 at 4096 (FLUX's resolution-dependent shift)
- "qinglong_flux": per sample, 79 % flux_shift, 11 % logsnr, 10 % logsnr with mean 5.36, std 1
- "qinglong_qwen": 95 % shift by Qwen-Image's line (0.5 at 256 patches, 0.9 at 8192), 5 % logsnr
  with mean 5.36, std 1

A range (a Wan 2.2 expert's, min_timestep / max_timestep) keeps only the draws inside it, so the
distribution keeps its shape there, as musubi's `--preserve_distribution_shape` does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from wan_lora_dagster.engines.flow_matching import NUM_TRAIN_TIMESTEPS
from wan_lora_dagster.errors import ConfigError
from wan_lora_dagster.recipe.training import TrainingSettings

MAX_REJECTION_ROUNDS = 100
REJECTION_DRAWS = 256
LATE_LOGSNR = (5.36, 1.0)  # qinglong's third part: mostly low noise, whatever the user's mean
# (scheme, share of the shifted draw, share of the user's logsnr) of the qinglong hybrids
_QINGLONG = {"qinglong_flux": ("flux", 0.79, 0.11), "qinglong_qwen": ("qwen", 0.95, 0.0)}
# mu of the resolution-dependent shifts: (patches, mu) at two points of a line
_SHIFT_LINES = {"flux": ((256, 0.5), (4096, 1.15)), "qwen": ((256, 0.5), (8192, 0.9))}
RESOLUTION_DEPENDENT = ("flux_shift", *_QINGLONG)


@dataclass(frozen=True)
class TimestepRange:
    """low <= t < high, and t = high too when `include_high` (or when high is 1)."""

    low: float = 0.0
    high: float = 1.0
    include_high: bool = False

    @property
    def is_full(self) -> bool:
        return self.low <= 0.0 and self.high >= 1.0

    def keeps(self, t: torch.Tensor) -> torch.Tensor:
        below = (t <= self.high) if self.include_high or self.high >= 1.0 else (t < self.high)
        return (t >= self.low) & below


@dataclass(frozen=True)
class TimestepSampling:
    method: str
    shift: float = 3.0
    logit_mean: float = 0.0
    logit_std: float = 1.0
    within: TimestepRange = TimestepRange()

    @classmethod
    def of(
        cls, settings: TrainingSettings, expert_range: tuple[float, float] = (0.0, 1.0)
    ) -> TimestepSampling:
        """The recipe's sampling, on the part of `expert_range` min/max_timestep allow."""
        return cls(
            settings.timestep_sampling,
            settings.discrete_flow_shift,
            settings.logit_mean,
            settings.logit_std,
            training_range(settings, expert_range),
        )

    def sample(
        self,
        batch_size: int,
        generator: torch.Generator,
        latent_size: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """t of shape (batch_size,); latent_size: (height, width) of the latents, which the
        resolution-dependent schemes need."""
        if self.within.is_full:
            return self._draw(batch_size, generator, latent_size)
        kept: list[torch.Tensor] = []
        for _ in range(MAX_REJECTION_ROUNDS):
            t = self._draw(REJECTION_DRAWS, generator, latent_size)
            kept.append(t[self.within.keeps(t)])
            if sum(len(part) for part in kept) >= batch_size:
                return torch.cat(kept)[:batch_size]
        raise ValueError(
            f"timestep sampling {self.method!r} (shift {self.shift}) almost never draws t in "
            f"[{self.within.low}, {self.within.high}]: choose another timestep_sampling, "
            "discrete_flow_shift or min_timestep / max_timestep"
        )

    def _draw(
        self, count: int, generator: torch.Generator, latent_size: tuple[int, int] | None
    ) -> torch.Tensor:
        method = self.method
        if method in ("uniform", "sigmoid", "shift", "sigma"):
            return _draw_fixed(method, count, self.shift, generator)
        if method == "logit_normal":
            u = torch.sigmoid(self.logit_mean + self.logit_std * _normal(count, generator))
            step = (u * NUM_TRAIN_TIMESTEPS).long().clamp(max=NUM_TRAIN_TIMESTEPS - 1)
            return 1 - step.float() / NUM_TRAIN_TIMESTEPS
        if method == "logsnr":
            return _logsnr(count, self.logit_mean, self.logit_std, generator)
        if method == "flux_shift":
            return _shifted_sigmoid(count, _resolution_shift("flux", latent_size), generator)
        if method in _QINGLONG:
            return self._qinglong(count, generator, latent_size)
        raise ValueError(f"unknown timestep sampling {method!r}")

    def _qinglong(
        self, count: int, generator: torch.Generator, latent_size: tuple[int, int] | None
    ) -> torch.Tensor:
        """Each sample's part is chosen by a uniform draw, then every part is drawn for all."""
        line, shifted_share, logsnr_share = _QINGLONG[self.method]
        choice = torch.rand(count, generator=generator)
        shifted = _shifted_sigmoid(count, _resolution_shift(line, latent_size), generator)
        logsnr = _logsnr(count, self.logit_mean, self.logit_std, generator)
        late = _logsnr(count, *LATE_LOGSNR, generator)
        t = torch.where(choice < shifted_share + logsnr_share, logsnr, late)
        return torch.where(choice < shifted_share, shifted, t)


def training_range(
    settings: TrainingSettings, expert_range: tuple[float, float] = (0.0, 1.0)
) -> TimestepRange:
    """An expert's range (its high end excluded: t = boundary is the other expert's) cut to
    min_timestep / max_timestep (both included, as musubi's); ConfigError if nothing is left."""
    low, high = expert_range
    user_low = (settings.min_timestep or 0) / NUM_TRAIN_TIMESTEPS
    user_high = (settings.max_timestep or NUM_TRAIN_TIMESTEPS) / NUM_TRAIN_TIMESTEPS
    within = TimestepRange(max(low, user_low), min(high, user_high), user_high < high)
    if within.low > within.high or (within.low == within.high and not within.include_high):
        raise ConfigError(
            f"wan_lora.toml: [training] min_timestep = {settings.min_timestep}, max_timestep = "
            f"{settings.max_timestep} leave no timestep of this expert's range "
            f"[{low * NUM_TRAIN_TIMESTEPS:g}, {high * NUM_TRAIN_TIMESTEPS:g}): widen them"
        )
    return within


def shift_timesteps(t: torch.Tensor, shift: float) -> torch.Tensor:
    """The SD3 / Wan time shift: shift > 1 spends more of training at high noise."""
    return t * shift / (1 + (shift - 1) * t)


def _normal(count: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(count, generator=generator)


def _draw_fixed(method: str, count: int, shift: float, generator: torch.Generator) -> torch.Tensor:
    if method == "uniform":
        return torch.rand(count, generator=generator)
    if method == "sigmoid":
        return torch.sigmoid(_normal(count, generator))
    if method == "shift":
        return _shifted_sigmoid(count, shift, generator)
    step = torch.randint(0, NUM_TRAIN_TIMESTEPS, (count,), generator=generator)
    return shift_timesteps(1 - step.float() / NUM_TRAIN_TIMESTEPS, shift)


def _shifted_sigmoid(count: int, shift: float, generator: torch.Generator) -> torch.Tensor:
    return shift_timesteps(torch.sigmoid(_normal(count, generator)), shift)


def _logsnr(count: int, mean: float, std: float, generator: torch.Generator) -> torch.Tensor:
    return torch.sigmoid(-(mean + std * _normal(count, generator)) / 2)


def _resolution_shift(line: str, latent_size: tuple[int, int] | None) -> float:
    """exp(mu), mu on the line through the scheme's two points at the latent's patch count
    (Wan patches 2x2 latent pixels, as FLUX packs them)."""
    if latent_size is None:
        raise ValueError(f"the {line} timestep shift depends on the latent's size: give it")
    height, width = latent_size
    (x1, y1), (x2, y2) = _SHIFT_LINES[line]
    patches = (height // 2) * (width // 2)
    return math.exp(y1 + (y2 - y1) / (x2 - x1) * (patches - x1))
