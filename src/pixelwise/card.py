"""The model card: what a checkpoint needs to be used with no config file.

Every checkpoint (and every ``.safetensors`` export) carries one. It names the
architecture and its options, the classes, the input channels and size, and exactly
how evaluation prepared an image (:class:`Preprocessing`), so that
``pixelwise.load(...).predict`` repeats evaluation without guessing. ``to_dict`` writes
plain data (``torch.load(weights_only=True)`` and JSON accept it); ``from_dict`` is the
only place that knows the older card layouts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import torch

from ._version import __version__
from .checkpoint import CheckpointError
from .config import ExperimentConfig
from .data.transforms import normalization
from .models import create_model
from .viz.colors import configured_class_colors

if TYPE_CHECKING:
    from torch import nn

CARD_VERSION = 2


class CardError(CheckpointError):
    """A model card that is missing, incomplete, or made for another model."""


@dataclass(frozen=True)
class Preprocessing:
    """How evaluation prepares an image, which prediction repeats: resize (``None``: the
    image's own size), ``uint8 / 255``, normalise, then one forward pass, a flip average
    or sliding windows (``pixelwise.tta``)."""

    resize: tuple[int, int] | None
    normalize: bool = True
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    interpolation: str = "bilinear"
    antialias: bool = True
    tta_hflip: bool = False
    sliding_window: bool = False
    window_size: tuple[int, int] | None = None
    window_overlap: float = 0.5
    window_weighting: Literal["gaussian", "uniform"] = "gaussian"

    @classmethod
    def from_config(cls, cfg: ExperimentConfig) -> Preprocessing:
        data, ev = cfg.data, cfg.eval
        segmentation = cfg.task == "segmentation"
        sliding = segmentation and ev.sliding_window
        at_own_size = segmentation and (sliding or data.eval_size == "native")
        mean, std = normalization(data)
        window = ev.window_size or data.crop_size or data.image_size
        return cls(
            resize=None if at_own_size else _pair(data.image_size),
            normalize=data.normalize,
            mean=tuple(mean),
            std=tuple(std),
            tta_hflip=ev.tta_hflip,
            sliding_window=sliding,
            window_size=_pair(window) if segmentation else None,
            window_overlap=ev.window_overlap,
            window_weighting=ev.window_weighting,
        )


@dataclass(frozen=True)
class ModelCard:
    """Architecture, classes, input and preprocessing of a trained model.

    ``options`` are ``create_model`` keyword options (the encoder among them); the
    training facts (``epochs``, ``best_metric``, ``best_value``) are those of the
    checkpoint that carries the card; for ``task: multilabel``, ``threshold`` is the
    sigmoid score above which a label is predicted, the one of best macro F1 on the
    validation split at that checkpoint's epoch.
    """

    task: Literal["classification", "segmentation", "multilabel"]
    model: str
    class_names: tuple[str, ...]
    in_channels: int
    image_size: tuple[int, int]
    preprocessing: Preprocessing
    options: dict[str, Any] = field(default_factory=dict)
    ignore_index: int = 255
    class_colors: tuple[tuple[int, int, int], ...] | None = None  # None: viz.colors' default
    version: str = __version__
    # where it came from
    run_name: str | None = None
    dataset: str | None = None
    seed: int | None = None
    planned_epochs: int | None = None
    torch_version: str | None = None
    # the checkpoint's training state
    epochs: int | None = None
    best_metric: str | None = None
    best_value: float | None = None
    threshold: float | None = None  # multilabel: the decision threshold chosen on validation

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def mean_std(self) -> tuple[list[float] | None, list[float] | None]:
        """The normalisation to undo for display, or ``(None, None)`` without one."""
        prep = self.preprocessing
        return (list(prep.mean), list(prep.std)) if prep.normalize else (None, None)

    @classmethod
    def from_config(cls, cfg: ExperimentConfig, class_names: Sequence[str]) -> ModelCard:

        return cls(
            task=cfg.task,
            model=cfg.model.name,
            class_names=tuple(str(n) for n in class_names),
            in_channels=cfg.data.in_channels,
            image_size=_pair(cfg.data.image_size),
            preprocessing=Preprocessing.from_config(cfg),
            options=model_options(cfg),
            ignore_index=cfg.data.ignore_index,
            class_colors=configured_class_colors(cfg.data, class_names),
            run_name=cfg.name,
            dataset=cfg.data.format,
            seed=cfg.seed,
            planned_epochs=cfg.train.epochs,
            torch_version=str(torch.__version__),
        )

    def for_module(self, model: nn.Module) -> ModelCard:
        """The card of a user's own model object: its class by import path, which
        ``build()`` can rebuild where the class takes ``num_classes`` and ``in_channels``
        (a class defined in ``__main__`` or with other arguments cannot be rebuilt: load
        its weights into an instance with ``RunDir.load_weights``)."""
        cls = type(model)
        return dataclasses.replace(self, model=f"{cls.__module__}:{cls.__qualname__}", options={})

    def with_training_state(
        self, epochs: int, best_metric: str | None, best_value: float | None
    ) -> ModelCard:
        return dataclasses.replace(
            self, epochs=epochs, best_metric=best_metric, best_value=best_value
        )

    # ----------------------------------------------------------------------- plain data
    def to_dict(self) -> dict[str, Any]:
        """Plain lists, strings and numbers: what ``weights_only`` loading and JSON accept."""
        out = dataclasses.asdict(self)
        out["card_version"] = CARD_VERSION
        out["num_classes"] = self.num_classes
        return _plain(out)

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None, source: str = "checkpoint") -> ModelCard:
        """A card from ``to_dict``'s output, or from the layout written before version 2
        (``model_options``, ``eval_preprocessing``, top-level ``mean``/``std``)."""
        if not raw or "model" not in raw:
            raise CardError(
                f"{source}: no model card, so nothing says which model or preprocessing it "
                "needs; use a checkpoint written by `pixelwise train`"
            )
        raw = dict(raw)
        if raw.get("card_version") is None:
            raw = _from_version_1(raw)
        names = raw.get("class_names") or [str(i) for i in range(int(raw["num_classes"]))]
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in raw.items() if k in known}
        prep = dict(raw.get("preprocessing") or {})
        prep_known = {f.name for f in dataclasses.fields(Preprocessing)}
        prep = {k: v for k, v in prep.items() if k in prep_known}
        for key in ("resize", "window_size"):
            if prep.get(key) is not None:
                prep[key] = _pair(prep[key])
        for key in ("mean", "std"):
            prep[key] = tuple(prep.get(key) or ())
        values.update(
            class_names=tuple(str(n) for n in names),
            image_size=_pair(raw["image_size"]),
            preprocessing=Preprocessing(**{"resize": None, **prep}),
            options=dict(raw.get("options") or {}),
            class_colors=_colors(raw.get("class_colors")),
        )
        return cls(**values)

    # ----------------------------------------------------------------------- use
    def build(self) -> nn.Module:
        """The architecture with its options and no pretrained weights (the checkpoint
        holds every weight)."""

        return create_model(
            self.model, num_classes=self.num_classes, in_channels=self.in_channels, **self.options
        )

    def check_fits(
        self, source: str, model: str, num_classes: int, in_channels: int, role: str = "this run"
    ) -> None:
        """One sentence when the card names another model, class count or channel count
        than ``role`` (this run, the student) builds."""
        if self.model != model:
            raise CardError(f"{source} holds a '{self.model}' model, but {role} builds '{model}'")
        if self.num_classes != num_classes:
            raise CardError(
                f"{source} was trained for {self.num_classes} classes, but {role} has {num_classes}"
                if role == "this run"
                else f"{source} predicts {self.num_classes} classes, {role} {num_classes}"
            )
        if self.in_channels != in_channels:
            raise CardError(
                f"{source} expects {self.in_channels} input channels, {role} has {in_channels} "
                "(data.in_channels)"
            )


def model_options(cfg: ExperimentConfig) -> dict[str, Any]:
    """``create_model`` options of a config: ``model.options`` plus ``model.encoder``."""
    options = dict(cfg.model.options)
    if cfg.model.encoder is not None:
        options["encoder"] = cfg.model.encoder
    return options


def _from_version_1(raw: dict[str, Any]) -> dict[str, Any]:
    """Cards written before the dataclass: renamed keys and preprocessing at the top."""
    raw["options"] = raw.pop("model_options", None) or {}
    raw["version"] = raw.pop("pixelwise_version", raw.get("version", "unknown"))
    default = {
        "resize": raw.get("image_size"),
        "normalize": raw.get("normalize", True),
        "mean": raw.get("mean") or (),
        "std": raw.get("std") or (),
        "window_size": raw.get("image_size"),
    }
    raw["preprocessing"] = {**default, **(raw.pop("eval_preprocessing", None) or {})}
    return raw


def _pair(values: Sequence[int]) -> tuple[int, int]:
    height, width = (int(v) for v in values)
    return height, width


def _colors(values: Sequence[Sequence[int]] | None) -> tuple[tuple[int, int, int], ...] | None:
    return tuple((int(r), int(g), int(b)) for r, g, b in values) if values else None


def _plain(value: Any) -> Any:
    """Tuples as lists, recursively: the containers ``weights_only`` loading admits."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
