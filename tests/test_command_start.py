"""`wan-lora status` and a run with nothing to do start without torch: importing it costs a
command about 1.4 s (benchmarks/scale.py's fixed cost), and only the steps that train, encode or
caption need it."""

import subprocess
import sys

import pytest

from wan_lora_dagster.scaffold import init_project

pytestmark = pytest.mark.fast

STATUS_THEN_SAY_WHAT_LOADED = """
import sys
from wan_lora_dagster.cli import main
code = main(["status", "--project", sys.argv[1]])
print(code, sorted({name.split(".")[0] for name in sys.modules} & {"torch", "diffusers"}))
"""


def test_status_of_a_project_loads_no_torch(tmp_path):
    project = init_project(tmp_path / "project")
    result = subprocess.run(
        [sys.executable, "-c", STATUS_THEN_SAY_WHAT_LOADED, str(project)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.splitlines()[-1] == "0 []", result.stdout + result.stderr
