"""Batch-level mixing in the training step: MixUp, CutMix, and CutMix of masks.

Classification uses ``torchvision.transforms.v2``'s ``MixUp`` (Zhang et al., 2018,
"mixup: Beyond Empirical Risk Minimization") and ``CutMix`` (Yun et al., 2019,
"CutMix: Regularization Strategy to Train Strong Classifiers with Localizable
Features"): each pairs the batch with itself rolled by one, draws ``lambda`` from
``Beta(alpha, alpha)`` and returns (N, C) soft targets. As in timm, a batch is mixed
with probability ``data.mix_prob``; with both switched on, CutMix is chosen with
probability ``data.mix_switch_prob`` and MixUp otherwise.

Segmentation has CutMix only (a blend of two masks is no mask): a box of the rolled
image and the same box of its mask are pasted together, so the targets stay hard.

Every mixer returns ``(images, targets, labels)``: ``targets`` for the loss (soft or
hard), ``labels`` the hard labels the training figures are computed on, the dominant
class of each mixed sample (the ``argmax`` of its soft target). Randomness comes from
the global torch generator, which the trainer seeds per process and a checkpoint saves.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torchvision.transforms import v2

from ..config import ExperimentConfig

Mixer = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


def no_mixing(images: torch.Tensor, targets: torch.Tensor):
    return images, targets, targets


class ClassificationMixer:
    """MixUp and/or CutMix on a batch of images and int labels, with soft targets out."""

    def __init__(
        self,
        num_classes: int,
        mixup_alpha: float = 0.0,
        cutmix_alpha: float = 0.0,
        prob: float = 1.0,
        switch_prob: float = 0.5,
    ) -> None:
        choices, weights = [], []
        if mixup_alpha > 0:
            choices.append(v2.MixUp(alpha=mixup_alpha, num_classes=num_classes))
            weights.append(1.0 - switch_prob if cutmix_alpha > 0 else 1.0)
        if cutmix_alpha > 0:
            choices.append(v2.CutMix(alpha=cutmix_alpha, num_classes=num_classes))
            weights.append(switch_prob if mixup_alpha > 0 else 1.0)
        if not choices:
            raise ValueError("ClassificationMixer needs mixup_alpha > 0 or cutmix_alpha > 0")
        self.num_classes = num_classes
        self.prob = prob
        self.mix = choices[0] if len(choices) == 1 else v2.RandomChoice(choices, p=weights)

    def __call__(self, images: torch.Tensor, targets: torch.Tensor):
        if self.prob < 1.0 and float(torch.rand(())) >= self.prob:
            return images, targets, targets
        mixed, soft = self.mix(images, targets)
        return mixed, soft, soft.argmax(dim=1)


def cut_box(height: int, width: int, lam: float) -> tuple[int, int, int, int]:
    """CutMix's box: area ``(1 - lam)`` of the image, centred uniformly, clipped to it;
    returns (top, bottom, left, right)."""
    ratio = (1.0 - lam) ** 0.5
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    cy, cx = int(torch.randint(height, ())), int(torch.randint(width, ()))
    top, bottom = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, height)
    left, right = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, width)
    return top, bottom, left, right


class MaskCutMix:
    """CutMix for segmentation: one box per batch, cut from the rolled batch's images and
    masks and pasted into both (applied with probability ``prob``)."""

    def __init__(self, alpha: float, prob: float = 1.0) -> None:
        self.beta = torch.distributions.Beta(torch.tensor([alpha]), torch.tensor([alpha]))
        self.prob = prob

    def __call__(self, images: torch.Tensor, masks: torch.Tensor):
        if self.prob < 1.0 and float(torch.rand(())) >= self.prob:
            return images, masks, masks
        lam = float(self.beta.sample())
        top, bottom, left, right = cut_box(images.shape[-2], images.shape[-1], lam)
        images, masks = images.clone(), masks.clone()
        images[..., top:bottom, left:right] = images.roll(1, 0)[..., top:bottom, left:right]
        masks[..., top:bottom, left:right] = masks.roll(1, 0)[..., top:bottom, left:right]
        return images, masks, masks


def batch_mixer(cfg: ExperimentConfig, num_classes: int) -> Mixer:
    """The configured mixer for the training step; ``no_mixing`` when every alpha is 0."""
    data = cfg.data
    if cfg.task == "segmentation":
        return MaskCutMix(data.cutmix_alpha, data.mix_prob) if data.cutmix_alpha > 0 else no_mixing
    if data.mixup_alpha > 0 or data.cutmix_alpha > 0:
        return ClassificationMixer(
            num_classes, data.mixup_alpha, data.cutmix_alpha, data.mix_prob, data.mix_switch_prob
        )
    return no_mixing
