"""Starting commands in tests as a user's shell starts them."""

import signal


def default_signals() -> None:
    """`preexec_fn` for a command: SIGINT and SIGTERM at their defaults. A pytest-xdist worker
    ignores SIGINT, and Dagster, once it has run anything in the worker, gives SIGTERM SIGINT's
    handling: a child would inherit both as ignored, and neither Ctrl-C nor a terminate would
    reach it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
