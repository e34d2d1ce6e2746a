"""Clips grouped into batches (Dagster's partitions): stable when one range comes or goes."""

from wan_lora_dagster.pipeline.batches import TARGET_BATCH_SIZE, batch_items, identity_batches

IDS = [f"film_{index * 1000}-{index * 1000 + 500}" for index in range(3000)]


def test_batches_cover_every_item_once_in_order_at_about_the_target_size():
    batches = batch_items(IDS)
    assert batches.items(batches.keys) == IDS
    assert all(batches.members[batches.batch_of[item]].count(item) == 1 for item in IDS)
    assert TARGET_BATCH_SIZE / 3 < len(IDS) / len(batches.keys) < 3 * TARGET_BATCH_SIZE


def test_adding_or_removing_one_item_changes_only_its_own_batch():
    before = batch_items(IDS)
    added = batch_items([*IDS[:1500], "film_1500100-1500200", *IDS[1500:]])
    removed = batch_items(IDS[:700] + IDS[701:])
    for after in (added, removed):
        changed = [key for key in after.keys if after.members[key] != before.members.get(key)]
        assert len(changed) <= 2  # its batch, and the next one if the item started a batch


def test_a_new_film_starts_a_new_batch():
    batches = batch_items(["a1", "a2", "b1", "b2"], groups=["a", "a", "b", "b"])
    assert batches.members == {"a1": ["a1", "a2"], "b1": ["b1", "b2"]}


def test_a_batch_version_changes_with_any_of_its_items_versions():
    batches = batch_items(["a", "b", "c"])
    before = batches.versions({"a": "1", "b": "1", "c": "1"})
    after = batches.versions({"a": "1", "b": "2", "c": "1"})
    assert before != after and list(after) == ["a"]


def test_checkpoints_are_batches_of_one():
    assert identity_batches(["e2", "e4"]).members == {"e2": ["e2"], "e4": ["e4"]}
