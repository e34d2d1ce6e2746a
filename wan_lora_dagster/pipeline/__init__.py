"""Domain logic of each asset: what it depends on, how it is made, where it is recorded.

No dagster import here: the Dagster layer (assets/) calls these functions, and so do tests.
"""
