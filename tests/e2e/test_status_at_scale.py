"""`wan-lora status` checks items on every core: the same answers as checking them one by one."""

import json

import pytest

from wan_lora_dagster.pipeline.catalog import load_catalog
from wan_lora_dagster.pipeline.status import ASSET_ORDER, Expectations
from wan_lora_dagster.pipeline.status_at_scale import check_items_on_cores
from wan_lora_dagster.project import open_project

pytestmark = pytest.mark.slow


def _states(expectations: Expectations) -> dict[str, dict[str, str]]:
    return {
        asset: {key: expectations.state(asset, key) for key in expectations.partitions(asset)}
        for asset in ASSET_ORDER
    }


def test_items_checked_in_forked_workers_give_the_states_and_manifest_of_one_process(demo_copy):
    record = json.loads((demo_copy / "out/records/latent_cache/drift.json").read_text())
    cache = demo_copy / record["sections"]["video"]["files"][0]
    cache.write_bytes(cache.read_bytes()[:100])  # truncated: unsynced
    (demo_copy / "out/records/text_cache/shapes_500-3000.json").unlink()  # missing
    caption = demo_copy / "captions" / "shapes_5000-7500.txt"
    caption.write_text("edited by hand\n")  # its caption, and so its text cache, unsynced
    catalog = load_catalog(open_project(demo_copy))

    alone = Expectations(catalog)
    on_cores = Expectations(catalog)
    check_items_on_cores(on_cores, workers=3, min_items=0)

    states = _states(on_cores)
    assert states == _states(alone)
    assert states["latent_cache"]["drift"] == "unsynced"
    assert states["text_cache"]["shapes_500-3000"] == "missing"
    assert states["captions"][caption.stem] == "unsynced"
    assert on_cores.fingerprint("training_set") == alone.fingerprint("training_set")


def test_a_fully_made_project_has_the_same_manifest_checked_on_cores(built_demo):
    catalog = load_catalog(open_project(built_demo))
    on_cores = Expectations(catalog)

    check_items_on_cores(on_cores, workers=2, min_items=0)

    assert set(_states(on_cores)["clips"].values()) == {"fresh"}
    assert on_cores.manifest.version == Expectations(catalog).manifest.version
