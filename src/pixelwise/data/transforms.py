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
- ``rare_class_crop`` (segmentation): the probability that a training crop is placed
  over a pixel of one of ``data.rare_classes`` (drawn uniformly among those in the
  image, then a pixel of it uniformly), anywhere inside the crop; otherwise, or when the
  image holds none of them, the crop is uniform as usual. Small, rare classes (CamVid's
  poles, signs, pedestrians) then fill more of the training batches: nnU-Net's
  foreground oversampling (Isensee et al., 2021), by class.
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

from ..config import ConfigError, DataConfig

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


class RareClassCrop(v2.RandomCrop):
    """``v2.RandomCrop`` that, with probability ``p``, places the crop over a pixel of one
    of ``classes`` (mask values): a class is drawn uniformly among those the mask holds,
    then one of its pixels, then the crop's position uniformly among those that keep the
    pixel inside. Without a mask, or when it holds none of the classes, the crop is
    ``v2.RandomCrop``'s. Padding (``pad_if_needed``) is respected."""

    def __init__(self, size: list[int], classes: list[int], p: float, **kwargs: Any) -> None:
        super().__init__(size, **kwargs)
        self.classes = torch.tensor(sorted(set(classes)), dtype=torch.int64)
        self.p = p

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        params = super().make_params(flat_inputs)
        if not len(self.classes) or float(torch.rand(())) >= self.p:
            return params
        mask = next((x for x in flat_inputs if isinstance(x, tv_tensors.Mask)), None)
        if mask is None:
            return params
        mask = mask.as_subclass(torch.Tensor)
        mask = mask.reshape(mask.shape[-2:])
        # A few comparisons, not mask.unique(): this runs per sample in the loader.
        present = self.classes[torch.stack([(mask == c).any() for c in self.classes])]
        if not len(present):
            return params
        chosen = present[int(torch.randint(len(present), ()))]
        ys, xs = (mask == chosen).nonzero(as_tuple=True)
        pick = int(torch.randint(len(ys), ()))
        pad_left, pad_top, pad_right, pad_bottom = params["padding"]
        height, width = mask.shape
        params["top"] = _window_start(
            int(ys[pick]) + pad_top, height + pad_top + pad_bottom, params["height"]
        )
        params["left"] = _window_start(
            int(xs[pick]) + pad_left, width + pad_left + pad_right, params["width"]
        )
        return params


def _window_start(point: int, extent: int, window: int) -> int:
    """A uniform start of a ``window`` inside ``[0, extent)`` that covers ``point``."""
    low, high = max(0, point - window + 1), min(point, extent - window)
    return low + int(torch.randint(high - low + 1, ()))


def rare_class_indices(cfg: DataConfig, class_names: list[str] | None) -> list[int]:
    """``data.rare_classes`` as mask values: indices as given, names looked up in the
    dataset's class names."""
    names = list(class_names or cfg.class_names or [])
    indices = []
    for entry in cfg.rare_classes or []:
        if isinstance(entry, int):
            index = entry
        elif entry in names:
            index = names.index(entry)
        else:
            known = f"the classes are {', '.join(names)}" if names else "name them by index"
            raise ConfigError(f"data.rare_classes: no class named {entry!r} ({known})")
        if names and not 0 <= index < len(names):
            raise ConfigError(
                f"data.rare_classes: class index {index} is out of range (0..{len(names) - 1})"
            )
        indices.append(index)
    return indices


def _random_crop(
    cfg: DataConfig, crop: list[int], task: str, class_names: list[str] | None, **kwargs: Any
) -> v2.RandomCrop:
    if task == "segmentation" and cfg.rare_class_crop > 0:
        classes = rare_class_indices(cfg, class_names)
        return RareClassCrop(crop, classes, cfg.rare_class_crop, **kwargs)
    return v2.RandomCrop(crop, **kwargs)


def _geometry(
    cfg: DataConfig, aug: Augmentation, task: str, class_names: list[str] | None = None
) -> list[v2.Transform]:
    size = list(cfg.image_size)
    fill = _fill(cfg.ignore_index)
    if aug.random_resized_crop:
        steps: list[v2.Transform] = [v2.RandomResizedCrop(size, scale=(0.35, 1.0), antialias=True)]
        _check_rare_class_crop(cfg, task, steps)
        return steps
    steps = [Resize(size, antialias=True)]
    crop = list(cfg.crop_size) if cfg.crop_size and task == "segmentation" else size
    if aug.random_scale:
        low, high = aug.random_scale
        short = min(size)
        steps.append(v2.RandomResize(max(1, round(short * low)), round(short * high) + 1))
        steps.append(_random_crop(cfg, crop, task, class_names, pad_if_needed=True, fill=fill))
    elif aug.crop_padding or crop != size:
        steps.append(
            _random_crop(
                cfg,
                crop,
                task,
                class_names,
                padding=aug.crop_padding or None,
                pad_if_needed=True,
                fill=fill,
                padding_mode=cfg.crop_padding_mode,
            )
        )
    _check_rare_class_crop(cfg, task, steps)
    return steps


def _check_rare_class_crop(cfg: DataConfig, task: str, steps: list[v2.Transform]) -> None:
    """``data.rare_class_crop`` acts through a crop step; without one it would do nothing."""
    cropped = any(isinstance(step, RareClassCrop) for step in steps)
    if task == "segmentation" and cfg.rare_class_crop and not cropped:
        raise ConfigError(
            "data.rare_class_crop: this augmentation takes no RandomCrop (set "
            "data.random_scale, or a data.crop_size smaller than data.image_size, and no "
            "data.random_resized_crop)"
        )


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


def build_transform(
    cfg: DataConfig,
    train: bool,
    task: str = "classification",
    class_names: list[str] | None = None,
) -> v2.Compose:
    """The pipeline for one split: geometry, photometry (train only), to float, normalise.
    ``class_names``: the dataset's, for ``data.rare_classes`` given by name."""
    steps: list[v2.Transform] = []
    if cfg.rare_class_crop and task != "segmentation":
        # Here, not in the config's checks: a dataset's task is known once it is read.
        raise ConfigError(
            "data.rare_class_crop places segmentation crops over rare classes' pixels; "
            "for classes of whole images use data.sampler=balanced"
        )
    if train:
        aug = augmentation_for(cfg, task)
        steps += _geometry(cfg, aug, task, class_names)
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
