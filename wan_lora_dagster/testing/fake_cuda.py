"""A stand-in for the CUDA device-capability query, for what a CPU cannot show: how fp8_compute
treats a given card. Used by tests/engines/test_fp8_compute.py and benchmarks/fp8_gpu.py --small."""

from __future__ import annotations

import torch

from wan_lora_dagster.engines.diffusers.acceleration.fp8_compute import GpuCapability


class FakeCudaCapability:
    """Plays a CUDA card of the given compute capability for whatever device is asked about."""

    def __init__(self, version: tuple[int, int], name: str = "Fake GPU"):
        self.capability = GpuCapability(name, version)

    def __call__(self, device: torch.device) -> GpuCapability:
        return self.capability
