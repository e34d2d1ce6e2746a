"""A training stopped after some steps and resumed: the helpers the resume tests share."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from wan_lora_dagster.errors import EngineCancelled


class Killed(Exception):
    """Stands for a SIGKILL: the loop gets no chance to save anything."""


def cancel_after(steps: int):
    def progress(report):
        if report.done == steps:
            raise EngineCancelled("cancelled")  # what engines.background's deliver raises

    return progress


def interrupted(engine, request, progress=None, on_checkpoint=None):
    announced = []

    def record(checkpoint):
        announced.append(checkpoint)
        (on_checkpoint or (lambda c: None))(checkpoint)

    with pytest.raises((EngineCancelled, Killed)):
        engine.train(request, progress or (lambda report: None), record)
    return announced


def assert_same_lora(first, second):
    one, other = load_file(first), load_file(second)
    assert one.keys() == other.keys()
    for key in one:
        assert torch.allclose(one[key], other[key], atol=1e-6), key
