"""Typed experiment configuration: YAML files and dotted overrides into dataclasses.

Every key is a dataclass field, so an unknown key, a wrong type or an impossible
value is rejected before any work starts, with an error naming the key, the file
and the nearest valid names. Each section checks its own values (its ``check``
method, next to its fields). A config file may extend others (``base:``). The
resolved config is saved into the run directory (``config.yaml``) and is what
``eval``, ``report`` and ``resume`` read back.

Scalars follow YAML 1.2 (``3e-4`` is a number, ``off`` is a word), and a value is
then read by the type of its field: a bool takes ``on``/``off``, an optional field
``none``, a list ``64,64`` as well as ``[64, 64]`` (docs/training.md, "Configs").
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml

from .errors import MissingFileError, UserError


class ConfigError(UserError):
    """A config key, type or value that cannot work; the message names the key and source."""


class MissingConfigError(ConfigError, MissingFileError):
    """A config file (or a ``base:`` of one) that does not exist."""


Need = Callable[[bool, str, str], None]
"""``need(ok, key, message)``: a section's ``check`` states each rule as a condition that
must hold; ``key`` is relative to the section, the driver adds the section's path and
the source, and raises ``ConfigError`` for the first rule that fails."""

_LOGGED_FIGURE_HINT = (
    "must name a logged figure such as val/accuracy, val/miou, val_ema/accuracy or train/loss"
)


def _names_logged_figure(name: str | None) -> bool:
    return name is None or ("/" in name and name.split("/")[0] in ("train", "val", "val_ema"))


def _is_size(value: list[int] | None) -> bool:
    return value is None or (len(value) == 2 and min(value) >= 1)


# --------------------------------------------------------------------------- sections
@dataclass
class DataConfig:
    """Where the data is, how it is read, split, augmented and batched."""

    format: str = "digits"
    """digits | digits_segmentation | image_folder | csv | cifar10 | cifar100 |
    mask_folder | oxford_pet | voc | multilabel_csv | webdataset (layouts: docs/data.md)"""
    options: dict[str, Any] = field(default_factory=dict)  # keyword options of an imported class
    root: str | None = None  # relative paths: to the directory the command runs in
    num_classes: int | None = None  # inferred from the dataset where it knows
    class_names: list[str] | None = None
    in_channels: int = 3
    image_size: list[int] = field(default_factory=lambda: [32, 32])  # (height, width)
    batch_size: int = 64
    eval_batch_size: int | None = None
    num_workers: int = 0
    pin_memory: bool | None = None  # None: on when training on CUDA
    persistent_workers: bool = False  # True: faster epochs, but a resumed run is not exact
    cache: bool = False  # decode every image once and keep the uint8 pixels in memory
    # Training batches: "dataloader" (per-image transforms in data.num_workers processes)
    # or "tensor" (flip + translate of whole uint8 batches in the training process:
    # data/tensor_loader.py; classification with flips and translations only).
    loader: Literal["dataloader", "tensor"] = "dataloader"
    val_fraction: float = 0.15  # used only where the dataset has no own split
    test_fraction: float = 0.15
    train_split: str = "train"
    val_split: str = "val"
    test_split: str = "test"
    ignore_index: int = 255
    on_error: Literal["raise", "skip"] = "raise"
    max_image_pixels: int = 89_478_485  # PIL's decompression-bomb limit
    augment: str = "default"  # preset: default | none | light | strong
    hflip: float | None = None  # preset knobs, None keeps the preset's value
    vflip: float | None = None
    rotation: float | None = None
    color_jitter: float | None = None
    crop_padding: int | None = None
    crop_padding_mode: Literal["constant", "reflect"] = "constant"  # border: fill, or mirror
    random_resized_crop: bool | None = None
    random_scale: list[float] | None = None  # segmentation: [low, high] resize factors
    auto_augment: Literal["randaugment", "trivialaugment", "augmix"] | None = None  # classif.
    random_erasing: float = 0.0  # classification: probability of erasing a random box
    photometric_distortion: float = 0.0  # mmseg's, image only: probability of each of 4 steps
    crop_size: list[int] | None = None  # segmentation training crops; None: image_size
    rare_class_crop: float = 0.0  # segmentation: probability a crop covers a rare class
    rare_classes: list[int | str] | None = None  # names or mask indices, for rare_class_crop
    eval_size: Literal["image_size", "native"] = "image_size"  # segmentation evaluation
    normalize: bool = True
    mean: list[float] | None = None  # None: ImageNet statistics (or 0.5 for one channel)
    std: list[float] | None = None
    mask_mode: Literal["index", "rgb", "binary"] = "index"
    mask_threshold: float | None = None  # binary: values >= it are foreground; None: midpoint
    palette: str | None = None  # file of RGB colours for mask_mode=rgb
    list_file: str | None = None  # path,label (csv) or image mask pairs (mask_folder)
    mask_suffix: str = ""  # mask file stem = image stem + suffix
    label_separator: str = ";"  # multilabel_csv: between the labels of one field (cat;dog)
    image_dir: str = "images"  # "{split}" is replaced by the split name (CamVid: "{split}")
    mask_dir: str = "masks"  # (CamVid: "{split}annot")
    mask_ignore_values: list[int] = field(default_factory=list)  # stored values -> ignore_index
    valid_mask_dir: str | None = None  # valid-region (field of view) masks: outside -> ignored
    valid_mask_suffix: str = ""  # valid mask stem = image stem + suffix (DRIVE: "_mask")
    resize_masks: Literal["refuse", "nearest"] = "refuse"  # masks at another uniform scale
    pet_classes: Literal["trimap", "binary"] = "trimap"
    samples_per_class: int | None = None  # keep the first n per class (small labelled sets)
    include_classes: list[int] | None = None  # keep only these class indices (renumbered)
    num_samples: int = 2000  # size of the synthetic digit-segmentation set
    class_weights: str | list[float] | None = None  # list, a stats JSON path, or a method
    class_weight_power: float = 1.0  # weights ** power: 0.5 tempers them, 0 switches them off
    class_colors: str | list[list[int]] | None = None  # [[r, g, b]] per class, or a palette file
    # Batch mixing in the training step (engine/mixing.py): 0 switches each off.
    sampler: Literal["random", "balanced"] = "random"  # balanced: 1/count(class) draws
    mixup_alpha: float = 0.0  # MixUp's Beta(alpha, alpha); classification only
    cutmix_alpha: float = 0.0  # CutMix's Beta(alpha, alpha); masks too for segmentation
    mix_prob: float = 1.0  # probability that a batch is mixed
    mix_switch_prob: float = 0.5  # with both on: probability of CutMix rather than MixUp
    # webdataset: tar shards (data/shards.py)
    shards: str | dict[str, str] | None = None  # brace pattern, or {split: pattern}
    shuffle_buffer: int = 1000  # training samples held for shuffling (0: shard order)
    samples_per_epoch: int | None = None  # None: the counts.json of `pixelwise data shard`

    def check(self, need: Need) -> None:
        need(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")
        need(
            self.eval_batch_size is None or self.eval_batch_size >= 1,
            "eval_batch_size",
            "must be >= 1",
        )
        need(self.num_workers >= 0, "num_workers", f"must be >= 0, got {self.num_workers}")
        need(self.in_channels >= 1, "in_channels", f"must be >= 1, got {self.in_channels}")
        need(
            _is_size(self.image_size),
            "image_size",
            f"must be [height, width] with positive sizes, got {self.image_size}",
        )
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            need(0.0 <= value < 1.0, name, f"must be in [0, 1), got {value}")
        need(
            self.val_fraction + self.test_fraction < 1.0,
            "val_fraction",
            "plus data.test_fraction must leave some training data",
        )
        need(self.num_classes is None or self.num_classes >= 2, "num_classes", "must be >= 2")
        need(self.max_image_pixels > 0, "max_image_pixels", "must be positive")
        for name in ("mean", "std"):
            values = getattr(self, name)
            need(
                values is None or len(values) == self.in_channels,
                name,
                f"needs one value per channel (data.in_channels={self.in_channels}), got {values}",
            )
        need((self.mean is None) == (self.std is None), "mean", "and data.std go together")
        need(self.std is None or all(v > 0 for v in self.std), "std", "must be positive")
        need(
            _is_size(self.crop_size),
            "crop_size",
            f"must be [height, width] with positive sizes, got {self.crop_size}",
        )
        scale = self.random_scale
        need(
            scale is None or (len(scale) == 2 and 0 < scale[0] <= scale[1]),
            "random_scale",
            f"must be [low, high] with 0 < low <= high, got {scale}",
        )
        need(
            0 <= self.rare_class_crop <= 1,
            "rare_class_crop",
            f"is a probability in [0, 1], got {self.rare_class_crop}",
        )
        need(
            self.rare_class_crop == 0 or bool(self.rare_classes),
            "rare_classes",
            "must name the classes data.rare_class_crop oversamples (names or mask indices)",
        )
        for name in ("hflip", "vflip", "random_erasing", "photometric_distortion"):
            p = getattr(self, name)
            need(p is None or 0 <= p <= 1, name, f"is a probability in [0, 1], got {p}")
        for name in ("rotation", "color_jitter", "crop_padding"):
            v = getattr(self, name)
            need(v is None or v >= 0, name, f"must be >= 0, got {v}")
        n = self.num_classes
        need(
            self.class_names is None or n is None or len(self.class_names) == n,
            "class_names",
            f"has {len(self.class_names or [])} names but data.num_classes is {n}",
        )
        need(
            n is None or not 0 <= self.ignore_index < n,
            "ignore_index",
            f"({self.ignore_index}) must not be a class index (0..{(n or 0) - 1})",
        )
        need(
            not isinstance(self.class_weights, list) or n is None or len(self.class_weights) == n,
            "class_weights",
            f"needs one weight per class (data.num_classes={n})",
        )
        need(
            math.isfinite(self.class_weight_power) and self.class_weight_power >= 0,
            "class_weight_power",
            f"must be a number >= 0, got {self.class_weight_power}",
        )
        need(
            self.class_weight_power == 1 or self.class_weights is not None,
            "class_weight_power",
            "tempers data.class_weights, which is not set",
        )
        need(
            self.mask_mode != "rgb" or self.palette is not None,
            "mask_mode",
            "rgb needs data.palette",
        )
        need(
            self.mask_threshold is None or self.mask_threshold > 0, "mask_threshold", "must be > 0"
        )
        need(
            self.valid_mask_dir is None or self.format == "mask_folder",
            "valid_mask_dir",
            f"pairs valid-region masks with data.format=mask_folder images, not {self.format}",
        )
        need(
            self.samples_per_class is None or self.samples_per_class >= 1,
            "samples_per_class",
            "must be >= 1",
        )
        need(self.num_samples >= 1, "num_samples", "must be >= 1")
        need(self.shuffle_buffer >= 0, "shuffle_buffer", "must be >= 0 (0: no shuffling)")
        need(
            self.samples_per_epoch is None or self.samples_per_epoch >= 1,
            "samples_per_epoch",
            "must be >= 1",
        )
        need(
            self.shards is None or self.format == "webdataset",
            "shards",
            f"is read by data.format=webdataset, not {self.format}",
        )
        streamed = self.format == "webdataset"
        need(not (streamed and self.cache), "cache", "does not apply to data.format=webdataset")
        need(
            not (streamed and self.sampler == "balanced"),
            "sampler",
            "balanced needs indexed data, not data.format=webdataset (a stream)",
        )
        for name in ("mixup_alpha", "cutmix_alpha"):
            need(getattr(self, name) >= 0, name, "must be >= 0 (0 switches it off)")
        for name in ("mix_prob", "mix_switch_prob"):
            p = getattr(self, name)
            need(0 <= p <= 1, name, f"is a probability in [0, 1], got {p}")
        colors = self.class_colors
        classes = n or len(self.class_names or []) or None
        need(
            not isinstance(colors, list)
            or (
                bool(colors)
                and all(len(c) == 3 and all(0 <= v <= 255 for v in c) for c in colors)
                and len(colors) == (classes or len(colors))
            ),
            "class_colors",
            f"needs one [r, g, b] of 0..255 per class ({classes or 'each'}) or a palette "
            f"file, got {colors}",
        )


@dataclass
class ModelConfig:
    """Which architecture, with which constructor options and initial weights."""

    name: str = "small_cnn"
    options: dict[str, Any] = field(default_factory=dict)  # passed to create_model(**options)
    weights: str | None = None  # state dict path, or "torchvision"
    new_classifier: bool = False  # fresh head even when the class count matches (transfer)
    encoder: str | None = None  # segmentation models: which classifier encodes
    encoder_weights: str | None = None

    def check(self, need: Need) -> None:
        # One place for the encoder: the engine passes model.encoder into the options,
        # so the same setting written twice could silently disagree.
        for key in ("encoder", "encoder_weights"):
            need(
                key not in self.options,
                f"options.{key}",
                f"duplicates model.{key}: write model.{key}: {self.options.get(key)} instead",
            )


LossName = Literal["cross_entropy", "focal", "dice"]


@dataclass
class LossTerm:
    """One term of the loss: ``weight * name(logits, target)``."""

    name: LossName = "cross_entropy"
    weight: float = 1.0

    def check(self, need: Need) -> None:
        need(self.weight >= 0, "weight", f"must be >= 0, got {self.weight}")


@dataclass
class LossConfig:
    """The training objective; terms are summed with their weights."""

    terms: list[LossTerm] = field(default_factory=lambda: [LossTerm()])
    label_smoothing: float = 0.0  # cross-entropy only
    focal_gamma: float = 2.0
    focal_alpha: list[float] | None = None  # one per class; None: data.class_weights
    dice_smooth: float = 1.0
    aux_weight: float = 0.4  # weight of auxiliary-head losses, where the model has them
    pos_weight: str | list[float] | None = None  # multilabel: per-label BCE weights, or auto

    def check(self, need: Need) -> None:
        need(0 <= self.label_smoothing < 1, "label_smoothing", "must be in [0, 1)")
        need(len(self.terms) >= 1, "terms", "needs at least one term")
        need(self.focal_gamma >= 0, "focal_gamma", "must be >= 0")
        need(
            self.focal_alpha is None or all(a >= 0 for a in self.focal_alpha),
            "focal_alpha",
            "must be non-negative weights, one per class",
        )
        need(self.dice_smooth >= 0, "dice_smooth", "must be >= 0")
        need(self.aux_weight >= 0, "aux_weight", "must be >= 0")
        pos = self.pos_weight
        need(
            pos is None or pos == "auto" or (isinstance(pos, list) and all(w > 0 for w in pos)),
            "pos_weight",
            f"must be auto or one positive weight per label, got {pos}",
        )


@dataclass
class OptimConfig:
    """Optimiser, weight decay groups, clipping, accumulation (docs/training.md)."""

    name: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    decay_norm_and_bias: bool = False  # False: no weight decay on norm weights and biases
    norm_lr_mult: float = 1.0  # lr multiplier for normalisation layers (airbench: 64 on BN biases)
    scale_lr: bool = False  # linear scaling rule: lr * global_batch / reference_batch
    reference_batch_size: int = 256
    clip_grad_norm: float | None = None  # max L2 norm of all gradients together
    accumulate_steps: int = 1  # batches per optimiser step
    layer_decay: float | None = None  # ViT: block i's lr * decay^(depth - i) (BEiT, timm)

    def check(self, need: Need) -> None:
        need(self.lr > 0, "lr", f"must be positive, got {self.lr}")
        need(
            self.layer_decay is None or 0 < self.layer_decay <= 1,
            "layer_decay",
            f"must be in (0, 1] (timm's ViT fine-tuning: 0.65-0.75), got {self.layer_decay}",
        )
        need(self.weight_decay >= 0, "weight_decay", f"must be >= 0, got {self.weight_decay}")
        need(0 <= self.momentum < 1, "momentum", f"must be in [0, 1), got {self.momentum}")
        need(self.accumulate_steps >= 1, "accumulate_steps", "must be >= 1")
        need(not self.nesterov or self.momentum > 0, "nesterov", "needs optim.momentum > 0")
        need(len(self.betas) == 2, "betas", "must be two numbers")
        need(all(0 <= b < 1 for b in self.betas), "betas", f"must be in [0, 1), got {self.betas}")
        need(self.reference_batch_size >= 1, "reference_batch_size", "must be >= 1")
        need(
            self.clip_grad_norm is None or self.clip_grad_norm > 0,
            "clip_grad_norm",
            f"must be positive (or null for no clipping), got {self.clip_grad_norm}",
        )


@dataclass
class ScheduleConfig:
    """Learning-rate schedule, stepped every iteration; epoch figures are converted.

    Warmup is ``warmup_epochs`` long but never more than half of the training (a shorter
    run, e.g. ``train.epochs=1`` of a recipe, warms up over its first half; a note is
    logged), or ``warmup_fraction`` of the training, whatever its length.
    """

    name: Literal["cosine", "step", "multistep", "poly", "constant"] = "cosine"
    warmup_epochs: float = 0.0
    warmup_fraction: float | None = None  # instead of warmup_epochs: share of all steps
    warmup_start_factor: float = 0.01
    min_lr_factor: float = 0.0  # cosine and poly floor as a fraction of the peak lr
    step_epochs: float = 30.0
    milestones: list[float] = field(default_factory=list)  # epochs, for multistep
    gamma: float = 0.1
    power: float = 0.9  # poly

    def check(self, need: Need) -> None:
        need(self.warmup_epochs >= 0, "warmup_epochs", "must be >= 0")
        fraction = self.warmup_fraction
        need(
            fraction is None or 0 <= fraction < 1,
            "warmup_fraction",
            f"must be in [0, 1), got {fraction}",
        )
        need(
            fraction is None or self.warmup_epochs == 0,
            "warmup_fraction",
            f"and schedule.warmup_epochs ({self.warmup_epochs}) are two lengths for one "
            "warmup: set schedule.warmup_epochs=0",
        )
        need(0 < self.warmup_start_factor <= 1, "warmup_start_factor", "must be in (0, 1]")
        need(0 <= self.min_lr_factor <= 1, "min_lr_factor", "must be in [0, 1]")
        need(self.step_epochs > 0, "step_epochs", f"must be positive, got {self.step_epochs}")
        need(self.gamma > 0, "gamma", f"must be positive, got {self.gamma}")
        need(self.power > 0, "power", f"must be positive, got {self.power}")
        need(
            self.name != "multistep" or len(self.milestones) > 0,
            "milestones",
            "needs at least one epoch for schedule.name=multistep, e.g. [30, 60]",
        )
        need(
            list(self.milestones) == sorted(self.milestones)
            and all(m > 0 for m in self.milestones),
            "milestones",
            f"must be positive epochs in increasing order, got {self.milestones}",
        )


@dataclass
class FinetuneConfig:
    """What trains when starting from pretrained weights (model.weights, model.encoder_weights)."""

    strategy: Literal["full", "head", "partial"] = "full"
    trainable_stages: int = 1  # partial: how many of the last stages train
    pretrained_lr_mult: float = 1.0  # lr multiplier for pretrained (backbone) parameters
    unfreeze_after_epochs: int | None = None  # gradual: one more stage every n epochs

    def check(self, need: Need) -> None:
        need(self.trainable_stages >= 0, "trainable_stages", "must be >= 0")
        need(self.pretrained_lr_mult >= 0, "pretrained_lr_mult", "must be >= 0")
        need(
            self.unfreeze_after_epochs is None or self.unfreeze_after_epochs >= 1,
            "unfreeze_after_epochs",
            "must be >= 1 (or null for no gradual unfreezing)",
        )


@dataclass
class EarlyStoppingConfig:
    enabled: bool = False
    metric: str | None = None  # None: the best-checkpoint metric
    mode: Literal["max", "min"] | None = None
    patience: int = 10
    min_delta: float = 0.0

    def check(self, need: Need) -> None:
        need(self.patience >= 1, "patience", "must be >= 1")
        need(self.min_delta >= 0, "min_delta", "must be >= 0")
        need(
            _names_logged_figure(self.metric),
            "metric",
            f"{_LOGGED_FIGURE_HINT}, got {self.metric!r}",
        )


@dataclass
class DistillConfig:
    """Knowledge distillation from a trained teacher (Hinton et al., 2015)."""

    teacher: str | None = None  # run directory or checkpoint of the teacher
    temperature: float = 4.0
    alpha: float = 0.5  # weight of the soft (teacher) loss; 1 - alpha on the hard labels

    def check(self, need: Need) -> None:
        need(self.temperature > 0, "temperature", "must be positive")
        need(0 <= self.alpha <= 1, "alpha", "must be in [0, 1]")
        need(
            self.teacher is None or self.teacher.strip() != "",
            "teacher",
            "must be a run directory or checkpoint path",
        )


@dataclass
class TrainConfig:
    epochs: int = 10  # with max_minutes: an upper bound
    max_minutes: float | None = None  # time budget of training steps; the schedule spans it
    save_every_steps: int | None = None  # also write last.pt every N optimiser steps
    amp: Literal["off", "bf16", "fp16", "auto"] = "off"  # auto: bf16 where it is native
    channels_last: bool = False
    compile: bool = False
    ema: bool = False  # exponential moving average of weights, logged as val_ema/
    ema_decay: float = 0.999
    # airbench's lookahead (engine/ema.py): every lookahead_every steps the weights move
    # to their moving average, whose decay ramps to lookahead_decay ** every; the model
    # ends as the average.
    lookahead: bool = False
    lookahead_decay: float = 0.95
    lookahead_every: int = 5
    best_metric: str | None = None  # None: val/accuracy or val/miou by task
    best_mode: Literal["max", "min"] = "max"
    keep_best: int = 1  # checkpoints of the k best epochs (checkpoints/best-eNNN.pt when k > 1)
    average_best: bool = False  # average the keep_best checkpoints' weights, and evaluate it
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    sync_batchnorm: bool = False
    val_every: int = 1
    log_every: int = 50  # iterations between progress-bar refreshes (and NaN checks)
    train_metrics: bool = True  # train/ figures from a confusion matrix kept on the device
    tensorboard: bool = True
    loggers: list[Literal["tensorboard", "csv", "mlflow"]] = field(default_factory=list)  # more
    mlflow_uri: str | None = None  # tracking URI or folder; None: a file store in RUN/mlruns
    report: bool = True  # write report.html at the end
    learning_gif: bool = True  # segmentation: predict fixed val images every epoch
    gif_images: int = 16

    def check(self, need: Need) -> None:
        need(self.epochs >= 1, "epochs", f"must be >= 1, got {self.epochs}")
        need(
            self.max_minutes is None or self.max_minutes > 0,
            "max_minutes",
            f"must be positive (minutes of training) or null, got {self.max_minutes}",
        )
        need(0 < self.ema_decay < 1, "ema_decay", "must be in (0, 1)")
        need(0 < self.lookahead_decay < 1, "lookahead_decay", "must be in (0, 1)")
        need(self.lookahead_every >= 1, "lookahead_every", "must be >= 1")
        need(
            not (self.lookahead and self.max_minutes),
            "lookahead",
            "ramps over a known number of steps: not with train.max_minutes",
        )
        need(self.keep_best >= 1, "keep_best", f"must be >= 1, got {self.keep_best}")
        need(
            not self.average_best or self.keep_best >= 2,
            "average_best",
            f"averages the keep_best checkpoints: set train.keep_best >= 2 (got {self.keep_best})",
        )
        need(self.val_every >= 1, "val_every", f"must be >= 1, got {self.val_every}")
        need(
            self.save_every_steps is None or self.save_every_steps >= 1,
            "save_every_steps",
            f"must be >= 1 (optimiser steps) or null, got {self.save_every_steps}",
        )
        need(self.log_every >= 1, "log_every", f"must be >= 1, got {self.log_every}")
        need(self.gif_images >= 1, "gif_images", "must be >= 1")
        need(
            len(set(self.loggers)) == len(self.loggers),
            "loggers",
            f"names a logger twice: {self.loggers}",
        )
        need(
            self.tensorboard or "tensorboard" not in self.loggers,
            "loggers",
            "names tensorboard but train.tensorboard is false (drop one of them)",
        )
        need(
            _names_logged_figure(self.best_metric),
            "best_metric",
            f"{_LOGGED_FIGURE_HINT}, got {self.best_metric!r}",
        )
        need(
            not self.best_metric or not self.best_metric.startswith("val_ema/") or self.ema,
            "best_metric",
            "names a val_ema/ figure, which needs train.ema=true",
        )


@dataclass
class EvalConfig:
    """How ``pixelwise eval`` (and the test split after training) predicts; validation
    during training is always one plain forward pass. Details: docs/metrics.md."""

    tta_hflip: bool = False  # average the softmax of the image and its horizontal mirror
    tta_translate: int = 0  # classification: also the image moved by this many pixels
    sliding_window: bool = False  # segmentation: windows of the training size, native images
    window_overlap: float = 0.5  # fraction of a window shared with its neighbour
    window_size: list[int] | None = None  # [height, width]; None: the training crop/image size
    window_weighting: Literal["gaussian", "uniform"] = "gaussian"
    topk: int = 5  # top-k accuracy for classification

    def check(self, need: Need) -> None:
        need(0 <= self.window_overlap < 1, "window_overlap", "must be in [0, 1)")
        need(
            _is_size(self.window_size),
            "window_size",
            f"must be [height, width] with positive sizes (or null), got {self.window_size}",
        )
        need(self.topk >= 1, "topk", f"must be >= 1, got {self.topk}")
        need(self.tta_translate >= 0, "tta_translate", f"must be >= 0, got {self.tta_translate}")
        need(
            not (self.tta_translate and self.sliding_window),
            "tta_translate",
            "is for whole classified images, not with eval.sliding_window",
        )


@dataclass
class ExperimentConfig:
    """A whole run: what to learn from, what to train, how, and where to write."""

    name: str = "run"
    task: Literal["classification", "segmentation", "multilabel"] = "classification"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    output_dir: str = "runs"
    deterministic: bool = False
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    @property
    def best_metric(self) -> str:
        if self.train.best_metric:
            return self.train.best_metric
        return {"classification": "val/accuracy", "multilabel": "val/map"}.get(
            self.task, "val/miou"
        )

    def check(self, need: Need) -> None:
        need(
            self.name.strip() != "" and "/" not in self.name, "name", "must be a plain folder name"
        )
        need(
            self.task != "multilabel"
            or [term.name for term in self.loss.terms] == ["cross_entropy"],
            "loss.terms",
            "task: multilabel trains with binary cross-entropy (its one term is cross_entropy)",
        )
        need(
            self.loss.pos_weight is None or self.task == "multilabel",
            "loss.pos_weight",
            "weighs positive labels of task: multilabel; for single-label classes use "
            "data.class_weights",
        )
        need(
            self.task != "segmentation" or not self.eval.tta_translate,
            "eval.tta_translate",
            "is for classification (a shifted mask would need shifting back)",
        )
        need(
            self.task == "classification" or self.data.sampler == "random",
            "data.sampler",
            "balanced draws images by their class, which segmentation images do not have",
        )
        for key in ("auto_augment", "random_erasing"):
            need(
                self.task in ("classification", "multilabel") or not getattr(self.data, key),
                f"data.{key}",
                "is for classification (it would change the image without its mask); "
                "segmentation has data.photometric_distortion and data.cutmix_alpha",
            )
        need(
            self.data.in_channels in (1, 3)
            or not (self.data.auto_augment or self.data.photometric_distortion),
            "data.in_channels",
            f"is {self.data.in_channels}: data.auto_augment and data.photometric_distortion "
            "work on greyscale or RGB images",
        )
        mixing = self.data.mixup_alpha > 0 or self.data.cutmix_alpha > 0
        need(
            self.task != "multilabel" or not mixing,
            "data.mixup_alpha",
            "and data.cutmix_alpha mix single-label classes or masks, not multi-label targets",
        )
        need(
            self.task == "classification" or self.data.mixup_alpha == 0,
            "data.mixup_alpha",
            "is for classification (a blend of two masks is no mask); segmentation mixes "
            "with data.cutmix_alpha",
        )
        soft_unsupported = [t.name for t in self.loss.terms if t.name != "cross_entropy"]
        need(
            self.task != "classification" or not mixing or not soft_unsupported,
            "loss.terms",
            f"{', '.join(soft_unsupported)} cannot take the soft targets of MixUp/CutMix "
            "(data.mixup_alpha, data.cutmix_alpha): use cross_entropy, or set both alphas to 0",
        )
        need(
            self.train.max_minutes is None or self.schedule.name in ("cosine", "poly", "constant"),
            "train.max_minutes",
            f"defines the schedule in time, which schedule.name={self.schedule.name} (in epochs) "
            "cannot follow: use schedule.name=cosine, poly or constant",
        )
        need(
            self.data.format != "webdataset" or self.train.save_every_steps is None,
            "train.save_every_steps",
            "(mid-epoch resume) needs indexed data: a data.format=webdataset stream cannot "
            "skip to a step; checkpoint per epoch (null)",
        )


def validate(cfg: ExperimentConfig, source: str = "<config>") -> None:
    """Reject values that type-check but cannot work: every section's ``check``, the
    first failing rule as ``<source>: '<key>' <message>``."""
    _check_section(cfg, source, prefix="")


def _check_section(section: Any, source: str, prefix: str) -> None:
    def need(ok: bool, key: str, message: str) -> None:
        if not ok:
            raise ConfigError(f"{source}: '{prefix}{key}' {message}")

    section.check(need)
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if dataclasses.is_dataclass(value):
            _check_section(value, source, f"{prefix}{f.name}.")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if dataclasses.is_dataclass(item):
                    _check_section(item, source, f"{prefix}{f.name}[{i}].")


# --------------------------------------------------------------------------- YAML 1.2
# PyYAML resolves plain scalars by YAML 1.1, where `off`/`no` are booleans and `3e-4`
# (no dot) is a string. These loaders use the YAML 1.2 core schema instead.
_CORE_SCHEMA = [
    ("bool", r"true|True|TRUE|false|False|FALSE", "tTfF"),
    ("int", r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+", "-+0123456789"),
    (
        "float",
        r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)",
        "-+0123456789.",
    ),
    ("null", r"~|null|Null|NULL|", ["~", "n", "N", ""]),
]
_YAML11_ONLY = {
    f"tag:yaml.org,2002:{t}" for t in ("bool", "int", "float", "null", "timestamp", "value")
}


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core-schema scalars, refusing a key written twice (PyYAML
    would keep the last one silently)."""

    yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag not in _YAML11_ONLY]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor` may repeat keys
                continue
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


class _Dumper(yaml.SafeDumper):
    """Quotes every string that YAML 1.1 or 1.2 would read as something else."""


for _tag, _pattern, _first in _CORE_SCHEMA:
    for _cls in (_Loader, _Dumper):
        _cls.add_implicit_resolver(
            f"tag:yaml.org,2002:{_tag}", re.compile(f"^(?:{_pattern})$"), list(_first)
        )


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = loader.construct_scalar(node)
    for prefix, base in (("0o", 8), ("0x", 16)):
        if text.startswith(prefix):
            return int(text[2:], base)
    return int(text, 10)  # "010" is ten, not YAML 1.1's octal eight


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def _represent_list(dumper: yaml.SafeDumper, items: list[Any]) -> yaml.SequenceNode:
    flat = all(not isinstance(v, (dict, list)) for v in items)  # [240, 320] on one line
    return dumper.represent_sequence("tag:yaml.org,2002:seq", items, flow_style=flat)


_Dumper.add_representer(list, _represent_list)


def parse_yaml(text: str) -> Any:
    """A YAML document or scalar read with YAML 1.2 scalars (``3e-4``, ``off``)."""
    return yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader


def dump_config(cfg: ExperimentConfig) -> str:
    """The config as YAML, readable back by ``load_config`` (and by YAML 1.1 readers)."""
    return yaml.dump(to_dict(cfg), Dumper=_Dumper, sort_keys=False)


# --------------------------------------------------------------------------- files
def _bundled_dir() -> Path:
    return Path(str(resources.files("pixelwise") / "configs"))


def bundled_config_names() -> list[str]:
    """Names of the recipes that ship with pixelwise; ``_name`` files are blocks that
    recipes extend (``base:``) and are left out."""
    return sorted(
        p.stem
        for p in _bundled_dir().iterdir()
        if p.suffix == ".yaml" and not p.stem.startswith("_")
    )


def _bundled(name: str) -> Path | None:
    if "/" in name or "\\" in name:
        return None
    path = _bundled_dir() / f"{name.removesuffix('.yaml')}.yaml"
    return path if path.is_file() else None


def resolve_config(name_or_path: str | Path) -> Path:
    """A YAML path (relative to the working directory), or the name of a bundled
    config (``digits`` -> pixelwise/configs/digits.yaml). A path that exists wins."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    bundled = _bundled(str(name_or_path))
    if bundled is not None:
        return bundled
    raise MissingConfigError(
        f"config file not found: {name_or_path} "
        f"(bundled configs: {', '.join(bundled_config_names())})"
    )


REQUIRED_KEYS = ("task", "data.format")
"""What a config file must name (itself or through ``base:``), so that an empty or
wrong file is refused instead of training the defaults."""


def read_config_file(path: Path) -> dict[str, Any]:
    """The file's keys on top of its ``base:`` configs, deep-merged, unvalidated."""
    raw = _compose(path, chain=[path.resolve()])
    data = raw.get("data")
    missing = [
        key
        for key, present in (
            ("task", "task" in raw),
            ("data.format", isinstance(data, dict) and "format" in data),
        )
        if not present
    ]
    if missing:
        raise ConfigError(
            f"{path}: a config file must name {' and '.join(REQUIRED_KEYS)} "
            f"(itself or through base:); missing: {', '.join(missing)}"
        )
    return raw


def _read_mapping(path: Path) -> dict[str, Any]:
    try:
        loaded = parse_yaml(path.read_text())
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        what = ", ".join(str(s) for s in (err.context, err.problem) if s)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(f"{where}: invalid YAML: {what}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML: {str(err).splitlines()[0]}") from None
    if loaded is None:
        raise ConfigError(
            f"{path}: the file is empty (or only comments); a config names at least "
            f"{' and '.join(REQUIRED_KEYS)}"
        )
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    return loaded


def _compose(path: Path, chain: list[Path]) -> dict[str, Any]:
    """``path``'s keys over its bases' (each composed the same way, in order)."""
    raw = _read_mapping(path)
    bases = raw.pop("base", None)
    from_dict(ExperimentConfig, raw, source=str(path))  # unknown keys, types: named by file
    merged: dict[str, Any] = {}
    for name in _base_names(bases, path):
        base = _resolve_base(name, path)
        if base.resolve() in chain:
            cycle = " -> ".join(str(p) for p in [*chain, base.resolve()])
            raise ConfigError(f"{path}: base: configs include each other: {cycle}")
        merged = _deep_merge(merged, _compose(base, [*chain, base.resolve()]))
    return _deep_merge(merged, raw)


def _base_names(bases: Any, path: Path) -> list[str]:
    if bases is None:
        return []
    names = [bases] if isinstance(bases, str) else bases
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise ConfigError(
            f"{path}: 'base' must be a config name or path, or a list of them, got {bases!r}"
        )
    return names


def _resolve_base(name: str, including: Path) -> Path:
    """Relative to the including file (``.yaml`` may be left out), else a bundled config."""
    for candidate in (including.parent / name, including.parent / f"{name}.yaml"):
        if candidate.is_file():
            return candidate
    bundled = _bundled(name)
    if bundled is not None:
        return bundled
    raise MissingConfigError(
        f"{including}: base {name!r} not found (neither beside it nor a bundled config: "
        f"{', '.join(bundled_config_names())})"
    )


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key; lists and scalars in ``top`` replace. An empty section
    in ``top`` (``data:`` with nothing under it) changes nothing."""
    merged = dict(base)
    for key, value in top.items():
        old = merged.get(key)
        if isinstance(old, dict) and isinstance(value, dict):
            merged[key] = _deep_merge(old, value)
        elif not (isinstance(old, dict) and value is None):
            merged[key] = value
    return merged


# --------------------------------------------------------------------------- loading
def load_config(
    path: str | Path | None = None, overrides: list[str] | None = None
) -> ExperimentConfig:
    """A config file (a path or a bundled name, with its ``base:`` configs) or the
    defaults, then ``key.sub=value`` overrides; type-checked and validated."""
    raw: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        file = resolve_config(path)
        source = str(file)
        raw = read_config_file(file)
    for item in overrides or []:
        apply_override(raw, item)
    if overrides:
        source = f"{source} + command-line overrides"
    cfg = from_dict(ExperimentConfig, raw, source=source)
    validate(cfg, source)
    return cfg


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Set ``a.b.c=value`` in a nested dict; the value is YAML (``0.1``, ``[1, 2]``, ``off``)."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like key=value (for example optim.lr=0.01)")
    key, _, text = item.partition("=")
    parts = key.strip().split(".")
    node = raw
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"override {item!r}: {part!r} is not a section")
        node = child
    try:
        node[parts[-1]] = parse_yaml(text) if text.strip() != "" else None
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"override {item!r}: the value is not valid YAML ({problem})") from None


def from_dict(cls: type, raw: Any, source: str, prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a dict, rejecting unknown keys and wrong types."""
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source}: '{prefix.rstrip('.') or '<top>'}' must be a mapping, got {raw!r}"
        )
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in raw.items():
        if key not in names:
            near = difflib.get_close_matches(str(key), names, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(prefix + n for n in near)}?" if near else ""
            raise ConfigError(
                f"{source}: unknown key '{prefix}{key}'{hint} (valid keys: {', '.join(names)})"
            )
        kwargs[key] = _coerce(hints[key], value, source, f"{prefix}{key}")
    return cls(**kwargs)


_BOOL_WORDS = {"true": True, "on": True, "yes": True, "false": False, "off": False, "no": False}
_INT_TEXT = re.compile(r"[-+]?[0-9][0-9_]*")
_FLOAT_TEXT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?")


def _coerce(tp: Any, value: Any, source: str, key: str) -> Any:
    """``value`` as field type ``tp``, reading text by the type where it is unambiguous:
    ``"1e-3"`` for a float, ``on``/``off`` for a bool, ``none`` for an optional field,
    ``64,64`` for a list."""
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value if value is not None else {}, source, key + ".")
    if origin in (Union, types.UnionType):
        return _coerce_union(tp, value, source, key)
    if origin is Literal:
        return _coerce_choice(get_args(tp), value, source, key)
    if origin is list:
        if isinstance(value, str) and "," in value:
            value = [parse_yaml(part.strip()) for part in value.rstrip(", ").split(",")]
        if not isinstance(value, (list, tuple)):
            raise _type_error(source, key, tp, value)
        (item_tp,) = get_args(tp)
        return [_coerce(item_tp, v, source, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise _type_error(source, key, tp, value)
        return dict(value)
    if tp is Any:
        return value
    if tp is float:
        if isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
            return float(value.strip().replace("_", ""))
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _type_error(source, key, tp, value)
        return float(value)
    if tp is int:
        if isinstance(value, str) and _INT_TEXT.fullmatch(value.strip()):
            return int(value.strip().replace("_", ""))
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(source, key, tp, value)
        return value
    if tp is bool:
        if isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
            return _BOOL_WORDS[value.strip().lower()]
        if not isinstance(value, bool):
            raise _type_error(source, key, tp, value)
        return value
    if tp is str:
        if not isinstance(value, str):
            raise _type_error(source, key, tp, value)
        return value
    raise _type_error(source, key, tp, value)


def _coerce_union(tp: Any, value: Any, source: str, key: str) -> Any:
    args = get_args(tp)
    if type(None) in args and (
        value is None or (isinstance(value, str) and value.strip().lower() == "none")
    ):
        return None
    # str last: "1,2" for `str | list[float]` is the list, "median_frequency" the str
    for arg in sorted((a for a in args if a is not type(None)), key=lambda a: a is str):
        try:
            return _coerce(arg, value, source, key)
        except ConfigError:
            continue
    raise _type_error(source, key, tp, value)


def _coerce_choice(choices: tuple[Any, ...], value: Any, source: str, key: str) -> Any:
    if isinstance(value, bool) and ("off" if not value else "on") in choices:
        return "off" if not value else "on"  # `amp: false` means "off"
    if value not in choices:
        near = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
        hint = f"; did you mean '{near[0]}'?" if near else ""
        raise ConfigError(
            f"{source}: '{key}' must be one of {', '.join(map(str, choices))}, got {value!r}{hint}"
        )
    return value


def _type_error(source: str, key: str, tp: Any, value: Any) -> ConfigError:
    name = str(tp).replace("typing.", "").replace("<class '", "").replace("'>", "")
    hint = " (quote it to make it text)" if tp is str and isinstance(value, (int, float)) else ""
    return ConfigError(
        f"{source}: '{key}' must be {name}, got {value!r} ({type(value).__name__}){hint}"
    )


# --------------------------------------------------------------------------- saving
def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def save_config(cfg: ExperimentConfig, path: str | Path) -> None:
    Path(path).write_text(dump_config(cfg))


# --------------------------------------------------------------------------- comparing
RESULT_NEUTRAL_KEYS = frozenset(
    {
        # where the run is written and what it is called
        "name",
        "output_dir",
        # where and how fast it computes: the same arithmetic, other kernels or threads
        # (the last bits may differ; an exact resume needs them unchanged)
        "device",
        "deterministic",
        "train.compile",
        "train.channels_last",
        # how the data reaches the model: the same images and labels (worker count and
        # persistence change which worker draws an augmentation, not its distribution)
        "data.num_workers",
        "data.pin_memory",
        "data.persistent_workers",
        "data.cache",
        "data.eval_batch_size",
        "data.max_image_pixels",
        # what is written about the run, not what it learns
        "train.log_every",
        "train.keep_best",
        "train.save_every_steps",
        "train.train_metrics",
        "train.tensorboard",
        "train.loggers",
        "train.mlflow_uri",
        "train.report",
        "train.learning_gif",
        "train.gif_images",
    }
)
"""Dotted keys whose value does not change what a run learns or how it is scored: a
resumed run may differ from its saved config in these. Every other key changes the
result (``train.epochs`` too: the schedule spans the whole training)."""


def config_differences(
    saved: ExperimentConfig, new: ExperimentConfig
) -> list[tuple[str, Any, Any]]:
    """``(dotted key, saved value, new value)`` for every field that differs, in field
    order; lists (``loss.terms``) and mappings (``model.options``) compare whole."""
    old_values = dict(_leaves(saved))
    return [
        (key, old_values[key], value) for key, value in _leaves(new) if old_values[key] != value
    ]


def result_changing_differences(
    saved: ExperimentConfig, new: ExperimentConfig
) -> list[tuple[str, Any, Any]]:
    """``config_differences`` less the keys in ``RESULT_NEUTRAL_KEYS``."""
    return [d for d in config_differences(saved, new) if d[0] not in RESULT_NEUTRAL_KEYS]


def _leaves(section: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if dataclasses.is_dataclass(value):
            yield from _leaves(value, f"{prefix}{f.name}.")
        elif isinstance(value, list):
            yield (
                f"{prefix}{f.name}",
                [dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for v in value],
            )
        else:
            yield f"{prefix}{f.name}", value
