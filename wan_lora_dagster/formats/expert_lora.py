"""The LoRA pair of a Wan 2.2 A14B checkpoint: one file per expert, found from either file.

A two-expert run saves `<name>-high_noise-<epoch>.safetensors` and `<name>-low_noise-...`, each
with the header field `wan_lora.expert` naming its expert, so a file copied out of the project
still says which transformer it belongs to (diffusers: `load_lora_weights(...)` for the high-noise
one, `load_lora_weights(..., load_into_transformer_2=True)` for the low-noise one).
"""

from __future__ import annotations

from pathlib import Path

from wan_lora_dagster.formats.cache_files import read_lora_header
from wan_lora_dagster.tasks import HIGH_NOISE, LOW_NOISE

EXPERT_FIELD = "wan_lora.expert"
BOUNDARY_FIELD = "wan_lora.timestep_boundary"


def expert_output_name(output_name: str, expert: str) -> str:
    return f"{output_name}-{expert}"


def lora_experts(checkpoint: Path) -> dict[str, Path]:
    """expert -> file for the checkpoint's pair (only the experts trained); {} for a one-model LoRA.

    checkpoint: any file of the pair; its header says its expert, and the other expert's file is
    the one whose name differs only in the expert.
    """
    checkpoint = Path(checkpoint)
    expert = read_lora_header(checkpoint).get(EXPERT_FIELD)
    if expert is None:
        return {}
    found = {expert: checkpoint}
    for other in (HIGH_NOISE, LOW_NOISE):
        sibling = checkpoint.with_name(checkpoint.name.replace(f"-{expert}-", f"-{other}-", 1))
        if (
            other != expert
            and sibling.is_file()
            and read_lora_header(sibling).get(EXPERT_FIELD) == other
        ):
            found[other] = sibling
    return dict(sorted(found.items(), key=lambda item: item[0] != HIGH_NOISE))
