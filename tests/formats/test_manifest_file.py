"""A manifest's file holds its version's one content: one cut short or changed is written
again, never kept under the version's name."""

import pytest

from wan_lora_dagster.formats.manifest import ExcludedItem, TrainingSetManifest

pytestmark = pytest.mark.fast  # the unit tier: make test-fast


def test_a_damaged_manifest_file_is_written_again(tmp_path):
    manifest = TrainingSetManifest(entries=(), excluded=(ExcludedItem("a1", "video", "why"),))
    path = manifest.save(tmp_path)
    whole = path.read_text()

    path.write_text(whole[: len(whole) // 2])  # a failing disk's truncation
    assert manifest.save(tmp_path) == path
    assert path.read_text() == whole

    written = path.stat().st_mtime_ns
    manifest.save(tmp_path)
    assert path.stat().st_mtime_ns == written  # a sound one is left as it is
