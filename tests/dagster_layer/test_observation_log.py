"""Observations written in one transaction read back exactly as Dagster's own one-by-one writes:
the same event rows, tags and asset entries, so the UI's staleness and the next sync see them."""

import sqlite3

import dagster as dg

from wan_lora_dagster.instance.observation_log import DATA_VERSION_TAG, record_observations
from wan_lora_dagster.instance.project_instance import open_instance
from wan_lora_dagster.project import open_project
from wan_lora_dagster.scaffold import init_project

VERSIONS = {"batch_a": "v1", "batch_b": "v2", "batch_c": "v3"}


def _instance(tmp_path, name: str) -> dg.DagsterInstance:
    return open_instance(open_project(init_project(tmp_path / name)))


def _index_rows(instance: dg.DagsterInstance, query: str) -> list[tuple]:
    index = instance.root_directory + "/history/runs/index.db"
    with sqlite3.connect(index) as connection:
        return connection.execute(query).fetchall()


def test_batched_observations_match_dagsters_own(tmp_path):
    ours, theirs = _instance(tmp_path, "ours"), _instance(tmp_path, "theirs")

    record_observations(ours, "films", VERSIONS)
    for key, version in VERSIONS.items():
        theirs.report_runless_asset_event(
            dg.AssetObservation("films", partition=key, tags={DATA_VERSION_TAG: version})
        )

    for instance in (ours, theirs):
        tags = instance.event_log_storage.get_latest_tags_by_partition(
            dg.AssetKey("films"), dg.DagsterEventType.ASSET_OBSERVATION, [DATA_VERSION_TAG]
        )
        assert tags == {key: {DATA_VERSION_TAG: v} for key, v in VERSIONS.items()}
        records = instance.fetch_observations(dg.AssetKey("films"), limit=10).records
        assert sorted(r.event_log_entry.asset_observation.partition for r in records) == sorted(
            VERSIONS
        )
    for query in (
        "select run_id, dagster_event_type, asset_key, partition from event_logs order by id",
        "select asset_key, key, value from asset_event_tags order by id",
        "select asset_key from asset_keys",
    ):
        assert _index_rows(ours, query) == _index_rows(theirs, query), query


def test_a_later_observation_wins(tmp_path):
    instance = _instance(tmp_path, "project")
    record_observations(instance, "films", VERSIONS)
    record_observations(instance, "films", {"batch_b": "v2-edited"})

    tags = instance.event_log_storage.get_latest_tags_by_partition(
        dg.AssetKey("films"), dg.DagsterEventType.ASSET_OBSERVATION, [DATA_VERSION_TAG]
    )
    assert tags["batch_b"] == {DATA_VERSION_TAG: "v2-edited"}
    assert tags["batch_a"] == {DATA_VERSION_TAG: "v1"}
