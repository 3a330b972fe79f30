"""PASCAL VOC 2012 segmentation (Everingham et al.), read by torchvision's parser.

Layout (``VOCtrainval_11-May-2012.tar`` unpacked)::

    root/VOCdevkit/VOC2012/JPEGImages/*.jpg
    root/VOCdevkit/VOC2012/SegmentationClass/*.png      (palette PNGs: 0..20, 255 border)
    root/VOCdevkit/VOC2012/ImageSets/Segmentation/train.txt, val.txt

``data.root`` may be the folder holding ``VOCdevkit`` or ``VOCdevkit/VOC2012`` itself.
The masks' palette indices are the classes; 255 (object outlines and hard regions) is
``ignore_index``. The own train/val split is kept (the test labels are not public).
"""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset
from torchvision import datasets

from ..config import DataConfig
from .base import require_root
from .io import DataError, check_channels
from .masks import MaskDecoder, SegmentationFiles
from .splits import carve_missing_splits

VOC_CLASSES = [
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
]  # fmt: skip
VOC_BOUNDARY = 255


def build_voc(
    cfg: DataConfig, seed: int, split_file: Path | None
) -> tuple[dict[str, Dataset], list[str]]:
    check_channels(cfg.in_channels)
    root = require_root(cfg, "VOCdevkit/VOC2012/")
    if root.name == "VOC2012":
        root = root.parent.parent
    elif root.name == "VOCdevkit":
        root = root.parent
    decoder = MaskDecoder(
        "index",
        len(VOC_CLASSES),
        ignore_index=cfg.ignore_index,
        ignore_values=[VOC_BOUNDARY, *cfg.mask_ignore_values],
        max_pixels=cfg.max_image_pixels,
    )
    sets = root / "VOCdevkit" / "VOC2012" / "ImageSets" / "Segmentation"
    own: dict[str, Dataset] = {}
    for split, image_set in ((cfg.train_split, "train"), (cfg.val_split, "val")):
        if not (sets / f"{image_set}.txt").is_file():
            if image_set == "val":
                continue
            raise DataError(
                f"data.root={cfg.root}: no {sets / 'train.txt'} (expected "
                "VOCdevkit/VOC2012/{JPEGImages, SegmentationClass, ImageSets/Segmentation})"
            )
        try:
            parsed = datasets.VOCSegmentation(
                str(root), year="2012", image_set=image_set, download=False
            )
        except Exception as err:
            raise DataError(f"{sets}: cannot read the VOC 2012 release ({err})") from err
        pairs = list(zip(parsed.images, parsed.masks))
        own[split] = SegmentationFiles(pairs, decoder, cfg.in_channels, cfg.max_image_pixels)
    return carve_missing_splits(own, cfg, seed, split_file), list(VOC_CLASSES)
