"""The vision-language captioner: a Qwen2-VL chat model sees all sampled frames at once."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from PIL import Image
from transformers import (
    AutoImageProcessor,
    AutoTokenizer,
    PreTrainedTokenizerBase,
    Qwen2VLForConditionalGeneration,
)

from wan_lora_dagster.captioning.backends import CaptionerSettings
from wan_lora_dagster.captioning.generation import (
    decode_new_tokens,
    greedy_generation_config,
    model_dtype,
)

IMAGE_TOKEN = "<|image_pad|>"
# Frames are shrunk to at most this many pixels (about 256 vision tokens each for Qwen2-VL):
# a full-HD frame would cost ten times as many tokens and tell the model little more.
MAX_PIXELS_PER_FRAME = 448 * 448


class Qwen2VLCaptioner:
    """A Qwen2-VL model answering `prompt` about a clip's frames, given as images in one message.

    transformers 5 builds the Qwen2-VL processor only where torchvision is installed (for its
    video half, unused here), so this pairs the model's tokenizer and image processor itself and
    does what the processor would: the chat template puts one image token per frame, which is
    widened to the frame's number of vision tokens, and every image token is marked as such in
    `mm_token_type_ids` (the model needs them for its 3D rotary positions).
    """

    def __init__(
        self,
        model: Qwen2VLForConditionalGeneration,
        tokenizer: PreTrainedTokenizerBase,
        image_processor,
        settings: CaptionerSettings,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.device = settings.device
        self.generation_config = greedy_generation_config(model, settings.max_new_tokens)

    @classmethod
    def load(cls, directory: Path, settings: CaptionerSettings) -> Qwen2VLCaptioner:
        tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
        tokenizer.chat_template = tokenizer.chat_template or _processor_chat_template(directory)
        if tokenizer.chat_template is None:
            raise ValueError("its tokenizer has no chat_template (an -Instruct model has one)")
        image_processor = AutoImageProcessor.from_pretrained(directory, local_files_only=True)
        model = Qwen2VLForConditionalGeneration.from_pretrained(
            directory, local_files_only=True, dtype=model_dtype(settings.device)
        )
        return cls(model.to(settings.device).eval(), tokenizer, image_processor, settings)

    @torch.inference_mode()
    def caption(self, frames: list[Image.Image], prompt: str) -> str:
        """One caption for the clip whose sampled `frames` (RGB, time order) are given."""
        if not frames:
            raise ValueError("no frames to caption")
        images = self.image_processor(
            images=[_shrunk(frame) for frame in frames], return_tensors="pt"
        )
        input_ids = self._prompt_ids(prompt, images["image_grid_thw"])
        image_token_id = self.model.config.image_token_id
        output_ids = self.model.generate(
            input_ids=input_ids.to(self.device),
            attention_mask=torch.ones_like(input_ids).to(self.device),
            mm_token_type_ids=(input_ids == image_token_id).int().to(self.device),
            pixel_values=images["pixel_values"].to(self.device, self.model.dtype),
            image_grid_thw=images["image_grid_thw"].to(self.device),
            generation_config=self.generation_config,
        )
        return decode_new_tokens(self.tokenizer, output_ids, input_ids.shape[1], prompt)[0]

    def _prompt_ids(self, prompt: str, image_grid_thw: torch.Tensor) -> torch.Tensor:
        """(1, sequence_length) token ids of the chat: one user message with the frames and the
        prompt, then the assistant's turn. `image_grid_thw` is (num_frames, 3) patch grids."""
        content = [{"type": "image"} for _ in image_grid_thw] + [{"type": "text", "text": prompt}]
        messages = [{"role": "user", "content": content}]
        text = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False
        )
        merged_patches = image_grid_thw.prod(dim=-1) // self.image_processor.merge_size**2
        pieces = text.split(IMAGE_TOKEN)
        if len(pieces) != len(merged_patches) + 1:
            raise ValueError(
                f"the chat template put {len(pieces) - 1} {IMAGE_TOKEN} tokens for "
                f"{len(merged_patches)} frames"
            )
        text = pieces[0] + "".join(
            IMAGE_TOKEN * int(count) + piece
            for count, piece in zip(merged_patches, pieces[1:], strict=True)
        )
        return self.tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]


def _shrunk(frame: Image.Image) -> Image.Image:
    """`frame` as RGB, scaled down (aspect kept) to at most MAX_PIXELS_PER_FRAME pixels."""
    frame = frame.convert("RGB")
    scale = (MAX_PIXELS_PER_FRAME / (frame.width * frame.height)) ** 0.5
    if scale >= 1:
        return frame
    size = (max(1, round(frame.width * scale)), max(1, round(frame.height * scale)))
    return frame.resize(size, Image.Resampling.BICUBIC)


def _processor_chat_template(directory: Path) -> str | None:
    """The chat template that some Qwen2-VL downloads keep in the processor's chat_template.json."""
    path = directory / "chat_template.json"
    return json.loads(path.read_text(encoding="utf-8"))["chat_template"] if path.is_file() else None
