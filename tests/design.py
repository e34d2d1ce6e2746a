"""The asset graph the tests check the code location and the UI against: the asset table's."""

from wan_lora_dagster.pipeline.asset_table import ASSETS

# Every asset of the graph: sources, dataset, caches, training, evaluation.
DESIGN_ASSETS = tuple(spec.name for spec in ASSETS)
