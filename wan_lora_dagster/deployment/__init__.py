"""The team deployment: PostgreSQL storage, Celery workers on a Redis broker (Dagster layer).

A project switches to it by one block in its `.dagster/dagster.yaml` (PostgreSQL storage and the
`TeamRunLauncher` with the broker's URL, see templates/dagster.yaml); `wan-lora worker` starts a
worker. In-process projects never import Celery.
"""
