"""What `wan-lora run` tells the user about a failed or interrupted step."""

import dagster as dg

from wan_lora_dagster.runner import failure_messages, was_interrupted


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
