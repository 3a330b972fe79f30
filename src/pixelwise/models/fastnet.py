"""A small, fast CIFAR network tuned for accuracy per minute.

After Keller Jordan's airbench (2024), which reaches 94% on CIFAR-10 in a few seconds
on an A100: a 2x2 patch-whitening convolution, then three blocks of
conv → max-pool → BN → GELU → conv → BN → GELU, global max-pooling and a linear
classifier whose logits are scaled down. BatchNorm layers keep their scale fixed
at 1 and learn only the shift, which with the high learning rates of fast
schedules trains more stably.

The whitening layer can be initialised from training images
(:meth:`FastNet.initialize_from_data`): its filters become the eigenvectors of the
2x2 patch covariance scaled by 1/sqrt(eigenvalue), so the first layer's outputs
start decorrelated and of unit variance; they are never trained (nor are they
replaced when pretrained weights are loaded). That initialisation
is what lets the network learn in a handful of epochs. Its bias trains throughout, or,
with ``whiten_bias_epochs = n``, for the first ``n`` epochs only, as in airbench
(``trains_for_epochs``, which the trainer reads: ``engine/finetune.py``).
"""

from __future__ import annotations

import torch
from torch import nn

from .base import Classifier, FeatureLevel, ModelError, ModelSpec


class ShiftOnlyBatchNorm(nn.BatchNorm2d):
    """BatchNorm whose scale stays 1: only the shift (bias) is learned.

    ``momentum`` is PyTorch's (the weight of the new batch in the running statistics):
    0.4, airbench's "0.6" in the usual convention, so the statistics keep up with the
    fast-moving weights of a short schedule.
    """

    def __init__(self, channels: int, momentum: float = 0.4, eps: float = 1e-12) -> None:
        super().__init__(channels, momentum=momentum, eps=eps)
        self.weight.requires_grad_(False)


class FastBlock(nn.Sequential):
    """conv3x3 → max-pool 2 → BN → GELU → conv3x3 → BN → GELU (resolution halves)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.MaxPool2d(2),
            ShiftOnlyBatchNorm(out_channels),
            nn.GELU(),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            ShiftOnlyBatchNorm(out_channels),
            nn.GELU(),
        )


class FastNet(Classifier):
    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        widths: tuple[int, int, int] = (64, 256, 256),
        logit_scale: float = 1 / 9,
        whiten_padding: bool = True,
        whiten_bias_epochs: int | None = None,
    ) -> None:
        super().__init__()
        if whiten_bias_epochs is not None and whiten_bias_epochs < 1:
            raise ModelError(
                f"whiten_bias_epochs must be at least 1 (or None: trained throughout), "
                f"got {whiten_bias_epochs}"
            )
        self.whiten_bias_epochs = whiten_bias_epochs
        # True: the whitening output is padded back to the input size, so the blocks'
        # strides are exact powers of two (an encoder's feature pyramid needs them).
        # False: airbench's 31x31 maps of a 32x32 image (pools to 15, 7, 3), 0.81x the
        # FLOPs of the padded net for the same classifier.
        self.whiten_padding = whiten_padding
        whiten_channels = 2 * in_channels * 4  # +/- each eigenvector of 2x2 patches
        self.whiten = nn.Conv2d(in_channels, whiten_channels, kernel_size=2, padding=0, bias=True)
        # Fixed filters: set from data (initialize_from_data) or loaded with pretrained weights.
        self.whiten.weight.requires_grad_(False)
        self.act = nn.GELU()
        self.layers = nn.ModuleList(
            [
                FastBlock(whiten_channels, widths[0]),
                FastBlock(widths[0], widths[1]),
                FastBlock(widths[1], widths[2]),
            ]
        )
        self.feature_info = [
            FeatureLevel(f"layers.{i}", w, 2 ** (i + 1)) for i, w in enumerate(widths)
        ]
        self.num_features = widths[-1]
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Linear(widths[-1], num_classes, bias=False)
        self.logit_scale = logit_scale
        self.num_classes = num_classes
        for module in self.modules():
            if isinstance(module, nn.Conv2d) and module is not self.whiten:
                # Identity-like start: each output channel copies one input channel.
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                n = min(module.in_channels, module.out_channels)
                nn.init.dirac_(module.weight[:n])

    @torch.no_grad()
    def initialize_from_data(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the (fixed) whitening filters from (N, C, H, W) normalised training images."""
        c = images.shape[1]
        patches = images.unfold(2, 2, 1).unfold(3, 2, 1)  # N, C, H', W', 2, 2
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * 4).double()
        patches = patches - patches.mean(dim=0)
        covariance = patches.T @ patches / len(patches)
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
        filters = (eigenvectors.T / torch.sqrt(eigenvalues + eps)[:, None]).reshape(c * 4, c, 2, 2)
        weight = torch.cat([filters, -filters]).to(self.whiten.weight)
        self.whiten.weight.copy_(weight)

    def forward_pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        # The 2x2 valid convolution trims one pixel; pad it back so strides stay exact.
        if self.whiten_padding:
            x = nn.functional.pad(x, (0, 1, 0, 1), mode="replicate")
        x = self.act(self.whiten(x))
        features = []
        for layer in self.layers:
            x = layer(x)
            features.append(x)
        return features

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_pyramid(x)[-1]

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.pool(features), 1)
        return x if pre_logits else self.fc(x) * self.logit_scale

    def trains_for_epochs(self) -> dict[str, int]:
        """Parameters that train for their first n epochs only, then stay as they are."""
        return {"whiten.bias": self.whiten_bias_epochs} if self.whiten_bias_epochs else {}

    def reset_classifier(self, num_classes: int) -> None:
        self.fc = nn.Linear(self.num_features, num_classes, bias=False)
        self.num_classes = num_classes

    def classifier_module_names(self) -> list[str]:
        return ["fc"]


def cifar_fastnet(num_classes: int = 10, in_channels: int = 3, **options) -> FastNet:
    return FastNet(num_classes=num_classes, in_channels=in_channels, **options)


MODELS = {
    "cifar_fastnet": ModelSpec(
        cifar_fastnet, "classification", (3, 32, 32), "airbench-style net for fast CIFAR training"
    ),
}
