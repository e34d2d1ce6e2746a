"""Every benchmark script imports on this machine: a module moved inside the package must not
leave a GPU benchmark broken until its next (scarce, paid) GPU run finds it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

# one process imports them all (a process each cost the suite a minute); prints what failed
IMPORT_EACH = """
import importlib, sys, traceback
sys.path[:0] = [sys.argv[1]]
for name in sys.argv[2:]:
    try:
        importlib.import_module(name)
    except Exception:
        print(f"benchmarks/{name}.py:", traceback.format_exc(limit=-2))
"""


def test_every_benchmark_script_imports():
    scripts = sorted(path.stem for path in BENCHMARKS.glob("*.py"))
    command = [sys.executable, "-c", IMPORT_EACH, str(BENCHMARKS), *scripts]
    result = subprocess.run(command, capture_output=True, text=True, cwd=BENCHMARKS.parent)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "", f"benchmark scripts that do not import:\n{result.stdout}"
