"""Evaluation: one pass over a split into one confusion matrix.

``evaluate`` is what the training loop calls every epoch (a plain forward pass, or a
``predict`` function); ``evaluate_run`` re-evaluates a saved run's checkpoint with
the run's own config and data split, optionally with flip test-time augmentation
and sliding windows (``engine.tta``), and writes ``eval/<split>.json`` and the
confusion-matrix plot. Under ``torch.distributed`` give each process an unpadded
shard (``engine.distributed.ShardSampler``) and call ``ConfusionMatrix.all_reduce``.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..log import progress
from ..metrics import ConfusionMatrix


def main_output(output: torch.Tensor | dict | tuple) -> torch.Tensor:
    """The logits of a model's output: a tensor, or ``{"out": ..., "aux": ...}``."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, dict):
        return output["out"]
    return output[0]


def auxiliary_outputs(output: torch.Tensor | dict | tuple) -> list[torch.Tensor]:
    """Auxiliary-head logits, where a model returns them in training mode."""
    if isinstance(output, dict):
        aux = output.get("aux")
        if aux is None:
            return []
        return list(aux) if isinstance(aux, (list, tuple)) else [aux]
    if isinstance(output, tuple):
        return [o for o in output[1:] if isinstance(o, torch.Tensor)]
    return []


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    num_classes: int,
    device: torch.device,
    ignore_index: int = 255,
    loss_fn: nn.Module | None = None,
    predict: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
    topk: int = 5,
    desc: str = "eval",
) -> tuple[float, ConfusionMatrix]:
    """Mean loss per sample (NaN without ``loss_fn``) and the split's confusion matrix.

    ``predict(model, images) -> logits`` replaces a plain forward pass (test-time
    augmentation, sliding windows: ``tta.make_predictor``). Losses and counts stay on
    ``device`` until the end: no host sync per batch.
    """
    was_training = model.training
    model.eval()
    matrix = ConfusionMatrix(num_classes, ignore_index=ignore_index, topk=topk)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    count = 0
    for images, targets in progress(loader, desc=desc):
        images = images.to(device, non_blocking=True)
        targets = targets.to(device, non_blocking=True)
        logits = predict(model, images) if predict else main_output(model(images))
        if loss_fn is not None:
            loss_sum += loss_fn(logits.float(), targets).double() * images.shape[0]
        count += images.shape[0]
        matrix.update(logits, targets)
    model.train(was_training)
    loss = float(loss_sum) / max(count, 1) if loss_fn is not None else math.nan
    return loss, matrix


# --------------------------------------------------------------------------- a saved run
@dataclass
class EvalResult:
    run_dir: Path
    split: str
    figures: dict[str, Any]
    matrix: torch.Tensor
    class_names: list[str]
    loss: float
    checkpoint: Path
    task: str = "classification"
    inference: dict[str, Any] = field(default_factory=dict)  # how logits were predicted


def resolve_run(path: str | Path, checkpoint: str = "best") -> tuple[Path, Path]:
    """A run directory or a checkpoint file inside one -> (run_dir, checkpoint path)."""
    path = Path(path)
    if path.is_file():
        run_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
        if not (run_dir / "config.yaml").is_file():
            raise FileNotFoundError(
                f"{path}: no config.yaml beside it or one folder up; pass a checkpoint that is "
                "inside a pixelwise run directory (runs/<name>/checkpoints/best.pt)"
            )
        return run_dir, path
    if not path.is_dir():
        raise FileNotFoundError(f"no run directory or checkpoint at {path}")
    ckpt = path / "checkpoints" / f"{checkpoint}.pt"
    if not ckpt.is_file():
        raise FileNotFoundError(
            f"{path} has no checkpoints/{checkpoint}.pt: is it a pixelwise run directory?"
        )
    return path, ckpt


def evaluate_run(
    path: str | Path,
    split: str = "test",
    overrides: list[str] | None = None,
    checkpoint: str = "best",
    write: bool = True,
    tta_hflip: bool | None = None,
    sliding_window: bool | None = None,
    window_overlap: float | None = None,
) -> EvalResult:
    """Re-evaluate a saved run's checkpoint on one split, with the run's own data split.

    ``overrides`` are ``data.`` keys (``root=/elsewhere``); ``tta_hflip``,
    ``sliding_window`` and ``window_overlap`` override the run's ``eval`` section.
    Sliding windows evaluate segmentation at each image's own size
    (``data.eval_size=native`` unless overridden) with windows of ``eval.window_size``,
    by default the size the model was trained on. Writes ``eval/<split>.json`` and
    ``plots/confusion_<split>.png`` into the run directory.
    """
    from ..config import load_config
    from ..data import build_datasets, build_loader
    from ..data.stats import resolve_class_weights
    from ..losses import build_loss
    from .build import build_model
    from .checkpoint import check_card, check_compatible, load_checkpoint
    from .precision import Precision
    from .runtime import select_device
    from .tta import make_predictor

    run_dir, ckpt_path = resolve_run(path, checkpoint)
    trained = load_config(run_dir / "config.yaml")  # as trained, before any override
    data_overrides = [o if o.startswith("data.") else f"data.{o}" for o in overrides or []]
    eval_overrides = {
        "tta_hflip": tta_hflip,
        "sliding_window": sliding_window,
        "window_overlap": window_overlap,
    }
    eval_overrides = [f"eval.{k}={v}" for k, v in eval_overrides.items() if v is not None]
    cfg = load_config(run_dir / "config.yaml", data_overrides + eval_overrides)
    window = None
    if cfg.eval.sliding_window:
        if cfg.task != "segmentation":
            raise ValueError("eval.sliding_window: sliding windows are for segmentation runs")
        window = tuple(cfg.eval.window_size or training_size(trained))
        native = hasattr(cfg.data, "eval_size") and cfg.data.eval_size != "native"
        if native and not any(o.startswith("data.eval_size=") for o in data_overrides):
            cfg = load_config(
                run_dir / "config.yaml", [*data_overrides, "data.eval_size=native", *eval_overrides]
            )

    device = select_device(cfg.device)
    splits = build_datasets(cfg, run_dir)
    if split not in splits.datasets:
        raise ValueError(f"split {split!r} not in this dataset (has: {', '.join(splits.datasets)})")
    state = load_checkpoint(ckpt_path)
    num_classes = cfg.data.num_classes or splits.num_classes
    check_card(state.get("card"), str(ckpt_path), cfg.model.name, num_classes, cfg.data.in_channels)
    model = build_model(cfg, num_classes)
    check_compatible(model, state["model"], str(ckpt_path))
    model.load_state_dict(state["model"])
    model.to(device)
    if cfg.train.channels_last:  # as validated during training
        model = model.to(memory_format=torch.channels_last)
    loader = build_loader(splits.datasets[split], cfg.data, train=False, device=device)
    # The loss as training logged it: with the run's class weights (class_weights.json).
    class_weights = resolve_class_weights(cfg.data, num_classes, run_dir, seed=cfg.seed)
    loss_fn = build_loss(cfg.loss, num_classes, cfg.data.ignore_index, class_weights).to(device)
    inference = {
        "tta_hflip": cfg.eval.tta_hflip,
        "sliding_window": list(window) if window else None,
        "window_overlap": cfg.eval.window_overlap if window else None,
        "window_weighting": cfg.eval.window_weighting if window else None,
        "amp": cfg.train.amp,
    }
    predict = make_predictor(
        cfg.eval.tta_hflip, window, cfg.eval.window_overlap, cfg.eval.window_weighting
    )
    autocast = Precision(cfg.train.amp, device).autocast() if cfg.train.amp != "off" else None
    with autocast or contextlib.nullcontext():
        loss, matrix = evaluate(
            model,
            loader,
            num_classes,
            device,
            cfg.data.ignore_index,
            loss_fn,
            predict=predict,
            topk=cfg.eval.topk,
            desc=f"eval {split}",
        )
    figures = {"loss": loss, **matrix.compute()}
    result = EvalResult(
        run_dir=run_dir,
        split=split,
        figures=figures,
        matrix=matrix.matrix.cpu().clone(),
        class_names=list(splits.class_names),
        loss=loss,
        checkpoint=ckpt_path,
        task=cfg.task,
        inference=inference,
    )
    if write:
        write_eval(result, state.get("epoch"))
    return result


def training_size(cfg: Any) -> list[int]:
    """The (height, width) a segmentation model saw in training: its crops, else images."""
    return list(getattr(cfg.data, "crop_size", None) or cfg.data.image_size)


def write_eval(result: EvalResult, epoch: int | None = None) -> Path:
    """``eval/<split>.json`` (undefined figures as null) and ``plots/confusion_<split>.png``."""
    from ..viz.plots import plot_confusion_matrix

    run_dir, split = result.run_dir, result.split
    checkpoint = (
        str(result.checkpoint.relative_to(run_dir))
        if result.checkpoint.is_relative_to(run_dir)
        else str(result.checkpoint)
    )
    payload = {
        "split": split,
        "task": result.task,
        "checkpoint": checkpoint,
        "epoch": epoch,
        "inference": result.inference,
        "class_names": result.class_names,
        "figures": _json_safe(result.figures),
        "confusion_matrix": result.matrix.tolist(),
    }
    out = run_dir / "eval" / f"{split}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(payload, indent=1, allow_nan=False))
    extras = [name for name in ("tta_hflip",) if result.inference.get(name)]
    if result.inference.get("sliding_window"):
        extras.append("sliding window")
    title = f"{split} confusion matrix" + (f" ({', '.join(extras)})" if extras else "")
    plot_confusion_matrix(
        result.matrix, result.class_names, run_dir / "plots" / f"confusion_{split}.png", title=title
    )
    return out


def _json_safe(value: Any) -> Any:
    """NaN (an undefined figure) as null: strict JSON that every reader accepts."""
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    return value
