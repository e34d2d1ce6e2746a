# Moved to wan_lora_dagster.testing.processes (no test module imports another:
# tests/test_no_test_imports.py); kept importable here for branches written before the move.
from wan_lora_dagster.testing.processes import default_signals, stop_group  # noqa: F401
