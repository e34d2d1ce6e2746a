"""Generated media for the demo project and the tests: shapes in motion, scenes with hard cuts.

Nothing is downloaded. The same seed gives the same picture and, with the same ffmpeg, the same
file bytes (media.video_writer encodes on one thread). A film is drawn in memory before it is
encoded: keep it small (the default is 88 MB of frames).
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from wan_lora_dagster.media.video_writer import write_video

# Consecutive scenes step the hue by the golden ratio's fraction (137.5 degrees) and alternate
# light and dark, so every cut is a large colour change whatever the number of scenes.
HUE_STEP = 0.381966
SCENE_BRIGHTNESS = (0.85, 0.45)


@dataclass(frozen=True)
class SceneLook:
    """One scene: background and shape colours (RGB), and the shapes' motion.

    Speeds are in frame widths per second; phases shift where in its bounce a shape starts.
    """

    background: tuple[int, int, int]
    circle_colour: tuple[int, int, int]
    rectangle_colour: tuple[int, int, int]
    circle_speed: float
    rectangle_speed: float
    circle_phase: float
    rectangle_phase: float


def make_synthetic_film(
    path: Path,
    duration: float = 20.0,
    fps: int = 24,
    size: tuple[int, int] = (320, 192),
    num_scenes: int = 4,
    seed: int = 0,
) -> Path:
    """Write an h264 mp4 of `num_scenes` equal scenes separated by hard cuts.

    `size` is (width, height), both even. Each scene has its own background colour, a circle and
    a rectangle bouncing at different speeds; scene k starts at k * duration / num_scenes s.
    """
    width, height = size
    if width % 2 or height % 2 or num_scenes < 1 or duration <= 0:
        raise ValueError(
            f"need even sides, num_scenes >= 1, duration > 0; got {size}, {num_scenes}"
        )
    rng = np.random.default_rng(seed)
    hue_offset = rng.random()
    scenes = [_scene_look(rng, hue_offset, index) for index in range(num_scenes)]
    num_frames = round(duration * fps)
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    for index in range(num_frames):
        scene_index = index * num_scenes // num_frames
        scene_start = scene_index * num_frames // num_scenes
        _draw(frames[index], scenes[scene_index], (index - scene_start) / fps)
    return write_video(frames, Path(path), fps=fps)


def make_synthetic_still(path: Path, size: tuple[int, int] = (256, 256), seed: int = 0) -> Path:
    """Write a PNG of `size` (width, height): a coloured background with a circle and a square."""
    rng = np.random.default_rng(seed)
    look = _scene_look(rng, rng.random(), 0)
    width, height = size
    image = Image.new("RGB", size, look.background)
    draw = ImageDraw.Draw(image)
    radius = min(size) // 5
    centre_x, centre_y = rng.integers(radius, width - radius), rng.integers(radius, height - radius)
    draw.ellipse(
        (centre_x - radius, centre_y - radius, centre_x + radius, centre_y + radius),
        fill=look.circle_colour,
    )
    side = min(size) // 4
    left, top = rng.integers(0, width - side), rng.integers(0, height - side)
    draw.rectangle((left, top, left + side, top + side), fill=look.rectangle_colour)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")
    return path


def _scene_look(rng: np.random.Generator, hue_offset: float, index: int) -> SceneLook:
    hue = (hue_offset + index * HUE_STEP) % 1.0
    brightness = SCENE_BRIGHTNESS[index % 2]
    return SceneLook(
        background=_rgb(hue, 0.7, brightness),
        circle_colour=_rgb(hue + 0.5, 0.9, 1.3 - brightness),
        rectangle_colour=_rgb(hue + 0.25, 0.8, 1.3 - brightness),
        circle_speed=rng.uniform(0.3, 0.5),
        rectangle_speed=rng.uniform(0.8, 1.2),
        circle_phase=rng.random(),
        rectangle_phase=rng.random(),
    )


def _rgb(hue: float, saturation: float, value: float) -> tuple[int, int, int]:
    red, green, blue = colorsys.hsv_to_rgb(hue % 1.0, saturation, value)
    return round(red * 255), round(green * 255), round(blue * 255)


def _bounce(travelled: float) -> float:
    """Position in [0, 1] of something moving back and forth: a triangle wave of period 2."""
    return 1.0 - abs(travelled % 2.0 - 1.0)


def _draw(frame: np.ndarray, look: SceneLook, seconds: float) -> None:
    """Paint one frame (height, width, 3) in place, `seconds` into the scene."""
    height, width, _ = frame.shape
    frame[:] = look.background
    radius = max(2, height // 6)
    travel = _bounce(2 * look.circle_phase + seconds * look.circle_speed)
    centre_x = radius + travel * (width - 2 * radius)
    centre_y = height / 2 + 0.25 * height * np.sin(2 * np.pi * (seconds * 0.5 + look.circle_phase))
    rows, columns = np.ogrid[:height, :width]
    inside = (columns - centre_x) ** 2 + (rows - centre_y) ** 2 <= radius**2
    frame[inside] = look.circle_colour
    side = max(2, height // 4)
    left = round(
        _bounce(2 * look.rectangle_phase + seconds * look.rectangle_speed) * (width - side)
    )
    top = round(_bounce(2 * look.rectangle_phase + seconds * 0.3) * (height - side))
    frame[top : top + side, left : left + side] = look.rectangle_colour
