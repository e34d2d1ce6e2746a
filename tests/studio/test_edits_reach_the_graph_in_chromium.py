"""What a person does in the studio's pages (Debian's Chromium) reaches what the graph makes:
a range added on the timeline is cut into its clip by the page's next update, and the checkpoint
pinned with "use this one" is the LoRA `best_lora` exports. On copies of the demo run through
eval, so that an update makes only what the edit changed."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from wan_lora_dagster.media.cut import expected_frame_count
from wan_lora_dagster.media.probe import probe_video
from wan_lora_dagster.pipeline.records import RecordStore
from wan_lora_dagster.testing.chromium import (
    CHROMIUM,
    PAGE_TIMEOUT_MS,
    serving,
)

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"Debian's Chromium is not installed at {CHROMIUM}"
)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is missing")
expect = sync_api.expect


pytestmark = [needs_chromium, pytest.mark.slow]  # runs the demo through eval first
UPDATE_SECONDS = 600  # a bound for a stuck update or run, not a timing: they take seconds
UPDATE_MS = UPDATE_SECONDS * 1000
CLIP_FPS = 16


@pytest.fixture
def project(tmp_path, evaluated_demo) -> Path:
    target = tmp_path / "demo"
    shutil.copytree(evaluated_demo, target, symlinks=True)
    return target


@pytest.fixture
def new_page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    yield context.new_page()
    context.close()


def test_a_range_added_on_the_timeline_is_cut_into_its_clip_by_the_next_update(new_page, project):
    ranges_file = project / "ranges" / "shapes.txt"
    before = ranges_file.read_text().split("\n")
    with serving(project) as studio:
        new_page.goto(studio.replace("/captions", "/ranges"))
        expect(new_page.locator("#timeline .range")).to_have_count(5)
        new_page.locator("#start").fill("22")
        new_page.locator("#end").fill("23.5")
        new_page.locator("#add").click()
        expect(new_page.locator("#timeline .range")).to_have_count(6)
        after = ranges_file.read_text().split("\n")
        assert [line for line in after if line not in before] == ["22 23.5"]

        new_page.goto(studio)
        expect(new_page.locator(".card")).to_have_count(6)
        new_page.locator("#update").click()
        state = new_page.locator("#update-state")
        expect(state).to_contain_text("updated:", timeout=UPDATE_MS)
        expect(state).to_contain_text("clips 1")  # the new range's, and no other

    clip = project / "out" / "clips" / "shapes_22000-23500.mp4"
    made = probe_video(clip, count_frames=True)
    assert made.num_frames == expected_frame_count(1.5, CLIP_FPS)
    assert made.duration == pytest.approx(1.5, abs=1 / CLIP_FPS)


def test_the_checkpoint_pinned_in_the_page_is_the_lora_best_lora_exports(new_page, project):
    records = RecordStore(project / "out" / "records")
    chosen_before = records.read("best_lora").checkpoint
    with serving(project) as studio:
        new_page.goto(studio.replace("/captions", "/checkpoints"))
        rows = new_page.locator("#eval-grid tr[id]")
        expect(rows).to_have_count(2)
        other = new_page.locator("#eval-grid tr[id]:not(.chosen)")
        key = other.get_attribute("id").removeprefix("row-")
        assert key != chosen_before
        other.get_by_role("button", name="use this one").click()
        expect(new_page.locator("#choice")).to_have_text(f"best_lora exports pinned: {key}")

    run = [sys.executable, "-m", "wan_lora_dagster.cli", "run", "--project", str(project)]
    done = subprocess.run(run, capture_output=True, text=True, timeout=UPDATE_SECONDS)
    assert done.returncode == 0, done.stdout + done.stderr
    best = records.read("best_lora")
    assert best.checkpoint == key
    pinned = project / records.read("lora_checkpoints", key).file
    exported = project / best.file
    assert _tensors_equal(load_file(exported), load_file(pinned))
    with safe_open(exported, "pt") as lora:
        assert lora.metadata()["wan_lora.checkpoint"] == key


def _tensors_equal(left: dict[str, torch.Tensor], right: dict[str, torch.Tensor]) -> bool:
    return left.keys() == right.keys() and all(torch.equal(left[k], right[k]) for k in left)
