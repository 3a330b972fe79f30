"""A check every picture test uses: the file opens, has a size, and is not blank."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image, ImageSequence


def assert_picture(
    path: Path, min_width: int, min_height: int, frames: int | None = None, max_share: float = 0.99
) -> Image.Image:
    """Open a PNG or GIF and check its size, its frame count, and that every frame shows
    more than a few colours, none of them covering more than ``max_share`` of it (a
    blank page is one colour; a sparse scatter is 98% white paper)."""
    with Image.open(path) as picture:
        assert picture.format in ("PNG", "GIF")
        assert picture.width >= min_width and picture.height >= min_height, picture.size
        if frames is not None:
            assert getattr(picture, "n_frames", 1) == frames
        for frame in ImageSequence.Iterator(picture):
            colors = frame.convert("RGB").getcolors(maxcolors=1 << 24)
            assert colors is not None and len(colors) > 8, (
                f"{path.name}: {len(colors or [])} colours"
            )
            dominant = max(count for count, _ in colors)
            assert dominant < max_share * picture.width * picture.height, (
                f"{path.name}: mostly one colour"
            )
        picture.seek(0)
        return picture.copy()


@pytest.fixture
def check_picture() -> Callable[..., Image.Image]:
    return assert_picture
