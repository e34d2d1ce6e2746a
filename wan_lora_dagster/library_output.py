"""Keeping the libraries' chatter out of the terminal of `wan-lora run` and `wan-lora demo`.

transformers, diffusers and huggingface_hub draw their own progress bars (loading weights,
writing shards, loading pipeline components) and print notices through handlers of their own;
bitsandbytes logs warnings that, with no handler, Python's last-resort handler prints.
In our commands the terminal shows our bars and summaries: their bars are switched off, and
their log records go on through Python logging only, which Dagster records in the run log
(`managed_python_loggers` in the project's dagster.yaml) where the UI shows them.
"""

from __future__ import annotations

import logging
import os

# bitsandbytes warns on import, on every run, on a CPU with AVX512-BF16 that lacks the optional
# `kernels` package ("Failed to load CPU gemm_4bit_forward"): nothing for our user to act on.
CHATTY_LOGGERS = ("transformers", "diffusers", "huggingface_hub", "bitsandbytes")


def quiet_libraries() -> None:
    """Switch off the libraries' progress bars and their own terminal handlers (idempotent).

    Called where a step loads models (the captioner and engine resources), not when a run
    starts: importing diffusers and transformers takes 2-3 s that a run of `clips`, `wan-lora
    status` and a run with nothing to do need not pay.
    """
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # for processes started later
    from diffusers.utils import logging as diffusers_logging
    from huggingface_hub.utils import disable_progress_bars
    from transformers.utils import logging as transformers_logging

    disable_progress_bars()
    for library in (transformers_logging, diffusers_logging):
        library.disable_progress_bar()
        library.disable_default_handler()
        library.enable_propagation()
    for name in CHATTY_LOGGERS:
        logger = logging.getLogger(name)
        # Without any handler on the way to the root, Python's last-resort handler would print
        # warnings to stderr after all.
        if not any(isinstance(handler, logging.NullHandler) for handler in logger.handlers):
            logger.addHandler(logging.NullHandler())
