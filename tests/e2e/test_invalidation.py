"""Only what changed is recomputed, with more clips than Dagster's 100-partition provenance limit.

Each test makes one change of the table in the incremental issue to a copy of a fully built
110-clip project, runs `wan-lora run --json`, and checks the exact partitions it materialized and
that every file it should not touch kept its bytes and its modification time.
"""

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from wan_lora_dagster.captioning.tiny import build_tiny_blip2
from wan_lora_dagster.cli import main
from wan_lora_dagster.media.ranges import parse_ranges_file
from wan_lora_dagster.media.synthetic import make_synthetic_film
from wan_lora_dagster.project_builder import recipe_text, with_changes, write_recipe
from wan_lora_dagster.scaffold import init_project
from wan_lora_dagster.testing.commands import made, run_json

pytestmark = pytest.mark.slow

NUM_CLIPS = 104
CLIP_SECONDS = 0.5
SMALL = {"name": "small", "source": "clips", "resolution": [32, 32], "target_frames": [5]}
WIDE = {"name": "wide", "source": "clips", "resolution": [48, 32], "target_frames": [1]}
RECIPE = {
    "datasets": [SMALL, WIDE],
    "captions": {
        "captioner": "blip2",
        "model": "tiny",
        "max_new_tokens": 6,
        "trigger": "teststyle",
    },
    "training": {"model": "tiny", "network_dim": 2, "network_alpha": 2, "max_train_epochs": 1},
    "eval": {
        "prompts": ["teststyle, shapes"],
        "strengths": [0.0, 1.0],
        "width": 32,
        "height": 32,
        "num_frames": 5,
        "num_inference_steps": 2,
    },
}
TRAINING_ONWARD = {"training_set", "dataset_report", "lora_checkpoints", "eval_videos", "best_lora"}


def ranges_text(count: int, offset: float = 0.0) -> str:
    return "".join(
        f"{offset + index * CLIP_SECONDS:.3f} +{CLIP_SECONDS - 0.1:.3f}\n" for index in range(count)
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    project = init_project(tmp_path_factory.mktemp("many") / "many", recipe_text(**RECIPE))
    duration = NUM_CLIPS * CLIP_SECONDS / 2 + 1
    for film in ("a", "b"):
        make_synthetic_film(
            project / "films" / f"{film}.mp4",
            duration=duration,
            size=(64, 48),
            num_scenes=1,
            seed=ord(film),
        )
        (project / "ranges" / f"{film}.txt").write_text(ranges_text(NUM_CLIPS // 2))
    assert main(["run", "--project", str(project)]) == 0
    return project


@pytest.fixture
def project(built, tmp_path) -> Path:
    copy = tmp_path / "many"
    shutil.copytree(built, copy, symlinks=True)
    return copy


def snapshot(project: Path) -> dict[str, tuple[str, int]]:
    """Every derived file and caption: content hash and modification time."""
    files = {}
    for root in (project / "out", project / "captions"):
        for path in root.rglob("*"):
            if path.is_file() and "records" not in path.parts and ".state" not in path.parts:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                files[str(path.relative_to(project))] = (digest, path.stat().st_mtime_ns)
    return files


def changed(before: dict, after: dict) -> set[str]:
    return {name for name in before.keys() | after.keys() if before.get(name) != after.get(name)}


def clip_ids(project: Path) -> list[str]:
    return sorted(path.stem for path in (project / "out" / "clips").glob("*.mp4"))


def test_editing_one_caption_re_encodes_one_text_and_no_latent(project, capsys):
    clip = clip_ids(project)[7]
    caption = project / "captions" / f"{clip}.txt"
    before = snapshot(project)
    caption.write_text("teststyle, a hand-written caption\n")
    status, summary = run_json(capsys, project)
    assert status == 0
    assert made(summary).keys() - TRAINING_ONWARD == {"captions", "text_cache"}
    assert made(summary)["captions"] == [clip] and made(summary)["text_cache"] == [clip]
    touched = changed(before, snapshot(project))
    assert not [name for name in touched if "/cache/small/" in name or "/cache/wide/" in name]
    assert [name for name in touched if "/cache/text/" in name] == [
        f"out/cache/text/{clip}_wan_te.safetensors"
    ]


def test_touching_files_changes_nothing(project, capsys):
    for path in [*project.glob("films/*"), *project.glob("ranges/*"), *project.glob("captions/*")]:
        os.utime(path)
    before = snapshot(project)
    status, summary = run_json(capsys, project)
    assert status == 0 and made(summary) == {}
    assert changed(before, snapshot(project)) == set()


def test_adding_a_range_line_makes_that_clip_and_the_training_onward(project, capsys):
    ranges = project / "ranges" / "a.txt"
    ranges.write_text("26.0 +0.4 newcomer\n" + ranges.read_text())
    before = snapshot(project)
    status, summary = run_json(capsys, project)
    assert status == 0
    for asset in ("clips", "captions", "text_cache", "latent_cache"):
        assert made(summary)[asset] == ["newcomer"], asset
    assert made(summary).keys() >= TRAINING_ONWARD
    touched = changed(before, snapshot(project))
    other_clip_files = [n for n in touched if "/clips/" in n and "newcomer" not in n]
    assert other_clip_files == []


def test_removing_a_range_line_orphans_its_caption_and_retrains(project, capsys):
    ranges = project / "ranges" / "b.txt"
    lines = ranges.read_text().splitlines(keepends=True)
    removed = parse_ranges_file(ranges)[0][-1].clip_id
    ranges.write_text("".join(lines[:-1]))
    caption_text = (project / "captions" / f"{removed}.txt").read_text()
    status, summary = run_json(capsys, project)
    assert status == 0
    assert made(summary).keys() == TRAINING_ONWARD
    assert (project / "captions" / "_orphaned" / f"{removed}.txt").read_text() == caption_text
    assert not (project / "captions" / f"{removed}.txt").exists()


def test_changing_one_sections_resolution_re_encodes_only_its_latents(project, capsys):
    before = snapshot(project)
    write_recipe(
        project, **with_changes(RECIPE, datasets=[SMALL, {**WIDE, "resolution": [32, 48]}])
    )
    status, summary = run_json(capsys, project)
    assert status == 0
    assert made(summary).keys() - TRAINING_ONWARD == {"latent_cache"}
    assert len(made(summary)["latent_cache"]) == NUM_CLIPS
    touched = changed(before, snapshot(project))
    assert not [n for n in touched if "/cache/small/" in n or "/cache/text/" in n]
    assert not [n for n in touched if n.startswith("captions/") or "/clips/" in n]
    assert [n for n in touched if "/cache/wide/" in n]


def test_changing_only_eval_settings_re_evaluates_without_retraining(project, capsys):
    write_recipe(project, **with_changes(RECIPE, eval={"prompts": ["teststyle, circles"]}))
    before = snapshot(project)
    status, summary = run_json(capsys, project)
    assert status == 0
    assert made(summary).keys() == {"eval_videos", "best_lora"}
    assert not [n for n in changed(before, snapshot(project)) if "/checkpoints/" in n]


def test_changing_the_captioner_model_recaptions_only_auto_captions(project, capsys):
    clips = clip_ids(project)
    edited = clips[3]
    (project / "captions" / f"{edited}.txt").write_text("teststyle, my own words\n")
    assert run_json(capsys, project)[0] == 0
    other_model = build_tiny_blip2(project.parent / "another-blip2", seed=1)
    write_recipe(project, **with_changes(RECIPE, captions={"model": str(other_model)}))
    status, summary = run_json(capsys, project)
    assert status == 0
    assert sorted(made(summary)["captions"]) == sorted(set(clips) - {edited})
    assert (project / "captions" / f"{edited}.txt").read_text() == "teststyle, my own words\n"
    assert "latent_cache" not in made(summary)


def test_replacing_a_film_remakes_only_its_clips(project, capsys):
    film_b = {clip for clip in clip_ids(project) if clip.startswith("b_")}
    make_synthetic_film(
        project / "films" / "b.mp4",
        duration=NUM_CLIPS * CLIP_SECONDS / 2 + 1,
        size=(64, 48),
        num_scenes=1,
        seed=999,
    )
    status, summary = run_json(capsys, project)
    assert status == 0
    assert set(made(summary)["clips"]) == film_b
    assert set(made(summary)["latent_cache"]) == film_b
