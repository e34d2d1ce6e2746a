"""The tiny captioners are built offline, deterministically, and only once per folder."""

from __future__ import annotations

from functools import partial

import pytest

from wan_lora_dagster.captioning.backends import CaptionerSettings
from wan_lora_dagster.captioning.tiny import (
    COMPLETE_MARKER,
    TINY_QWEN_VL_TYPES,
    build_tiny_blip2,
    build_tiny_qwen_vl,
)
from wan_lora_dagster.testing.captioners import TINY_MODELS

BUILDERS = {
    "blip2": build_tiny_blip2,
    **{name: partial(build_tiny_qwen_vl, model_type=name) for name in TINY_QWEN_VL_TYPES},
}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_a_built_model_is_reused_not_rebuilt(tiny_models, name):
    weights = tiny_models[name] / "model.safetensors"
    before = weights.stat().st_mtime_ns

    assert BUILDERS[name](tiny_models[name]) == tiny_models[name]
    assert weights.stat().st_mtime_ns == before


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_a_rebuild_gives_the_same_model(tiny_models, name, tmp_path):
    """Deleting out/ and rebuilding the tiny model must not make every caption look stale."""
    rebuilt = BUILDERS[name](tmp_path / name)
    assert (
        CaptionerSettings(TINY_MODELS[name], str(rebuilt)).fingerprint()
        == CaptionerSettings(TINY_MODELS[name], str(tiny_models[name])).fingerprint()
    )


def test_an_interrupted_build_is_redone(tiny_models, tmp_path):
    folder = BUILDERS["qwen2_vl"](tmp_path / "vlm")
    (folder / COMPLETE_MARKER).unlink()
    (folder / "config.json").write_text("{truncated")

    BUILDERS["qwen2_vl"](folder)

    assert (folder / COMPLETE_MARKER).is_file()
    expected = (tiny_models["qwen2_vl"] / "config.json").read_text()
    assert (folder / "config.json").read_text() == expected


def test_another_seed_gives_another_model(tmp_path):
    first = BUILDERS["blip2"](tmp_path / "seed0", seed=0)
    second = BUILDERS["blip2"](tmp_path / "seed1", seed=1)
    assert (first / "model.safetensors").read_bytes() != (second / "model.safetensors").read_bytes()
