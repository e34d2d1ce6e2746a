"""A checkpoint truncated, changed or deleted after training has one way back, named in the error:
`wan-lora retrain <checkpoint>` keeps the damaged file aside and trains the checkpoint again, to
the tensors it had, and the rest of the graph then goes on."""

import json

import pytest
from safetensors.torch import load, load_file

from wan_lora_dagster.cli import main
from wan_lora_dagster.formats.cache_files import read_lora_header
from wan_lora_dagster.pipeline import evaluation
from wan_lora_dagster.pipeline.catalog import load_catalog
from wan_lora_dagster.project import open_project
from wan_lora_dagster.testing.commands import run_json, wan_lora

pytestmark = pytest.mark.slow


def truncate(path):
    path.write_bytes(path.read_bytes()[:10_000])  # as a full disk or a crash leaves it


def change(path):
    data = bytearray(path.read_bytes())
    data[-4:] = b"\x00\x00\x80\x7f"  # the same size, one weight now infinite
    path.write_bytes(bytes(data))


def delete(path):
    path.unlink()


def _checkpoint(project, index: int) -> tuple[str, dict]:
    """The key and record of the run's checkpoint at `index` (in training order)."""
    records = sorted((project / "out/records/lora_checkpoints").glob("*.json"))
    return records[index].stem, json.loads(records[index].read_text())


def _assert_same_tensors(file, before: dict) -> None:
    after = load_file(file)
    assert after.keys() == before.keys()
    for name, tensor in before.items():
        assert after[name].equal(tensor), name


# the last checkpoint: trained again to the end; the first: the retraining stops there
@pytest.mark.parametrize(("damage", "index"), [(truncate, -1), (change, -1), (delete, 0)])
def test_a_damaged_checkpoint_is_retrained_to_what_it_was(demo_copy, capsys, damage, index):
    key, record = _checkpoint(demo_copy, index)
    checkpoint = demo_copy / record["file"]
    header = read_lora_header(checkpoint)
    before = load(checkpoint.read_bytes())  # not load_file: it maps the file damaged next
    damage(checkpoint)
    damaged = checkpoint.read_bytes() if checkpoint.exists() else None

    status, summary = run_json(capsys, demo_copy)
    assert status == 1
    assert f"`wan-lora retrain {key}`" in summary["lora_checkpoints"]["errors"][key]
    assert summary["best_lora"]["blocked"] or summary["best_lora"]["failed"]

    status, out = wan_lora(capsys, "retrain", "--project", demo_copy, key)
    assert status == 0, out
    assert f"{key}: trained again: {record['file']}" in out
    kept = list((demo_copy / "out/checkpoints/_damaged").glob("*.safetensors"))
    if damaged is None:
        assert not kept
    else:  # nothing lost: the damaged file is where the command said
        assert [path.read_bytes() for path in kept] == [damaged]
        assert f"{key}: the damaged file is kept as {kept[0].relative_to(demo_copy)}" in out
    _assert_same_tensors(checkpoint, before)
    assert read_lora_header(checkpoint) == header  # its fields, in another order maybe
    assert not (demo_copy / "out/checkpoints/_retrain").exists()

    status, summary = run_json(capsys, demo_copy)
    assert status == 0, summary
    status, out = wan_lora(capsys, "status", "--project", demo_copy, "--json")
    assert status == 0
    for asset, counts in json.loads(out).items():
        assert counts["unsynced"] == counts["missing"] == counts["failed"] == 0, asset
    catalog = load_catalog(open_project(demo_copy))
    evaluation.export_best(catalog, key, [key], [])  # refused while damaged


def test_a_cut_checkpoint_whose_record_was_deleted_is_not_recorded_as_made(demo_copy, capsys):
    key, record = _checkpoint(demo_copy, -1)
    checkpoint = demo_copy / record["file"]
    truncate(checkpoint)
    (demo_copy / f"out/records/lora_checkpoints/{key}.json").unlink()  # the old way back

    status, summary = run_json(capsys, demo_copy, "--select", "lora_checkpoints")
    assert status == 1
    error = summary["lora_checkpoints"]["errors"][key]
    assert "is not whole" in error and f"`wan-lora retrain {key}`" in error
    assert not (demo_copy / f"out/records/lora_checkpoints/{key}.json").exists()

    status, out = wan_lora(capsys, "retrain", "--project", demo_copy, key)
    assert status == 0, out
    assert (demo_copy / f"out/records/lora_checkpoints/{key}.json").exists()
    [kept] = (demo_copy / "out/checkpoints/_damaged").glob("*.safetensors")
    assert kept.stat().st_size == 10_000
    assert f"is kept as {kept.relative_to(demo_copy)}" in out


def test_retrain_refuses_a_sound_or_unknown_checkpoint(demo_copy, capsys):
    key, _ = _checkpoint(demo_copy, -1)
    for asked, refusal in [
        (key, f"{key}: sound, as trained; nothing to retrain"),
        ("nope", "nope: not a checkpoint of the current training run; its checkpoints are"),
    ]:
        assert main(["retrain", "--project", str(demo_copy), asked]) == 2
        assert refusal in capsys.readouterr().err
