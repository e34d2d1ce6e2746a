"""Captions encoded many per forward pass cache what each caption encoded alone caches."""

import pytest
import torch
from diffusers.pipelines.wan.pipeline_wan import prompt_clean

from wan_lora_dagster.engines.base import TextJob
from wan_lora_dagster.engines.diffusers.text_encoding import encode_texts
from wan_lora_dagster.engines.wan_models import TEXT_LENGTH
from wan_lora_dagster.formats.musubi_cache import load_text_cache

CAPTIONS = {
    "one_word": "rain",
    "a_sentence": "a woman walks through the rain at night, the camera tracking her",
    "a_paragraph": " ".join(["a man runs across the bridge while the camera pans"] * 12),
    "past_the_limit": "sword fight " * 400,  # truncated to 512 tokens either way
}


def embedding_alone(models, text: str) -> torch.Tensor:
    """One caption in its own forward pass, padded to 512 tokens as musubi-tuner and diffusers
    pad it, trimmed to its tokens: what the cache held before captions were batched."""
    tokens = models.tokenizer(
        prompt_clean(text),
        padding="max_length",
        max_length=TEXT_LENGTH,
        truncation=True,
        return_tensors="pt",
    )
    with torch.no_grad():
        hidden = models.text_encoder(tokens.input_ids, tokens.attention_mask).last_hidden_state
    return hidden[0, : int(tokens.attention_mask.sum())]


def test_a_batch_caches_each_caption_as_if_encoded_alone(engine, tmp_path):
    jobs = [TextJob(item, text, tmp_path) for item, text in CAPTIONS.items()]
    reports = []

    written = encode_texts(engine.models, jobs, reports.append, batch_size=3)

    for item, text in CAPTIONS.items():
        alone = embedding_alone(engine.models, text)
        cached = load_text_cache(written[item])
        assert cached.shape == alone.shape  # no padding kept: 2 tokens for "rain" and its </s>
        # bitwise equal on this CPU; the tolerance leaves room for another BLAS's summation order
        torch.testing.assert_close(cached, alone, rtol=1e-5, atol=1e-6)
    assert load_text_cache(written["past_the_limit"]).shape[0] == TEXT_LENGTH
    assert [(report.done, report.total) for report in reports] == [(3, 4), (4, 4)]


def test_a_caption_that_cannot_be_written_is_named(engine, tmp_path):
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache folder should be")
    jobs = [TextJob("fine", "rain", tmp_path / "texts"), TextJob("stuck", "snow", blocked)]

    with pytest.raises(OSError) as failure:
        encode_texts(engine.models, jobs, lambda progress: None)

    assert "text cache of 'stuck' ('snow')" in "".join(failure.value.__notes__)
