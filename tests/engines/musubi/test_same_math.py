"""One training step of ours and one of musubi-tuner's, on the same weights, batch, noise and t,
give the same loss and LoRA gradients: benchmarks/same_math_gpu.py --small for t2v (fp32, two
blocks, on the CPU), musubi's side its OWN model, LoRA network and trainer code, in-process.

Opt-in: set MUSUBI_TUNER_DIR to a kohya-ss/musubi-tuner checkout (its `wan` package needs easydict
and einops besides our dependencies). Runs in a subprocess: musubi configures logging when
imported, and the script stands in for torchvision where it does not import.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wan_lora_dagster.testing.gpu_fixtures import musubi_checkout

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "same_math_gpu.py"
MISSING = [name for name in ("easydict", "einops") if importlib.util.find_spec(name) is None]
pytestmark = [
    pytest.mark.skipif(
        musubi_checkout() is None,
        reason="set MUSUBI_TUNER_DIR to a kohya-ss/musubi-tuner checkout to run this",
    ),
    pytest.mark.skipif(
        bool(MISSING), reason=f"musubi-tuner's wan package needs {', '.join(MISSING)}"
    ),
]


def test_a_step_of_ours_is_a_step_of_musubis(tmp_path):
    command = [sys.executable, str(SCRIPT), "--small", "--only", "t2v"]
    environment = {**os.environ, "OUT": str(tmp_path)}
    result = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    [row] = json.loads((tmp_path / "same_math_gpu.json").read_text())
    assert (row["dtype"], row["depth"]) == ("fp32", 2)
    assert row["relative"] <= 1e-4, row
    assert row["cosine_min"] >= 0.99, row
    assert row["cosine_overall"] >= 0.99, row
    assert row["modules"] == 2 * 10  # every linear of both blocks, on both sides
