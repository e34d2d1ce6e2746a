"""musubi's dataset config written from a mixed project (two video sections, one image section).

Checked against a voluptuous schema transcribed from musubi-tuner's
src/musubi_tuner/dataset/config_utils.py (commit 30c658c, ConfigSanitizer, lines 94-178), and
parsed back with both tomllib and the `toml` package musubi itself reads it with.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from wan_lora_dagster.engines.base import LatentJob
from wan_lora_dagster.engines.musubi import dataset_toml
from wan_lora_dagster.errors import EngineError
from wan_lora_dagster.testing.musubi_fixtures import CAPTIONS, HELD_OUT, SECTIONS, train_request

voluptuous = pytest.importorskip("voluptuous")
toml = pytest.importorskip("toml")


def _scalar_or_pair_of_ints(value):
    voluptuous.Schema(voluptuous.Any(int, voluptuous.ExactSequence([int, int])))(value)
    return value


# config_utils.py:112-119 (DATASET_ASCENDABLE_SCHEMA)
ASCENDABLE = {
    "caption_extension": str,
    "batch_size": int,
    "num_repeats": int,
    "resolution": _scalar_or_pair_of_ints,
    "enable_bucket": bool,
    "bucket_no_upscale": bool,
}
# config_utils.py:120-132 (IMAGE_DATASET_DISTINCT_SCHEMA)
IMAGE = {
    **ASCENDABLE,
    "image_directory": str,
    "image_jsonl_file": str,
    "cache_directory": str,
    "control_directory": str,
    "multiple_target": bool,
    "fp_latent_window_size": int,
    "fp_1f_clean_indices": [int],
    "fp_1f_target_index": int,
    "fp_1f_no_post": bool,
    "no_resize_control": bool,
    "control_resolution": _scalar_or_pair_of_ints,
}
# config_utils.py:133-145 (VIDEO_DATASET_DISTINCT_SCHEMA)
VIDEO = {
    **ASCENDABLE,
    "video_directory": str,
    "video_jsonl_file": str,
    "control_directory": str,
    "target_frames": [int],
    "frame_extraction": str,
    "frame_stride": int,
    "frame_sample": int,
    "max_frames": int,
    "cache_directory": str,
    "source_fps": float,
    "fp_latent_window_size": int,
}


def _dataset(table: dict) -> dict:
    """config_utils.py:162-166: a table with a video list or folder is a video dataset."""
    is_video = "video_directory" in table or "video_jsonl_file" in table
    return voluptuous.Schema(VIDEO if is_video else IMAGE)(table)


MUSUBI_SCHEMA = voluptuous.Schema({"general": ASCENDABLE, "datasets": [_dataset]})
FRAME_KEYS = {"target_frames", "frame_extraction", "frame_stride", "frame_sample", "max_frames"}


def read_config(path: Path) -> dict:
    """Parsed as musubi parses it, validated as musubi validates it."""
    text = path.read_text(encoding="utf-8")
    config = tomllib.loads(text)
    assert toml.loads(text) == config, "musubi's `toml` 0.10.2 reads the file differently"
    MUSUBI_SCHEMA(config)
    return config


def read_rows(table: dict) -> list[dict]:
    listing = table.get("video_jsonl_file") or table["image_jsonl_file"]
    return [json.loads(line) for line in Path(listing).read_text(encoding="utf-8").splitlines()]


def dataset_config_of(command: list[str]) -> Path:
    return Path(command[command.index("--dataset_config") + 1])


def test_latent_config_has_every_section_setting_and_exactly_the_jobs(
    make_engine, project, manifest, tmp_path
):
    engine = make_engine()
    request = train_request(manifest, engine.settings, tmp_path / "checkpoints")
    latent_command, _, _ = engine.plan(request, project.latent_jobs, project.text_jobs)
    tables = read_config(dataset_config_of(latent_command))["datasets"]

    by_folder = {Path(table["cache_directory"]).name: table for table in tables}
    assert sorted(by_folder) == sorted(section.name for section in SECTIONS)
    for section in SECTIONS:
        table = by_folder[section.name]
        assert table["resolution"] == list(section.resolution)
        assert (table["batch_size"], table["num_repeats"]) == (
            section.batch_size,
            section.num_repeats,
        )
        assert (table["enable_bucket"], table["bucket_no_upscale"]) == (
            section.enable_bucket,
            section.bucket_no_upscale,
        )
        jobs = [job for job in project.latent_jobs if job.section == section]
        rows = read_rows(table)
        if section.source == "stills":
            assert not FRAME_KEYS & table.keys(), "musubi's image schema refuses frame keys"
            paths = [Path(row["image_path"]) for row in rows]
        else:
            assert table["target_frames"] == list(section.target_frames)
            assert table["frame_extraction"] == section.frame_extraction
            assert (table["frame_sample"], table["frame_stride"], table["max_frames"]) == (
                section.frame_sample,
                section.frame_stride,
                section.max_frames,
            )
            paths = [Path(row["video_path"]) for row in rows]
        # musubi names a cache by the media file's stem: each path's stem is its item id
        assert [path.stem for path in paths] == [job.item_id for job in jobs]
        assert [path.resolve() for path in paths] == [job.media_path.resolve() for job in jobs]
    renamed = project.media("fight_0002")
    assert renamed.stem != "fight_0002", "the fixture must hold a clip not named by its id"


def test_text_config_carries_the_exact_captions(make_engine, project, manifest, tmp_path):
    engine = make_engine()
    request = train_request(manifest, engine.settings, tmp_path / "checkpoints")
    _, text_command, _ = engine.plan(request, project.latent_jobs, project.text_jobs)
    (table,) = read_config(dataset_config_of(text_command))["datasets"]

    assert Path(table["cache_directory"]) == project.cache_root / "text"
    captions = {Path(row["video_path"]).stem: row["caption"] for row in read_rows(table)}
    assert captions == CAPTIONS


def test_training_config_links_only_the_training_entries(make_engine, manifest, tmp_path):
    engine = make_engine()
    request = train_request(manifest, engine.settings, tmp_path / "checkpoints")
    *_, train_command = engine.plan(request)
    tables = read_config(dataset_config_of(train_command))["datasets"]

    training = [entry for entry in manifest.entries if not entry.held_out]
    for table in tables:
        folder = Path(table["cache_directory"])
        entries = [entry for entry in training if entry.section == folder.name]
        expected = {
            Path(name).name: manifest.resolve(name)
            for entry in entries
            for name in (*entry.latent_files, entry.text_file)
        }
        # latents and their texts side by side, as musubi's prepare_for_training wants them
        assert {link.name: link.resolve() for link in folder.iterdir()} == expected
        assert {row["caption"] for row in read_rows(table)} == {e.caption for e in entries}
    linked = {link.name for table in tables for link in Path(table["cache_directory"]).iterdir()}
    assert not any(name.startswith(tuple(HELD_OUT)) for name in linked)


@pytest.mark.parametrize(
    "text",
    ['say "cut!"', "back\\slash", "line\nbreak\ttab", "ünïcödé 雨 🎬", "del\x7fchar", "x = [1]"],
)
def test_toml_strings_survive_both_parsers(text):
    written = dataset_toml.to_toml({"datasets": [{"caption_extension": text, "num_repeats": 2}]})
    assert tomllib.loads(written)["datasets"][0]["caption_extension"] == text
    assert toml.loads(written)["datasets"][0]["caption_extension"] == text


def test_two_sections_in_one_cache_folder_are_refused(make_engine, project):
    shared = project.cache_root / "shared"
    jobs = [
        LatentJob("fight_0001", project.media("fight_0001"), section, shared)
        for section in SECTIONS[:2]
    ]
    with pytest.raises(EngineError, match="one cache folder per dataset section"):
        make_engine().encode_latents(jobs, lambda progress: None)


def test_a_missing_cache_file_of_the_training_set_is_named(manifest, tmp_path):
    missing = manifest.resolve(manifest.entries[0].latent_files[0])
    missing.unlink()
    with pytest.raises(EngineError, match=str(missing)):
        dataset_toml.stage_training_set(manifest, SECTIONS, tmp_path / "staging")


def test_an_entry_of_an_unknown_section_is_refused(manifest, tmp_path):
    with pytest.raises(EngineError, match="motion"):
        dataset_toml.stage_training_set(manifest, SECTIONS[1:], tmp_path / "staging")
