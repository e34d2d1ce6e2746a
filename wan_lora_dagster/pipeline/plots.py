"""A loss curve drawn with PIL: small enough to embed in the Dagster UI."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

from wan_lora_dagster.disk_full import replacing

WIDTH, HEIGHT, MARGIN = 360, 160, 24


def loss_curve(points: list[tuple[int, float]], path: Path) -> Path:
    """Training loss against step; `points` is [(step, loss), ...]."""
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle([MARGIN, 4, WIDTH - 4, HEIGHT - MARGIN], outline="gray")
    if len(points) >= 2:
        steps = [step for step, _ in points]
        losses = [loss for _, loss in points]
        low, high = min(losses), max(losses)
        span_x = (max(steps) - min(steps)) or 1
        span_y = (high - low) or 1.0

        def to_pixel(step: int, loss: float) -> tuple[float, float]:
            x = MARGIN + (step - min(steps)) / span_x * (WIDTH - MARGIN - 8)
            y = 8 + (high - loss) / span_y * (HEIGHT - MARGIN - 12)
            return x, y

        draw.line([to_pixel(step, loss) for step, loss in points], fill="navy", width=2)
        draw.text((MARGIN + 4, 6), f"loss {high:.3f} .. {low:.3f}", fill="black")
    draw.text(
        (MARGIN, HEIGHT - MARGIN + 6), f"steps 0..{points[-1][0] if points else 0}", fill="black"
    )
    with replacing(path) as partial:
        image.save(partial, format="PNG", optimize=True)
    return path
