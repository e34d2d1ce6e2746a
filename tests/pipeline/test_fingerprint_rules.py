"""Every fingerprint rule of the asset table, on records alone: which edit makes which partition
unsynced. No ffmpeg, no engine, no Dagster run: a project's records are written as a run would
leave them (each with the fingerprint its inputs give), then one input is edited."""

from pathlib import Path

import pytest

from wan_lora_dagster.media.ranges import ClipRange
from wan_lora_dagster.pipeline.asset_table import STAGES
from wan_lora_dagster.pipeline.caches import LatentCacheRecord, LatentSection, TextCacheRecord
from wan_lora_dagster.pipeline.catalog import Catalog
from wan_lora_dagster.pipeline.dataset import CaptionRecord, ClipRecord, caption_store
from wan_lora_dagster.pipeline.evaluation import BestRecord, EvalRecord, EvalVideo
from wan_lora_dagster.pipeline.preview import PreviewRecord
from wan_lora_dagster.pipeline.records import UNPARTITIONED
from wan_lora_dagster.pipeline.status import FRESH, MISSING, UNSYNCED, Expectations
from wan_lora_dagster.pipeline.training import CheckpointRecord
from wan_lora_dagster.pipeline.training_set import DatasetReportRecord, TrainingSetRecord
from wan_lora_dagster.project import open_project
from wan_lora_dagster.project_builder import with_changes, write_recipe

pytestmark = pytest.mark.fast  # the unit tier: make test-fast

SMALL = {"name": "small", "source": "clips", "resolution": [32, 32], "target_frames": [5]}
RECIPE = {
    "datasets": [SMALL, {"name": "pictures", "source": "stills", "resolution": [32, 32]}],
    "captions": {"captioner": "none", "trigger": "teststyle"},
    "training": {"model": "tiny", "max_train_epochs": 2, "save_every_n_epochs": 1},
    "eval": {"prompts": ["teststyle, shapes"], "num_inference_steps": 2},
}
CLIPS = {"a1": ("alpha", 0.0, 1.0), "a2": ("alpha", 2.0, 3.0), "b1": ("beta", 0.0, 1.0)}


def catalog_of(root: Path, film_hashes=None, ranges=None, still_hashes=None) -> Catalog:
    """The project as `load_catalog` would find it, without films to probe or hash."""
    ranges = ranges or CLIPS
    return Catalog(
        project=open_project(root),
        film_paths={film: root / "films" / f"{film}.mp4" for film in ("alpha", "beta")},
        film_hashes=film_hashes or {"alpha": "film-a", "beta": "film-b"},
        ranges=tuple(
            ClipRange(clip, film, start, end, None, None, root / "ranges" / f"{film}.txt", 1)
            for clip, (film, start, end) in ranges.items()
        ),
        still_paths={"s1": root / "stills" / "s1.png"},
        still_hashes=still_hashes or {"s1": "still-1"},
    )


def record(asset: str, key: str, version: str, snapshot: Expectations):
    """A record as the asset's step writes it: the inputs' fingerprint, and what it made."""
    base = {"fingerprint": version, "data_version": version}
    if asset == "clips":
        return ClipRecord(
            **base,
            path=f"out/clips/{key}.mp4",
            film="films/x.mp4",
            ranges_file="ranges/x.txt:1",
            start=0.0,
            end=1.0,
            num_frames=16,
            expected_frames=16,
            duration=1.0,
            fps=16.0,
            width=32,
            height=32,
            scene_cuts=[],
            thumbnail=f"out/thumbnails/{key}.png",
        )
    if asset == "previews":
        return PreviewRecord(
            **base, poster=f"out/previews/{key}.png", video=f"out/previews/{key}.mp4"
        )
    if asset in ("captions", "still_captions"):
        text = f"teststyle, {key}/{version}"  # a "/" in a caption is no made file
        return CaptionRecord(
            **{**base, "data_version": f"text-{version}"},
            text=text,
            origin="auto",
            path=f"captions/{key}.txt",
        )
    if asset in ("text_cache", "still_text_cache"):
        return TextCacheRecord(**base, caption_version="c", file=f"out/cache/text/{key}.st")
    if asset in ("latent_cache", "still_latent_cache"):
        section = "small" if asset == "latent_cache" else "pictures"
        files = [f"out/cache/{section}/{key}_00000-005_0032x0032_wan.safetensors"]
        return LatentCacheRecord(**base, sections={section: LatentSection(version, files)})
    if asset == "training_set":
        return TrainingSetRecord(**base, file=f"out/training_set/{version}.json")
    if asset == "dataset_report":
        manifest = snapshot.manifest.version
        return DatasetReportRecord(**base, training_set=manifest, sections=[{"steps_per_epoch": 3}])
    if asset == "lora_checkpoints":
        return CheckpointRecord(
            **base,
            file=f"out/checkpoints/{key}.safetensors",
            epoch=1,
            step=3,
            loss=0.5,
            train_id=snapshot.plan.train_id,
            training_set=snapshot.manifest.version,
        )
    if asset == "eval_videos":
        video = EvalVideo(file=f"out/eval/{key}/0.mp4", prompt="p", strength=1.0, seed=0)
        return EvalRecord(
            **base,
            videos=[video],
            contact_sheet=f"out/eval/{key}/sheet.png",
            validation_loss=None,
            validation_loss_base=None,
        )
    return BestRecord(
        **base,
        checkpoint="k",
        file="out/best/adapter_model.safetensors",
        validation_loss=None,
        validation_loss_base=None,
    )


def make(catalog: Catalog, assets=STAGES) -> None:
    """Record every stale partition of `assets`, stage by stage, as `wan-lora run` would."""
    for asset in assets:
        snapshot = Expectations(catalog)
        for key in snapshot.decide(asset, snapshot.partitions(asset)).make:
            version = snapshot.fingerprint(asset, key)
            catalog.records.write(asset, key, record(asset, key, version, snapshot))


def states(catalog: Catalog) -> dict[str, dict[str, str]]:
    snapshot = Expectations(catalog)
    return {
        asset: {key: snapshot.state(asset, key) for key in snapshot.partitions(asset)}
        for asset in STAGES
    }


def not_fresh(catalog: Catalog) -> dict[str, set[str]]:
    """Asset -> its partitions that are not fresh (unsynced or missing)."""
    found = {}
    for asset, by_key in states(catalog).items():
        if stale := {key for key, state in by_key.items() if state != FRESH}:
            found[asset] = stale
    return found


@pytest.fixture
def root(tmp_path) -> Path:
    write_recipe(tmp_path, **RECIPE)
    (tmp_path / "captions").mkdir()
    make(catalog_of(tmp_path))
    return tmp_path


DOWNSTREAM_OF_ITEMS = {
    "training_set": {UNPARTITIONED},
    "dataset_report": {UNPARTITIONED},
    "best_lora": {UNPARTITIONED},
}


def test_a_made_project_is_fresh_everywhere(root):
    by_asset = states(catalog_of(root))

    assert set(by_asset) == set(STAGES)
    assert all(state == FRESH for keys in by_asset.values() for state in keys.values())
    assert set(by_asset["clips"]) == set(CLIPS)
    assert len(by_asset["lora_checkpoints"]) == 2  # an epoch each


def test_a_replaced_film_makes_its_clips_captions_and_latents_unsynced(root):
    catalog = catalog_of(root, film_hashes={"alpha": "film-a2", "beta": "film-b"})

    stale = not_fresh(catalog)

    for asset in ("clips", "captions", "latent_cache", "text_cache"):
        assert stale[asset] == {"a1", "a2"}, asset
    assert "still_captions" not in stale
    # the manifest waits for fresh caches
    assert stale["training_set"] == {UNPARTITIONED}


def test_a_moved_range_makes_only_its_own_clip_unsynced(root):
    moved = {**CLIPS, "a2": ("alpha", 2.0, 3.5)}
    catalog = catalog_of(root, ranges=moved)

    stale = not_fresh(catalog)

    assert stale["clips"] == stale["captions"] == stale["latent_cache"] == {"a2"}
    assert stale["previews"] == {"a2"}  # waits for its clip
    assert states(catalog)["clips"]["a2"] == UNSYNCED


def test_a_caption_edit_re_encodes_one_text_and_no_latent(root):
    (root / "captions" / "b1.txt").write_text("teststyle, a hand caption\n")
    catalog = catalog_of(root)

    stale = not_fresh(catalog)

    assert stale["captions"] == {"b1"}
    assert stale["text_cache"] == {"b1"}  # waits for its caption
    assert not {"clips", "latent_cache", "previews"} & set(stale)
    decision = Expectations(catalog).decide("text_cache", list(CLIPS))
    assert (decision.make, decision.blocked) == ([], ["b1"])

    make(catalog, ["captions"])
    decision = Expectations(catalog_of(root)).decide("text_cache", list(CLIPS))
    assert (decision.make, sorted(decision.fresh)) == (["b1"], ["a1", "a2"])


def test_a_new_trigger_re_captions_every_item_and_keeps_every_clip(root):
    write_recipe(root, **with_changes(RECIPE, captions={"trigger": "other"}))

    stale = not_fresh(catalog_of(root))

    assert stale["captions"] == set(CLIPS)
    assert stale["still_captions"] == {"s1"}
    assert "clips" not in stale and "latent_cache" not in stale


def test_a_section_change_re_encodes_its_latents_and_no_text(root):
    small, pictures = {**SMALL, "target_frames": [9]}, RECIPE["datasets"][1]
    write_recipe(root, **with_changes(RECIPE, datasets=[small, pictures]))

    stale = not_fresh(catalog_of(root))

    assert stale["latent_cache"] == set(CLIPS)
    assert "text_cache" not in stale and "still_latent_cache" not in stale
    assert stale["training_set"] == {UNPARTITIONED}


def test_a_replaced_still_touches_no_clip(root):
    stale = not_fresh(catalog_of(root, still_hashes={"s1": "still-2"}))

    assert stale["still_captions"] == stale["still_latent_cache"] == {"s1"}
    assert not {"clips", "captions", "latent_cache", "text_cache"} & set(stale)


def test_a_training_setting_plans_a_new_run_and_keeps_the_caches(root):
    write_recipe(root, **with_changes(RECIPE, training={"max_train_epochs": 3}))

    by_asset = states(catalog_of(root))

    assert set(by_asset["lora_checkpoints"].values()) == {MISSING}  # the new run's keys
    assert len(by_asset["lora_checkpoints"]) == 3
    assert by_asset["dataset_report"][UNPARTITIONED] == FRESH


def test_an_eval_setting_re_evaluates_and_keeps_the_checkpoints(root):
    write_recipe(root, **with_changes(RECIPE, eval={"num_inference_steps": 3}))

    stale = not_fresh(catalog_of(root))

    assert set(stale) == {"eval_videos", "best_lora"}
    assert len(stale["eval_videos"]) == 2


def test_a_pin_chooses_again_without_re_evaluating(root):
    keys = Expectations(catalog_of(root)).partitions("lora_checkpoints")
    config = root / "wan_lora.toml"
    config.write_text(config.read_text() + f'pin = "{keys[0]}"\n')

    assert not_fresh(catalog_of(root)) == {"best_lora": {UNPARTITIONED}}


def test_a_damaged_made_file_makes_its_partition_unsynced(root):
    catalog = catalog_of(root)
    clip = root / "out" / "clips" / "a1.mp4"
    clip.parent.mkdir(parents=True)
    clip.write_bytes(b"sixteen frames")
    written = catalog.records.write("clips", "a1", catalog.records.read("clips", "a1"))
    assert list(written.made_files) == ["out/clips/a1.mp4"]  # the thumbnail was never made
    assert not not_fresh(catalog_of(root)).get("clips")

    clip.write_bytes(b"cut short")

    assert not_fresh(catalog_of(root))["clips"] == {"a1"}


def test_a_deleted_caption_file_makes_its_caption_unsynced(root):
    """The captioner's caption, deleted: made again (written back), not left out of captions/
    while its text goes on training."""
    catalog = catalog_of(root)
    caption_store(catalog.project).write_auto("b1", "teststyle, b1", "captioner")
    catalog.records.delete("captions", "b1")
    make(catalog, ["captions"])  # recorded as the captioner's ("auto")
    assert "captions" not in not_fresh(catalog_of(root))

    (root / "captions" / "b1.txt").unlink()

    assert not_fresh(catalog_of(root))["captions"] == {"b1"}


def test_records_name_their_made_files_and_nothing_else(root):
    caption = catalog_of(root).records.read("captions", "a1")
    assert "/" in caption.text and caption.made_paths() == []

    latent = catalog_of(root).records.read("latent_cache", "a1")
    assert latent.made_paths() == latent.sections["small"].files


def test_a_record_in_the_stored_format_reads_as_its_type(root):
    """out/records of an existing project: plain JSON, as written before records were typed."""
    path = root / "out" / "records" / "lora_checkpoints" / "old.json"
    path.write_text(
        '{"data_version": "d", "epoch": 1, "file": "out/checkpoints/x.safetensors",'
        ' "fingerprint": "f", "loss": null, "step": 3,'
        ' "train_id": "t", "training_set": "m",'
        ' "made_files": {"out/checkpoints/x.safetensors": {"size": 1, "mtime_ns": 1, "hash": "h"}}}'
    )
    checkpoint = catalog_of(root).records.read("lora_checkpoints", "old")

    assert (checkpoint.file, checkpoint.expert_files, checkpoint.loss) == (
        "out/checkpoints/x.safetensors",
        None,
        None,
    )
    assert "expert_files" not in checkpoint.to_json()  # written back as it was read
    assert list(checkpoint.made_files) == checkpoint.made_paths()
    assert checkpoint.without_made_files().to_json()["made_files"] == {}
