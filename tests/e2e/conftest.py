# The e2e helpers moved to wan_lora_dagster.testing.commands (no test module imports another:
# tests/test_no_test_imports.py); kept importable here for branches written before the move.
from wan_lora_dagster.testing.commands import made, run_json, wan_lora  # noqa: F401
