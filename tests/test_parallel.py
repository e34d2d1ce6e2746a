"""Per-item work over several threads: each item's result or its own error, in the given order."""

import threading
import time

import pytest

from wan_lora_dagster.errors import MediaError
from wan_lora_dagster.pipeline.parallel import make_groups_in_parallel, make_in_parallel


def test_results_keep_the_order_of_the_keys_and_a_user_error_fails_only_its_item():
    started = threading.Barrier(2, timeout=10)  # both workers busy at once, or this test fails

    def make(key: str) -> str:
        if key in ("a", "b"):
            started.wait()
        if key == "c":
            raise MediaError(f"cannot cut {key}")
        return key.upper()

    seen = []
    result = make_in_parallel(
        ["a", "b", "c", "d"], make, workers=2, on_done=lambda *done: seen.append(done)
    )

    assert list(result.made.items()) == [("a", "A"), ("b", "B"), ("d", "D")]
    assert result.failures == {"c": "cannot cut c"}
    assert sorted(count for _, count, _ in seen) == [1, 2, 3, 4]
    assert {(key, error) for key, _, error in seen} == {
        ("a", None),
        ("b", None),
        ("c", "cannot cut c"),
        ("d", None),
    }


@pytest.mark.parametrize("workers", [1, 2])
def test_any_other_error_stops_the_work_and_drops_the_items_not_started(workers):
    made = []

    def make(key: str) -> str:
        if key == "0":
            raise RuntimeError("a bug, not a bad film")
        time.sleep(0.02)  # 200 items would take 4 s: the error ends the work long before
        made.append(key)
        return key

    with pytest.raises(RuntimeError, match="a bug"):
        make_in_parallel([str(index) for index in range(200)], make, workers=workers)
    assert len(made) < 100


def test_one_worker_makes_items_in_turn_in_the_callers_thread():
    threads = set()
    result = make_in_parallel(["x", "y"], lambda key: threads.add(threading.get_ident()) or key)
    assert result.made == {"x": "x", "y": "y"}
    assert len(threads) == 1


def test_a_group_made_together_fails_per_key_or_whole_and_keeps_the_order_of_the_keys():
    def make_group(group: list[str]) -> dict[str, object]:
        if group == ["e"]:
            raise MediaError("the film cannot be opened")
        return {key: MediaError(f"bad {key}") if key == "b" else key.upper() for key in group}

    seen = []
    result = make_groups_in_parallel(
        [["c", "a", "b"], ["e"], ["d"]], make_group, workers=2, on_done=lambda *d: seen.append(d)
    )

    assert list(result.made.items()) == [("c", "C"), ("a", "A"), ("d", "D")]
    assert result.failures == {"b": "bad b", "e": "the film cannot be opened"}
    assert sorted(count for _, count, _ in seen) == [1, 2, 3, 4, 5]
