"""Building a run from its config: the model and everything that trains it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from ..card import model_options
from ..config import ExperimentConfig
from ..losses import build_loss
from ..models import create_model
from .distill import Distillation, load_teacher
from .distributed import DistContext, convert_sync_batchnorm, wrap
from .ema import Lookahead, ModelEma
from .finetune import FinetunePlan
from .optim import build_optimizer, parameter_groups
from .precision import Precision
from .schedule import budget_sync, build_scheduler, peak_lr, steps_per_epoch


def sample_images(loader: Iterable, max_images: int = 5000) -> torch.Tensor:
    """Up to ``max_images`` images from the first batches of ``loader`` (without
    augmentation where the loader can give them: a ``TensorLoader``)."""
    if hasattr(loader, "plain_images"):
        return loader.plain_images(max_images)
    batches, count = [], 0
    for images, _ in loader:
        batches.append(images)
        count += len(images)
        if count >= max_images:
            break
    return torch.cat(batches)[:max_images]


def build_model(cfg: ExperimentConfig, num_classes: int) -> nn.Module:
    """The config's model with its initial weights (``model.weights``,
    ``model.encoder_weights``); a saved run is rebuilt from its card instead."""
    options = model_options(cfg)
    if cfg.model.encoder_weights is not None:
        options["encoder_weights"] = cfg.model.encoder_weights
    return create_model(
        cfg.model.name,
        num_classes=num_classes,
        in_channels=cfg.data.in_channels,
        weights=cfg.model.weights,
        new_classifier=cfg.model.new_classifier,
        **options,
    )


@dataclass
class TrainParts:
    """Everything the loop touches. ``model`` is the plain module (saved, evaluated,
    averaged by EMA); ``forward_model`` is what the training step calls: the same
    module, wrapped by DDP and/or ``torch.compile`` where configured."""

    cfg: ExperimentConfig
    ctx: DistContext
    num_classes: int
    model: nn.Module
    forward_model: nn.Module
    loss_fn: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    precision: Precision
    plan: FinetunePlan
    ema: ModelEma | None = None
    lookahead: Lookahead | None = None
    distill: Distillation | None = None

    @property
    def device(self) -> torch.device:
        return self.ctx.device

    def rewrap(self) -> None:
        """Wrap again after the trainable set changed: DDP registers it once."""
        self.forward_model = training_forward(self.model, self.cfg, self.ctx)


def training_forward(model: nn.Module, cfg: ExperimentConfig, ctx: DistContext) -> nn.Module:
    forward = wrap(model, ctx)
    if cfg.train.compile:
        forward = torch.compile(forward)
    return forward


def build_parts(
    cfg: ExperimentConfig,
    num_classes: int,
    ctx: DistContext,
    batches_per_epoch: int,
    class_weights: torch.Tensor | None = None,
    init_loader: Iterable | None = None,
    model: nn.Module | None = None,
    loss_fn: nn.Module | None = None,
) -> TrainParts:
    """Model (SyncBatchNorm, device, memory format), fine-tuning plan, loss, optimiser
    with its parameter groups, schedule, precision, EMA, teacher, DDP/compile wrapper.

    ``model`` and ``loss_fn`` replace the config's (a user's own pieces). ``init_loader`` (training batches) feeds a model's data-dependent initialisation,
    where it has one and starts without weights; a resumed run passes None, its
    weights come from the checkpoint, and pretrained weights are never overwritten.
    """
    device = ctx.device
    model = model if model is not None else build_model(cfg, num_classes)  # a user's own
    from_data = init_loader is not None and cfg.model.weights is None
    if from_data and hasattr(model, "initialize_from_data"):
        model.initialize_from_data(sample_images(init_loader))
    if cfg.train.sync_batchnorm:
        model = convert_sync_batchnorm(model, ctx)
    model = model.to(device)
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    plan = FinetunePlan.for_model(model, cfg.finetune)
    plan.apply(model, 0)

    if loss_fn is None:
        loss_fn = build_loss(
            cfg.loss, num_classes, cfg.data.ignore_index, class_weights, task=cfg.task
        )
    loss_fn = loss_fn.to(device)
    accumulate = cfg.optim.accumulate_steps
    lr = peak_lr(cfg.optim, cfg.data.batch_size * ctx.world_size * accumulate)
    groups = parameter_groups(model, cfg.optim, plan.lr_multipliers(), include=plan.trainable)
    optimizer = build_optimizer(groups, cfg.optim, lr)
    scheduler = build_scheduler(
        optimizer,
        cfg.schedule,
        cfg.train.epochs,
        steps_per_epoch(batches_per_epoch, accumulate),
        cfg.train.max_minutes,
        budget_sync(ctx),
    )
    ema = ModelEma(model, cfg.train.ema_decay) if cfg.train.ema else None
    lookahead = None
    if cfg.train.lookahead:
        total = steps_per_epoch(batches_per_epoch, accumulate) * cfg.train.epochs
        lookahead = Lookahead(model, total, cfg.train.lookahead_decay, cfg.train.lookahead_every)
    distill = None
    if cfg.distill.teacher:
        teacher = load_teacher(cfg.distill.teacher, num_classes, cfg.data.in_channels, device)
        if cfg.train.channels_last:
            teacher = teacher.to(memory_format=torch.channels_last)
        distill = Distillation(teacher, cfg.distill, cfg.data.ignore_index)
    return TrainParts(
        cfg=cfg,
        ctx=ctx,
        num_classes=num_classes,
        model=model,
        forward_model=training_forward(model, cfg, ctx),
        loss_fn=loss_fn,
        optimizer=optimizer,
        scheduler=scheduler,
        precision=Precision(cfg.train.amp, device),
        plan=plan,
        ema=ema,
        lookahead=lookahead,
        distill=distill,
    )
