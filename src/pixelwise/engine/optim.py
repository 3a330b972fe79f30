"""Optimisers with parameter groups: no weight decay on norms and biases, and
separate learning-rate multipliers for pretrained and new parameters, and per ViT
block under layer-wise learning-rate decay.

Frozen parameters (fine-tuning) stay in the optimiser: a parameter without a
gradient is skipped by every PyTorch optimiser, so unfreezing later needs no new
optimiser and the groups, and so the checkpointed state, never change shape.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from ..config import ConfigError, OptimConfig
from ..errors import UserError
from ..models.vit import VisionTransformer

NORM_TYPES = (
    nn.modules.batchnorm._BatchNorm,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.modules.instancenorm._InstanceNorm,
)


def norm_names(model: nn.Module) -> set[str]:
    """Parameters of normalisation layers (their scales and shifts)."""
    return {
        f"{module_name}.{param_name}" if module_name else param_name
        for module_name, module in model.named_modules()
        if isinstance(module, NORM_TYPES)
        for param_name, _ in module.named_parameters(recurse=False)
    }


def no_decay_names(model: nn.Module) -> set[str]:
    """Biases, normalisation weights and every other 1-d parameter: decaying them
    towards zero only fights the normalisation (Goyal et al., 2017; timm's default)."""
    names = set()
    for module_name, module in model.named_modules():
        for param_name, param in module.named_parameters(recurse=False):
            full = f"{module_name}.{param_name}" if module_name else param_name
            if isinstance(module, NORM_TYPES) or param_name == "bias" or param.ndim <= 1:
                names.add(full)
    return names


def layer_decay_multipliers(model: nn.Module, decay: float) -> dict[str, float]:
    """Layer-wise learning-rate decay for fine-tuning a ViT (BEiT, Bao et al., 2022; timm's
    ``layer_decay``): with ``L`` blocks, the patch embedding, class token and position
    embeddings are layer 0, block ``i`` is layer ``i + 1``, and the final norm, the head
    and anything outside the ViT (a segmentation decoder) are layer ``L + 1``; a
    parameter's multiplier is ``decay ** (L + 1 - layer)``, so early layers, which hold
    the most general features, move least."""
    vit = next(
        ((name, m) for name, m in model.named_modules() if isinstance(m, VisionTransformer)),
        None,
    )
    if vit is None:
        raise ConfigError(
            f"optim.layer_decay is for Vision Transformers (vit_b_16, vit_tiny_cifar); "
            f"{type(model).__name__} has none: set optim.layer_decay=null"
        )
    prefix, module = vit
    prefix = f"{prefix}." if prefix else ""
    depth = len(module.encoder.layers)
    multipliers = {}
    for name, _ in model.named_parameters():
        local = name[len(prefix) :] if name.startswith(prefix) else ""
        layer = depth + 1
        if local in ("class_token", "encoder.pos_embedding") or local.startswith("conv_proj."):
            layer = 0
        elif local.startswith("encoder.layers."):
            block = local.split(".")[2]  # encoder_layer_<i>
            layer = int(block.rsplit("_", 1)[1]) + 1
        multipliers[name] = decay ** (depth + 1 - layer)
    return multipliers


def parameter_groups(
    model: nn.Module,
    cfg: OptimConfig,
    lr_mult: dict[str, float] | None = None,
    include: set[str] | None = None,
) -> list[dict]:
    """Groups keyed by (decay, lr multiplier).

    ``lr_mult`` maps parameter names to multipliers (1.0 when absent), and parameters of
    normalisation layers are multiplied again by ``cfg.norm_lr_mult`` (a BatchNorm shift
    only moves a channel's threshold, so fast schedules can move it much faster: airbench
    uses 64), and again by ``optim.layer_decay``'s per-block factor where it is set;
    ``include`` names the parameters to optimise (default: those with ``requires_grad``).
    """
    skip_decay = set() if cfg.decay_norm_and_bias else no_decay_names(model)
    norms = norm_names(model) if cfg.norm_lr_mult != 1.0 else set()
    layers = layer_decay_multipliers(model, cfg.layer_decay) if cfg.layer_decay else {}
    groups: dict[tuple[bool, float], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if (name not in include) if include is not None else not param.requires_grad:
            continue
        decay = name not in skip_decay
        mult = (lr_mult or {}).get(name, 1.0) * (cfg.norm_lr_mult if name in norms else 1.0)
        mult *= layers.get(name, 1.0)
        groups.setdefault((decay, mult), []).append(param)
    return [
        {
            "params": params,
            "weight_decay": cfg.weight_decay if decay else 0.0,
            "lr_mult": mult,  # the learning rate itself is build_optimizer's
        }
        for (decay, mult), params in groups.items()
    ]


def build_optimizer(groups: Iterable[dict], cfg: OptimConfig, lr: float) -> torch.optim.Optimizer:
    """SGD (momentum, Nesterov), Adam or AdamW; each group's lr is ``lr * lr_mult``.

    Weight decay is per group; for AdamW it is decoupled from the gradient (Loshchilov
    and Hutter, 2019), for SGD and Adam it is the classic L2 term.
    """
    groups = [{**g, "lr": lr * g.get("lr_mult", 1.0)} for g in groups]
    if not groups:
        raise UserError("no parameter to optimise: every parameter of the model is frozen")
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    if cfg.name == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=tuple(cfg.betas))
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(cfg.betas))
