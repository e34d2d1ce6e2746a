"""Caption dropout and the EMA of the trained weights, as pure units: which samples drop, how
the average moves, and the empty caption handed to data-parallel workers."""

import math
from pathlib import Path

import pytest
import torch

from wan_lora_dagster.engines.base import TextJob, TrainRequest
from wan_lora_dagster.engines.diffusers.caption_dropout import CaptionDropout
from wan_lora_dagster.engines.diffusers.distributed import write_request
from wan_lora_dagster.engines.diffusers.distributed_worker import read_request
from wan_lora_dagster.engines.diffusers.ema import WeightAverage
from wan_lora_dagster.engines.training_data import TrainingSample
from wan_lora_dagster.formats.manifest import TrainingSetManifest
from wan_lora_dagster.recipe.training import TrainingSettings

pytestmark = pytest.mark.fast  # the unit tier: make test-fast

EMPTY = Path("texts/_empty_caption_wan_te.safetensors")


def epoch(count: int) -> list[TrainingSample]:
    return [TrainingSample(Path(f"{i}.latent"), Path(f"{i}.text"), "clips") for i in range(count)]


def dropped_share(dropout: CaptionDropout, steps: int, batch: int) -> float:
    samples = epoch(batch)
    dropped = sum(
        sample.text_file == EMPTY
        for step in range(1, steps + 1)
        for sample in dropout.apply(samples, step, rank=0)
    )
    return dropped / (steps * batch)


@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_the_share_of_dropped_captions_over_an_epoch_is_the_rate(rate):
    steps, batch = 1000, 4  # an epoch of 4000 samples
    share = dropped_share(CaptionDropout(rate, 42, EMPTY), steps, batch)
    tolerance = 4 * math.sqrt(rate * (1 - rate) / (steps * batch))  # 4 binomial sigmas
    assert abs(share - rate) < tolerance


def test_the_same_seed_and_step_drop_the_same_samples_and_another_seed_others():
    one, again, other = (CaptionDropout(0.5, seed, EMPTY) for seed in (42, 42, 43))
    draws = [dropout.dropped(64, 7, 0) for dropout in (one, again, other)]
    assert draws[0] == draws[1] and draws[0] != draws[2]
    assert one.dropped(64, 7, 0) != one.dropped(64, 8, 0)  # each step draws anew


def test_no_dropout_keeps_every_caption():
    samples = epoch(8)
    assert CaptionDropout(0.0, 42, None).apply(samples, 1, 0) == samples


def parameters() -> list[torch.nn.Parameter]:
    torch.manual_seed(0)
    return [torch.nn.Parameter(torch.randn(3, 4)), torch.nn.Parameter(torch.randn(5))]


def test_one_step_moves_the_average_by_one_minus_the_decay():
    weights = parameters()
    average = WeightAverage(weights, 0.9, torch.device("cpu"))
    initial = [w.detach().clone() for w in weights]
    with torch.no_grad():
        for w in weights:
            w.add_(1.0)  # an optimizer step

    average.update()

    for ema, w0, w in zip(average.averages, initial, weights, strict=True):
        torch.testing.assert_close(ema, 0.9 * w0 + 0.1 * w.detach())
        assert not torch.equal(ema, w.detach()), "the average differs from the weights"


def test_the_average_swaps_in_for_saving_and_the_weights_come_back_exactly():
    weights = parameters()
    average = WeightAverage(weights, 0.5, torch.device("cpu"))
    with torch.no_grad():
        weights[0].mul_(3)
    average.update()
    trained = [w.detach().clone() for w in weights]

    with average.applied():
        seen = [w.detach().clone() for w in weights]

    assert all(torch.equal(s, a) for s, a in zip(seen, average.averages, strict=True))
    assert all(torch.equal(w, t) for w, t in zip(weights, trained, strict=True))


def test_the_average_goes_through_a_training_state_exactly():
    weights = parameters()
    average = WeightAverage(weights, 0.99, torch.device("cpu"))
    average.update()
    restored = WeightAverage(parameters(), 0.99, torch.device("cpu"))
    with torch.no_grad():
        restored.averages[0].zero_()

    restored.restore(average.state())

    assert all(torch.equal(a, b) for a, b in zip(average.averages, restored.averages, strict=True))


def test_the_recipe_chooses_the_averages_device_or_none():
    settings = TrainingSettings(ema_decay=0.99, ema_device="cpu")
    average = WeightAverage.of(settings, parameters(), torch.device("meta"))
    assert average.averages[0].device.type == "cpu"
    assert WeightAverage.of(TrainingSettings(), parameters(), torch.device("cpu")) is None


@pytest.mark.parametrize("empty_caption", [None, TextJob("_empty_caption-1", "", Path("texts"))])
def test_the_empty_caption_reaches_data_parallel_workers(tmp_path, empty_caption):
    settings = TrainingSettings(caption_dropout_rate=0.1 if empty_caption else 0.0)
    manifest = TrainingSetManifest((), root=tmp_path)
    request = TrainRequest(manifest, settings, (), tmp_path, "x", empty_caption=empty_caption)
    assert read_request(write_request(request, tmp_path)).empty_caption == empty_caption
