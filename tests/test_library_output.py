"""The libraries' own notices stay out of the terminal once the models' libraries are quieted."""

import subprocess
import sys

# What bitsandbytes logs when it is imported on a CPU with AVX512-BF16 but without the optional
# `kernels` package: on such machines, on every training run (this one may lack the CPU feature).
BITSANDBYTES_WARNING = """
import logging
from wan_lora_dagster.library_output import quiet_libraries

quiet_libraries()
logging.getLogger("bitsandbytes.backends.cpu.ops").warning(
    "Failed to load CPU gemm_4bit_forward from kernels-community: %s", "no module kernels"
)
import bitsandbytes  # and whatever it says on this machine
"""


def test_bitsandbytes_warning_reaches_no_terminal():
    run = subprocess.run(
        [sys.executable, "-c", BITSANDBYTES_WARNING], capture_output=True, text=True, timeout=300
    )

    assert run.returncode == 0, run.stderr
    assert run.stdout + run.stderr == ""
