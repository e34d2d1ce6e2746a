"""The studio's update button is the command line's `+training_set` run: after one caption is
saved in the page it re-encodes that one text, and no latent."""

import pytest

from wan_lora_dagster.project import open_project
from wan_lora_dagster.studio.captions import CaptionIndex
from wan_lora_dagster.studio.updates import Updater

pytestmark = pytest.mark.slow  # caches the demo's clips first: minutes on a loaded machine
UPDATE_SECONDS = 600  # a bound for a stuck run, not a timing: the update takes seconds


@pytest.fixture
def demo_with_caches(cached_demo, copy_project):
    """A copy of the demo made up to its training set (tests/conftest.py)."""
    return copy_project(cached_demo)


def test_the_update_after_a_save_encodes_one_text_and_no_latent(demo_with_caches):
    project = open_project(demo_with_caches)
    index = CaptionIndex(project)
    card = index.save("drift", "demostyle, a hand caption", index.card("drift").hash)
    assert card.sync == "unsynced"
    updater = Updater(project, on_done=index.reload)
    assert updater.start()
    state = updater.wait(UPDATE_SECONDS)
    assert not state["running"] and not state["error"]
    made = {asset: stage["made"] for asset, stage in state["summary"].items()}
    assert made["captions"] == ["drift"] and made["text_cache"] == ["drift"]
    assert made["latent_cache"] == [] and made["clips"] == []
    assert index.card("drift").sync == "fresh"  # the page shows what the update made
