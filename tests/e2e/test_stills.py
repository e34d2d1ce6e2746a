"""Stills in the graph: the demo's clips plus a stills section of three images, trained together.

One project is built for the module (a copy of the built demo, with stills added and run once);
each test that changes something runs on its own copy of it.
"""

import contextlib
import io
import json
import os
import shutil
import tomllib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wan_lora_dagster.cli import main
from wan_lora_dagster.formats.musubi_cache import load_latent_cache
from wan_lora_dagster.project_builder import DEMO_DATASET, demo_recipe, write_recipe
from wan_lora_dagster.testing.commands import made, run_json, wan_lora
from wan_lora_dagster.testing.musubi_fixtures import make_fake_musubi, make_weights

pytestmark = pytest.mark.slow

PHOTOS = {"name": "photos", "source": "stills", "resolution": [64, 48]}
# id -> (file name, width, height): landscape, portrait and square, PNG and JPEG.
STILLS = {"sky": ("sky.png", 96, 64), "tree": ("tree.jpg", 64, 96), "wall": ("wall.png", 80, 80)}
HAND_CAPTION = "a brick wall in the sun"
TRIGGER = "demostyle"
STILL_ASSETS = ("still_captions", "still_text_cache", "still_latent_cache")
UP_TO_THE_MANIFEST = "+training_set"


def write_image(path: Path, width: int, height: int, seed: int) -> Path:
    """A real image: a colour gradient with noise, so each seed gives other pixels."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    pixels = ramp * rng.uniform(0.2, 1.0, size=3) + rng.normal(0, 20, size=(height, width, 3))
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path)
    return path


def add_stills(project: Path) -> None:
    write_recipe(project, **demo_recipe(datasets=[DEMO_DATASET, PHOTOS]))
    for seed, (name, width, height) in enumerate(STILLS.values()):
        write_image(project / "stills" / name, width, height, seed)
    (project / "stills" / "wall.txt").write_text(HAND_CAPTION + "\n")


def manifest_of(project: Path) -> dict:
    record = json.loads((project / "out/records/training_set/__all__.json").read_text())
    return json.loads((project / record["file"]).read_text())


def still_entries(project: Path) -> dict[str, dict]:
    return {e["item_id"]: e for e in manifest_of(project)["entries"] if e["kind"] == "still"}


def mtimes(project: Path, pattern: str) -> dict[str, int]:
    return {str(path): path.stat().st_mtime_ns for path in project.glob(pattern)}


@pytest.fixture(scope="module")
def mixed(built_demo, tmp_path_factory) -> tuple[Path, dict]:
    """The built demo with the stills section and three stills, run to best_lora once."""
    project = tmp_path_factory.mktemp("mixed") / "demo"
    shutil.copytree(built_demo, project, symlinks=True)
    add_stills(project)
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        status = main(["run", "--project", str(project), "--json"])
    assert status == 0, output.getvalue()
    return project, json.loads(output.getvalue())


@pytest.fixture
def changed_copy(mixed, tmp_path) -> Path:
    """A copy of the mixed project to change."""
    target = tmp_path / "demo"
    shutil.copytree(mixed[0], target, symlinks=True)
    return target


def test_a_mixed_project_trains_on_its_clips_and_stills(mixed):
    project, summary = mixed
    for asset in STILL_ASSETS:
        assert made(summary)[asset] == sorted(STILLS), asset
    assert made(summary)["lora_checkpoints"] and made(summary)["best_lora"]
    report = json.loads((project / "out/records/dataset_report/__all__.json").read_text())
    photos = next(section for section in report["sections"] if section["section"] == "photos")
    assert (photos["source"], photos["items"], photos["frames_max"]) == ("stills", 3, 1)
    steps_per_epoch = sum(section["steps_per_epoch"] for section in report["sections"])  # 1 GPU
    for key in made(summary)["lora_checkpoints"]:
        record = json.loads((project / f"out/records/lora_checkpoints/{key}.json").read_text())
        assert record["training_set"] == manifest_of(project)["version"]
        assert record["step"] == record["epoch"] * steps_per_epoch, "stills not trained"


def test_the_manifest_lists_each_still_with_its_caption_and_one_frame_latent(mixed):
    project, _ = mixed
    entries = still_entries(project)
    assert entries.keys() == STILLS.keys()
    for still_id, (_name, width, height) in STILLS.items():
        entry = entries[still_id]
        [latent] = entry["latent_files"]
        assert latent == f"out/cache/photos/{still_id}_{width:04d}x{height:04d}_wan.safetensors"
        assert load_latent_cache(project / latent).latent.shape[1] == 1, "one latent frame"
        assert entry["section"] == "photos" and entry["text_file"].endswith(
            f"{still_id}_wan_te.safetensors"
        )
    assert entries["wall"]["caption"] == f"{TRIGGER}, {HAND_CAPTION}"
    assert entries["wall"]["caption_origin"] == "edited"
    for still_id in ("sky", "tree"):
        written = (project / "stills" / f"{still_id}.txt").read_text().strip()
        assert entries[still_id]["caption"] == written and written.startswith(TRIGGER)
        assert entries[still_id]["caption_origin"] == "auto"


def test_hand_captions_are_kept_and_auto_captions_are_recorded_under_out(mixed):
    project, _ = mixed
    assert (project / "stills" / "wall.txt").read_text() == HAND_CAPTION + "\n"
    records = project / "out/records/still_captioner_output"
    assert sorted(path.stem for path in records.glob("*.json")) == ["sky", "tree"]


def test_status_and_lineage_cover_the_stills(mixed, capsys):
    project, summary = mixed
    counts = cli_json(capsys, "status", "--project", project)
    for asset in STILL_ASSETS:
        assert counts[asset] == {
            "fresh": 3,
            "unsynced": 0,
            "missing": 0,
            "failed": 0,
            "partitions": {"unsynced": [], "missing": [], "failed": []},
        }, asset
    checkpoint = made(summary)["lora_checkpoints"][-1]
    lineage = cli_json(capsys, "lineage", "--project", project, checkpoint)
    rows = {row["clip"]: row for row in lineage["clips"] if row["kind"] == "still"}
    assert rows.keys() == STILLS.keys() and not any(row["changed_since"] for row in rows.values())
    assert rows["wall"]["caption"] == f"{TRIGGER}, {HAND_CAPTION}"
    fed = cli_json(capsys, "lineage", "--project", project, "--clip", "sky")["checkpoints"]
    assert checkpoint in [row["checkpoint"] for row in fed]


def cli_json(capsys, *args) -> dict:
    status, out = wan_lora(capsys, *args, "--json")
    assert status == 0
    return json.loads(out)


def test_editing_a_still_caption_re_encodes_its_text_and_no_latent(changed_copy, capsys):
    caption = changed_copy / "stills" / "sky.txt"
    caption.write_text(f"{TRIGGER}, a clear blue sky\n")
    latents = mtimes(changed_copy, "out/cache/*/*_wan.safetensors")
    status, summary = run_json(capsys, changed_copy, "--select", UP_TO_THE_MANIFEST)
    assert status == 0
    assert made(summary) == {
        "still_captions": ["sky"],
        "still_text_cache": ["sky"],
        "training_set": ["__all__"],
    }
    assert mtimes(changed_copy, "out/cache/*/*_wan.safetensors") == latents
    assert caption.read_text() == f"{TRIGGER}, a clear blue sky\n"
    assert still_entries(changed_copy)["sky"]["caption_origin"] == "edited"


def test_replacing_an_image_re_encodes_its_latent_and_re_captions_only_auto(changed_copy, capsys):
    for still_id in ("tree", "wall"):
        name, width, height = STILLS[still_id]
        write_image(changed_copy / "stills" / name, width, height, seed=100)
    os.utime(changed_copy / "stills" / "sky.png")  # a touch is no change
    status, summary = run_json(capsys, changed_copy, "--select", UP_TO_THE_MANIFEST)
    assert status == 0
    assert made(summary)["still_latent_cache"] == ["tree", "wall"]
    assert made(summary)["still_captions"] == ["tree"], "a hand caption depends on its text only"
    assert set(made(summary).get("still_text_cache", [])) <= {"tree"}
    assert made(summary).keys() <= {*STILL_ASSETS, "training_set"}
    assert (changed_copy / "stills" / "wall.txt").read_text() == HAND_CAPTION + "\n"


def test_an_undecodable_image_fails_only_its_own_partitions(changed_copy, capsys):
    stills = changed_copy / "stills"
    (stills / "broken.png").write_bytes(b"not an image at all")
    good = write_image(stills / "extra.png", 64, 48, seed=7).read_bytes()
    (stills / "cracked.png").write_bytes(good[: len(good) // 2])
    (stills / "cracked.txt").write_text("a cracked photo, captioned by hand\n")
    status, summary = run_json(capsys, changed_copy, "--select", UP_TO_THE_MANIFEST)
    assert status != 0
    captions, latents = summary["still_captions"], summary["still_latent_cache"]
    assert (captions["failed"], captions["materialized"]) == (["broken"], ["cracked", "extra"])
    assert (latents["failed"], latents["materialized"]) == (["broken", "cracked"], ["extra"])
    for still_id in latents["failed"]:
        assert f"stills/{still_id}.png: cannot read image" in latents["errors"][still_id]
    assert "stills/broken.png: cannot read image" in captions["errors"]["broken"]
    assert latents["skipped_fresh"] == 3
    assert summary["training_set"]["blocked"] == ["__all__"]
    assert (stills / "cracked.txt").read_text() == "a cracked photo, captioned by hand\n"
    assert (stills / "wall.txt").read_text() == HAND_CAPTION + "\n"
    assert not (stills / "broken.txt").exists()


def test_the_musubi_engine_gets_the_stills_as_an_image_section(changed_copy, tmp_path, capsys):
    clone = make_fake_musubi(tmp_path / "fake-musubi-tuner")
    weights = make_weights(tmp_path / "weights")
    training = {"engine": "musubi", "musubi_dir": str(clone)}
    training.update({key: weights[key] for key in ("dit", "vae", "t5")})
    training = {**training, "model": None}  # the musubi engine's weights, not the tiny model
    write_recipe(changed_copy, **demo_recipe(datasets=[DEMO_DATASET, PHOTOS], training=training))
    status, summary = run_json(capsys, changed_copy, "--select", UP_TO_THE_MANIFEST)
    assert status == 0
    assert made(summary)["still_latent_cache"] == sorted(STILLS), "other weights, other caches"
    assert image_rows(changed_copy / "out/musubi/cache/latents.toml").keys() == STILLS.keys()
    assert wan_lora(capsys, "train", "--project", changed_copy, "--dry-run")[0] == 0
    [config] = changed_copy.glob("out/musubi/train/*/dataset.toml")
    rows = image_rows(config)
    assert {still_id: row["caption"] for still_id, row in rows.items()} == {
        still_id: entry["caption"] for still_id, entry in still_entries(changed_copy).items()
    }


def image_rows(config: Path) -> dict[str, dict]:
    """Item id -> JSONL row of the config's one image section."""
    [table] = [t for t in tomllib.loads(config.read_text())["datasets"] if "image_jsonl_file" in t]
    assert table["resolution"] == [64, 48] and "target_frames" not in table
    rows = [json.loads(line) for line in Path(table["image_jsonl_file"]).read_text().splitlines()]
    return {Path(row["image_path"]).stem: row for row in rows}


def test_a_stills_section_with_no_images_stops_before_training(changed_copy, capsys):
    for image in changed_copy.glob("stills/*"):
        if image.suffix != ".txt":
            image.unlink()
    status, summary = run_json(capsys, changed_copy, "--select", UP_TO_THE_MANIFEST)
    assert status != 0
    assert "section 'photos': no training stills" in summary["training_set"]["errors"]["__all__"]
    assert (changed_copy / "stills" / "wall.txt").read_text() == HAND_CAPTION + "\n"


def test_a_still_named_like_a_clip_is_an_error_naming_both(changed_copy, capsys):
    write_image(changed_copy / "stills" / "drift.png", 64, 48, seed=3)
    assert main(["run", "--project", str(changed_copy)]) == 1
    summary = capsys.readouterr().out
    assert "stills/drift.png has the id 'drift' of the clip of " in summary
    assert "ranges/shapes.txt:4; rename the image" in summary
