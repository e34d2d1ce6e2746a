"""Cache jobs shared over devices by the work they cost (frames x pixels), not by their count: a
device handed the 720p clips must not finish last while the others wait."""

from __future__ import annotations

import pytest

from wan_lora_dagster.engines.base import LatentJob
from wan_lora_dagster.engines.devices import shares, split_over_devices
from wan_lora_dagster.engines.multi_device import latent_group_cost
from wan_lora_dagster.media.synthetic import make_synthetic_still
from wan_lora_dagster.recipe.datasets import DatasetSection
from wan_lora_dagster.testing.device_workers import who_did_it
from wan_lora_dagster.testing.stripes import CLIP_FRAMES, CLIP_SIZE, ignore_progress

# (frames, width, height): a few long 720p clips among middling and many short small ones
CLIPS = [(81, 1280, 720)] * 3 + [(45, 832, 480)] * 7 + [(17, 480, 272)] * 30 + [(1, 960, 544)] * 5
JOBS = list(range(len(CLIPS)))


def cost(job: int) -> int:
    frames, width, height = CLIPS[job]
    return frames * width * height


def work_of(parts: list[list[int]]) -> list[int]:
    return [sum(cost(job) for job in part) for part in parts]


@pytest.mark.parametrize("devices", [2, 3, 4, 8])
def test_every_device_gets_the_same_work_not_the_same_count(devices):
    parts = shares(JOBS, devices, cost)

    assert sorted(job for part in parts for job in part) == JOBS, "each job exactly once"
    assert all(part == sorted(part) for part in parts), "each share in the jobs' order"
    work, largest = work_of(parts), max(map(cost, JOBS))
    assert max(work) - min(work) <= largest  # the most one job can unbalance
    if devices <= 4:  # enough work for every device: even within 2 %
        assert max(work) <= 1.02 * min(work)
    else:  # three 720p clips for eight devices: the longest share is one clip, no more
        assert max(work) == largest
    by_count = work_of(shares(JOBS, devices))
    assert max(work) < max(by_count), "an even count leaves one device with more work"


def test_the_split_is_the_same_every_time_and_by_count_where_jobs_cost_the_same():
    assert shares(JOBS, 3, cost) == shares(list(JOBS), 3, cost)
    texts = [f"caption {n}" for n in range(11)]  # text jobs: every caption padded alike
    assert shares(texts, 3) == [texts[0::3], texts[1::3], texts[2::3]]


def test_a_latent_jobs_cost_is_the_frames_of_its_windows_times_the_pixels(tmp_path, make_clip):
    clip = make_clip(tmp_path / "clip.mp4", seed=1)
    still = make_synthetic_still(tmp_path / "still.png", (64, 48))
    head = DatasetSection(
        name="two", source="clips", resolution=(CLIP_SIZE, 16), target_frames=(5, CLIP_FRAMES)
    )
    wide = DatasetSection(name="wide", source="stills", resolution=(64, 48))
    pixels = CLIP_SIZE * 16

    assert latent_group_cost([LatentJob("c", clip, head, tmp_path)]) == (5 + CLIP_FRAMES) * pixels
    assert latent_group_cost([LatentJob("s", still, wide, tmp_path)]) == 64 * 48
    both = [LatentJob("c", clip, head, tmp_path), LatentJob("c", clip, wide, tmp_path)]
    assert latent_group_cost(both) == (5 + CLIP_FRAMES) * pixels + 64 * 48


def test_the_workers_get_the_shares_of_even_work():
    """One costly item alone on one device, the four cheap ones on the other."""
    costs = {"long": 4, "a": 1, "b": 1, "c": 1, "d": 1}
    done = split_over_devices(["cpu", "cpu"], list(costs), who_did_it, ignore_progress, costs.get)

    processes = {item: pid for item, (_device, pid) in done.items()}
    alone = [item for item, pid in processes.items() if pid == processes["long"]]
    assert alone == ["long"]
    assert len({processes[item] for item in "abcd"}) == 1
