"""Transform presets on ``torchvision.transforms.v2``.

Images travel as ``tv_tensors.Image`` (uint8) and masks as ``tv_tensors.Mask``, so
every geometric transform moves both together (nearest-neighbour for the mask) and
photometric ones leave the mask alone. Presets: ``default``, ``light``, ``strong``,
``none``; the knobs in ``DataConfig`` (hflip, rotation, ...) override a preset.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

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


PRESETS = {
    "none": Augmentation(),
    "light": Augmentation(hflip=0.5),
    "default": Augmentation(hflip=0.5, crop_padding=4),
    "strong": Augmentation(hflip=0.5, rotation=10.0, color_jitter=0.3, random_resized_crop=True),
}


def augmentation_for(cfg: DataConfig) -> Augmentation:
    if cfg.augment not in PRESETS:
        raise ValueError(
            f"data.augment: unknown preset {cfg.augment!r} (valid: {', '.join(PRESETS)})"
        )
    base = PRESETS[cfg.augment]
    knobs = {
        name: getattr(cfg, name) if getattr(cfg, name) is not None else getattr(base, name)
        for name in Augmentation.__dataclass_fields__
    }
    return Augmentation(**knobs)


def normalization(cfg: DataConfig) -> tuple[list[float], list[float]]:
    """Mean and std per channel: configured, else ImageNet's for RGB, else 0.5."""
    if cfg.mean is not None and cfg.std is not None:
        return list(cfg.mean), list(cfg.std)
    if cfg.in_channels == 3:
        return IMAGENET_MEAN, IMAGENET_STD
    return [0.5] * cfg.in_channels, [0.5] * cfg.in_channels


def build_transform(cfg: DataConfig, train: bool) -> v2.Compose:
    """The pipeline for one split: geometry (train only), resize, to float, normalise."""
    size = list(cfg.image_size)
    steps: list[v2.Transform] = []
    aug = augmentation_for(cfg) if train else Augmentation()
    if aug.random_resized_crop:
        steps.append(v2.RandomResizedCrop(size, scale=(0.35, 1.0), antialias=True))
    else:
        steps.append(v2.Resize(size, antialias=True))
        if aug.crop_padding:
            steps.append(v2.RandomCrop(size, padding=aug.crop_padding, padding_mode="constant"))
    if aug.hflip:
        steps.append(v2.RandomHorizontalFlip(aug.hflip))
    if aug.vflip:
        steps.append(v2.RandomVerticalFlip(aug.vflip))
    if aug.rotation:
        steps.append(v2.RandomRotation(aug.rotation))
    if aug.color_jitter and cfg.in_channels == 3:
        j = aug.color_jitter
        steps.append(v2.ColorJitter(brightness=j, contrast=j, saturation=j))
    steps.append(v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True))
    if cfg.normalize:
        mean, std = normalization(cfg)
        steps.append(v2.Normalize(mean, std))
    return v2.Compose(steps)
