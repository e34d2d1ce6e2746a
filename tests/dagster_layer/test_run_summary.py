"""What `wan-lora run` tells the user about a failed or interrupted step."""

import subprocess
import sys

import dagster as dg

from wan_lora_dagster.run_outcomes import failure_messages, was_interrupted
from wan_lora_dagster.scaffold import init_project


def _run_failing_with(error: BaseException) -> dg.ExecuteInProcessResult:
    @dg.asset
    def broken():
        raise error

    return dg.materialize([broken], raise_on_error=False)


def test_an_unexpected_error_is_shown_by_its_own_message_not_dagsters_wrapper():
    result = _run_failing_with(TypeError("Wrong type for fps: <class 'int'>"))
    assert failure_messages(result, ["clip-a"]) == {
        "clip-a": "TypeError: Wrong type for fps: <class 'int'>"
    }
    assert not was_interrupted(result)


def test_a_failure_that_names_its_partitions_keeps_each_message():
    failure = dg.Failure("2 failed", metadata={"a": "a.mp4: no video stream", "b": "b: too short"})
    result = _run_failing_with(failure)
    assert failure_messages(result, ["a", "b"]) == {
        "a": "a.mp4: no video stream",
        "b": "b: too short",
    }


def test_commands_opening_a_new_projects_instance_at_once_all_succeed(tmp_path):
    """`wan-lora ui` and `wan-lora run` started together on a fresh project."""
    init_project(tmp_path / "fresh")
    opener = (
        "import sys; from wan_lora_dagster.project import open_project; "
        "from wan_lora_dagster.instance.project_instance import open_instance; "
        "open_instance(open_project(sys.argv[1])).get_runs()"
    )
    openers = [
        subprocess.Popen(
            [sys.executable, "-c", opener, str(tmp_path / "fresh")],
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    errors = [opener.communicate(timeout=120)[1] for opener in openers]
    assert [opener.returncode for opener in openers] == [0] * 4, errors
