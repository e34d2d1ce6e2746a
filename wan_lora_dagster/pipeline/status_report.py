"""What `wan-lora status` shows: per asset, how many items are in each state, and which.

An item is fresh, unsynced (made, but from other inputs, or its file is damaged), missing (not
made yet: never tried, or its run was interrupted or killed) or failed (its last try ended in an
error). Every one that is not fresh is named: in full in --json, a few per line in the text view.
"""

from __future__ import annotations

from wan_lora_dagster.problems import Problems

STATES = ("fresh", "unsynced", "missing", "failed")
NAMED_STATES = STATES[1:]
SAID = {"unsynced": "unsynced", "missing": "not made yet", "failed": "failed"}
NAMES_PER_LINE = 10


def asset_status(states: dict[str, str]) -> dict:
    """Item -> state, as counts per state and the names of the items not fresh."""
    counts = dict.fromkeys(STATES, 0)
    named: dict[str, list[str]] = {state: [] for state in NAMED_STATES}
    for item, state in states.items():
        counts[state] += 1
        if state in named:
            named[state].append(item)
    return {**counts, "partitions": named}


def text_view(summary: dict[str, dict]) -> str:
    """The counts as a table, then the items not fresh, by asset and state."""
    lines = [f"{'asset':18} {'fresh':>6} {'unsynced':>8} {'missing':>7} {'failed':>6}"]
    for asset, status in summary.items():
        lines.append(
            f"{asset:18} {status['fresh']:6d} {status['unsynced']:8d} "
            f"{status['missing']:7d} {status['failed']:6d}"
        )
    for asset, status in summary.items():
        for state, items in status["partitions"].items():
            if items:
                lines.append(f"{asset} {SAID[state]}: {_names(items)}")
    return "\n".join(lines)


def _names(items: list[str]) -> str:
    shown = ", ".join(items[:NAMES_PER_LINE])
    more = len(items) - NAMES_PER_LINE
    return f"{shown} and {more} more" if more > 0 else shown


def exit_status(summary: dict[str, dict], problems: Problems) -> int:
    """1 when something needs the user: a problem in the films, ranges or captions, or an item
    whose last try failed; else 0 (work left to do is no problem: `wan-lora run` does it)."""
    return 1 if problems.errors or any(status["failed"] for status in summary.values()) else 0
