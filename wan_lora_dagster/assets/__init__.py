"""The Dagster layer: thin asset functions, grouped as the pipeline runs; work is in pipeline/."""
