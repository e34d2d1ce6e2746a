"""The image-to-video pipeline over a WanModels' already-loaded components."""

from __future__ import annotations

from diffusers import WanImageToVideoPipeline

from wan_lora_dagster.engines.wan_models import WanModels


def image_to_video_pipeline(models: WanModels) -> WanImageToVideoPipeline:
    """WanImageToVideoPipeline sharing the engine's transformer, VAE, text and image encoders:
    building it loads nothing twice, and a LoRA loaded into it is in the engine's transformer."""
    pipeline = WanImageToVideoPipeline.from_pretrained(
        models.folder,
        transformer=models.transformer,
        vae=models.vae,
        text_encoder=models.text_encoder,
        tokenizer=models.tokenizer,
        image_encoder=models.image_encoder,
        image_processor=models.image_processor,
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline.to(models.device)
