"""Captioner backends on the tiny offline models, their settings fingerprint, and bad models."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest

from wan_lora_dagster.captioning.backends import CaptionerSettings, load_captioner
from wan_lora_dagster.captioning.rules import apply_trigger
from wan_lora_dagster.errors import EngineError


def test_tiny_captioner_gives_the_same_words_for_the_same_frames(
    tiny_captioner, tiny_settings, synthetic_frames
):
    frames = synthetic_frames(seed=1)

    first = tiny_captioner.caption_batch([frames], tiny_settings.prompt)[0]
    second = tiny_captioner.caption_batch([frames], tiny_settings.prompt)[0]

    assert first.strip(), "a caption has words"
    assert first == second
    assert "<" not in first, f"no special tokens left in {first!r}"


def test_tiny_captioner_sees_the_frames(tiny_captioner, tiny_settings, synthetic_frames):
    """Random weights, but real plumbing: different frames give different words."""
    captions = tiny_captioner.caption_batch(
        [synthetic_frames(seed) for seed in range(3)], tiny_settings.prompt
    )
    assert len(set(captions)) > 1


def test_a_batch_gives_each_clip_its_own_caption(tiny_captioner, tiny_settings, synthetic_frames):
    """Clips of other lengths and sizes in one batch (padded prompts): each clip's caption is
    the one it gets alone."""
    clips = [synthetic_frames(1), synthetic_frames(2, count=1), synthetic_frames(3, size=(48, 64))]
    alone = [tiny_captioner.caption_batch([clip], tiny_settings.prompt)[0] for clip in clips]
    assert tiny_captioner.caption_batch(clips, tiny_settings.prompt) == alone


def test_tiny_captioner_takes_one_frame_of_any_size(
    tiny_captioner, tiny_settings, synthetic_frames
):
    frame = synthetic_frames(seed=2, count=1, size=(1280, 536))
    assert tiny_captioner.caption_batch([frame], tiny_settings.prompt)[0].strip()


def test_final_captions_start_with_the_trigger(tiny_captioner, tiny_settings, synthetic_frames):
    caption = tiny_captioner.caption_batch([synthetic_frames(seed=3)], tiny_settings.prompt)[0]
    assert apply_trigger(caption, "mystyle anime").startswith("mystyle anime, ")


def test_no_frames_is_refused(tiny_captioner, tiny_settings):
    with pytest.raises(ValueError, match="no frames"):
        tiny_captioner.caption_batch([[]], tiny_settings.prompt)


def test_captioner_none_loads_nothing():
    assert load_captioner(CaptionerSettings("none", None)) is None


def test_fingerprint_follows_what_changes_captions(tiny_settings):
    same = dataclasses.replace(tiny_settings, device="cuda", batch_size=32)
    assert same.fingerprint() == tiny_settings.fingerprint(), "device and batch do not count"
    for change in ({"prompt": "What happens?"}, {"frames_per_clip": 5}, {"max_new_tokens": 9}):
        changed = dataclasses.replace(tiny_settings, **change)
        assert changed.fingerprint() != tiny_settings.fingerprint(), change


def test_fingerprint_follows_the_model_content_not_its_path(tiny_settings, tmp_path):
    copy = shutil.copytree(tiny_settings.model, tmp_path / "moved")
    moved = dataclasses.replace(tiny_settings, model=str(copy))
    assert moved.fingerprint() == tiny_settings.fingerprint()

    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "edited": True}))
    assert moved.fingerprint() != tiny_settings.fingerprint()


def test_a_missing_model_folder_is_named_with_what_to_download(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(EngineError, match=f"{missing}.*does not exist.*blip2-opt-2.7b"):
        load_captioner(CaptionerSettings("blip2", str(missing)))


def test_no_model_folder_says_what_to_set():
    with pytest.raises(EngineError, match=r"no model folder.*\[captions\] model"):
        load_captioner(CaptionerSettings("vlm", None))


def test_a_model_of_the_other_family_is_refused(tiny_models):
    folder = tiny_models["blip2"]
    with pytest.raises(
        EngineError, match=f"{folder}.*'Blip2ForConditionalGeneration'.*'blip-2'.*'vlm'"
    ):
        load_captioner(CaptionerSettings("vlm", str(folder)))


@pytest.mark.parametrize(
    ("model", "class_name"),
    [
        ("qwen2_vl", "Qwen2VLForConditionalGeneration"),
        ("qwen2_5_vl", "Qwen2_5_VLForConditionalGeneration"),
        ("qwen3_vl", "Qwen3VLForConditionalGeneration"),
    ],
)
def test_the_folder_config_chooses_the_model_class(tiny_models, model, class_name):
    """A Qwen2.5-VL opened with the Qwen2-VL class would get a vision tower not its own."""
    captioner = load_captioner(CaptionerSettings("vlm", str(tiny_models[model])))
    assert type(captioner.model).__name__ == class_name


def test_an_unsupported_architecture_is_refused_by_name(tiny_models, tmp_path):
    folder = shutil.copytree(tiny_models["qwen2_vl"], tmp_path / "llava")
    config = json.loads((folder / "config.json").read_text())
    config.update(architectures=["LlavaForConditionalGeneration"], model_type="llava")
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        EngineError,
        match=f"{folder}: .*'LlavaForConditionalGeneration' .*'llava'.*"
        "Qwen2_5_VLForConditionalGeneration",
    ):
        load_captioner(CaptionerSettings("vlm", str(folder)))


def test_a_broken_model_folder_is_named(tiny_models, tmp_path):
    broken = shutil.copytree(tiny_models["blip2"], tmp_path / "broken")
    (broken / "model.safetensors").write_bytes(b"not weights")
    with pytest.raises(EngineError, match=f"{broken}: cannot load the blip2 captioner"):
        load_captioner(CaptionerSettings("blip2", str(broken)))


def test_an_unknown_captioner_lists_the_choices():
    with pytest.raises(EngineError, match="blip2, vlm, none"):
        load_captioner(CaptionerSettings("llava", "/models/llava"))
