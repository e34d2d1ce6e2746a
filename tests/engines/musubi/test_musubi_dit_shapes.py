"""The DiT files musubi-tuner trains on, of the real Wan 2.1 shapes, load into diffusers through
our single-file loader: their config is read off the shapes, and diffusers' converter maps every
one of musubi's keys onto a WanTransformer3DModel weight of the same shape.

Opt-in: set MUSUBI_TUNER_DIR to a kohya-ss/musubi-tuner clone (its `wan` package needs easydict
and einops). musubi's WanModel is built on the meta device, in a subprocess (musubi configures
logging when imported), so no weight is made: the test writes header-only safetensors files
(shapes, no data), which is all the config reader reads.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from accelerate import init_empty_weights
from diffusers import WanTransformer3DModel
from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

from wan_lora_dagster.engines.musubi.single_file import ORIGINAL_PREFIX, transformer_config

MUSUBI_TUNER_DIR = os.environ.get("MUSUBI_TUNER_DIR")
pytestmark = pytest.mark.skipif(
    not MUSUBI_TUNER_DIR, reason="set MUSUBI_TUNER_DIR to a musubi-tuner clone to run these"
)
MUSUBI_SHAPES = """
import json, sys
import torch
if not torch.cuda.is_available():  # wan/modules/t5.py asks for the device at import
    torch.cuda.current_device = lambda: 0
from accelerate import init_empty_weights
from musubi_tuner.wan.configs import WAN_CONFIGS
from musubi_tuner.wan.modules.model import WanModel

task = sys.argv[1]
config = WAN_CONFIGS[task]
with init_empty_weights():
    model = WanModel(
        model_type=task.split("-")[0], dim=config.dim, eps=config.eps, ffn_dim=config.ffn_dim,
        freq_dim=config.freq_dim, in_dim=config.in_dim, num_heads=config.num_heads,
        num_layers=config.num_layers, out_dim=config.out_dim, text_len=config.text_len,
        attn_mode="torch",
    )
shapes = {key: list(value.shape) for key, value in model.state_dict().items()}
print(json.dumps({"heads": config.num_heads, "shapes": shapes}))
"""


def musubi_dit(task: str) -> dict:
    src = str(Path(MUSUBI_TUNER_DIR).expanduser() / "src")
    paths = [src, *filter(None, [os.environ.get("PYTHONPATH")])]
    result = subprocess.run(
        [sys.executable, "-c", MUSUBI_SHAPES, task],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(paths)},
    )
    return json.loads(result.stdout.splitlines()[-1])


def header_only_file(path: Path, shapes: dict, prefix: str) -> Path:
    header = {
        prefix + key: {"dtype": "BF16", "shape": shape, "data_offsets": [0, 0]}
        for key, shape in shapes.items()
    }
    blob = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(blob)) + blob)
    return path


@pytest.mark.parametrize(
    ("task", "prefix"),
    [("t2v-1.3B", ORIGINAL_PREFIX), ("t2v-14B", ""), ("i2v-14B", "")],  # as the releases are
)
def test_musubis_dit_maps_onto_diffusers_weight_for_weight(task, prefix, tmp_path):
    dit = musubi_dit(task)
    config = transformer_config(
        header_only_file(tmp_path / "dit.safetensors", dit["shapes"], prefix)
    )
    assert config["num_attention_heads"] == dit["heads"]
    with init_empty_weights():
        model = WanTransformer3DModel(**config)
    expected = {key: list(value.shape) for key, value in model.state_dict().items()}

    checkpoint = {
        prefix + key: torch.empty(shape, device="meta") for key, shape in dit["shapes"].items()
    }
    converted = convert_wan_transformer_to_diffusers(checkpoint)

    assert {key: list(value.shape) for key, value in converted.items()} == expected
