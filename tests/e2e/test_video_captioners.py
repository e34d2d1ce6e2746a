"""Qwen2.5-VL and Qwen3-VL caption a project's clips as videos, in batches, through the pipeline
(tiny random models built offline: the words are random, the plumbing is real)."""

import json
from pathlib import Path

import pytest

from wan_lora_dagster.captioning.store import CaptionStore
from wan_lora_dagster.captioning.tiny import build_tiny_qwen_vl
from wan_lora_dagster.media.synthetic import make_synthetic_film
from wan_lora_dagster.pipeline.dataset import make_captions
from wan_lora_dagster.pipeline.device_captions import caption_on_devices
from wan_lora_dagster.scaffold import init_project
from wan_lora_dagster.testing.commands import run_json

RECIPE = """\
[[datasets]]
source = "clips"
resolution = [64, 48]
target_frames = [9]

[captions]
captioner = "vlm"
model = "{model}"
prompt = "Describe the motion in this clip."
frames_per_clip = 3
max_new_tokens = 6
batch_size = 2
trigger = "mystyle"

[training]
model = "tiny"
"""
CLIPS = ("one_0-1000", "one_1000-2000", "two_0-1000")


def video_project(tmp_path, model_type: str) -> Path:
    """Two films, three clip ranges, a hand caption for the last; the recipe's captioner a tiny
    model of `model_type`."""
    model = build_tiny_qwen_vl(tmp_path / "models" / model_type, model_type)
    project = init_project(tmp_path / "project")
    (project / "wan_lora.toml").write_text(RECIPE.format(model=model))
    for film in ("one", "two"):
        make_synthetic_film(
            project / "films" / f"{film}.mp4", duration=2, size=(64, 48), num_scenes=1
        )
    (project / "ranges" / "one.txt").write_text("0 1\n1 2\n")
    (project / "ranges" / "two.txt").write_text("0 1\n")
    (project / "captions").mkdir(exist_ok=True)
    (project / "captions" / "two_0-1000.txt").write_text("a hand caption\n")
    return project


@pytest.mark.parametrize("model_type", ["qwen2_5_vl", "qwen3_vl"])
def test_a_video_captioner_captions_every_clip_in_batches_keeping_hand_edits(
    tmp_path, capsys, model_type
):
    project = video_project(tmp_path, model_type)

    status, summary = run_json(capsys, project, "--select", "+captions")

    assert status == 0, summary
    assert sorted(summary["captions"]["materialized"]) == sorted(CLIPS)
    store = CaptionStore(project / "captions", project / "out" / "records" / "captioner_output")
    states = store.states(list(CLIPS))
    assert states["two_0-1000"].origin == "edited"
    assert states["two_0-1000"].text == "a hand caption"
    for clip in CLIPS[:2]:
        assert states[clip].origin == "auto" and states[clip].text, clip
        record = json.loads((project / "out" / "records" / "captions" / f"{clip}.json").read_text())
        assert record["text"].startswith("mystyle, "), record
    assert states["one_0-1000"].text != states["one_1000-2000"].text, "each clip its own words"


def test_captions_split_over_two_devices_are_made_as_on_one(tmp_path, capsys):
    project = video_project(tmp_path, "qwen2_5_vl")
    status, summary = run_json(capsys, project, "--select", "clips")
    assert status == 0, summary
    reports = []

    records, failures = caption_on_devices(
        project, list(CLIPS), make_captions, ["cpu", "cpu"], reports.append
    )

    assert failures == {}
    assert sorted(records) == sorted(CLIPS)
    assert records["two_0-1000"].origin == "edited"
    assert records["one_0-1000"].origin == "auto" and records["one_0-1000"].text
    assert reports[-1].done == len(CLIPS)
