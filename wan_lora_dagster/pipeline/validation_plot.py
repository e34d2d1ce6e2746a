"""The held-out loss of every checkpoint, drawn with matplotlib for best_lora's page."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from wan_lora_dagster.disk_full import replacing


@dataclass(frozen=True)
class CheckpointLoss:
    key: str
    step: int
    loss: float | None


def validation_loss_plot(
    points: list[CheckpointLoss], chosen: str, base_loss: float | None, path: Path
) -> Path:
    """Loss against training step, the chosen checkpoint circled, the base model's loss (no
    LoRA) as a dashed line; checkpoints without a loss are left out."""
    # imported here: matplotlib takes half a second to import, and `wan-lora status` imports this
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, and safe off the main thread
    from matplotlib.figure import Figure

    measured = [point for point in points if point.loss is not None]
    figure = Figure(figsize=(5, 3), dpi=100)
    axes = figure.add_subplot()
    axes.plot(
        [point.step for point in measured],
        [point.loss for point in measured],
        marker="o",
        label="with the LoRA",
    )
    for point in measured:
        if point.key == chosen:
            axes.scatter(
                [point.step], [point.loss], s=160, facecolors="none", edgecolors="red", zorder=3
            )
            axes.annotate(
                f"chosen: {point.key}",
                (point.step, point.loss),
                textcoords="offset points",
                xytext=(0, 10),
                ha="center",
                fontsize=7,
                color="red",
            )
    if base_loss is not None:
        axes.axhline(base_loss, linestyle="--", color="gray", label="base model (no LoRA)")
    axes.margins(x=0.2, y=0.2)  # room for the label of a chosen first or last checkpoint
    axes.set_xlabel("training step")
    axes.set_ylabel("held-out validation loss")
    axes.set_title("validation loss per checkpoint", fontsize=9)
    axes.legend(fontsize=7)
    figure.tight_layout()
    with replacing(path) as partial:
        figure.savefig(partial, format="png")
    return path
