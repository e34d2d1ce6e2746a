"""Tiny captioners (random weights, built offline) and synthetic frames, shared by the tests.

The models are built once per session; each takes well under a second.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wan_lora_dagster.captioning.backends import CaptionerSettings, load_captioner
from wan_lora_dagster.captioning.tiny import (
    TINY_QWEN_VL_TYPES,
    build_tiny_blip2,
    build_tiny_qwen_vl,
)
from wan_lora_dagster.testing.captioners import TINY_MODELS

# Short captions keep greedy decoding on a busy CPU fast.
MAX_NEW_TOKENS = 8


# model -> its captioner: "blip2", and "vlm" for each Qwen-VL generation


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """{"blip2": folder, "qwen2_vl": folder, "qwen2_5_vl": ..., "qwen3_vl": ...}."""
    root = tmp_path_factory.mktemp("tiny_captioners")
    qwen = {name: build_tiny_qwen_vl(root / name, name) for name in TINY_QWEN_VL_TYPES}
    return {"blip2": build_tiny_blip2(root / "blip2"), **qwen}


@pytest.fixture(scope="session", params=sorted(TINY_MODELS))
def tiny_settings(request, tiny_models) -> CaptionerSettings:
    """Settings of one tiny captioner (the tests using this run once per model)."""
    name = request.param
    return CaptionerSettings(
        TINY_MODELS[name], str(tiny_models[name]), max_new_tokens=MAX_NEW_TOKENS
    )


@pytest.fixture(scope="session")
def tiny_captioner(tiny_settings):
    return load_captioner(tiny_settings)


@pytest.fixture(scope="session")
def synthetic_frames():
    """A function: (seed, count=3, size=(64, 36)) -> `count` random-noise RGB frames of `size`
    (width, height), the same for the same seed."""

    def make_frames(
        seed: int, count: int = 3, size: tuple[int, int] = (64, 36)
    ) -> list[Image.Image]:
        rng = np.random.default_rng(seed)
        width, height = size
        return [
            Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
            for _ in range(count)
        ]

    return make_frames
