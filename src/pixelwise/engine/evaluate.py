"""Evaluation: one pass over a split into one confusion matrix."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
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
    """Mean loss per batch element and the split's confusion matrix.

    ``predict(model, images) -> logits`` replaces a plain forward pass (test-time
    augmentation, sliding windows).
    """
    was_training = model.training
    model.eval()
    matrix = ConfusionMatrix(num_classes, ignore_index=ignore_index, topk=topk)
    loss_sum = torch.zeros((), dtype=torch.float64)
    count = 0
    for images, targets in progress(loader, desc=desc):
        images = images.to(device, non_blocking=True)
        targets = targets.to(device, non_blocking=True)
        logits = predict(model, images) if predict else main_output(model(images))
        if loss_fn is not None:
            loss_sum += float(loss_fn(logits.float(), targets)) * images.shape[0]
        count += images.shape[0]
        matrix.update(logits, targets)
    model.train(was_training)
    return (float(loss_sum) / max(count, 1)), matrix


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


def resolve_run(path: str | Path, checkpoint: str = "best") -> tuple[Path, Path]:
    """A run directory or a checkpoint file inside one -> (run_dir, checkpoint path)."""
    path = Path(path)
    if path.is_file():
        run_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
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
) -> EvalResult:
    """Re-evaluate a saved run's checkpoint on one split, with the run's own data split.

    Writes ``eval/<split>.json`` and ``plots/confusion_<split>.png`` into the run.
    """
    from ..config import load_config
    from ..data import build_datasets, build_loader
    from ..losses import build_loss
    from ..viz.plots import plot_confusion_matrix
    from .build import build_model
    from .checkpoint import check_compatible, load_checkpoint
    from .runtime import select_device

    run_dir, ckpt_path = resolve_run(path, checkpoint)
    cfg = load_config(
        run_dir / "config.yaml",
        [f"data.{o}" if not o.startswith("data.") else o for o in overrides or []],
    )
    device = select_device(cfg.device)
    splits = build_datasets(cfg, run_dir)
    if split not in splits.datasets:
        raise ValueError(f"split {split!r} not in this dataset (has: {', '.join(splits.datasets)})")
    state = load_checkpoint(ckpt_path)
    num_classes = cfg.data.num_classes or splits.num_classes
    model = build_model(cfg, num_classes)
    check_compatible(model, state["model"], str(ckpt_path))
    model.load_state_dict(state["model"])
    model.to(device)
    loader = build_loader(splits.datasets[split], cfg.data, train=False, device=device)
    loss_fn = build_loss(cfg.loss, num_classes, cfg.data.ignore_index).to(device)
    loss, matrix = evaluate(
        model,
        loader,
        num_classes,
        device,
        cfg.data.ignore_index,
        loss_fn,
        topk=cfg.eval.topk,
        desc=f"eval {split}",
    )
    figures = {"loss": loss, **matrix.compute()}
    result = EvalResult(
        run_dir, split, figures, matrix.matrix.clone(), splits.class_names, loss, ckpt_path
    )
    if write:
        out = run_dir / "eval"
        out.mkdir(exist_ok=True)
        payload = {
            "split": split,
            "checkpoint": str(ckpt_path.relative_to(run_dir))
            if ckpt_path.is_relative_to(run_dir)
            else str(ckpt_path),
            "epoch": state.get("epoch"),
            "class_names": splits.class_names,
            "figures": figures,
            "confusion_matrix": matrix.matrix.tolist(),
        }
        (out / f"{split}.json").write_text(json.dumps(payload, indent=1))
        plot_confusion_matrix(
            matrix.matrix,
            splits.class_names,
            run_dir / "plots" / f"confusion_{split}.png",
            title=f"{split} confusion matrix",
        )
    return result
