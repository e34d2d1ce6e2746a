"""A Ctrl-C inside a database close: the run stops in order and nothing prints a traceback of
it; a close that fails for any other reason is still logged (interrupt_logging.py)."""

import logging

import pytest
import sqlalchemy.pool
from dagster._core.errors import DagsterExecutionInterruptedError

from wan_lora_dagster.interrupt_logging import hide_interrupted_closes

pytestmark = pytest.mark.fast


class ConnectionWhoseCloseRaises:
    """A DB-API connection as the pool sees it: the close is where the signal lands."""

    def __init__(self, error: BaseException):
        self.error = error

    def rollback(self) -> None:
        pass

    def close(self) -> None:
        raise self.error


def close_through_a_pool(pool_class, error: BaseException) -> None:
    pool = pool_class(lambda: ConnectionWhoseCloseRaises(error))
    pool.connect().close()  # NullPool closes it at once; the others when disposed
    pool.dispose()


@pytest.mark.parametrize("pool_class", [sqlalchemy.pool.NullPool, sqlalchemy.pool.QueuePool])
@pytest.mark.parametrize(
    "interrupt", [KeyboardInterrupt(), DagsterExecutionInterruptedError()], ids=type
)
def test_an_interrupted_close_is_raised_on_and_not_logged(caplog, pool_class, interrupt):
    hide_interrupted_closes()
    # the run still sees the interrupt, and stops
    with caplog.at_level(logging.DEBUG, logger="sqlalchemy"), pytest.raises(type(interrupt)):
        close_through_a_pool(pool_class, interrupt)
    assert [record for record in caplog.records if record.exc_info] == []


def test_a_close_that_fails_otherwise_is_still_logged(caplog):
    hide_interrupted_closes()
    hide_interrupted_closes()  # twice, as two runners in one process do: one filter
    with caplog.at_level(logging.WARNING, logger="sqlalchemy"):
        close_through_a_pool(sqlalchemy.pool.NullPool, OSError("disk I/O error"))
    assert [record.getMessage()[:28] for record in caplog.records] == [
        "Exception closing connection"
    ]
    assert "disk I/O error" in caplog.text
    assert len(logging.getLogger("sqlalchemy.pool.impl.NullPool").filters) == 1
