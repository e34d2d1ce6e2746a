"""The timestep and caption options of a musubi-tuner training run, and those it does not have.

As musubi-tuner's `training/parser_common.py` (`_add_timestep_args`) defines them at commit
30c658c: our `logit_normal` is its `--timestep_sampling sigma --weighting_scheme logit_normal`;
`logsnr`, `flux_shift`, `qinglong_flux` and `qinglong_qwen` are its own names. A range (min /
max_timestep, a Wan 2.2 expert's) is passed with `--preserve_distribution_shape`, which keeps the
draws inside it as the diffusers engine does (engines/timesteps.py); musubi's `sigma` path
ignores that flag and maps the range to scheduler step indices instead, so a range is refused
with logit_normal.
"""

from __future__ import annotations

from wan_lora_dagster.engines.flow_matching import NUM_TRAIN_TIMESTEPS
from wan_lora_dagster.engines.timesteps import training_range
from wan_lora_dagster.recipe.training import TrainingSettings
from wan_lora_dagster.tasks import wan_task

USES_LOGIT_SETTINGS = ("logit_normal", "logsnr", "qinglong_flux", "qinglong_qwen")


def timestep_args(settings: TrainingSettings, timestep_range: tuple[float, float]) -> list[str]:
    """--timestep_sampling and what it reads; the range of t trained on (an expert's cut to
    min_timestep / max_timestep), shape-preserving, as docs/wan.md recommends per expert."""
    method = settings.timestep_sampling
    arguments = (
        ["--timestep_sampling", "sigma", "--weighting_scheme", "logit_normal"]
        if method == "logit_normal"
        else ["--timestep_sampling", method]
    )
    arguments += ["--discrete_flow_shift", repr(settings.discrete_flow_shift)]
    if method in USES_LOGIT_SETTINGS:
        arguments += [
            "--logit_mean", repr(settings.logit_mean),
            "--logit_std", repr(settings.logit_std),
        ]  # fmt: skip
    within = training_range(settings, timestep_range)
    if within.is_full:
        return arguments
    return [
        *arguments,
        "--min_timestep", str(round(within.low * NUM_TRAIN_TIMESTEPS)),
        "--max_timestep", str(round(within.high * NUM_TRAIN_TIMESTEPS)),
        "--preserve_distribution_shape",
    ]  # fmt: skip


def unsupported_modes(settings: TrainingSettings) -> list[str]:
    """What of the recipe's training modes musubi-tuner cannot do, each saying what can."""
    has_range = wan_task(settings.task).experts or settings.min_timestep or settings.max_timestep
    problems = []
    if settings.caption_dropout_rate:
        problems.append(
            f"caption_dropout_rate = {settings.caption_dropout_rate}: musubi-tuner has no "
            "caption dropout; set it to 0, or use engine = 'diffusers'"
        )
    if settings.ema_decay is not None:
        problems.append(
            f"ema_decay = {settings.ema_decay}: musubi-tuner keeps no EMA of a Wan LoRA while "
            "training (its lora_post_hoc_ema.py averages saved checkpoints afterwards); remove "
            "ema_decay, or use engine = 'diffusers'"
        )
    if settings.timestep_sampling == "logit_normal" and has_range:
        problems.append(
            "timestep_sampling = 'logit_normal' with a range of timesteps (min_timestep, "
            "max_timestep, or a Wan 2.2 expert's): musubi-tuner's logit_normal is its 'sigma' "
            "sampling, which maps the range to scheduler steps instead of keeping the draws "
            "inside it; use another timestep_sampling, or engine = 'diffusers'"
        )
    return problems
