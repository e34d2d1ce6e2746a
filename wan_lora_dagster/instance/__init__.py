"""Instance services: what wan-lora keeps in a project's Dagster instance, below the assets.

Opening the project's instance (and its `gpu` pool), the claims that keep two makers of one
partition apart, the observation log of the sources, the steps' compute logs, and the team
deployment's settings. Assets, the executor, the runner and the deployment use them; they use
nothing of those.
"""
