"""Segmentation from image/mask file pairs, and the decoding of mask files into classes.

``mask_folder`` pairs images with masks either by file stem (mask stem = image stem +
``data.mask_suffix``) across two folders, or by a list file of ``image mask`` lines::

    root/images/*.jpg  root/masks/*.png                        (one pool, splits carved)
    root/train/images/ root/train/masks/  root/val/...         (own splits)
    root/{split}/      root/{split}annot/                      (image_dir: "{split}",
                                                                mask_dir: "{split}annot")
    root/train.txt  root/val.txt  (list_file: "{split}.txt")   (SegNet's CamVid lists)

Listed paths are resolved under ``data.root``: an absolute path that does not exist
loses leading folders until it does, so ``/SegNet/CamVid/train/x.png`` in CamVid's
``train.txt`` finds ``root/train/x.png``.

Mask modes (``data.mask_mode``): ``index`` stores class indices (grayscale or palette
PNG; a palette PNG's indices are read, not its colours); ``rgb`` stores colours, mapped
through ``data.palette`` (a text file of ``R G B [name]`` lines, a JSON list or
``{name: [R, G, B]}``, or an image whose pixels are the colours in order; a colour named
``ignore`` maps to ``ignore_index``); ``binary`` maps values at or above
``data.mask_threshold`` to class 1 and the rest to class 0 (default: the midpoint, 128
for 8-bit files, so that the halo of small values JPEG leaves around each object of a
0/255 mask stays background; a mask of only 0 and 1 is read as is). In every mode
``data.mask_ignore_values`` map to ``ignore_index``, and a value that is neither a class
nor ignored is an error naming the file (it would crash the loss).

Pairing by stem refuses a folder pair in which not one image finds its mask, showing the
first names of each side and the key that would pair them (``data.mask_suffix``, or
``data.list_file`` when both sides carry their own suffix, as DRIVE's ``21_training.tif``
and ``21_manual1.gif``); images and masks may share one folder, told apart by the suffix.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import tv_tensors

from ..config import DataConfig
from ..log import logger
from .base import FileFacts, ProblemLog, RawDataset, require_root
from .folders import folder_contents, list_files_by_split, split_names
from .io import (
    DataError,
    MaskSizeError,
    MaskValueError,
    check_channels,
    image_kind,
    image_size,
    is_image_file,
    read_image,
    read_mask_file,
    read_mask_values,
    resize_mask_nearest,
    uniform_scale,
)
from .splits import carve_missing_splits


# --------------------------------------------------------------------------- decoding
@dataclass
class MaskDecoder:
    """Turns a mask file into an (H, W) tensor of class indices and ``ignore_index``.

    ``value_map`` (stored value -> class, for 8-bit masks) renumbers dataset encodings
    such as the Oxford-IIIT Pet trimaps; ``palette`` (K, 3) maps colours in rgb mode.
    """

    mode: str
    num_classes: int
    ignore_index: int = 255
    ignore_values: Sequence[int] = ()
    value_map: dict[int, int] | None = None
    palette: torch.Tensor | None = None
    palette_classes: list[int] | None = None  # class of each palette row (ignore allowed)
    max_pixels: int = 89_478_485
    threshold: float | None = None  # binary: stored values >= it are foreground

    def __post_init__(self) -> None:
        small = 0 <= self.ignore_index <= 255 and self.num_classes <= 255
        self.dtype = torch.uint8 if small else torch.int64
        lut = torch.arange(256, dtype=torch.int64)
        for value, cls in (self.value_map or {}).items():
            lut[value] = cls
        for value in self.ignore_values:
            if 0 <= value <= 255:
                lut[value] = self.ignore_index
        self.identity = bool((lut == torch.arange(256)).all())
        self.lut = lut.to(self.dtype) if small else lut
        self.valid = (lut < self.num_classes) & (lut >= 0) | (lut == self.ignore_index)
        if self.palette is not None:
            codes = _colour_codes(self.palette.T.reshape(3, -1, 1)).reshape(-1)
            order = torch.argsort(codes)
            self.sorted_codes = codes[order]
            classes = torch.tensor(self.palette_classes or list(range(len(codes))))
            self.sorted_classes = classes[order]

    def ignores(self, value: int) -> bool:
        """Whether a stored value becomes ``ignore_index``: one of ``ignore_values``, a
        ``value_map`` entry that maps to it, or (index masks) ``ignore_index`` itself."""
        if value in self.ignore_values:
            return True
        mapped = (self.value_map or {}).get(value, value if self.mode == "index" else None)
        return mapped == self.ignore_index

    def __call__(self, path: str | Path) -> torch.Tensor:
        return self.decode(read_mask_values(path, self.max_pixels), path)

    def decode(self, values: torch.Tensor, path: str | Path) -> torch.Tensor:
        """Classes from a mask file's stored values (``read_mask_values``)."""
        if self.mode == "rgb":
            return self._from_colours(values, path)
        if values.dim() == 3:
            if self.mode == "binary" or bool((values == values[:1]).all()):
                values = values.max(dim=0).values
            else:
                raise DataError(
                    f"{path}: an RGB mask with data.mask_mode={self.mode}; for colour-coded "
                    "masks set data.mask_mode=rgb and data.palette"
                )
        if self.mode == "binary":
            return self._threshold(values)
        return self._map(values, path, check=True)

    def _threshold(self, values: torch.Tensor) -> torch.Tensor:
        """Foreground where the stored value is at least the threshold: ``data.mask_threshold``,
        else the midpoint of the stored range (128 for 8-bit, 32768 for 16-bit files), so
        that a lossy file's halo of small values around each object stays background; a
        mask holding only 0 and 1 (besides ignored values) is read as is."""
        ignored = None
        if self.ignore_values:
            ignored = torch.isin(values.long(), torch.tensor(list(self.ignore_values)))
        threshold = self.threshold
        if threshold is None:
            kept = values if ignored is None else values[~ignored]
            top = int(kept.max()) if kept.numel() else 0
            threshold = 1 if top <= 1 else (128 if values.dtype == torch.uint8 else 32768)
        binary = (values >= threshold).to(self.dtype)
        if ignored is not None:
            binary[ignored] = self.ignore_index
        return binary

    def _map(self, values: torch.Tensor, path: str | Path, check: bool) -> torch.Tensor:
        if values.dtype == torch.uint8:
            if check:
                counts = torch.bincount(values.reshape(-1), minlength=256)
                bad = ((counts > 0) & ~self.valid).nonzero().flatten()
                if len(bad):
                    self._out_of_range(path, bad.tolist())
            return values.to(self.dtype) if self.identity else self.lut[values.long()]
        values = values.long()
        for value, cls in (self.value_map or {}).items():
            values = torch.where(values == value, cls, values)
        if self.ignore_values:
            values[torch.isin(values, torch.tensor(list(self.ignore_values)))] = self.ignore_index
        if check:
            wrong = ((values < 0) | (values >= self.num_classes)) & (values != self.ignore_index)
            if wrong.any():
                self._out_of_range(path, values[wrong].unique()[:10].tolist())
        return values.to(self.dtype)

    def _out_of_range(self, path: str | Path, bad: list[int]) -> None:
        raise MaskValueError(
            f"{path}: mask values {bad[:10]} are not classes 0..{self.num_classes - 1} "
            f"nor ignore_index={self.ignore_index} (set data.num_classes, "
            "data.mask_ignore_values or data.mask_mode)"
        )

    def _from_colours(self, values: torch.Tensor, path: str | Path) -> torch.Tensor:
        if values.dim() == 2:
            values = values.expand(3, *values.shape)
        codes = _colour_codes(values)
        slot = torch.searchsorted(self.sorted_codes, codes).clamp(max=len(self.sorted_codes) - 1)
        known = self.sorted_codes[slot] == codes
        if not bool(known.all()):
            unknown = values[:, ~known][:, :1].reshape(-1).tolist()
            count = int((~known).sum())
            raise MaskValueError(
                f"{path}: {count} pixels have colours not in data.palette (first: "
                f"{tuple(unknown)}); add them to the palette (name 'ignore' to ignore them)"
            )
        return self.sorted_classes[slot].to(self.dtype)


def stored_values(values: torch.Tensor) -> dict[Any, int]:
    """Pixels per stored value of a mask (``read_mask_values``): int keys, or ``(r, g, b)``
    tuples for colour masks."""
    if values.dim() == 3:
        codes, counts = torch.unique(_colour_codes(values).reshape(-1), return_counts=True)
        keys: list[Any] = [(c >> 16, (c >> 8) & 255, c & 255) for c in codes.tolist()]
    elif values.dtype == torch.uint8:
        all_counts = torch.bincount(values.reshape(-1), minlength=256)
        present = all_counts.nonzero().flatten()
        keys, counts = present.tolist(), all_counts[present]
    else:
        unique, counts = torch.unique(values.reshape(-1), return_counts=True)
        keys = unique.tolist()
    return dict(zip(keys, counts.tolist()))


def _colour_codes(rgb: torch.Tensor) -> torch.Tensor:
    """(3, ...) colours as one int per pixel: R * 65536 + G * 256 + B."""
    rgb = rgb.long()
    return (rgb[0] << 16) | (rgb[1] << 8) | rgb[2]


def load_palette(path: str | Path, count: int | None = None) -> tuple[torch.Tensor, list[str]]:
    """(K, 3) uint8 colours and their names ("" where the file has none).

    Formats: an image (its pixels in row order are the colours; needs ``count``), JSON
    (``[[r, g, b], ...]`` or ``{name: [r, g, b]}``), or text lines ``R G B [name]``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data.palette={path}: no such file")
    if is_image_file(path):
        if count is None:
            raise DataError(
                f"data.palette={path}: an image palette needs data.num_classes or "
                "data.class_names to say how many of its colours are classes"
            )
        pixels = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3)[:count]
        return torch.from_numpy(pixels.copy()), [""] * len(pixels)
    text = path.read_text()
    if path.suffix.lower() == ".json":
        loaded = json.loads(text)
        items = list(loaded.items()) if isinstance(loaded, dict) else [("", c) for c in loaded]
        colours = [list(map(int, c)) for _, c in items]
        names = [str(n) for n, _ in items]
    else:
        colours, names = [], []
        for number, line in enumerate(text.splitlines(), start=1):
            fields = [f for f in re.split(r"[\s,;]+", line.strip()) if f]
            if not fields or fields[0].startswith("#"):
                continue
            try:
                colours.append([int(f) for f in fields[:3]])
            except ValueError as err:
                raise DataError(f"{path}:{number}: expected R G B [name], got {line!r}") from err
            names.append(" ".join(fields[3:]))
    if not colours or any(len(c) != 3 or not all(0 <= v <= 255 for v in c) for c in colours):
        raise DataError(f"data.palette={path}: expected colours of three values in 0..255")
    colours_t = torch.tensor(colours[:count] if count else colours, dtype=torch.uint8)
    return colours_t, names[: len(colours_t)]


def decoder_for(
    cfg: DataConfig, class_names: list[str] | None = None
) -> tuple[MaskDecoder, list[str]]:
    """The mask decoder of a config, and its class names."""
    common = dict(
        ignore_index=cfg.ignore_index,
        ignore_values=list(cfg.mask_ignore_values),
        max_pixels=cfg.max_image_pixels,
    )
    configured = list(cfg.class_names) if cfg.class_names else class_names
    if cfg.mask_mode == "binary":
        names = configured or ["background", "foreground"]
        return MaskDecoder("binary", 2, threshold=cfg.mask_threshold, **common), names
    if cfg.mask_mode == "rgb":
        assert cfg.palette is not None
        count = cfg.num_classes or (len(configured) if configured else None)
        colours, names = load_palette(cfg.palette, count if is_image_file(cfg.palette) else None)
        classes: list[int] = []
        palette_names: list[str] = []
        for name in names:
            if name.strip().lower() == "ignore":
                classes.append(cfg.ignore_index)
            else:
                classes.append(len(palette_names))
                palette_names.append(name or str(len(palette_names)))
        if count is not None and count != len(palette_names):
            raise DataError(
                f"data.palette={cfg.palette}: {len(palette_names)} class colours, but "
                f"data.num_classes/class_names say {count}"
            )
        decoder = MaskDecoder(
            "rgb", len(palette_names), palette=colours, palette_classes=classes, **common
        )
        return decoder, configured or palette_names
    count = cfg.num_classes or (len(configured) if configured else None)
    if count is None:
        raise DataError(
            f"data.format={cfg.format} with index masks needs data.num_classes or "
            "data.class_names (`pixelwise data stats` lists the values the masks hold)"
        )
    return MaskDecoder("index", count, **common), configured or [str(i) for i in range(count)]


# --------------------------------------------------------------------------- pairs
class SegmentationFiles(RawDataset):
    """Image files with a mask file each, decoded into a ``tv_tensors.Mask`` of classes.

    ``valid_masks`` (one per pair, ``data.valid_mask_dir``): pixels outside each image's
    valid region (a retinal image's field of view) become ``ignore_index``, so that the
    loss and every figure count only the pixels inside. ``resize_masks="nearest"``
    resizes a mask (and a valid-region mask) that is a uniform scale of its image to it;
    ``"refuse"`` raises ``MaskSizeError`` for any size that differs.
    """

    task = "segmentation"

    def __init__(
        self,
        pairs: list[tuple[str, str]],
        decoder: MaskDecoder,
        in_channels: int,
        max_pixels: int,
        valid_masks: list[str] | None = None,
        resize_masks: str = "refuse",
    ) -> None:
        super().__init__()
        self.images = [str(i) for i, _ in pairs]
        self.masks = [str(m) for _, m in pairs]
        self.decoder = decoder
        self.in_channels = in_channels
        self.max_pixels = max_pixels
        self.valid_masks = valid_masks
        self.resize_masks = resize_masks
        self.valid_decoder = MaskDecoder("binary", 2, max_pixels=max_pixels)

    def __len__(self) -> int:
        return len(self.images)

    def load(self, index: int) -> tuple[tv_tensors.Image, tv_tensors.Mask]:
        image = read_image(self.images[index], self.in_channels, self.max_pixels)
        mask, _ = self._target(index, self.decoder(self.masks[index]), image.shape[-2:])
        return tv_tensors.Image(image), tv_tensors.Mask(mask)

    def inspect(
        self, index: int, with_image: bool = True
    ) -> tuple[tv_tensors.Image | None, tv_tensors.Mask, FileFacts]:
        """``load`` that also reports the files' kinds and the mask's stored values (one
        read of each file), and whether the mask was resized to its image."""
        values, mask_kind = read_mask_file(self.masks[index], self.max_pixels)
        mask = self.decoder.decode(values, self.masks[index])
        facts = FileFacts(
            mask_kind=mask_kind, mask_values=stored_values(values), mask_path=self.masks[index]
        )
        if not with_image:
            if self._needs_image_size:
                mask, facts.mask_resized = self._target(index, mask, self._image_size(index))
            return None, tv_tensors.Mask(mask), facts
        image = read_image(self.images[index], self.in_channels, self.max_pixels)
        mask, facts.mask_resized = self._target(index, mask, image.shape[-2:])
        facts.image_kind = image_kind(self.images[index])
        return tv_tensors.Image(image), tv_tensors.Mask(mask), facts

    @property
    def _needs_image_size(self) -> bool:
        return self.valid_masks is not None or self.resize_masks != "refuse"

    def _image_size(self, index: int) -> tuple[int, int]:
        return image_size(self.images[index], self.max_pixels)

    def _target(
        self, index: int, mask: torch.Tensor, size: Sequence[int]
    ) -> tuple[torch.Tensor, bool]:
        """The decoded mask at the image's ``size``, ignored outside the valid region;
        and whether it was resized."""
        mask, resized = self._fitted(index, mask, size, self.masks[index], "mask")
        if self.valid_masks is not None:
            path = self.valid_masks[index]
            valid, _ = self._fitted(index, self.valid_decoder(path), size, path, "valid mask")
            mask = mask.clone()
            mask[valid == 0] = self.decoder.ignore_index
        return mask, resized

    def _fitted(
        self, index: int, mask: torch.Tensor, size: Sequence[int], path: str, what: str
    ) -> tuple[torch.Tensor, bool]:
        """``mask`` as is when its size is the image's, resized under
        ``data.resize_masks=nearest`` when it is a uniform scale of it, else refused."""
        height, width = (int(n) for n in size)
        if tuple(mask.shape) == (height, width):
            return mask, False
        message = (
            f"{path}: {what} is {mask.shape[1]}x{mask.shape[0]} but its image "
            f"{self.images[index]} is {width}x{height} (width x height)"
        )
        if self.resize_masks == "refuse":
            raise MaskSizeError(
                f"{message}; data.resize_masks=nearest resizes masks that are a uniform scale "
                "of their image"
            )
        if not uniform_scale(tuple(mask.shape), (height, width)):
            raise MaskSizeError(
                f"{message}: the aspect ratios differ, so data.resize_masks=nearest does not "
                "resize it (another crop, or a wrong pairing?)"
            )
        return resize_mask_nearest(mask, (height, width)), True

    def load_target(self, index: int) -> tv_tensors.Mask:
        mask = self.decoder(self.masks[index])
        if self._needs_image_size:
            mask, _ = self._target(index, mask, self._image_size(index))
        return tv_tensors.Mask(mask)

    def describe(self, index: int) -> str:
        return self.images[index]


def build_mask_folder(
    cfg: DataConfig, seed: int, split_file: Path | None
) -> tuple[dict[str, Dataset], list[str]]:
    check_channels(cfg.in_channels)
    decoder, class_names = decoder_for(cfg)
    problems = ProblemLog(cfg.on_error)
    if cfg.list_file is not None:
        pairs = {
            split: read_pair_list(path, cfg, problems)
            for split, path in list_files_by_split(cfg).items()
        }
        note_missing_test_list(cfg, pairs)
    else:
        pairs = {
            split: pair_by_stem(images, masks, cfg.mask_suffix, problems)
            for split, (images, masks) in folder_pairs(cfg).items()
        }
    valid: dict[str, list[str] | None] = {split: None for split in pairs}
    if cfg.valid_mask_dir is not None:
        for split, split_pairs in pairs.items():
            pairs[split], valid[split] = pair_valid_masks(split_pairs, split, cfg, problems)
    own: dict[str, Dataset] = {}
    for split, split_pairs in pairs.items():
        dataset = SegmentationFiles(
            split_pairs,
            decoder,
            cfg.in_channels,
            cfg.max_image_pixels,
            valid_masks=valid[split],
            resize_masks=cfg.resize_masks,
        )
        dataset.problems = list(problems)
        own[split] = dataset
    problems.summarize(str(cfg.root))
    return carve_missing_splits(own, cfg, seed, split_file), class_names


def valid_mask_folder(cfg: DataConfig, split: str) -> Path:
    """The folder of a split's valid-region masks: ``data.valid_mask_dir`` under the root,
    with ``{split}`` replaced, or under ``root/<split>/`` when the splits have their own
    folders there (as ``data.mask_dir``)."""
    assert cfg.valid_mask_dir is not None
    root = Path(cfg.root).expanduser() if cfg.root else Path(".")
    if "{split}" in cfg.valid_mask_dir:
        return root / cfg.valid_mask_dir.replace("{split}", split)
    if (root / split / cfg.valid_mask_dir).is_dir():
        return root / split / cfg.valid_mask_dir
    return root / cfg.valid_mask_dir


def pair_valid_masks(
    pairs: list[tuple[str, str]], split: str, cfg: DataConfig, problems: ProblemLog
) -> tuple[list[tuple[str, str]], list[str]]:
    """The pairs that have a valid-region mask (stem = image stem +
    ``data.valid_mask_suffix``), and those masks; an image without one is a
    ``missing_valid_mask`` error (its figures would count pixels outside its field of
    view), left out under ``data.on_error=skip``."""
    folder = valid_mask_folder(cfg, split)
    if not folder.is_dir():
        raise DataError(
            f"data.valid_mask_dir={cfg.valid_mask_dir}: no folder {folder} for split {split!r} "
            "(relative to data.root; {split} is replaced by the split name)"
        )
    by_stem: dict[str, Path] = {}
    for path in image_files(folder):
        by_stem.setdefault(path.stem, path)
    kept, valid = [], []
    for image, mask in pairs:
        stem = Path(image).stem + cfg.valid_mask_suffix
        if stem not in by_stem:
            problems.add(
                "missing_valid_mask",
                image,
                f"{image}: no valid-region mask {stem}.* in {folder} (data.valid_mask_dir, "
                f"data.valid_mask_suffix={cfg.valid_mask_suffix!r})",
            )
            continue
        kept.append((image, mask))
        valid.append(str(by_stem[stem]))
    return kept, valid


def note_missing_test_list(cfg: DataConfig, pairs: dict[str, Any]) -> None:
    """One info line where a ``{split}`` list file has no test list and none is carved:
    the split is optional (SegNet's CamVid copies often lack ``test.txt``), but a user
    should know why the test figures come from elsewhere."""
    if "{split}" not in str(cfg.list_file) or cfg.test_split in pairs or cfg.test_fraction > 0:
        return
    listing = Path(cfg.root or ".") / str(cfg.list_file).replace("{split}", cfg.test_split)
    logger.info(
        f"data.list_file: no {listing}, so no '{cfg.test_split}' split (splits: "
        f"{', '.join(pairs)}); add it (CamVid: test.txt with test/ and testannot/) to "
        f"evaluate on it"
    )


def folder_pairs(cfg: DataConfig) -> dict[str, tuple[Path, Path]]:
    """(image folder, mask folder) per split found under ``data.root``."""
    root = require_root(cfg, "image and mask folders")
    if "{split}" in cfg.image_dir or "{split}" in cfg.mask_dir:
        candidates = {
            s: (
                root / cfg.image_dir.replace("{split}", s),
                root / cfg.mask_dir.replace("{split}", s),
            )
            for s in split_names(cfg)
        }
    elif (root / cfg.train_split / cfg.image_dir).is_dir():
        candidates = {
            s: (root / s / cfg.image_dir, root / s / cfg.mask_dir) for s in split_names(cfg)
        }
    else:
        candidates = {cfg.train_split: (root / cfg.image_dir, root / cfg.mask_dir)}
    found = {s: pair for s, pair in candidates.items() if pair[0].is_dir()}
    if cfg.train_split not in found:
        images, _ = candidates[cfg.train_split]
        raise DataError(
            f"data.root={cfg.root}: no image folder {images} (set data.image_dir and "
            "data.mask_dir; layouts: docs/data.md)"
        )
    for images, masks in found.values():
        if not masks.is_dir():
            raise DataError(
                f"data.mask_dir: no mask folder {masks} for images in {images} (masks in the "
                "image folder: set data.mask_dir to it and data.mask_suffix, e.g. _mask)"
            )
    return found


def pair_by_stem(
    image_dir: Path, mask_dir: Path, suffix: str, problems: ProblemLog
) -> list[tuple[str, str]]:
    """(image, mask) pairs with mask stem = image stem + ``suffix``. Images and masks may
    share one folder when the suffix tells them apart. Not a single pair is an error that
    shows both sides' first names and how to pair them (it would otherwise surface as an
    empty dataset)."""
    same_folder = image_dir.resolve() == mask_dir.resolve()
    if same_folder and not suffix:
        raise DataError(
            f"data.image_dir and data.mask_dir are both {image_dir}: set data.mask_suffix to "
            "tell the masks apart (mask file stem = image stem + suffix, e.g. _mask)"
        )
    images = image_files(image_dir)
    if same_folder:
        mask_files = [p for p in images if p.stem.endswith(suffix)]
        images = [p for p in images if not p.stem.endswith(suffix)]
    else:
        mask_files = image_files(mask_dir)
    for folder, files, what in ((image_dir, images, "image"), (mask_dir, mask_files, "mask")):
        if not files:
            raise DataError(f"{folder}: no {what} files ({folder_contents(folder)})")
    masks: dict[str, Path] = {}
    for path in mask_files:
        masks.setdefault(path.stem, path)
    found = [(image, masks.get(image.stem + suffix)) for image in images]
    if not any(mask for _, mask in found):
        raise DataError(_no_pairs_message(image_dir, images, mask_dir, mask_files, suffix))
    pairs, used = [], set()
    for image, mask in found:
        if mask is None:
            problems.add(
                "missing_mask",
                image,
                f"{image}: no mask {image.stem + suffix}.* in {mask_dir}",
            )
            continue
        used.add(mask.stem)
        pairs.append((str(image), str(mask)))
    for stem in sorted(set(masks) - used):
        problems.add(
            "missing_image", masks[stem], f"{masks[stem]}: mask without an image", "warning"
        )
    return pairs


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p))


def _no_pairs_message(
    image_dir: Path, images: list[Path], mask_dir: Path, masks: list[Path], suffix: str
) -> str:
    def first(paths: list[Path]) -> str:
        return ", ".join(p.name for p in paths[:3]) + (", ..." if len(paths) > 3 else "")

    return (
        f"no image/mask pairs: no image in {image_dir} has a mask named <image stem>{suffix}.* "
        f"in {mask_dir} (data.mask_suffix={suffix!r}); first images: {first(images)}; "
        f"first masks: {first(masks)}; {_pairing_hint(images, masks)}"
    )


def _pairing_hint(images: list[Path], masks: list[Path]) -> str:
    """How these names could pair: a mask suffix that would, or a list file."""
    image_stems = {p.stem for p in images}
    appended: dict[str, int] = {}
    for mask in masks:
        for k in range(len(mask.stem) + 1):
            if mask.stem[:k] in image_stems:
                appended[mask.stem[k:]] = appended.get(mask.stem[k:], 0) + 1
    if appended:
        best = max(appended, key=appended.__getitem__)
        return f"data.mask_suffix: {best!r} would pair {appended[best]} of {len(images)} images"
    image_end = _common_suffix([p.stem for p in images])
    mask_end = _common_suffix([p.stem for p in masks])
    if image_end and mask_end:
        return (
            f"the images end in {image_end!r} and the masks in {mask_end!r}, which "
            "data.mask_suffix (appended to the image stem) cannot express: list the pairs "
            "in data.list_file, one 'image mask' line each"
        )
    return (
        "set data.mask_suffix (mask stem = image stem + suffix) or list the pairs in "
        "data.list_file, one 'image mask' line each"
    )


def _common_suffix(stems: list[str]) -> str:
    reversed_common = os.path.commonprefix([stem[::-1] for stem in stems])
    return reversed_common[::-1] if len(stems) > 1 else ""


def read_pair_list(path: Path, cfg: DataConfig, problems: ProblemLog) -> list[tuple[str, str]]:
    """``image mask`` lines (spaces, tabs or a comma between), resolved under the root."""
    base = Path(cfg.root).expanduser() if cfg.root else path.parent
    resolver = PathResolver(base)
    pairs = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = [f for f in re.split(r"[\s,]+", line.strip()) if f]
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) != 2:
            raise DataError(f"{path}:{number}: expected 'image mask', got {line.strip()!r}")
        image, mask = (resolver(f) for f in fields)
        where = f"{path}:{number}"
        if image is None:
            problems.add("missing_image", fields[0], f"{where}: image {fields[0]} not found")
            continue
        if mask is None:
            problems.add("missing_mask", fields[1], f"{where}: mask {fields[1]} not found")
            continue
        pairs.append((str(image), str(mask)))
    return pairs


class PathResolver:
    """A listed path under ``base``, dropping leading folders until the file exists; the
    number dropped for the first hit is tried first for the rest (one ``stat`` each)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.drop: int | None = None

    def __call__(self, listed: str) -> Path | None:
        path = Path(listed)
        if path.is_absolute() and path.is_file():
            return path
        parts = path.parts[1:] if path.is_absolute() else path.parts
        order = range(len(parts))
        if self.drop is not None:
            order = [self.drop, *(k for k in order if k != self.drop)]
        for k in order:
            candidate = self.base.joinpath(*parts[k:])
            if candidate.is_file():
                self.drop = k
                return candidate
        return None
