"""Where a step runs in the team deployment: the Celery queue named by its op tag.

Steps on the `gpu` pool (captioning, caches, training, evaluation) go to the `gpu` workers;
everything else to the default queue, `cpu`. On one machine the tag changes nothing.
"""

from wan_lora_dagster.instance.team import GPU_QUEUE

QUEUE_TAG = "dagster-celery/queue"
GPU_WORK = {"pool": "gpu", "op_tags": {QUEUE_TAG: GPU_QUEUE}}
