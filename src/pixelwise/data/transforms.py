"""Transform presets on ``torchvision.transforms.v2``, per task.

Images travel as ``tv_tensors.Image`` (uint8) and masks as ``tv_tensors.Mask``, so
every geometric transform moves both together (nearest-neighbour for the mask) and
photometric ones leave the mask alone. Where geometry uncovers pixels (padding,
rotation, scaling down), images are filled with 0 and masks with ``ignore_index``, so
that made-up pixels count in neither the loss nor the metrics.

Presets (``data.augment``), overridden knob by knob by the ``DataConfig`` fields of the
same name:

=========  ====================================  ======================================
preset     classification                        segmentation
=========  ====================================  ======================================
none       resize only                           resize only
light      hflip 0.5                             hflip 0.5
default    hflip 0.5, random crop with padding 4 hflip 0.5, random scale 0.5-2 + crop
strong     random resized crop, hflip 0.5,       hflip 0.5, random scale 0.5-2 + crop,
           rotation 10, colour jitter 0.3        rotation 10, colour jitter 0.3
=========  ====================================  ======================================

On top of a preset (training only, each a ``DataConfig`` switch):

- ``auto_augment`` (classification): ``randaugment`` (Cubuk et al., 2020, torchvision's
  defaults: 2 operations of magnitude 9), ``trivialaugment`` (TrivialAugmentWide, Müller
  and Hutter, 2021: one operation of random magnitude) or ``augmix`` (Hendrycks et al.,
  2020: a blend of augmentation chains), on the uint8 image after the geometry.
- ``photometric_distortion`` (either task, image only): mmseg's PhotoMetricDistortion
  (from SSD, Liu et al., 2016): brightness, contrast, saturation and hue, each applied
  with this probability, contrast before or after the colour steps at random.
- ``random_erasing`` (classification): a random box of the normalised image set to 0
  (the mean) with this probability (Zhong et al., 2020, "Random Erasing Data
  Augmentation"), as timm and torchvision's references do after normalisation.

Evaluation: classification resizes to ``image_size``. Segmentation evaluates at
``image_size`` (``data.eval_size=image_size``: the mask is resized with nearest
neighbour, metrics count pixels at the training resolution) or at each image's own
size (``native``: no resize; ``build_loader`` pads a batch of differing sizes, masks
with ``ignore_index``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from ..config import DataConfig

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


@dataclass
class Augmentation:
    hflip: float = 0.0
    vflip: float = 0.0
    rotation: float = 0.0
    color_jitter: float = 0.0
    crop_padding: int = 0
    random_resized_crop: bool = False
    random_scale: list[float] | None = None  # [low, high] factors, then a crop


_CLASSIFICATION = {
    "none": Augmentation(),
    "light": Augmentation(hflip=0.5),
    "default": Augmentation(hflip=0.5, crop_padding=4),
    "strong": Augmentation(hflip=0.5, rotation=10.0, color_jitter=0.3, random_resized_crop=True),
}
_SEGMENTATION = {
    "none": Augmentation(),
    "light": Augmentation(hflip=0.5),
    "default": Augmentation(hflip=0.5, random_scale=[0.5, 2.0]),
    "strong": Augmentation(hflip=0.5, random_scale=[0.5, 2.0], rotation=10.0, color_jitter=0.3),
}
PRESETS: dict[str, dict[str, Augmentation]] = {
    "classification": _CLASSIFICATION,
    "segmentation": _SEGMENTATION,
}


def augmentation_for(cfg: DataConfig, task: str = "classification") -> Augmentation:
    """The preset of ``data.augment`` for ``task``, with the configured knobs applied."""
    presets = PRESETS[task]
    if cfg.augment not in presets:
        raise ValueError(
            f"data.augment: unknown preset {cfg.augment!r} (valid: {', '.join(presets)})"
        )
    base = presets[cfg.augment]
    knobs = {f.name: getattr(cfg, f.name) for f in fields(Augmentation)}
    return replace(base, **{k: v for k, v in knobs.items() if v is not None})


def normalization(cfg: DataConfig) -> tuple[list[float], list[float]]:
    """Mean and std per channel: configured, else ImageNet's for RGB, else 0.5."""
    if cfg.mean is not None and cfg.std is not None:
        return list(cfg.mean), list(cfg.std)
    if cfg.in_channels == 3:
        return IMAGENET_MEAN, IMAGENET_STD
    return [0.5] * cfg.in_channels, [0.5] * cfg.in_channels


class Resize(v2.Resize):
    """``v2.Resize`` to an exact (height, width) that passes inputs already at that size
    through untouched (small datasets stored at their training size skip the work)."""

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, (tv_tensors.Image, tv_tensors.Mask)) and list(F.get_size(inpt)) == list(
            self.size
        ):
            return inpt
        return super().transform(inpt, params)


class ToNormalizedFloat(v2.Transform):
    """uint8 images to float32 in [0, 1] and, given ``mean``/``std``, normalised in place:
    ``v2.ToDtype(scale=True)`` then ``v2.Normalize`` in one step (one dispatch and one
    allocation fewer per image). Masks and labels pass through."""

    def __init__(self, mean: list[float] | None = None, std: list[float] | None = None):
        super().__init__()
        self.mean, self.std = mean, std

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not isinstance(inpt, tv_tensors.Image):
            return inpt
        image = F.to_dtype(inpt, torch.float32, scale=True)
        if self.mean is not None and self.std is not None:
            image = F.normalize(image, self.mean, self.std, inplace=True)
        return image


def _fill(ignore_index: int) -> dict:
    return {tv_tensors.Image: 0, tv_tensors.Mask: ignore_index}


def _geometry(cfg: DataConfig, aug: Augmentation, task: str) -> list[v2.Transform]:
    size = list(cfg.image_size)
    fill = _fill(cfg.ignore_index)
    if aug.random_resized_crop:
        return [v2.RandomResizedCrop(size, scale=(0.35, 1.0), antialias=True)]
    steps: list[v2.Transform] = [Resize(size, antialias=True)]
    crop = list(cfg.crop_size) if cfg.crop_size and task == "segmentation" else size
    if aug.random_scale:
        low, high = aug.random_scale
        short = min(size)
        steps.append(v2.RandomResize(max(1, round(short * low)), round(short * high) + 1))
        steps.append(v2.RandomCrop(crop, pad_if_needed=True, fill=fill))
    elif aug.crop_padding or crop != size:
        steps.append(
            v2.RandomCrop(
                crop,
                padding=aug.crop_padding or None,
                pad_if_needed=True,
                fill=fill,
                padding_mode=cfg.crop_padding_mode,
            )
        )
    return steps


AUTO_AUGMENT = {
    "randaugment": v2.RandAugment,
    "trivialaugment": v2.TrivialAugmentWide,
    "augmix": v2.AugMix,
}


def photometric_distortion(p: float, channels: int) -> v2.Transform:
    """mmseg's PhotoMetricDistortion with torchvision's operations: brightness
    (+-32 of 255 as a factor, 0.875-1.125), contrast 0.5-1.5, saturation 0.5-1.5 and
    hue +-18 of OpenCV's 180 (0.1 of the circle), each with probability ``p``; contrast
    comes first or last at random. Greyscale images get brightness and contrast only."""

    def maybe(**jitter: tuple[float, float]) -> v2.Transform:
        return v2.RandomApply([v2.ColorJitter(**jitter)], p=p)

    brightness, contrast = maybe(brightness=(0.875, 1.125)), maybe(contrast=(0.5, 1.5))
    colour = [maybe(saturation=(0.5, 1.5)), maybe(hue=(-0.1, 0.1))] if channels == 3 else []
    return v2.Compose(
        [
            brightness,
            v2.RandomChoice(
                [v2.Compose([contrast, *colour]), v2.Compose([*colour, contrast])], p=[0.5, 0.5]
            ),
        ]
    )


def build_transform(cfg: DataConfig, train: bool, task: str = "classification") -> v2.Compose:
    """The pipeline for one split: geometry, photometry (train only), to float, normalise."""
    steps: list[v2.Transform] = []
    if train:
        aug = augmentation_for(cfg, task)
        steps += _geometry(cfg, aug, task)
        if aug.hflip:
            steps.append(v2.RandomHorizontalFlip(aug.hflip))
        if aug.vflip:
            steps.append(v2.RandomVerticalFlip(aug.vflip))
        if aug.rotation:
            steps.append(v2.RandomRotation(aug.rotation, fill=_fill(cfg.ignore_index)))
        if aug.color_jitter and cfg.in_channels in (1, 3):
            j = aug.color_jitter
            saturation = j if cfg.in_channels == 3 else None
            steps.append(v2.ColorJitter(brightness=j, contrast=j, saturation=saturation))
        if cfg.photometric_distortion:
            steps.append(photometric_distortion(cfg.photometric_distortion, cfg.in_channels))
        if cfg.auto_augment and task == "classification":
            steps.append(AUTO_AUGMENT[cfg.auto_augment]())
    elif task == "classification" or cfg.eval_size == "image_size":
        steps.append(Resize(list(cfg.image_size), antialias=True))
    mean, std = normalization(cfg) if cfg.normalize else (None, None)
    steps.append(ToNormalizedFloat(mean, std))
    if train and cfg.random_erasing and task == "classification":
        steps.append(v2.RandomErasing(p=cfg.random_erasing, value=0))
    return v2.Compose(steps)
