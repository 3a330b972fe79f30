"""airbench94 on the CPU: the peer of ``bench/bench_airbench.py``.

A port of ``airbench94.py`` from Keller Jordan's cifar10-airbench
(https://github.com/KellerJordan/cifar10-airbench; Jordan, "94% on CIFAR-10 in 3.29
Seconds on a Single GPU", 2024), written again from its published recipe for this
comparison. Kept as published: the network (2x2 patch-whitening convolution initialised
from 5,000 un-augmented training images, three conv-pool-BN-GELU groups of widths
64/256/256, BatchNorm shifts only, logits / 9), batch 1024, Nesterov SGD with lr 11.5
and weight decay 0.0153 per 1024 examples on a summed loss, BatchNorm biases at 64x the
learning rate, label smoothing 0.2, the triangular schedule (0.2 -> 1 at 23% -> 0.07),
the lookahead/EMA every 5 steps with decay 0.95^5 (step/total)^3 and its weights taken
at the end, the whitening bias trained for the first 3 epochs only, alternating flips
and 2-pixel translations with mirrored borders on the whole uint8-decoded dataset, and
mirror + 1-pixel-translate test-time augmentation (tta level 2), 9.9 epochs by default.

Changed for a CPU, nothing else: bfloat16 autocast instead of ``.half()`` where the CPU
computes bfloat16 natively (float16 is slow on CPUs), float32 where it does not
(``bf16=False``: emulated bfloat16 is many times slower than float32), no CUDA timing
events, and the data read from CIFAR-10 JPEG class folders (decoded once and kept as
uint8) instead of the binary batches.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

CIFAR_MEAN = torch.tensor((0.4914, 0.4822, 0.4465))
CIFAR_STD = torch.tensor((0.2470, 0.2435, 0.2616))

HYP = {
    "epochs": 9.9,
    "batch_size": 1024,
    "lr": 11.5,  # per 1024 examples
    "momentum": 0.85,
    "weight_decay": 0.0153,  # per 1024 examples, decoupled from the learning rate
    "bias_scaler": 64.0,
    "label_smoothing": 0.2,
    "whiten_bias_epochs": 3,
    "translate": 2,
    "widths": (64, 256, 256),
    "batchnorm_momentum": 0.6,
    "scaling_factor": 1 / 9,
    "tta_level": 2,
}


# --------------------------------------------------------------------------- data
def read_folders(root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """A class-folder split as (N, 3, 32, 32) uint8 images and int64 labels."""
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    images, labels = [], []
    for label, name in enumerate(classes):
        for path in sorted((root / name).iterdir()):
            with Image.open(path) as image:
                images.append(np.asarray(image.convert("RGB")))
            labels.append(label)
    array = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return array, torch.tensor(labels)


def batch_flip_lr(images: torch.Tensor) -> torch.Tensor:
    flip = (torch.rand(len(images), device=images.device) < 0.5).view(-1, 1, 1, 1)
    return torch.where(flip, images.flip(-1), images)


def batch_crop(images: torch.Tensor, crop_size: int) -> torch.Tensor:
    r = (images.size(-1) - crop_size) // 2
    shifts = torch.randint(-r, r + 1, size=(len(images), 2), device=images.device)
    out = torch.empty(
        (len(images), images.shape[1], crop_size, crop_size),
        device=images.device,
        dtype=images.dtype,
    )
    for sy in range(-r, r + 1):
        for sx in range(-r, r + 1):
            mask = (shifts[:, 0] == sy) & (shifts[:, 1] == sx)
            out[mask] = images[mask, :, r + sy : r + sy + crop_size, r + sx : r + sx + crop_size]
    return out


class CifarLoader:
    """airbench's loader: the whole split normalised once, re-cropped every epoch,
    flipped all together every other epoch."""

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        train: bool,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.images, self.labels = images, labels
        self.batch_size, self.train, self.dtype = batch_size, train, dtype
        self.epoch = 0
        self.processed: dict[str, torch.Tensor] = {}

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float() / 255
        return ((x - CIFAR_MEAN.view(1, -1, 1, 1)) / CIFAR_STD.view(1, -1, 1, 1)).to(self.dtype)

    def __len__(self) -> int:
        n = len(self.images)
        return n // self.batch_size if self.train else math.ceil(n / self.batch_size)

    def __iter__(self):
        if self.epoch == 0:
            images = self.processed["norm"] = self.normalize(self.images)
            if self.train:
                images = self.processed["flip"] = batch_flip_lr(images)
                pad = HYP["translate"]
                self.processed["pad"] = F.pad(images, (pad,) * 4, "reflect")
        if self.train:
            images = batch_crop(self.processed["pad"], self.images.shape[-2])
            if self.epoch % 2 == 1:
                images = images.flip(-1)
        else:
            images = self.processed["norm"]
        self.epoch += 1
        order = torch.randperm(len(images)) if self.train else torch.arange(len(images))
        for i in range(len(self)):
            index = order[i * self.batch_size : (i + 1) * self.batch_size]
            yield (
                images[index].contiguous(memory_format=torch.channels_last),
                self.labels[index],
            )


# --------------------------------------------------------------------------- network
class BatchNorm(nn.BatchNorm2d):
    def __init__(self, num_features: int, momentum: float, eps: float = 1e-12) -> None:
        super().__init__(num_features, eps=eps, momentum=1 - momentum)
        self.weight.requires_grad = False


class Conv(nn.Conv2d):
    def __init__(self, channels_in: int, channels_out: int) -> None:
        super().__init__(channels_in, channels_out, kernel_size=3, padding="same", bias=False)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        w = self.weight.data
        torch.nn.init.dirac_(w[: w.size(1)])


class ConvGroup(nn.Module):
    def __init__(self, channels_in: int, channels_out: int, momentum: float) -> None:
        super().__init__()
        self.conv1 = Conv(channels_in, channels_out)
        self.pool = nn.MaxPool2d(2)
        self.norm1 = BatchNorm(channels_out, momentum)
        self.conv2 = Conv(channels_out, channels_out)
        self.norm2 = BatchNorm(channels_out, momentum)
        self.activ = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.activ(self.norm1(self.pool(self.conv1(x))))
        return self.activ(self.norm2(self.conv2(x)))


class Mul(nn.Module):
    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def make_net() -> nn.Sequential:
    w1, w2, w3 = HYP["widths"]
    momentum = HYP["batchnorm_momentum"]
    whiten_width = 2 * 3 * 2**2
    net = nn.Sequential(
        nn.Conv2d(3, whiten_width, 2, padding=0, bias=True),
        nn.GELU(),
        ConvGroup(whiten_width, w1, momentum),
        ConvGroup(w1, w2, momentum),
        ConvGroup(w2, w3, momentum),
        nn.MaxPool2d(3),
        nn.Flatten(),
        nn.Linear(w3, 10, bias=False),
        Mul(HYP["scaling_factor"]),
    )
    net[0].weight.requires_grad = False
    return net.to(memory_format=torch.channels_last)


def init_whitening_conv(layer: nn.Conv2d, images: torch.Tensor, eps: float = 5e-4) -> None:
    h, w = layer.weight.shape[2:]
    c = images.shape[1]
    patches = images.unfold(2, h, 1).unfold(3, w, 1).transpose(1, 3).reshape(-1, c, h, w).float()
    flat = patches.view(len(patches), -1)
    covariance = (flat.T @ flat) / len(flat)
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance, UPLO="U")
    eigenvalues = eigenvalues.flip(0).view(-1, 1, 1, 1)
    eigenvectors = eigenvectors.T.reshape(c * h * w, c, h, w).flip(0)
    scaled = eigenvectors / torch.sqrt(eigenvalues + eps)
    layer.weight.data[:] = torch.cat((scaled, -scaled))


class LookaheadState:
    def __init__(self, net: nn.Module) -> None:
        self.net_ema = {k: v.clone() for k, v in net.state_dict().items()}

    def update(self, net: nn.Module, decay: float) -> None:
        for ema, current in zip(self.net_ema.values(), net.state_dict().values(), strict=True):
            if current.dtype in (torch.half, torch.float):
                ema.lerp_(current, 1 - decay)
                current.copy_(ema)


# --------------------------------------------------------------------------- evaluation
def autocast(bf16: bool) -> contextlib.AbstractContextManager:
    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


@torch.no_grad()
def infer(model: nn.Module, loader: CifarLoader, tta_level: int, bf16: bool) -> torch.Tensor:
    def mirror(x: torch.Tensor) -> torch.Tensor:
        return 0.5 * model(x) + 0.5 * model(x.flip(-1))

    def mirror_translate(x: torch.Tensor) -> torch.Tensor:
        logits = mirror(x)
        padded = F.pad(x, (1,) * 4, "reflect")
        shifted = [padded[:, :, 0:32, 0:32], padded[:, :, 2:34, 2:34]]
        translated = torch.stack([mirror(s) for s in shifted]).mean(0)
        return 0.5 * logits + 0.5 * translated

    model.eval()
    step = [model, mirror, mirror_translate][tta_level]
    with autocast(bf16):
        return torch.cat([step(x).float() for x, _ in loader])


def evaluate(model: nn.Module, loader: CifarLoader, tta_level: int, bf16: bool) -> float:
    logits = infer(model, loader, tta_level, bf16)
    return (logits.argmax(1) == loader.labels).float().mean().item()


# --------------------------------------------------------------------------- training
@dataclass
class Result:
    epochs: float
    train_seconds: float  # training steps only, as airbench times it
    images: int
    accuracy: dict[str, float] = field(default_factory=dict)  # tta level -> accuracy
    epoch_seconds: list[float] = field(default_factory=list)

    @property
    def images_per_second(self) -> float:
        return self.images / self.train_seconds


def train(
    train_data: tuple[torch.Tensor, torch.Tensor],
    test_data: tuple[torch.Tensor, torch.Tensor] | None,
    epochs: float = HYP["epochs"],
    seed: int = 0,
    tta_levels: tuple[int, ...] = (0, 1, 2),
    bf16: bool = True,
) -> Result:
    torch.manual_seed(seed)
    batch_size, momentum = HYP["batch_size"], HYP["momentum"]
    train_loader = CifarLoader(*train_data, batch_size=batch_size, train=True)
    total_steps = math.ceil(len(train_loader) * epochs)

    model = make_net()
    kilostep_scale = 1024 * (1 + 1 / (1 - momentum))
    lr = HYP["lr"] / kilostep_scale
    wd = HYP["weight_decay"] * batch_size / kilostep_scale
    lr_biases = lr * HYP["bias_scaler"]
    norm_biases = [p for k, p in model.named_parameters() if "norm" in k and p.requires_grad]
    others = [p for k, p in model.named_parameters() if "norm" not in k and p.requires_grad]
    optimizer = torch.optim.SGD(
        [
            {"params": norm_biases, "lr": lr_biases, "weight_decay": wd / lr_biases},
            {"params": others, "lr": lr, "weight_decay": wd / lr},
        ],
        momentum=momentum,
        nesterov=True,
    )
    schedule = np.interp(
        np.arange(1 + total_steps), [0, int(0.23 * total_steps), total_steps], [0.2, 1, 0.07]
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: schedule[i])
    alpha_schedule = 0.95**5 * (torch.arange(total_steps + 1) / total_steps) ** 3
    loss_fn = nn.CrossEntropyLoss(label_smoothing=HYP["label_smoothing"], reduction="none")

    init_whitening_conv(model[0], train_loader.normalize(train_data[0][:5000]))
    lookahead = LookaheadState(model)
    step, seconds, images, epoch_seconds = 0, 0.0, 0, []
    for epoch in range(math.ceil(epochs)):
        model[0].bias.requires_grad = epoch < HYP["whiten_bias_epochs"]
        model.train()
        started = time.perf_counter()
        for inputs, labels in train_loader:
            with autocast(bf16):
                outputs = model(inputs)
            loss = loss_fn(outputs.float(), labels).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            images += len(inputs)
            if step % 5 == 0:
                lookahead.update(model, decay=alpha_schedule[step].item())
            if step >= total_steps:
                lookahead.update(model, decay=1.0)
                break
        epoch_seconds.append(time.perf_counter() - started)
        seconds += epoch_seconds[-1]
    result = Result(epochs, seconds, images, epoch_seconds=epoch_seconds)
    if test_data is not None:
        test_loader = CifarLoader(*test_data, batch_size=2000, train=False)
        for level in tta_levels:
            result.accuracy[str(level)] = evaluate(model, test_loader, level, bf16)
    return result
