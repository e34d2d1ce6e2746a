"""The image-to-video pipeline over a WanModels' already-loaded components."""

from __future__ import annotations

from diffusers import WanImageToVideoPipeline

from wan_lora_dagster.engines.wan_models import WanModels


def image_to_video_pipeline(models: WanModels) -> WanImageToVideoPipeline:
    """WanImageToVideoPipeline sharing the engine's loaded components, its image encoder too."""
    components = {}
    if models.uses_clip:  # Wan 2.1 I2V; Wan 2.2's conditions on the image latent alone
        components |= {"image_encoder": models.image_encoder}
        components |= {"image_processor": models.image_processor}
    if models.boundary_ratio:  # Wan 2.2 A14B: the low-noise expert too
        components["transformer_2"] = models.transformer_2
    return models.pipeline(WanImageToVideoPipeline, **components)
