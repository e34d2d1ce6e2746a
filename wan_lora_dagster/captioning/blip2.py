"""The BLIP-2 captioner: caption each sampled frame, keep the caption the frames agree on."""

from __future__ import annotations

from itertools import accumulate
from pathlib import Path

import torch
from PIL import Image
from transformers import Blip2ForConditionalGeneration, Blip2Processor

from wan_lora_dagster.captioning.backends import CaptionerSettings
from wan_lora_dagster.captioning.generation import (
    decode_new_tokens,
    greedy_generation_config,
    model_dtype,
)
from wan_lora_dagster.captioning.rules import most_agreed_caption


def blip2_prompt(prompt: str) -> str:
    """BLIP-2 was tuned on "Question: ... Answer:" prompts; an empty prompt means plain captioning,
    and a prompt that already has "Answer:" is used as written."""
    prompt = prompt.strip()
    if not prompt or "answer:" in prompt.lower():
        return prompt
    return f"Question: {prompt} Answer:"


class Blip2Captioner:
    """BLIP-2 (OPT or Flan-T5 language model) captioning a clip from a few of its frames.

    BLIP-2 sees one image at a time, so every frame is captioned (all in one batch) and a clip gets
    the frame caption that shares the most words with the others. Joining all of them instead
    gives run-on near-duplicates ("a man in a room, a man standing in a room"); taking the
    agreed one keeps one sentence and lets no single odd frame (a flash, a cut) decide it.
    With `frames_per_clip = 1` this is simply the caption of the middle frame.
    """

    def __init__(
        self,
        model: Blip2ForConditionalGeneration,
        processor: Blip2Processor,
        settings: CaptionerSettings,
    ):
        self.model = model
        self.processor = processor
        self.device = settings.device
        self.generation_config = greedy_generation_config(model, settings.max_new_tokens)

    @classmethod
    def load(cls, directory: Path, settings: CaptionerSettings) -> Blip2Captioner:
        processor = Blip2Processor.from_pretrained(directory, local_files_only=True)
        model = Blip2ForConditionalGeneration.from_pretrained(
            directory, local_files_only=True, dtype=model_dtype(settings.device)
        )
        # Older processor configs lack this; without it the image tokens are never inserted.
        if processor.num_query_tokens is None:
            processor.num_query_tokens = model.config.num_query_tokens
        return cls(model.to(settings.device).eval(), processor, settings)

    @torch.inference_mode()
    def caption_batch(self, clips: list[list[Image.Image]], prompt: str) -> list[str]:
        """One caption per clip, from its sampled frames (RGB, time order): every frame of every
        clip in one generate call."""
        if not clips or not all(clips):
            raise ValueError("no frames to caption")
        frames = [frame for clip in clips for frame in clip]
        text = blip2_prompt(prompt)
        inputs = self.processor(images=frames, text=[text] * len(frames), return_tensors="pt")
        inputs = inputs.to(self.device, self.model.dtype)
        output_ids = self.model.generate(**inputs, generation_config=self.generation_config)
        # A decoder-only language model returns the prompt before the answer; Flan-T5 does not.
        prompt_length = (
            inputs["input_ids"].shape[1] if self.model.config.use_decoder_only_language_model else 0
        )
        captions = decode_new_tokens(self.processor.tokenizer, output_ids, prompt_length, text)
        ends = list(accumulate(len(clip) for clip in clips))
        return [
            most_agreed_caption(captions[end - len(clip) : end])
            for clip, end in zip(clips, ends, strict=True)
        ]
