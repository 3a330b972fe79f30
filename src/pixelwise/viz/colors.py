"""Class colours: the dataset's own where it has them, else the PASCAL VOC palette.

A dataset's colours come from ``data.class_colors`` (``[[r, g, b], ...]`` per class, or a
palette file) and travel in the model card (``ModelCard.class_colors``), so that the
report, the learning GIF and ``pixelwise predict`` overlays draw a class in the colour
its annotators gave it. Without them, class i gets the i-th PASCAL VOC colour (class 0
black, then the bit-interleaved sequence that keeps neighbouring classes apart). Pixels
labelled ``ignore_index`` are white (``IGNORE_COLOR``) in every picture.

No matplotlib here: the model card imports this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..data.io import DataError, is_image_file
from ..data.masks import load_palette
from ..errors import MissingFileError, UserError

if TYPE_CHECKING:
    from ..config import DataConfig

RGB = tuple[int, int, int]
IGNORE_COLOR: RGB = (255, 255, 255)
IGNORE_LABEL = "ignored"


def palette(num_classes: int) -> np.ndarray:
    """(num_classes, 3) uint8 colours: the PASCAL VOC palette, bit by bit from the index."""
    colors = np.zeros((num_classes, 3), dtype=np.uint8)
    for index in range(num_classes):
        value, r, g, b = index, 0, 0, 0
        for shift in range(7, -1, -1):
            r |= (value & 1) << shift
            g |= ((value >> 1) & 1) << shift
            b |= ((value >> 2) & 1) << shift
            value >>= 3
        colors[index] = (r, g, b)
    return colors


def class_colors(
    num_classes: int, given: np.ndarray | Sequence[Sequence[int]] | None = None
) -> np.ndarray:
    """(num_classes, 3) uint8: the ``given`` colours (a card's ``class_colors``), else
    the VOC palette; classes beyond the given ones fall back to the palette."""
    colors = palette(num_classes)
    if given is not None and len(given):
        count = min(len(given), num_classes)
        colors[:count] = np.asarray(given[:count], dtype=np.uint8).reshape(count, 3)
    return colors


def configured_class_colors(data: DataConfig, class_names: Sequence[str]) -> tuple[RGB, ...] | None:
    """The colours ``data.class_colors`` gives each class, or ``None`` where it gives none.

    A list is taken as it is (``DataConfig.check`` validated it). A path (as given, else
    under ``data.root``) is read as a palette file: an image's pixels in row order, JSON
    ``[[r, g, b], ...]`` or ``{name: [r, g, b]}``, or ``R G B [name]`` lines. Where the
    file names every class, colours are matched by name; else they are taken in order.
    """
    value = data.class_colors
    if value is None:
        return None
    if isinstance(value, str):
        return _colors_from_file(_palette_path(value, data.root), class_names)
    return tuple((int(r), int(g), int(b)) for r, g, b in value)


def _palette_path(value: str, root: str | None) -> Path:
    path = Path(value).expanduser()
    if not path.is_file() and root is not None and (Path(root) / path).is_file():
        path = Path(root) / path
    if not path.is_file():
        under = f" (nor under data.root={root})" if root else ""
        raise MissingFileError(
            f"data.class_colors={value}: no such file{under}; give a palette file or a "
            "list of [r, g, b] per class"
        )
    return path


def _colors_from_file(path: Path, class_names: Sequence[str]) -> tuple[RGB, ...]:
    count = len(class_names) if is_image_file(path) else None  # an image has no length
    try:
        colors, names = load_palette(path, count)
    except DataError as err:  # its message names data.palette, the key it was written for
        reason = str(err).split(": ", 1)[-1]
        raise UserError(f"data.class_colors={path}: {reason}") from None
    by_name = {name.strip().lower(): i for i, name in enumerate(names) if name.strip()}
    wanted = [name.strip().lower() for name in class_names]
    if all(name in by_name for name in wanted):
        rows = [by_name[name] for name in wanted]
    elif len(colors) >= len(class_names):
        rows = list(range(len(class_names)))
    else:
        raise UserError(
            f"data.class_colors={path}: {len(colors)} colours for {len(class_names)} classes"
        )
    return tuple((int(c[0]), int(c[1]), int(c[2])) for c in colors[rows].tolist())
