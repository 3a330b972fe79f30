"""Losses for (N, C) or (N, C, H, W) logits with (N,) or (N, H, W) targets.

Cross-entropy and distillation also take (N, C) soft targets (class probabilities, as
MixUp and CutMix make them); focal loss and Dice refuse them.

Every loss honours ``ignore_index``: ignored samples or pixels add nothing to the sum
and are not counted in the mean. ``build_loss`` sums the configured terms with their
weights (for example cross-entropy + Dice); ``distillation_loss`` is the KL term of
knowledge distillation (Hinton et al., 2015). A single logit channel (C = 1) means a
binary problem: sigmoid instead of softmax, targets in {0, 1}.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .config import LossConfig
from .errors import UserError

LOSS_NAMES = ("cross_entropy", "focal", "dice")


def is_soft(logits: torch.Tensor, target: torch.Tensor) -> bool:
    """(N, C) float class probabilities rather than class indices."""
    return target.is_floating_point() and target.shape == logits.shape


def _refuse_soft(name: str, logits: torch.Tensor, target: torch.Tensor) -> None:
    if is_soft(logits, target):
        raise UserError(
            f"loss {name} cannot take soft targets (data.mixup_alpha, data.cutmix_alpha): "
            "use loss.terms=[{name: cross_entropy}] with batch mixing"
        )


def _flatten(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, C, ...) logits and (N, ...) targets -> (M, C) and (M,), one row per sample or pixel."""
    if logits.dim() == target.dim() + 1 and logits.dim() > 2:
        logits = logits.movedim(1, -1)
    return logits.reshape(-1, logits.shape[-1]), target.reshape(-1)


class CrossEntropy(nn.Module):
    """``-sum_c q_c log p_c`` averaged over kept elements; ``q`` is the (smoothed) one-hot
    target, each element weighted by its class weight (PyTorch's weighted mean).

    Soft (N, C) targets are used as ``q`` directly, smoothed the same way
    (``(1 - e) q + e / C``); with class weights the sum is ``-sum_c w_c q_c log p_c``
    and the mean a plain one over the batch (PyTorch's rule for probabilities)."""

    def __init__(
        self,
        weight: torch.Tensor | None = None,
        label_smoothing: float = 0.0,
        ignore_index: int = 255,
    ):
        super().__init__()
        self.register_buffer("weight", weight)
        self.label_smoothing = label_smoothing
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if logits.shape[1] == 1:
            return _binary_cross_entropy(logits, target, self.ignore_index)
        if is_soft(logits, target):  # no index to ignore: every sample counts
            return F.cross_entropy(
                logits, target.to(logits.dtype), self.weight, label_smoothing=self.label_smoothing
            )
        return F.cross_entropy(
            logits,
            target,
            weight=self.weight,
            ignore_index=self.ignore_index,
            label_smoothing=self.label_smoothing,
        )


def _binary_cross_entropy(logits: torch.Tensor, target: torch.Tensor, ignore_index: int):
    keep = (target != ignore_index).float()
    logits = logits.squeeze(1)
    losses = F.binary_cross_entropy_with_logits(
        logits.float(), (target * keep.long()).float(), reduction="none"
    )
    return (losses * keep).sum() / keep.sum().clamp(min=1)


class FocalLoss(nn.Module):
    """Focal loss (Lin et al., 2017): ``-alpha_t (1 - p_t)^gamma log p_t``.

    ``gamma`` down-weights easy, well-classified elements; ``alpha`` is one weight per
    class (or None). The mean is over elements that are not ``ignore_index``.
    """

    def __init__(
        self, gamma: float = 2.0, alpha: torch.Tensor | None = None, ignore_index: int = 255
    ):
        super().__init__()
        self.gamma = gamma
        self.register_buffer("alpha", alpha)
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _refuse_soft("focal", logits, target)
        flat, flat_target = _flatten(logits.float(), target)
        keep = flat_target != self.ignore_index
        safe_target = torch.where(keep, flat_target, torch.zeros_like(flat_target))
        if flat.shape[1] == 1:  # binary: p_t from the sigmoid
            x = flat.squeeze(1)
            log_pt = -F.binary_cross_entropy_with_logits(x, safe_target.float(), reduction="none")
        else:
            log_pt = flat.log_softmax(dim=1).gather(1, safe_target.unsqueeze(1)).squeeze(1)
        losses = -((1 - log_pt.exp()) ** self.gamma) * log_pt
        if self.alpha is not None:
            losses = losses * self.alpha[safe_target]
        keep = keep.float()
        return (losses * keep).sum() / keep.sum().clamp(min=1)


class DiceLoss(nn.Module):
    """Soft Dice (Milletari et al., 2016): ``1 - mean_c (2 sum p g + s) / (sum p + sum g + s)``.

    Sums run over the whole batch (every sample and pixel), so a class absent from one
    image does not dominate; ``s`` (``smooth``) keeps empty classes finite. Multiclass
    uses the softmax and every class; a single channel uses the sigmoid and the
    foreground only (binary Dice).
    """

    def __init__(self, smooth: float = 1.0, ignore_index: int = 255):
        super().__init__()
        self.smooth = smooth
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _refuse_soft("dice", logits, target)
        flat, flat_target = _flatten(logits.float(), target)
        keep = (flat_target != self.ignore_index).unsqueeze(1).float()
        safe_target = torch.where(
            flat_target != self.ignore_index, flat_target, torch.zeros_like(flat_target)
        )
        if flat.shape[1] == 1:
            probs = flat.sigmoid()
            truth = safe_target.unsqueeze(1).float()
        else:
            probs = flat.softmax(dim=1)
            truth = F.one_hot(safe_target, flat.shape[1]).float()
        probs, truth = probs * keep, truth * keep
        intersection = (probs * truth).sum(dim=0)
        total = probs.sum(dim=0) + truth.sum(dim=0)
        dice = (2 * intersection + self.smooth) / (total + self.smooth)
        return 1 - dice.mean()


class WeightedSum(nn.Module):
    """``sum_i w_i * loss_i``: the combination of configured terms."""

    def __init__(self, losses: Sequence[nn.Module], weights: Sequence[float]):
        super().__init__()
        self.losses = nn.ModuleList(losses)
        self.weights = list(weights)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total = logits.new_zeros((), dtype=torch.float32)
        for weight, loss in zip(self.weights, self.losses):
            total = total + weight * loss(logits, target)
        return total


def distillation_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    target: torch.Tensor,
    temperature: float,
    ignore_index: int = 255,
) -> torch.Tensor:
    """``T^2 * KL(softmax(t / T) || softmax(s / T))`` per sample or pixel, averaged over
    the elements whose label is not ``ignore_index``.

    The ``T^2`` keeps the gradient scale of the soft term independent of ``T``
    (Hinton et al., 2015). Segmentation logits are compared pixel by pixel. Soft (N, C)
    targets (MixUp, CutMix) ignore nothing: every sample counts.
    """
    if is_soft(student, target):
        target = torch.zeros(target.shape[0], dtype=torch.long, device=target.device)
    flat_student, flat_target = _flatten(student.float(), target)
    flat_teacher, _ = _flatten(teacher.float(), target)
    log_p_student = (flat_student / temperature).log_softmax(dim=1)
    log_p_teacher = (flat_teacher / temperature).log_softmax(dim=1)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(dim=1)
    keep = (flat_target != ignore_index).float()
    return temperature**2 * (kl * keep).sum() / keep.sum().clamp(min=1)


class MultiLabelBCE(nn.Module):
    """Binary cross-entropy of every (image, label) decision on its sigmoid
    (``BCEWithLogitsLoss``), the mean over both; ``pos_weight`` (one per label) weighs the
    positive examples of rare labels."""

    def __init__(self, pos_weight: torch.Tensor | None = None) -> None:
        super().__init__()
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(
            logits.float(), target.float(), pos_weight=self.pos_weight
        )


def positive_weights(cfg: LossConfig, targets: torch.Tensor | None) -> torch.Tensor | None:
    """``loss.pos_weight`` as a tensor: a list as given, ``auto`` as negatives / positives
    per label of the training split's (N, C) multi-hot ``targets`` (1 for a label
    without positives), as ``BCEWithLogitsLoss`` documents it."""
    if cfg.pos_weight is None:
        return None
    if isinstance(cfg.pos_weight, list):
        return torch.tensor(cfg.pos_weight, dtype=torch.float32)
    if targets is None:
        raise UserError("loss.pos_weight=auto needs the training split's labels")
    positives = targets.sum(dim=0).double()
    negatives = len(targets) - positives
    return torch.where(positives > 0, negatives / positives.clamp(min=1), 1.0).float()


def build_loss(
    cfg: LossConfig,
    num_classes: int,
    ignore_index: int = 255,
    class_weights: torch.Tensor | None = None,
    task: str = "classification",
) -> nn.Module:
    """The configured terms; ``class_weights`` (one per class) weight cross-entropy, and
    focal loss too when ``loss.focal_alpha`` is not set. ``task="multilabel"``:
    ``MultiLabelBCE``, with ``class_weights`` as its per-label positive weights
    (``positive_weights``)."""
    if task == "multilabel":
        if class_weights is not None and len(class_weights) != num_classes:
            raise UserError(
                f"loss.pos_weight: {len(class_weights)} values for {num_classes} labels"
            )
        return MultiLabelBCE(class_weights)
    if class_weights is not None:
        class_weights = torch.as_tensor(class_weights, dtype=torch.float32)
        if class_weights.numel() != num_classes:
            raise UserError(
                f"class weights: {class_weights.numel()} values for {num_classes} classes"
            )
    alpha = class_weights
    if cfg.focal_alpha is not None:
        if len(cfg.focal_alpha) != num_classes:
            raise UserError(
                f"loss.focal_alpha: {len(cfg.focal_alpha)} values for {num_classes} classes"
            )
        alpha = torch.tensor(cfg.focal_alpha, dtype=torch.float32)
    terms, weights = [], []
    for term in cfg.terms:
        if term.name == "cross_entropy":
            terms.append(CrossEntropy(class_weights, cfg.label_smoothing, ignore_index))
        elif term.name == "focal":
            terms.append(FocalLoss(cfg.focal_gamma, alpha, ignore_index))
        elif term.name == "dice":
            terms.append(DiceLoss(cfg.dice_smooth, ignore_index))
        else:
            raise UserError(f"loss term {term.name!r} unknown (valid: {', '.join(LOSS_NAMES)})")
        weights.append(term.weight)
    return terms[0] if len(terms) == 1 and weights[0] == 1.0 else WeightedSum(terms, weights)
