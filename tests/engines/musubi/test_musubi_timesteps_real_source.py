"""Our timestep schemes drawn beside musubi-tuner's OWN sampling code, where a clone is at hand.

Opt-in: set MUSUBI_TUNER_DIR to a kohya-ss/musubi-tuner clone. Its trainer module imports the
whole trainer (torchvision among it), so the subprocess compiles only its sampling function,
`get_noisy_model_input_and_timesteps` of training/trainer_base.py, with the modules it uses,
and parses our options with its own parser. With noise 1 and latents 0 the noisy input is t.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from wan_lora_dagster.engines.musubi.timestep_args import timestep_args
from wan_lora_dagster.engines.timesteps import TimestepSampling
from wan_lora_dagster.recipe.training import TrainingSettings

MUSUBI_TUNER_DIR = os.environ.get("MUSUBI_TUNER_DIR")
pytestmark = pytest.mark.skipif(
    not MUSUBI_TUNER_DIR, reason="set MUSUBI_TUNER_DIR to a musubi-tuner clone to run these"
)
COUNT, LATENT_SIZE = 20000, (60, 104)
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
DRAW_AS_MUSUBI_DOES = """
import argparse, ast, json, logging, math, sys, typing
import torch
from musubi_tuner.modules.scheduling_flow_match_discrete import FlowMatchDiscreteScheduler
from musubi_tuner.training import timesteps
from musubi_tuner.training.parser_common import setup_parser_common
from musubi_tuner.utils import train_utils

source_file, options, count, height, width, quantiles = sys.argv[1:]
tree = ast.parse(open(source_file).read())
[function] = [node for node in ast.walk(tree) if getattr(node, "name", "") ==
              "get_noisy_model_input_and_timesteps"]
scope = {"math": math, "torch": torch, "train_utils": train_utils, "Optional": typing.Optional,
         "List": list, "argparse": argparse, "logger": logging.getLogger("musubi"),
         "FlowMatchDiscreteScheduler": FlowMatchDiscreteScheduler, **vars(timesteps)}
exec(compile(ast.Module([function], []), source_file, "exec"), scope)
args, _ = setup_parser_common().parse_known_args(json.loads(options))
trainer = type("Trainer", (), {"num_timestep_buckets": None})()
torch.manual_seed(0)
latents = torch.zeros(int(count), 1, 1, int(height), int(width))
scheduler = FlowMatchDiscreteScheduler(shift=args.discrete_flow_shift, reverse=True)
noisy, _ = scope["get_noisy_model_input_and_timesteps"](
    trainer, args, torch.ones_like(latents), latents, None, scheduler, "cpu", torch.float32)
t = noisy[:, 0, 0, 0, 0].float()
print(json.dumps(t.quantile(torch.tensor(json.loads(quantiles))).tolist()))
"""


def musubi_quantiles(settings: TrainingSettings) -> list[float]:
    source = Path(MUSUBI_TUNER_DIR) / "src/musubi_tuner/training/trainer_base.py"
    options = json.dumps(timestep_args(settings, (0.0, 1.0)))
    result = subprocess.run(
        [sys.executable, "-c", DRAW_AS_MUSUBI_DOES, str(source), options, str(COUNT),
         *map(str, LATENT_SIZE), json.dumps(QUANTILES)],
        env={**os.environ, "PYTHONPATH": str(Path(MUSUBI_TUNER_DIR) / "src")},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "scheme",
    [
        {"timestep_sampling": "logit_normal", "logit_mean": 0.5, "logit_std": 0.8},
        {"timestep_sampling": "logsnr", "logit_mean": -1.0, "logit_std": 1.5},
        {"timestep_sampling": "logsnr", "min_timestep": 200, "max_timestep": 700},
        {"timestep_sampling": "flux_shift"},
        {"timestep_sampling": "qinglong_flux"},
        {"timestep_sampling": "qinglong_qwen"},
    ],
)
def test_our_draws_follow_musubis_distribution(scheme):
    settings = TrainingSettings(**scheme)
    ours = TimestepSampling.of(settings).sample(
        COUNT, torch.Generator().manual_seed(1), LATENT_SIZE
    )
    ours = ours.quantile(torch.tensor(QUANTILES)).tolist()
    theirs = musubi_quantiles(settings)
    assert max(abs(a - b) for a, b in zip(ours, theirs, strict=True)) < 0.015, (ours, theirs)
