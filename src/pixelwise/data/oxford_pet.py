"""The Oxford-IIIT Pet trimaps (Parkhi et al., 2012), read by torchvision's parser.

Layout (the ``images.tar.gz`` and ``annotations.tar.gz`` releases unpacked)::

    root/oxford-iiit-pet/images/<Breed>_<n>.jpg
    root/oxford-iiit-pet/annotations/trimaps/<Breed>_<n>.png   (1 pet, 2 background, 3 border)
    root/oxford-iiit-pet/annotations/trainval.txt, test.txt

``data.root`` may be the folder holding ``oxford-iiit-pet`` or that folder itself.
``data.pet_classes``: ``trimap`` gives three classes (0 background, 1 pet, 2 border);
``binary`` gives background/pet with the one-pixel-wide border ignored (``ignore_index``),
as PASCAL VOC treats its object outlines. The own trainval/test split is kept; val is
carved from trainval, stratified by breed.
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

TRIMAP_PET, TRIMAP_BACKGROUND, TRIMAP_BORDER = 1, 2, 3


def pet_decoder(cfg: DataConfig) -> tuple[MaskDecoder, list[str]]:
    if cfg.pet_classes == "trimap":
        value_map = {TRIMAP_PET: 1, TRIMAP_BACKGROUND: 0, TRIMAP_BORDER: 2}
        names = ["background", "pet", "border"]
    else:
        value_map = {TRIMAP_PET: 1, TRIMAP_BACKGROUND: 0, TRIMAP_BORDER: cfg.ignore_index}
        names = ["background", "pet"]
    decoder = MaskDecoder(
        "index",
        len(names),
        ignore_index=cfg.ignore_index,
        ignore_values=list(cfg.mask_ignore_values),
        value_map=value_map,
        max_pixels=cfg.max_image_pixels,
    )
    return decoder, names


def build_oxford_pet(
    cfg: DataConfig, seed: int, split_file: Path | None
) -> tuple[dict[str, Dataset], list[str]]:
    check_channels(cfg.in_channels)
    root = require_root(cfg, "oxford-iiit-pet/")
    if root.name == "oxford-iiit-pet":
        root = root.parent
    decoder, names = pet_decoder(cfg)
    own: dict[str, Dataset] = {}
    for split, release in ((cfg.train_split, "trainval"), (cfg.test_split, "test")):
        listing = root / "oxford-iiit-pet" / "annotations" / f"{release}.txt"
        if not listing.is_file():
            if release == "test":
                continue
            raise DataError(
                f"data.root={cfg.root}: no {listing} (expected oxford-iiit-pet/images, "
                "oxford-iiit-pet/annotations/trimaps and annotations/trainval.txt, test.txt)"
            )
        try:
            parsed = datasets.OxfordIIITPet(
                str(root), split=release, target_types="segmentation", download=False
            )
        except Exception as err:  # a missing folder or a malformed list line
            raise DataError(f"{listing}: cannot read the Oxford-IIIT Pet release ({err})") from err
        pairs = [(str(i), str(m)) for i, m in zip(parsed._images, parsed._segs)]
        dataset = SegmentationFiles(pairs, decoder, cfg.in_channels, cfg.max_image_pixels)
        dataset.strata = list(parsed._labels)  # breeds, for a stratified val split
        own[split] = dataset
    return carve_missing_splits(own, cfg, seed, split_file), names
