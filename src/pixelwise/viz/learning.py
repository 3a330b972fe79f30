"""A segmentation model learning, as an animated GIF.

The same validation images (default 16, spread over the split) are predicted after
every epoch; each frame shows, per image, image | ground truth | prediction, with the
epoch written on top and the class colours below. ``Pillow`` assembles the frames::

    gif = LearningGif(val_dataset, num_classes, mean=mean, std=std, class_names=names)
    for epoch in range(epochs):
        ...train...
        gif.record(model, epoch + 1)
    gif.save(run_dir / "learning.gif")
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import nn
from torch.nn import functional as F
from torch.utils.data import Dataset

from ..models.base import split_output
from .images import grid, hstack, scale_to, to_display
from .segmentation import colorize, palette


def fixed_samples(
    source: Dataset | tuple[torch.Tensor, torch.Tensor], count: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` (image, mask) pairs spread evenly over a dataset, or the first of a batch."""
    if isinstance(source, tuple):
        images, masks = source
        return images[:count], masks[:count]
    size = len(source)  # type: ignore[arg-type]
    if size == 0:
        raise ValueError("LearningGif needs at least one validation image")
    indices = np.linspace(0, size - 1, min(count, size)).round().astype(int)
    pairs = [source[int(i)] for i in indices]
    return torch.stack([p[0] for p in pairs]), torch.stack([torch.as_tensor(p[1]) for p in pairs])


class LearningGif:
    """Predicts fixed validation images each epoch; ``save`` writes the animation."""

    def __init__(
        self,
        images: Dataset | tuple[torch.Tensor, torch.Tensor],
        num_classes: int,
        num_images: int = 16,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        class_names: Sequence[str] | None = None,
        panel_size: int = 96,
        frame_ms: int = 600,
    ) -> None:
        self.images, self.masks = fixed_samples(images, num_images)
        if self.masks.dim() != 3:
            raise ValueError(
                f"LearningGif is for segmentation: masks must be (N, H, W), got {tuple(self.masks.shape)}"
            )
        self.num_classes = num_classes
        self.colors = palette(num_classes)
        self.class_names = (
            list(class_names) if class_names else [str(i) for i in range(num_classes)]
        )
        self.panel_size = panel_size
        self.frame_ms = frame_ms
        self.pictures = [self._panel(to_display(img, mean, std)) for img in self.images]
        self.truths = [self._panel(colorize(m, self.colors), nearest=True) for m in self.masks]
        self.frames: list[Image.Image] = []

    def _panel(self, array: np.ndarray, nearest: bool = False) -> np.ndarray:
        small = max(array.shape[:2]) < self.panel_size
        return scale_to(array, self.panel_size, nearest=nearest or small)

    @torch.no_grad()
    def predict(self, model: nn.Module) -> torch.Tensor:
        """(N, H, W) class indices for the fixed images, in eval mode (restored afterwards)."""
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        was_training = model.training
        model.eval()
        try:
            logits = split_output(model(self.images.to(device)))[0].float()
        finally:
            model.train(was_training)
        if logits.shape[-2:] != self.masks.shape[-2:]:
            logits = F.interpolate(logits, size=self.masks.shape[-2:], mode="bilinear")
        return logits.argmax(dim=1).cpu()

    def record(self, model: nn.Module, epoch: int) -> None:
        """Add the frame of ``epoch``: predictions of the current weights."""
        predictions = self.predict(model)
        cells = [
            hstack([picture, truth, self._panel(colorize(pred, self.colors), nearest=True)])
            for picture, truth, pred in zip(self.pictures, self.truths, predictions)
        ]
        columns = max(1, min(4, math.ceil(math.sqrt(len(cells)))))
        body = grid(cells, columns)
        self.frames.append(
            self._frame(body, f"epoch {epoch}   (image | ground truth | prediction)")
        )

    def _frame(self, body: np.ndarray, caption: str) -> Image.Image:
        legend = self._legend(body.shape[1])
        header = 20
        canvas = Image.new("RGB", (body.shape[1], header + body.shape[0] + legend.height), "white")
        canvas.paste(Image.fromarray(body), (0, header))
        canvas.paste(legend, (0, header + body.shape[0]))
        ImageDraw.Draw(canvas).text((4, 4), caption, fill="black")
        return canvas

    def _legend(self, width: int) -> Image.Image:
        """Class colour swatches with names, wrapped over as many lines as needed."""
        entry, line_height = 90, 16
        per_line = max(1, width // entry)
        lines = math.ceil(self.num_classes / per_line)
        legend = Image.new("RGB", (width, 6 + lines * line_height), "white")
        draw = ImageDraw.Draw(legend)
        for i, name in enumerate(self.class_names[: self.num_classes]):
            x, y = 4 + (i % per_line) * entry, 4 + (i // per_line) * line_height
            draw.rectangle(
                (x, y, x + 10, y + 10), fill=tuple(int(c) for c in self.colors[i]), outline="black"
            )
            draw.text((x + 14, y), name[:12], fill="black")
        return legend

    def save(self, path: str | Path) -> Path:
        """Write the animation (looping, the last frame held longer); needs one frame at least."""
        if not self.frames:
            raise ValueError("LearningGif has no frames: call record(model, epoch) first")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        durations = [self.frame_ms] * (len(self.frames) - 1) + [self.frame_ms * 4]
        self.frames[0].save(
            path,
            save_all=True,
            append_images=self.frames[1:],
            duration=durations,
            loop=0,
            optimize=False,
        )
        return path
