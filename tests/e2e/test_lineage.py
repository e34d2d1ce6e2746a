"""Every checkpoint traces back to the exact caption texts that fed it."""

import json
import shutil

import pytest

from wan_lora_dagster.cli import main
from wan_lora_dagster.errors import UserError
from wan_lora_dagster.pipeline.catalog import load_catalog
from wan_lora_dagster.pipeline.lineage import checkpoint_lineage
from wan_lora_dagster.project import open_project
from wan_lora_dagster.testing.commands import wan_lora

NEW_CAPTION = "demostyle, a hand-written caption after the first training"


def lineage(capsys, project, *args):
    status, out = wan_lora(capsys, "lineage", "--project", project, "--json", *args)
    assert status == 0
    return json.loads(out)


def caption_of(result: dict, clip: str) -> dict:
    return next(row for row in result["clips"] if row["clip"] == clip)


@pytest.fixture(scope="module")
def trained_twice(built_demo, tmp_path_factory):
    """Two training runs with the caption of `drift` edited in between. Made once for the
    module: the tests only read it (`wan-lora lineage` writes nothing)."""
    project = shutil.copytree(
        built_demo, tmp_path_factory.mktemp("lineage") / "demo", symlinks=True
    )
    first = sorted(p.stem for p in (project / "out/records/lora_checkpoints").glob("*.json"))
    old_caption = json.loads((project / "out/records/captions/drift.json").read_text())["text"]
    (project / "captions" / "drift.txt").write_text(NEW_CAPTION + "\n")
    assert main(["run", "--project", str(project)]) == 0
    both = sorted(p.stem for p in (project / "out/records/lora_checkpoints").glob("*.json"))
    second = [key for key in both if key not in first]
    return project, first[-1], second[-1], old_caption


def test_each_checkpoint_shows_the_caption_it_was_trained_on(trained_twice, capsys):
    project, first, second, old_caption = trained_twice
    before = caption_of(lineage(capsys, project, first), "drift")
    after = caption_of(lineage(capsys, project, second), "drift")
    assert before["caption"] == old_caption and before["changed_since"]
    assert before["caption_now"] == NEW_CAPTION
    assert after["caption"] == NEW_CAPTION and not after["changed_since"]
    assert after["origin"] == "edited"


def test_a_clip_lists_every_checkpoint_it_fed_with_the_caption_each_saw(trained_twice, capsys):
    project, first, second, old_caption = trained_twice
    fed = {
        row["checkpoint"]: row["caption"]
        for row in lineage(capsys, project, "--clip", "drift")["checkpoints"]
    }
    assert fed[first] == old_caption and fed[second] == NEW_CAPTION


def test_a_lora_file_found_on_disk_is_traced_through_its_header(trained_twice, capsys, tmp_path):
    project, first, _second, old_caption = trained_twice
    record = json.loads((project / "out/records/lora_checkpoints" / f"{first}.json").read_text())
    found = shutil.copy(project / record["file"], tmp_path / "downloaded.safetensors")
    assert caption_of(lineage(capsys, project, found), "drift")["caption"] == old_caption


def test_an_unknown_checkpoint_is_a_clear_error(demo_copy):
    with pytest.raises(UserError, match="neither a checkpoint of this project nor a LoRA file"):
        checkpoint_lineage(load_catalog(open_project(demo_copy)), "nope")
