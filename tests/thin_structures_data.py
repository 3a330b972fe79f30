"""A synthetic thin-structure dataset (the retinal-vessel / cell-membrane kind) in
``mask_folder`` layout, for the tests of the ``thin_structures`` recipe and its docs.

Each image is a noisy, unevenly lit grey background crossed by random curves one or
two pixels wide, drawn darker (as vessels are on a fundus photograph) by 1.5 times the
noise's standard deviation; the mask is the curves (0/255 PNG, read with
``data.mask_mode: binary``): one curve makes about 3% of a 48x48 image (4% of its field of view).
With ``field_of_view`` the image is black outside a centred disk, as DRIVE's are, and a
``valid/`` mask per image marks the disk (``data.valid_mask_dir: valid``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def thin_curve_mask(size: int, rng: np.random.Generator, curves: int) -> np.ndarray:
    """``curves`` smooth random curves, each a polyline of a sine-bent stroke across the
    square, drawn 1 or 2 pixels wide without antialiasing: a 0/1 uint8 mask."""
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    for _ in range(curves):
        start, end = rng.uniform(0, size, 2), rng.uniform(0, size, 2)
        while np.hypot(*(end - start)) < size / 2:  # long strokes: structures cross images
            end = rng.uniform(0, size, 2)
        t = np.linspace(0.0, 1.0, 4 * size)
        normal = np.array([start[1] - end[1], end[0] - start[0]]) / np.hypot(*(end - start))
        bend = rng.uniform(-0.15, 0.15) * size * np.sin(np.pi * rng.uniform(1, 3) * t)
        points = start + t[:, None] * (end - start) + bend[:, None] * normal
        width = int(rng.integers(1, 3))
        draw.line([tuple(p) for p in points], fill=1, width=width)
    return np.asarray(canvas, dtype=np.uint8)


def thin_structure_image(
    mask: np.ndarray, rng: np.random.Generator, contrast: float = 30.0, noise: float = 20.0
) -> np.ndarray:
    """An RGB uint8 image: a lit gradient plus Gaussian noise, ``contrast`` darker on
    the mask's pixels."""
    size = mask.shape[0]
    yy, xx = np.mgrid[0:size, 0:size] / size
    angle = rng.uniform(0, 2 * np.pi)
    light = 140 + 30 * (np.cos(angle) * xx + np.sin(angle) * yy)
    grey = light - contrast * mask + rng.normal(0.0, noise, mask.shape)
    grey = np.clip(grey, 0, 255).astype(np.uint8)
    tint = np.array([1.0, 0.8, 0.6])  # a reddish fundus-like tint: three real channels
    return np.clip(grey[..., None] * tint, 0, 255).astype(np.uint8)


def make_thin_structures(
    root: Path,
    count: int = 12,
    size: int = 48,
    curves: int = 1,
    seed: int = 0,
    field_of_view: bool = False,
    contrast: float = 30.0,
) -> Path:
    """``root/images/NNN.png`` with ``root/masks/NNN.png`` (0/255) and, with
    ``field_of_view``, ``root/valid/NNN.png`` (0/255 disk); returns ``root``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    centre = (size - 1) / 2
    disk = ((yy - centre) ** 2 + (xx - centre) ** 2 <= (0.48 * size) ** 2).astype(np.uint8)
    for folder in ("images", "masks", *(("valid",) if field_of_view else ())):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        mask = thin_curve_mask(size, rng, curves)
        image = thin_structure_image(mask, rng, contrast)
        if field_of_view:
            image = image * disk[..., None]
            mask = mask * disk
            Image.fromarray(disk * 255).save(root / "valid" / f"{i:03d}.png")
        Image.fromarray(image).save(root / "images" / f"{i:03d}.png")
        Image.fromarray(mask * 255).save(root / "masks" / f"{i:03d}.png")
    return root


def foreground_fraction(root: Path) -> float:
    """The share of mask pixels that are foreground, over every mask under ``root``."""
    masks = [np.asarray(Image.open(p)) > 127 for p in sorted((root / "masks").glob("*.png"))]
    return float(np.mean([m.mean() for m in masks]))
