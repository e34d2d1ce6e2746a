"""A disk fills up in each stage of the demo graph: the stage fails saying so and naming the
folder, leaves no half-written or temporary file, fails nothing a later stage made, and the next
run, with space again, makes out/ as an unfaulted run made it.

The small disk is a tmpfs mounted over the stage's folder, which needs root; where mounting is
not allowed, tests/formats/test_writers_on_a_full_disk.py shows the writers under a file-size
limit.
"""

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from wan_lora_dagster.testing.commands import run_json

pytestmark = pytest.mark.slow
FULL = "4k"  # one page: no clip, cache, checkpoint or video of the demo fits beside what is kept
ROOM = "10m"


@dataclass(frozen=True)
class Fault:
    stage: str  # the asset run
    folder: str  # the folder whose disk is full, under the project
    made: tuple[str, ...]  # what the stage made, removed first so that it is made again
    size: str = FULL


CLIPS_MADE = ("out/clips/*", "out/thumbnails/*", "out/records/clips/*")
FAULTS = {
    "clips": Fault("clips", "out/clips", CLIPS_MADE),
    "clip thumbnails": Fault("clips", "out/thumbnails", CLIPS_MADE),
    "captions": Fault(
        "captions",
        "captions",
        ("captions/*", "out/records/captions/*", "out/records/captioner_output/*"),
    ),
    "text_cache": Fault(
        "text_cache", "out/cache/text", ("out/cache/text/*", "out/records/text_cache/*")
    ),
    "latent_cache": Fault(
        "latent_cache", "out/cache/video", ("out/cache/video/*", "out/records/latent_cache/*")
    ),
    "training_set": Fault(
        "training_set", "out/training_set", ("out/training_set/*", "out/records/training_set/*")
    ),
    "lora_checkpoints": Fault(
        "lora_checkpoints",
        "out/checkpoints",
        ("out/checkpoints/*", "out/records/lora_checkpoints/*", "out/logs/*"),
    ),
    "eval_videos": Fault("eval_videos", "out/eval", ("out/eval/*", "out/records/eval_videos/*")),
    "best_lora": Fault("best_lora", "out/best", ("out/best/*", "out/records/best_lora/*")),
    # the tiny Wan model is built by the first stage that needs it; the tiny captioner stays
    "tiny model": Fault(
        "text_cache",
        "out/models",
        ("out/models/tiny", "out/cache/text/*", "out/records/text_cache/*"),
        size="256k",  # the captioner's 172 KiB fit, the model's 330 KiB do not
    ),
}


def _mount(folder: Path, *options: str) -> bool:
    command = ["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(folder)]
    return subprocess.run(command, capture_output=True).returncode == 0


def _remove(project: Path, patterns: tuple[str, ...]) -> None:
    for pattern in patterns:
        for path in project.glob(pattern):
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def _fill_small_disk(folder: Path, size: str, aside: Path) -> bool:
    """Mount a tmpfs of `size` over `folder`, holding what the folder held."""
    shutil.move(folder, aside)
    folder.mkdir()
    if not _mount(folder, f"size={size}", "mode=755"):
        folder.rmdir()
        shutil.move(aside, folder)
        return False
    shutil.copytree(aside, folder, dirs_exist_ok=True)
    return True


def _temporaries(project: Path) -> list[str]:
    """Dot files and folders our writers name their temporaries with (out/.state is a cache)."""
    return [
        str(path.relative_to(project))
        for folder in (project / "out", project / "captions")
        for path in folder.rglob(".*")
        if path.name != ".state"
    ]


@pytest.mark.parametrize(
    "fault",
    [pytest.param(fault, id=name) for name, fault in FAULTS.items()],
)
def test_a_full_disk_fails_its_stage_cleanly_and_the_next_run_makes_the_same_files(
    built_demo, demo_copy, made_contents, capsys, tmp_path, fault
):
    folder = demo_copy / fault.folder
    _remove(demo_copy, fault.made)
    if not _fill_small_disk(folder, fault.size, tmp_path / "aside"):
        pytest.skip("mounting a small tmpfs needs root")
    try:
        status, summary = run_json(capsys, demo_copy, "--select", fault.stage)
        assert status == 1
        stage = summary[fault.stage]
        assert stage["failed"], stage  # all, or all but what fitted: those stay made
        for error in stage["errors"].values():
            assert f"no space left on the disk of {folder}" in error
        assert _temporaries(demo_copy) == [], "a half-written or temporary file was left"

        assert _mount(folder, "remount", f"size={ROOM}")  # space again, what was written kept
        status, summary = run_json(capsys, demo_copy, "--select", fault.stage)
        assert status == 0, summary[fault.stage]["errors"]
        assert _temporaries(demo_copy) == []
        assert made_contents(demo_copy) == made_contents(built_demo)
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def test_items_a_full_disk_stopped_fail_alone_and_block_only_their_own_later_stages(
    demo_copy, capsys, tmp_path
):
    """Thumbnails fill their disk: the clips made go on through captions and caches, the others
    wait for their clips; no later stage fails because an earlier one did."""
    per_clip = ("clips", "captions", "text_cache", "latent_cache")
    _remove(demo_copy, (*CLIPS_MADE, *(f"out/records/{asset}/*" for asset in per_clip[1:])))
    thumbnails = demo_copy / "out" / "thumbnails"
    if not _fill_small_disk(thumbnails, FULL, tmp_path / "aside"):
        pytest.skip("mounting a small tmpfs needs root")
    try:
        status, summary = run_json(capsys, demo_copy, "--select", ",".join(per_clip))
    finally:
        subprocess.run(["umount", str(thumbnails)], check=False)
    assert status == 1
    clips = summary["clips"]
    assert clips["materialized"] and clips["failed"], clips  # a strip or two fit, not five
    for error in clips["errors"].values():
        assert f"no space left on the disk of {thumbnails}" in error
    for asset in per_clip[1:]:
        stage = summary[asset]
        assert stage["failed"] == [], (asset, stage["errors"])
        assert sorted(stage["materialized"]) == sorted(clips["materialized"]), asset
        assert sorted(stage["blocked"]) == sorted(clips["failed"]), asset
