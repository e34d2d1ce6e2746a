"""What a finished Dagster run says of its partitions: whether it was interrupted, and each
failed partition's error in the user's words (for `wan-lora run`'s summary and the workers).

Part of the Dagster layer.
"""

from __future__ import annotations

import dagster as dg

from wan_lora_dagster.errors import UserError

INTERRUPTS = {"DagsterExecutionInterruptedError", "KeyboardInterrupt", "EngineCancelled"}


def was_interrupted(result: dg.ExecuteInProcessResult) -> bool:
    """Whether a step failed because the run was interrupted or its engine work cancelled, or
    the run stopped before its steps (a batch revoked before a worker took it)."""
    return interrupted_by(result.get_step_failure_events() + result.filter_events(_is_run_failure))


def _is_run_failure(event: dg.DagsterEvent) -> bool:
    return event.is_run_failure


def interrupted_by(failures: list[dg.DagsterEvent]) -> bool:
    """Whether one of these step or run failures was an interrupt or a cancel."""
    for event in failures:
        error = (
            event.step_failure_data.error if event.is_step_failure else event.job_failure_data.error
        )
        while error is not None:
            if error.cls_name in INTERRUPTS:
                return True
            error = error.cause or error.context
    return False


def failure_messages(result: dg.ExecuteInProcessResult, keys: list[str]) -> dict[str, str]:
    """Partition -> error, from the run's failed steps (a whole-step error applies to all keys)."""
    messages: dict[str, str] = {}
    for event in result.get_step_failure_events():
        failure = event.step_failure_data
        metadata = failure.user_failure_data.metadata if failure.user_failure_data else {}
        for key in keys:
            value = metadata.get(key)
            messages[key] = value.value if value is not None else _root_cause(failure.error)
    return messages


def _root_cause(error) -> str:
    """The innermost error's message: Dagster wraps an asset's own exception in a step error,
    whose message says only which step it was. A UserError is as deep as it goes: it was raised
    from a library's error (a full disk's Errno 28) to say it in the user's words, shown
    without its class's name as the command shows it."""
    user_errors = _names_of_subclasses(UserError)
    while error.cause is not None and error.cls_name not in user_errors:
        error = error.cause
    message = error.message.strip()
    return message.split(": ", 1)[-1] if error.cls_name in user_errors else message


def _names_of_subclasses(cls: type) -> set[str]:
    return {cls.__name__}.union(*(_names_of_subclasses(sub) for sub in cls.__subclasses__()))
