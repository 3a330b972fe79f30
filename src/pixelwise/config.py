"""Typed experiment configuration: YAML files and dotted overrides into dataclasses.

Every key is a dataclass field, so an unknown key, a wrong type or an impossible
value is rejected before any work starts, with an error naming the key, the file
and the nearest valid names. The resolved config is saved into the run directory
(``config.yaml``) and is what ``eval``, ``report`` and ``resume`` read back.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml

from .errors import UserError


class ConfigError(UserError):
    """A config key, type or value that cannot work; the message names the key and source."""


# --------------------------------------------------------------------------- sections
@dataclass
class DataConfig:
    """Where the data is, how it is read, split, augmented and batched."""

    format: str = "digits"
    """digits | digits_segmentation | image_folder | csv | cifar10 | cifar100 |
    mask_folder | oxford_pet | voc (layouts: docs/data.md)"""
    root: str | None = None  # relative paths: to the directory the command runs in
    num_classes: int | None = None  # inferred from the dataset where it knows
    class_names: list[str] | None = None
    in_channels: int = 3
    image_size: list[int] = field(default_factory=lambda: [32, 32])  # (height, width)
    batch_size: int = 64
    eval_batch_size: int | None = None
    num_workers: int = 0
    pin_memory: bool | None = None  # None: on when training on CUDA
    persistent_workers: bool = True
    cache: bool = False  # decode every image once and keep the uint8 pixels in memory
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
    random_resized_crop: bool | None = None
    random_scale: list[float] | None = None  # segmentation: [low, high] resize factors
    crop_size: list[int] | None = None  # segmentation training crops; None: image_size
    eval_size: Literal["image_size", "native"] = "image_size"  # segmentation evaluation
    normalize: bool = True
    mean: list[float] | None = None  # None: ImageNet statistics (or 0.5 for one channel)
    std: list[float] | None = None
    mask_mode: Literal["index", "rgb", "binary"] = "index"
    mask_threshold: float | None = None  # binary: values >= it are foreground; None: midpoint
    palette: str | None = None  # file of RGB colours for mask_mode=rgb
    list_file: str | None = None  # path,label (csv) or image mask pairs (mask_folder)
    mask_suffix: str = ""  # mask file stem = image stem + suffix
    image_dir: str = "images"  # "{split}" is replaced by the split name (CamVid: "{split}")
    mask_dir: str = "masks"  # (CamVid: "{split}annot")
    mask_ignore_values: list[int] = field(default_factory=list)  # stored values -> ignore_index
    pet_classes: Literal["trimap", "binary"] = "trimap"
    samples_per_class: int | None = None  # keep the first n per class (small labelled sets)
    include_classes: list[int] | None = None  # keep only these class indices (renumbered)
    num_samples: int = 2000  # size of the synthetic digit-segmentation set
    class_weights: str | list[float] | None = None  # list, a stats JSON path, or a method


@dataclass
class ModelConfig:
    """Which architecture, with which constructor options and initial weights."""

    name: str = "small_cnn"
    options: dict[str, Any] = field(default_factory=dict)  # passed to create_model(**options)
    weights: str | None = None  # state dict path, or "torchvision"
    new_classifier: bool = False  # fresh head even when the class count matches (transfer)
    encoder: str | None = None  # segmentation models: which classifier encodes
    encoder_weights: str | None = None


@dataclass
class LossTerm:
    """One term of the loss: ``weight * name(logits, target)``."""

    name: str = "cross_entropy"  # cross_entropy | focal | dice
    weight: float = 1.0


@dataclass
class LossConfig:
    """The training objective; terms are summed with their weights."""

    terms: list[LossTerm] = field(default_factory=lambda: [LossTerm()])
    label_smoothing: float = 0.0  # cross-entropy only
    focal_gamma: float = 2.0
    focal_alpha: list[float] | None = None  # one per class; None: data.class_weights
    dice_smooth: float = 1.0
    aux_weight: float = 0.4  # weight of auxiliary-head losses, where the model has them


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


@dataclass
class ScheduleConfig:
    """Learning-rate schedule, stepped every iteration; epoch figures are converted."""

    name: Literal["cosine", "step", "multistep", "poly", "constant"] = "cosine"
    warmup_epochs: float = 0.0
    warmup_start_factor: float = 0.01
    min_lr_factor: float = 0.0  # cosine and poly floor as a fraction of the peak lr
    step_epochs: float = 30.0
    milestones: list[float] = field(default_factory=list)  # epochs, for multistep
    gamma: float = 0.1
    power: float = 0.9  # poly


@dataclass
class FinetuneConfig:
    """What trains when starting from pretrained weights (model.weights, model.encoder_weights)."""

    strategy: Literal["full", "head", "partial"] = "full"
    trainable_stages: int = 1  # partial: how many of the last stages train
    pretrained_lr_mult: float = 1.0  # lr multiplier for pretrained (backbone) parameters
    unfreeze_after_epochs: int | None = None  # gradual: one more stage every n epochs


@dataclass
class EarlyStoppingConfig:
    enabled: bool = False
    metric: str | None = None  # None: the best-checkpoint metric
    mode: Literal["max", "min"] | None = None
    patience: int = 10
    min_delta: float = 0.0


@dataclass
class DistillConfig:
    """Knowledge distillation from a trained teacher (Hinton et al., 2015)."""

    teacher: str | None = None  # run directory or checkpoint of the teacher
    temperature: float = 4.0
    alpha: float = 0.5  # weight of the soft (teacher) loss; 1 - alpha on the hard labels


@dataclass
class TrainConfig:
    epochs: int = 10
    amp: Literal["off", "bf16", "fp16"] = "off"
    channels_last: bool = False
    compile: bool = False
    ema: bool = False  # exponential moving average of weights, logged as val_ema/
    ema_decay: float = 0.999
    best_metric: str | None = None  # None: val/accuracy or val/miou by task
    best_mode: Literal["max", "min"] = "max"
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    sync_batchnorm: bool = False
    val_every: int = 1
    log_every: int = 50  # iterations between progress-bar refreshes (and NaN checks)
    train_metrics: bool = True  # train/ figures from a confusion matrix kept on the device
    tensorboard: bool = True
    report: bool = True  # write report.html at the end
    learning_gif: bool = True  # segmentation: predict fixed val images every epoch
    gif_images: int = 16


@dataclass
class EvalConfig:
    """How ``pixelwise eval`` (and the test split after training) predicts; validation
    during training is always one plain forward pass. Details: docs/metrics.md."""

    tta_hflip: bool = False  # average the softmax of the image and its horizontal mirror
    sliding_window: bool = False  # segmentation: windows of the training size, native images
    window_overlap: float = 0.5  # fraction of a window shared with its neighbour
    window_size: list[int] | None = None  # [height, width]; None: the training crop/image size
    window_weighting: Literal["gaussian", "uniform"] = "gaussian"
    topk: int = 5  # top-k accuracy for classification


@dataclass
class ExperimentConfig:
    """A whole run: what to learn from, what to train, how, and where to write."""

    name: str = "run"
    task: Literal["classification", "segmentation"] = "classification"
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
        return "val/accuracy" if self.task == "classification" else "val/miou"


# --------------------------------------------------------------------------- loading
def load_config(
    path: str | Path | None = None, overrides: list[str] | None = None
) -> ExperimentConfig:
    """Read a YAML file (or the defaults), apply ``key.sub=value`` overrides, validate."""
    raw: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        with path.open() as f:
            loaded = yaml.safe_load(f)
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of keys at the top level")
        raw = loaded
    for item in overrides or []:
        apply_override(raw, item)
    if overrides:
        source = f"{source} + command-line overrides"
    cfg = from_dict(ExperimentConfig, raw, source=source)
    validate(cfg, source)
    return cfg


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Set ``a.b.c=value`` in a nested dict; the value is parsed as YAML (``0.1``, ``[1, 2]``)."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like key=value (for example optim.lr=0.01)")
    key, _, text = item.partition("=")
    parts = key.strip().split(".")
    node = raw
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {item!r}: {part!r} is not a section")
        node = child
    node[parts[-1]] = yaml.safe_load(text) if text.strip() != "" else None


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


def _coerce(tp: Any, value: Any, source: str, key: str) -> Any:
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value if value is not None else {}, source, key + ".")
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, source, key)
            except ConfigError as err:
                errors.append(err)
        raise _type_error(source, key, tp, value)
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            near = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
            hint = f"; did you mean '{near[0]}'?" if near else ""
            raise ConfigError(
                f"{source}: '{key}' must be one of {', '.join(map(str, choices))}, got {value!r}{hint}"
            )
        return value
    if origin is list:
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
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _type_error(source, key, tp, value)
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(source, key, tp, value)
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise _type_error(source, key, tp, value)
        return value
    if tp is str:
        if not isinstance(value, str):
            raise _type_error(source, key, tp, value)
        return value
    raise _type_error(source, key, tp, value)


def _type_error(source: str, key: str, tp: Any, value: Any) -> ConfigError:
    name = str(tp).replace("typing.", "").replace("<class '", "").replace("'>", "")
    return ConfigError(f"{source}: '{key}' must be {name}, got {value!r} ({type(value).__name__})")


def validate(cfg: ExperimentConfig, source: str = "<config>") -> None:
    """Reject values that type-check but cannot work."""

    def need(ok: bool, key: str, message: str) -> None:
        if not ok:
            raise ConfigError(f"{source}: '{key}' {message}")

    d, o, t = cfg.data, cfg.optim, cfg.train
    need(d.batch_size >= 1, "data.batch_size", f"must be >= 1, got {d.batch_size}")
    need(
        d.eval_batch_size is None or d.eval_batch_size >= 1, "data.eval_batch_size", "must be >= 1"
    )
    need(d.num_workers >= 0, "data.num_workers", f"must be >= 0, got {d.num_workers}")
    need(d.in_channels >= 1, "data.in_channels", f"must be >= 1, got {d.in_channels}")
    need(
        len(d.image_size) == 2 and all(s >= 1 for s in d.image_size),
        "data.image_size",
        f"must be [height, width] with positive sizes, got {d.image_size}",
    )
    need(
        0.0 <= d.val_fraction < 1.0, "data.val_fraction", f"must be in [0, 1), got {d.val_fraction}"
    )
    need(
        0.0 <= d.test_fraction < 1.0,
        "data.test_fraction",
        f"must be in [0, 1), got {d.test_fraction}",
    )
    need(
        d.val_fraction + d.test_fraction < 1.0,
        "data.val_fraction",
        "plus data.test_fraction must leave some training data",
    )
    need(d.num_classes is None or d.num_classes >= 2, "data.num_classes", "must be >= 2")
    need(d.max_image_pixels > 0, "data.max_image_pixels", "must be positive")
    for name in ("mean", "std"):
        values = getattr(d, name)
        need(
            values is None or len(values) == d.in_channels,
            f"data.{name}",
            f"needs one value per channel (data.in_channels={d.in_channels}), got {values}",
        )
    need((d.mean is None) == (d.std is None), "data.mean", "and data.std go together")
    need(d.std is None or all(v > 0 for v in d.std), "data.std", "must be positive")
    need(
        d.crop_size is None or (len(d.crop_size) == 2 and min(d.crop_size) >= 1),
        "data.crop_size",
        f"must be [height, width] with positive sizes, got {d.crop_size}",
    )
    need(
        d.random_scale is None
        or (len(d.random_scale) == 2 and 0 < d.random_scale[0] <= d.random_scale[1]),
        "data.random_scale",
        f"must be [low, high] with 0 < low <= high, got {d.random_scale}",
    )
    for name in ("hflip", "vflip"):
        p = getattr(d, name)
        need(p is None or 0 <= p <= 1, f"data.{name}", f"is a probability in [0, 1], got {p}")
    for name in ("rotation", "color_jitter", "crop_padding"):
        v = getattr(d, name)
        need(v is None or v >= 0, f"data.{name}", f"must be >= 0, got {v}")
    need(
        d.class_names is None or d.num_classes is None or len(d.class_names) == d.num_classes,
        "data.class_names",
        f"has {len(d.class_names or [])} names but data.num_classes is {d.num_classes}",
    )
    need(
        d.num_classes is None or not 0 <= d.ignore_index < d.num_classes,
        "data.ignore_index",
        f"({d.ignore_index}) must not be a class index (0..{(d.num_classes or 0) - 1})",
    )
    need(
        not isinstance(d.class_weights, list)
        or d.num_classes is None
        or len(d.class_weights) == d.num_classes,
        "data.class_weights",
        f"needs one weight per class (data.num_classes={d.num_classes})",
    )
    need(d.mask_mode != "rgb" or d.palette is not None, "data.mask_mode", "rgb needs data.palette")
    need(d.mask_threshold is None or d.mask_threshold > 0, "data.mask_threshold", "must be > 0")
    need(
        d.samples_per_class is None or d.samples_per_class >= 1,
        "data.samples_per_class",
        "must be >= 1",
    )
    need(d.num_samples >= 1, "data.num_samples", "must be >= 1")
    need(o.lr > 0, "optim.lr", f"must be positive, got {o.lr}")
    need(o.weight_decay >= 0, "optim.weight_decay", f"must be >= 0, got {o.weight_decay}")
    need(0 <= o.momentum < 1, "optim.momentum", f"must be in [0, 1), got {o.momentum}")
    need(o.accumulate_steps >= 1, "optim.accumulate_steps", "must be >= 1")
    need(not o.nesterov or o.momentum > 0, "optim.nesterov", "needs optim.momentum > 0")
    need(len(o.betas) == 2, "optim.betas", "must be two numbers")
    need(t.epochs >= 1, "train.epochs", f"must be >= 1, got {t.epochs}")
    need(0 < t.ema_decay < 1, "train.ema_decay", "must be in (0, 1)")
    need(cfg.schedule.warmup_epochs >= 0, "schedule.warmup_epochs", "must be >= 0")
    need(
        cfg.schedule.warmup_epochs < t.epochs or cfg.schedule.warmup_epochs == 0,
        "schedule.warmup_epochs",
        f"({cfg.schedule.warmup_epochs}) must be shorter than train.epochs ({t.epochs})",
    )
    need(0 <= cfg.loss.label_smoothing < 1, "loss.label_smoothing", "must be in [0, 1)")
    need(len(cfg.loss.terms) >= 1, "loss.terms", "needs at least one term")
    for i, term in enumerate(cfg.loss.terms):
        need(
            term.name in ("cross_entropy", "focal", "dice"),
            f"loss.terms[{i}].name",
            f"must be cross_entropy, focal or dice, got {term.name!r}",
        )
    need(cfg.distill.temperature > 0, "distill.temperature", "must be positive")
    need(0 <= cfg.distill.alpha <= 1, "distill.alpha", "must be in [0, 1]")
    _validate_training(cfg, need)
    need(0 <= cfg.eval.window_overlap < 1, "eval.window_overlap", "must be in [0, 1)")
    window = cfg.eval.window_size
    need(
        window is None or (len(window) == 2 and min(window) >= 1),
        "eval.window_size",
        f"must be [height, width] with positive sizes (or null), got {window}",
    )
    need(cfg.eval.topk >= 1, "eval.topk", f"must be >= 1, got {cfg.eval.topk}")
    need(cfg.name.strip() != "" and "/" not in cfg.name, "name", "must be a plain folder name")


def _validate_training(cfg: ExperimentConfig, need: Any) -> None:
    """The training engine's keys: loss, optimiser, schedule, fine-tuning, train."""
    o, s, f, t, loss = cfg.optim, cfg.schedule, cfg.finetune, cfg.train, cfg.loss
    need(o.reference_batch_size >= 1, "optim.reference_batch_size", "must be >= 1")
    need(
        o.clip_grad_norm is None or o.clip_grad_norm > 0,
        "optim.clip_grad_norm",
        f"must be positive (or null for no clipping), got {o.clip_grad_norm}",
    )
    need(all(0 <= b < 1 for b in o.betas), "optim.betas", f"must be in [0, 1), got {o.betas}")
    need(0 < s.warmup_start_factor <= 1, "schedule.warmup_start_factor", "must be in (0, 1]")
    need(0 <= s.min_lr_factor <= 1, "schedule.min_lr_factor", "must be in [0, 1]")
    need(s.step_epochs > 0, "schedule.step_epochs", f"must be positive, got {s.step_epochs}")
    need(s.gamma > 0, "schedule.gamma", f"must be positive, got {s.gamma}")
    need(s.power > 0, "schedule.power", f"must be positive, got {s.power}")
    need(
        s.name != "multistep" or len(s.milestones) > 0,
        "schedule.milestones",
        "needs at least one epoch for schedule.name=multistep, e.g. [30, 60]",
    )
    need(
        list(s.milestones) == sorted(s.milestones) and all(m > 0 for m in s.milestones),
        "schedule.milestones",
        f"must be positive epochs in increasing order, got {s.milestones}",
    )
    need(loss.focal_gamma >= 0, "loss.focal_gamma", "must be >= 0")
    need(
        loss.focal_alpha is None or all(a >= 0 for a in loss.focal_alpha),
        "loss.focal_alpha",
        "must be non-negative weights, one per class",
    )
    need(loss.dice_smooth >= 0, "loss.dice_smooth", "must be >= 0")
    need(loss.aux_weight >= 0, "loss.aux_weight", "must be >= 0")
    for i, term in enumerate(loss.terms):
        need(term.weight >= 0, f"loss.terms[{i}].weight", f"must be >= 0, got {term.weight}")
    need(f.trainable_stages >= 0, "finetune.trainable_stages", "must be >= 0")
    need(f.pretrained_lr_mult >= 0, "finetune.pretrained_lr_mult", "must be >= 0")
    need(
        f.unfreeze_after_epochs is None or f.unfreeze_after_epochs >= 1,
        "finetune.unfreeze_after_epochs",
        "must be >= 1 (or null for no gradual unfreezing)",
    )
    need(t.val_every >= 1, "train.val_every", f"must be >= 1, got {t.val_every}")
    need(t.log_every >= 1, "train.log_every", f"must be >= 1, got {t.log_every}")
    need(t.gif_images >= 1, "train.gif_images", "must be >= 1")
    es = t.early_stopping
    need(es.patience >= 1, "train.early_stopping.patience", "must be >= 1")
    need(es.min_delta >= 0, "train.early_stopping.min_delta", "must be >= 0")
    for key, name in (
        ("train.best_metric", t.best_metric),
        ("train.early_stopping.metric", es.metric),
    ):
        need(
            name is None or name.split("/")[0] in ("train", "val", "val_ema") and "/" in name,
            key,
            f"must name a logged figure such as val/accuracy, val/miou, val_ema/accuracy or "
            f"train/loss, got {name!r}",
        )
    need(
        not t.best_metric or not t.best_metric.startswith("val_ema/") or t.ema,
        "train.best_metric",
        "names a val_ema/ figure, which needs train.ema=true",
    )
    need(
        cfg.distill.teacher is None or cfg.distill.teacher.strip() != "",
        "distill.teacher",
        "must be a run directory or checkpoint path",
    )


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def save_config(cfg: ExperimentConfig, path: str | Path) -> None:
    with Path(path).open("w") as f:
        yaml.safe_dump(to_dict(cfg), f, sort_keys=False)
