"""Caption dropout, the EMA of the trained weights and the new timestep schemes in a real
training run of the tiny model: files, headers, exact resume."""

from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from wan_lora_dagster.engines.base import TextJob
from wan_lora_dagster.engines.diffusers import lora_training
from wan_lora_dagster.engines.diffusers.caption_dropout import empty_caption_file
from wan_lora_dagster.formats.cache_files import ema_file, read_lora_header
from wan_lora_dagster.formats.musubi_cache import load_text_cache
from wan_lora_dagster.testing.resume import assert_same_lora, cancel_after, interrupted
from wan_lora_dagster.testing.stripes import TRAINING

MODES = {
    "caption_dropout_rate": 0.5,
    "ema_decay": 0.9,
    "ema_device": "cpu",
    "timestep_sampling": "qinglong_flux",
    "min_timestep": 50,
    "max_timestep": 950,
}


def modes_request(training_run, output_dir, **settings):
    request = training_run.request
    return replace(
        request,
        settings=TRAINING.model_copy(update={**MODES, **settings}),
        output_dir=output_dir,
        empty_caption=TextJob("_empty_caption-test", "", output_dir.parent / "texts"),
    )


class TextsSeen:
    """Records which text cache each trained sample was loaded with, step by step."""

    def __init__(self, monkeypatch):
        self.steps: list[list[str]] = []
        load = lora_training.load_batches

        def recording(samples, device):
            self.steps.append([sample.text_file.name for sample in samples])
            return load(samples, device)

        monkeypatch.setattr(lora_training, "load_batches", recording)

    def dropped(self) -> list[bool]:
        return [name.startswith("_empty_caption") for step in self.steps for name in step]


@pytest.fixture(scope="module")
def modes_run(engine, training_run, tmp_path_factory):
    request = modes_request(training_run, tmp_path_factory.mktemp("modes") / "checkpoints")
    with pytest.MonkeyPatch.context() as monkeypatch:
        seen = TextsSeen(monkeypatch)
        returned = engine.train(request, lambda report: None, lambda checkpoint: None)
    return request, returned, seen


def test_the_empty_caption_is_encoded_once_and_a_share_of_samples_trains_on_it(modes_run):
    request, _, seen = modes_run
    empty = empty_caption_file(request.empty_caption)
    assert load_text_cache(empty).shape[0] >= 1  # the end-of-text token, as for any caption
    dropped = seen.dropped()
    assert len(dropped) == 60  # 10 epochs of 6 samples
    share = sum(dropped) / len(dropped)
    assert abs(share - 0.5) < 4 * (0.25 / 60) ** 0.5  # 4 binomial sigmas


def test_an_ema_file_lies_beside_each_checkpoint_with_its_keys_and_lineage(modes_run):
    _, returned, _ = modes_run
    assert [c.path.name for c in returned] == ["stripes-000005.safetensors",
                                               "stripes-000010.safetensors"]  # fmt: skip
    for checkpoint in returned:
        average, weights = load_file(ema_file(checkpoint.path)), load_file(checkpoint.path)
        assert average.keys() == weights.keys()
        ups = [key for key in weights if key.endswith("lora_up.weight")]
        assert any(not torch.equal(average[key], weights[key]) for key in ups)
        header, ema_header = (
            read_lora_header(checkpoint.path),
            read_lora_header(ema_file(checkpoint.path)),
        )
        assert ema_header.pop("wan_lora.ema_decay") == "0.9"
        assert ema_header == header


def test_a_resumed_run_drops_the_same_captions_and_ends_with_the_same_averages(
    engine, training_run, modes_run, tmp_path, monkeypatch
):
    request = modes_request(training_run, tmp_path / "checkpoints")
    _, uninterrupted, uninterrupted_seen = modes_run
    seen = TextsSeen(monkeypatch)
    interrupted(engine, request, progress=cancel_after(37))
    returned = engine.train(request, lambda report: None, lambda checkpoint: None)

    assert seen.dropped() == uninterrupted_seen.dropped()
    for mine, theirs in zip(returned, uninterrupted, strict=True):
        assert_same_lora(mine.path, theirs.path)
        assert_same_lora(ema_file(mine.path), ema_file(theirs.path))


@pytest.mark.parametrize("scheme", ["logit_normal", "logsnr", "flux_shift", "qinglong_qwen"])
def test_each_scheme_trains(engine, training_run, tmp_path, scheme):
    request = modes_request(
        training_run,
        tmp_path / "checkpoints",
        timestep_sampling=scheme,
        max_train_epochs=1,
        save_every_n_epochs=1,
        caption_dropout_rate=0.0,
        ema_decay=None,
    )
    [checkpoint] = engine.train(request, lambda report: None, lambda checkpoint: None)
    assert checkpoint.loss is not None and not ema_file(checkpoint.path).exists()
