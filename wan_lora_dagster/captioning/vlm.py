"""The vision-language captioners: Qwen2-VL, Qwen2.5-VL and Qwen3-VL see a clip as one video.

Which model class opens a folder is read from the folder's own config.json (`architectures`):
each generation has its own vision tower, and opening a Qwen2.5-VL with the Qwen2-VL class loads
a tower whose weights do not fit it.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import transformers
from PIL import Image
from transformers import AutoImageProcessor, AutoTokenizer, PreTrainedTokenizerBase

from wan_lora_dagster.captioning.backends import CaptionerSettings
from wan_lora_dagster.captioning.generation import (
    decode_new_tokens,
    greedy_generation_config,
    model_dtype,
)
from wan_lora_dagster.captioning.video_patches import VideoPatcher, VideoPatches

VIDEO_TOKEN = "<|video_pad|>"
VISION_START, VISION_END = "<|vision_start|>", "<|vision_end|>"
VIDEO_TOKEN_TYPE = 2  # mm_token_type_ids: 0 text, 1 image, 2 video
# The sampled frames are spread evenly over a clip, whose length the captioner is not told; the
# model is told they are SAMPLED_FPS apart (Qwen's own default sampling rate for videos).
SAMPLED_FPS = 2.0


class QwenVideoCaptioner:
    """A Qwen-VL chat model answering `prompt` about a clip's frames, given as one video.

    transformers 5 builds these models' processors only where torchvision is installed (for their
    video half), so this does what the processor does with the model's tokenizer and image
    processor settings: the frames become video patches (`video_patches.VideoPatcher`), the chat
    template's video placeholder is widened to the video's number of tokens (Qwen3-VL: a
    timestamp and a vision start/end pair per frame pair), and every video token is marked as
    such in `mm_token_type_ids` (the model needs them for its 3D rotary positions). Clips are
    captioned a batch at a time, the prompts padded on the left.
    """

    def __init__(self, model, tokenizer: PreTrainedTokenizerBase, patcher, settings):
        self.model = model
        self.tokenizer = tokenizer
        self.patcher: VideoPatcher = patcher
        self.device = settings.device
        self.generation_config = greedy_generation_config(model, settings.max_new_tokens)
        self.timestamps = model.config.model_type == "qwen3_vl"

    @classmethod
    def load(cls, directory: Path, settings: CaptionerSettings) -> QwenVideoCaptioner:
        # one of backends.ARCHITECTURES["vlm"], which the folder was checked against
        config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
        model_class = getattr(transformers, config["architectures"][0])
        tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
        tokenizer.chat_template = tokenizer.chat_template or _processor_chat_template(directory)
        if tokenizer.chat_template is None:
            raise ValueError("its tokenizer has no chat_template (an -Instruct model has one)")
        tokenizer.padding_side = "left"  # generation continues every prompt at its right end
        image_processor = AutoImageProcessor.from_pretrained(directory, local_files_only=True)
        model = model_class.from_pretrained(
            directory, local_files_only=True, dtype=model_dtype(settings.device)
        )
        patcher = VideoPatcher.of(image_processor)
        return cls(model.to(settings.device).eval(), tokenizer, patcher, settings)

    @torch.inference_mode()
    def caption_batch(self, clips: list[list[Image.Image]], prompt: str) -> list[str]:
        """One caption per clip, from its sampled `frames` (RGB, time order), in one generate."""
        if not clips or not all(clips):
            raise ValueError("no frames to caption")
        videos = [self.patcher.patches(frames) for frames in clips]
        tokens = self.tokenizer(
            [self._prompt_text(prompt, video) for video in videos],
            return_tensors="pt",
            padding=True,
            add_special_tokens=False,
        )
        input_ids = tokens["input_ids"]
        video_token_id = self.tokenizer.convert_tokens_to_ids(VIDEO_TOKEN)
        inputs = dict(
            input_ids=input_ids,
            attention_mask=tokens["attention_mask"],
            mm_token_type_ids=(input_ids == video_token_id).int() * VIDEO_TOKEN_TYPE,
            pixel_values_videos=torch.cat([video.pixel_values for video in videos]),
            video_grid_thw=torch.stack([video.grid_thw for video in videos]),
        )
        if self.model.config.model_type == "qwen2_5_vl":
            seconds = self.patcher.temporal_patch_size / SAMPLED_FPS
            inputs["second_per_grid_ts"] = torch.tensor([seconds] * len(videos))
        inputs = {name: value.to(self.device) for name, value in inputs.items()}
        inputs["pixel_values_videos"] = inputs["pixel_values_videos"].to(self.model.dtype)
        output_ids = self.model.generate(**inputs, generation_config=self.generation_config)
        return decode_new_tokens(self.tokenizer, output_ids, input_ids.shape[1], prompt)

    def _prompt_text(self, prompt: str, video: VideoPatches) -> str:
        """The chat: one user message with the video and the prompt, then the assistant's turn,
        with the video's placeholder widened to its tokens."""
        content = [{"type": "video"}, {"type": "text", "text": prompt}]
        text = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
        )
        wrapper = VISION_START + VIDEO_TOKEN + VISION_END
        if text.count(wrapper) != 1:
            raise ValueError(f"the chat template put no single {wrapper} for the video")
        return text.replace(wrapper, self._video_text(video))

    def _video_text(self, video: VideoPatches) -> str:
        frames, height, width = (int(size) for size in video.grid_thw)
        per_frame = height * width // self.patcher.merge_size**2
        if not self.timestamps:  # Qwen2-VL, Qwen2.5-VL: one span for the whole video
            return VISION_START + VIDEO_TOKEN * per_frame * frames + VISION_END
        # Qwen3-VL: each frame pair is told its time, the middle of the pair's two frames
        pair_seconds = self.patcher.temporal_patch_size / SAMPLED_FPS
        return "".join(
            f"<{(index + 0.5 / self.patcher.temporal_patch_size) * pair_seconds:.1f} seconds>"
            + VISION_START
            + VIDEO_TOKEN * per_frame
            + VISION_END
            for index in range(frames)
        )


def _processor_chat_template(directory: Path) -> str | None:
    """The chat template that some Qwen-VL downloads keep in the processor's chat_template.json."""
    path = directory / "chat_template.json"
    return json.loads(path.read_text(encoding="utf-8"))["chat_template"] if path.is_file() else None
