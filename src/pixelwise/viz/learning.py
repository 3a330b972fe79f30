"""A segmentation model learning, as an animated GIF.

The same validation images (default 16, spread over the split) are predicted after
every epoch; each frame shows, per image, image | ground truth | prediction (each
thumbnail ``panel_width`` = 200 px wide), with the epoch and the validation mIoU
written on top and the class colours below (and the white of ignored pixels, where the
truth has any). At most ``MAX_WIDTH`` px across, so that the report shows it at its
own size. ``Pillow`` assembles the frames::

    gif = LearningGif(val_dataset, num_classes, mean=mean, std=std, class_names=names)
    for epoch in range(epochs):
        ...train...
        gif.record(model, epoch + 1, miou=record["val/miou"])
    gif.save(run_dir / "learning.gif")
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import nn
from torch.nn import functional as F
from torch.utils.data import Dataset

from ..models.base import split_output
from .colors import IGNORE_COLOR, IGNORE_LABEL, class_colors
from .images import grid, hstack, scale_to_width, to_display
from .segmentation import colorize

MAX_WIDTH = 1300  # px: two columns of 200 px thumbnails; the report shows 1,100 px
CAPTION_SIZE, LEGEND_SIZE = 18, 14  # font sizes, px
MAX_EXACT_COLORS = 200  # class colours kept exact in the GIF's 256; the rest are the images'
CELL_GAP = 12  # px between one image's panels and the next image's


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
    """Predicts fixed validation images each epoch; ``save`` writes the animation.

    ``colors`` are the dataset's class colours (a model card's ``class_colors``); by
    default the VOC palette.
    """

    def __init__(
        self,
        images: Dataset | tuple[torch.Tensor, torch.Tensor],
        num_classes: int,
        num_images: int = 16,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        class_names: Sequence[str] | None = None,
        panel_width: int = 200,
        frame_ms: int = 600,
        colors: np.ndarray | Sequence[Sequence[int]] | None = None,
    ) -> None:
        self.images, self.masks = fixed_samples(images, num_images)
        if self.masks.dim() != 3:
            raise ValueError(
                f"LearningGif is for segmentation: masks must be (N, H, W), got {tuple(self.masks.shape)}"
            )
        self.num_classes = num_classes
        self.colors = class_colors(num_classes, colors)
        self.class_names = (
            list(class_names) if class_names else [str(i) for i in range(num_classes)]
        )
        self.panel_width = panel_width
        self.frame_ms = frame_ms
        masks = self.masks
        self.has_ignored = bool(((masks < 0) | (masks >= num_classes)).any())
        self.pictures = [self._panel(to_display(img, mean, std)) for img in self.images]
        self.truths = [self._panel(colorize(m, self.colors), nearest=True) for m in masks]
        self.palette = self._fixed_palette()
        self.frames: list[Image.Image] = []
        self.captions: list[str] = []  # each frame's title line

    def _fixed_palette(self) -> Image.Image:
        """The 256 colours of every frame: the class colours, white, black and greys
        exactly, the rest the images' own (median cut, once: the images never change).
        Mapping a frame to a fixed palette takes milliseconds where quantising it
        afresh took a second, and keeps the class colours exact."""
        greys = [(v, v, v) for v in (0, 64, 105, 128, 160, 192, 224, 255)]
        classes = [tuple(int(c) for c in color) for color in self.colors[:MAX_EXACT_COLORS]]
        exact = list(dict.fromkeys([IGNORE_COLOR, *greys, *classes]))
        pixels = np.concatenate([p.reshape(-1, 3) for p in self.pictures])[None]
        room = 256 - len(exact)
        photo = Image.fromarray(pixels).quantize(room, Image.Quantize.MEDIANCUT)
        values = [v for color in exact for v in color] + photo.getpalette()[: 3 * room]
        palette = Image.new("P", (1, 1))
        palette.putpalette((values + [0] * 768)[:768])
        return palette

    def _panel(self, array: np.ndarray, nearest: bool = False) -> np.ndarray:
        small = array.shape[1] < self.panel_width
        return scale_to_width(array, self.panel_width, nearest=nearest or small)

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

    def record(self, model: nn.Module, epoch: int, miou: float | None = None) -> None:
        """Add the frame of ``epoch``: predictions of the current weights, captioned with
        the epoch and ``miou`` (the epoch's validation mIoU, where known)."""
        predictions = self.predict(model)
        cells = [
            hstack([picture, truth, self._panel(colorize(pred, self.colors), nearest=True)])
            for picture, truth, pred in zip(self.pictures, self.truths, predictions)
        ]
        cell_width = cells[0].shape[1] + CELL_GAP
        columns = max(1, min(len(cells), MAX_WIDTH // cell_width))
        score = f"val mIoU {miou:.3f}" if miou is not None and math.isfinite(miou) else None
        caption = "   ".join(filter(None, [f"epoch {epoch}", score]))
        self.captions.append(caption)
        self.frames.append(self._frame(grid(cells, columns, gap=CELL_GAP), caption))

    def _frame(self, body: np.ndarray, caption: str) -> Image.Image:
        legend = self._legend(body.shape[1])
        header = CAPTION_SIZE + 16
        canvas = Image.new("RGB", (body.shape[1], header + body.shape[0] + legend.height), "white")
        canvas.paste(Image.fromarray(body), (0, header))
        canvas.paste(legend, (0, header + body.shape[0]))
        draw = ImageDraw.Draw(canvas)
        title_font = ImageFont.load_default(CAPTION_SIZE)
        draw.text((6, 6), caption, fill="black", font=title_font)
        hint, font = "image | ground truth | prediction", ImageFont.load_default(LEGEND_SIZE)
        right = body.shape[1] - 6 - draw.textlength(hint, font=font)
        if right > 26 + draw.textlength(caption, font=title_font):  # room beside the caption
            draw.text((right, 9), hint, fill="dimgray", font=font)
        return canvas.quantize(palette=self.palette, dither=Image.Dither.NONE)

    def legend_entries(self) -> list[tuple[str, tuple[int, ...]]]:
        """(name, colour) of every class, and of ignored pixels where the truth has any."""
        entries = [
            (name, tuple(int(c) for c in self.colors[i]))
            for i, name in enumerate(self.class_names[: self.num_classes])
        ]
        if self.has_ignored:
            entries.append((IGNORE_LABEL, IGNORE_COLOR))
        return entries

    def _legend(self, width: int) -> Image.Image:
        """Class colour swatches with names (and the ignored white), wrapped over lines."""
        entries = self.legend_entries()
        font = ImageFont.load_default(LEGEND_SIZE)
        entry, line_height, swatch = 150, LEGEND_SIZE + 8, LEGEND_SIZE
        per_line = max(1, width // entry)
        lines = math.ceil(len(entries) / per_line)
        legend = Image.new("RGB", (width, 8 + lines * line_height), "white")
        draw = ImageDraw.Draw(legend)
        for i, (name, color) in enumerate(entries):
            x, y = 6 + (i % per_line) * entry, 4 + (i // per_line) * line_height
            draw.rectangle((x, y, x + swatch, y + swatch), fill=color, outline="black")
            draw.text((x + swatch + 6, y - 1), name[:16], fill="black", font=font)
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
