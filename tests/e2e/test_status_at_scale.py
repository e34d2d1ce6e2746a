"""`wan-lora status` checks items on every core: the same answers as checking them one by one,
and no fork where another thread could leave a lock held in the copy."""

import json
import os
import subprocess
import sys
import threading

import pytest

from wan_lora_dagster.pipeline import status_at_scale
from wan_lora_dagster.pipeline.asset_table import STAGES
from wan_lora_dagster.pipeline.catalog import load_catalog
from wan_lora_dagster.pipeline.status import Expectations
from wan_lora_dagster.pipeline.status_at_scale import check_items_on_cores
from wan_lora_dagster.project import open_project

pytestmark = pytest.mark.slow

# Run in a fresh process of one thread, as the `wan-lora status` command is: only there it forks.
CHECK_ON_CORES = """
import json, sys
from pathlib import Path
from wan_lora_dagster.pipeline import status_at_scale
from wan_lora_dagster.pipeline.catalog import load_catalog
from wan_lora_dagster.pipeline.asset_table import STAGES
from wan_lora_dagster.pipeline.status import Expectations
from wan_lora_dagster.project import open_project

assert status_at_scale._can_fork()
expectations = Expectations(load_catalog(open_project(Path(sys.argv[1]))))
status_at_scale.check_items_on_cores(expectations, workers=3, min_items=0)
states = {
    asset: {key: expectations.state(asset, key) for key in expectations.partitions(asset)}
    for asset in STAGES
}
print(json.dumps({"states": states, "training_set": expectations.fingerprint("training_set")}))
"""


def _states(expectations: Expectations) -> dict[str, dict[str, str]]:
    return {
        asset: {key: expectations.state(asset, key) for key in expectations.partitions(asset)}
        for asset in STAGES
    }


def _damage(project) -> None:
    record = json.loads((project / "out/records/latent_cache/drift.json").read_text())
    cache = project / record["sections"]["video"]["files"][0]
    cache.write_bytes(cache.read_bytes()[:100])  # truncated: unsynced
    (project / "out/records/text_cache/shapes_500-3000.json").unlink()  # missing
    (project / "captions" / "shapes_5000-7500.txt").write_text("edited by hand\n")


def test_items_checked_in_forked_workers_give_the_states_of_one_process(demo_copy):
    _damage(demo_copy)
    alone = Expectations(load_catalog(open_project(demo_copy)))

    done = subprocess.run(
        [sys.executable, "-c", CHECK_ON_CORES, str(demo_copy)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )

    assert done.returncode == 0, done.stderr
    on_cores = json.loads(done.stdout)
    assert on_cores["states"] == _states(alone)
    assert on_cores["states"]["latent_cache"]["drift"] == "unsynced"
    assert on_cores["states"]["text_cache"]["shapes_500-3000"] == "missing"
    assert on_cores["states"]["captions"]["shapes_5000-7500"] == "unsynced"
    assert on_cores["training_set"] == alone.fingerprint("training_set")


def test_a_process_with_other_threads_checks_its_items_itself(built_demo, monkeypatch):
    def no_fork():
        raise AssertionError("forked beside another thread")

    monkeypatch.setattr(status_at_scale.os, "fork", no_fork)
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        expectations = Expectations(load_catalog(open_project(built_demo)))
        check_items_on_cores(expectations, workers=2, min_items=0)
    finally:
        stop.set()
        other.join()

    assert set(_states(expectations)["clips"].values()) == {"fresh"}
