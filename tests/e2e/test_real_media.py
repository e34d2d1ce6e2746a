"""Real films through `wan-lora run`: a damaged film fails its own clips and nothing else."""

import json

import pytest

from wan_lora_dagster.media.probe import probe_video
from wan_lora_dagster.scaffold import init_project
from wan_lora_dagster.testing.commands import run_json, wan_lora

RANGES = {
    "bbb_480p_30s.mp4": "1 3\n10.25 12.5 bunny_jump\n",
    "flipping_a_pancake.mkv": "0.5 +2\n",
    "video_90.mov": "0 0.1 sideways\n",
    "unordered.mov": "0 0.1 unordered\n",
    "corrupted.mp4": "3 4 damaged\n",
}


@pytest.fixture
def real_project(tmp_path, shared_media):
    project = init_project(tmp_path / "real")
    for film, ranges in RANGES.items():
        (project / "films" / film).symlink_to(shared_media / film)
        (project / "ranges" / f"{film.rsplit('.', 1)[0]}.txt").write_text(ranges)
    return project


def test_a_damaged_film_fails_its_own_clips_and_the_others_all_succeed(real_project, capsys):
    status, summary = run_json(capsys, real_project, "--select", "clips")
    assert status != 0, "a failed clip must make the command fail"
    assert summary["clips"]["failed"] == ["damaged"]
    assert sorted(summary["clips"]["materialized"]) == sorted(
        [
            "bbb_480p_30s_1000-3000",
            "bunny_jump",
            "flipping_a_pancake_500-2500",
            "sideways",
            "unordered",
        ]
    )
    assert "corrupted.mp4" in summary["clips"]["errors"]["damaged"]
    clips = real_project / "out" / "clips"
    assert probe_video(clips / "bbb_480p_30s_1000-3000.mp4", count_frames=True).num_frames == 32
    assert probe_video(clips / "bunny_jump.mp4", count_frames=True).num_frames == 36
    assert (
        probe_video(clips / "flipping_a_pancake_500-2500.mp4", count_frames=True).num_frames == 32
    )
    sideways = probe_video(clips / "sideways.mp4")
    assert sideways.height > sideways.width and sideways.rotation == 0, "video_90 comes out upright"


def test_a_rerun_keeps_what_was_made_and_status_counts_the_failure(real_project, capsys):
    run_json(capsys, real_project, "--select", "clips")
    good = real_project / "out" / "clips" / "bunny_jump.mp4"
    made_at = good.stat().st_mtime_ns
    status, summary = run_json(capsys, real_project, "--select", "clips")
    assert status != 0
    assert summary["clips"]["materialized"] == [] and summary["clips"]["skipped_fresh"] == 5
    assert summary["clips"]["failed"] == ["damaged"]
    assert good.stat().st_mtime_ns == made_at
    _, out = wan_lora(capsys, "status", "--project", real_project, "--json")
    assert json.loads(out)["clips"] == {
        "fresh": 5,
        "unsynced": 0,
        "missing": 0,
        "failed": 1,
        "partitions": {"unsynced": [], "missing": [], "failed": ["damaged"]},
    }
