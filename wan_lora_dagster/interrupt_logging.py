"""A Ctrl-C that lands while SQLAlchemy closes a connection prints no traceback.

Dagster's SQLite storages open and close a connection for nearly every event, so a run spends
much of its time inside `connection.close()`. Dagster turns a Ctrl-C into an exception raised
from its signal handler, wherever the run is; when that is a close, SQLAlchemy's pool logs
"Exception closing connection" with the interrupt's traceback, then raises the interrupt on. The
run stops in order and the command says so; the traceback only tells the user something crashed.
An interrupt is never an `Exception` (Dagster's and Python's are `BaseException`s), and the pool
raises every such one on after logging it, so nothing is lost by not printing it. Any other
error of a pool still prints.
"""

from __future__ import annotations

import logging

from sqlalchemy.pool import Pool


class _NotAnInterrupt(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        raised = record.exc_info[1] if record.exc_info else None
        return raised is None or isinstance(raised, Exception)


NOT_AN_INTERRUPT = _NotAnInterrupt()


def hide_interrupted_closes() -> None:
    """On the logger of every kind of pool (SQLite's and PostgreSQL's), where its records are
    made: a filter there holds whatever handlers the process has."""
    for pool_class in _subclasses(Pool):
        # a pool logs to its class's logger, named as SQLAlchemy's logging documentation says
        logger = logging.getLogger(f"{pool_class.__module__}.{pool_class.__name__}")
        if NOT_AN_INTERRUPT not in logger.filters:
            logger.addFilter(NOT_AN_INTERRUPT)


def _subclasses(cls: type) -> list[type]:
    found = [cls]
    for subclass in cls.__subclasses__():
        found.extend(_subclasses(subclass))
    return found
