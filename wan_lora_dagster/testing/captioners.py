"""The tiny captioners the tests build (random weights, offline): model name -> backend."""

from wan_lora_dagster.captioning.tiny import TINY_QWEN_VL_TYPES

TINY_MODELS = {"blip2": "blip2", **dict.fromkeys(TINY_QWEN_VL_TYPES, "vlm")}
