"""`wan-lora status` names every item that is not fresh, and exits non-zero on problems."""

from pathlib import Path

from wan_lora_dagster.pipeline.status_report import asset_status, exit_status, text_view
from wan_lora_dagster.problems import Problems


def test_every_item_not_fresh_is_named_by_state():
    status = asset_status({"a": "fresh", "b": "unsynced", "c": "failed", "d": "missing"})

    assert status == {
        "fresh": 1,
        "unsynced": 1,
        "missing": 1,
        "failed": 1,
        "partitions": {"unsynced": ["b"], "missing": ["d"], "failed": ["c"]},
    }


def test_the_text_view_names_a_few_per_line_and_counts_the_rest():
    clips = asset_status({f"clip{number:02d}": "failed" for number in range(12)})
    checkpoints = asset_status({"run-e0004": "fresh", "run-e0008": "missing"})

    lines = text_view({"clips": clips, "lora_checkpoints": checkpoints}).splitlines()

    assert lines[1].split() == ["clips", "0", "0", "0", "12"]
    assert lines[3] == "clips failed: " + ", ".join(f"clip{n:02d}" for n in range(10)) + (
        " and 2 more"
    )
    assert lines[4] == "lora_checkpoints not made yet: run-e0008"


def test_status_exits_non_zero_for_a_problem_or_a_failed_item_only():
    fresh, missing = asset_status({"a": "fresh"}), asset_status({"a": "missing"})
    warned, broken = Problems(), Problems()
    warned.warning(Path("films/lonely.mp4"), None, "has no ranges file")
    broken.error(Path("ranges/a.txt"), 3, "ends past the end of the film")

    assert exit_status({"clips": fresh}, warned) == 0
    assert exit_status({"clips": missing}, Problems()) == 0  # work left: `wan-lora run` does it
    assert exit_status({"clips": fresh}, broken) == 1
    assert exit_status({"clips": asset_status({"a": "failed"})}, Problems()) == 1
