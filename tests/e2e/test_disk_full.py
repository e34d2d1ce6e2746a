"""The latent caches' disk fills up mid-stage: the stage fails saying so and naming the folder,
leaves no half-written file, and the next run, with space again, completes.

The small disk is a tmpfs mounted over out/cache/video, which needs root; where mounting is not
allowed, tests/formats/test_disk_full.py shows the same writers under a file-size limit.
"""

import shutil
import subprocess

import pytest
from conftest import run_json

pytestmark = pytest.mark.slow
SMALL = "12k"  # three 4 KiB pages: a few of the demo's 2.5 KB latent files, not its 20


def _mount(folder, *options: str) -> bool:
    command = ["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(folder)]
    return subprocess.run(command, capture_output=True).returncode == 0


def test_a_full_disk_fails_the_stage_cleanly_and_the_next_run_completes(demo_copy, capsys):
    cache = demo_copy / "out" / "cache" / "video"
    shutil.rmtree(cache)
    cache.mkdir()
    if not _mount(cache, f"size={SMALL}"):
        pytest.skip("mounting a small tmpfs needs root")
    try:
        status, summary = run_json(capsys, demo_copy, "--select", "latent_cache")
        assert status == 1
        stage = summary["latent_cache"]
        assert stage["failed"] and not stage["materialized"]
        for error in stage["errors"].values():
            assert f"no space left on the disk of {cache}" in error
        assert not [path.name for path in cache.iterdir() if path.name.startswith(".")]

        assert _mount(cache, "remount", "size=10m")  # space again, what was written kept
        status, summary = run_json(capsys, demo_copy, "--select", "latent_cache")
        assert status == 0, summary["latent_cache"]["errors"]
        assert len(summary["latent_cache"]["materialized"]) == 5
    finally:
        subprocess.run(["umount", str(cache)], check=False)
