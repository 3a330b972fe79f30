"""Prediction from a checkpoint alone: ``pixelwise.load(path).predict(images)``.

Everything prediction needs travels in the checkpoint's model card
(:class:`pixelwise.card.ModelCard`): the architecture and its options, the class names,
the input channels, and how evaluation prepared an image (``card.preprocessing``:
resize, ``uint8 / 255``, normalise, then a plain forward pass, a flip average or
sliding windows from ``pixelwise.tta``). No config file is read and nothing is guessed.
The card's flip averaging (``tta_hflip``) says how the run was evaluated; prediction
runs it only when asked (``predict(..., tta=True)``), since it doubles the work.

Speed: images are preprocessed a batch at a time as tensor operations, under
``torch.inference_mode``; ``precision="auto"`` runs bfloat16 autocast where the device
computes it natively and float32 elsewhere (channels_last on CPUs);
``precision="float32"`` reproduces the evaluation bit for bit (:class:`Compute`). Where
the input is channels_last, so are the weights, so oneDNN does not reorder them on every
call. ``compile=True`` runs the forward pass through ``torch.compile`` with inductor's
freezing (weights folded in as constants, BatchNorm into convolutions): a one-off cost
of seconds per batch shape, worth it for many images (docs/inference.md).

A run is opened as every reader opens it (``RunDir.load_model``); checkpoints are read
with ``torch.load(weights_only=True)`` (``pixelwise.checkpoint``): a file whose pickle
would call anything but tensor and container constructors is refused before any of
it runs. ``.safetensors`` files written by ``pixelwise export`` (weights, and the card
as metadata) load the same way.

Inputs: file paths, PIL images, numpy arrays (H, W) or (H, W, C) and tensors (H, W),
(C, H, W) or (N, C, H, W); uint8 (0-255) or float (0-1). Channels follow the one
channel policy of training (docs/data.md): files are read by the same function as
training reads them; grayscale is repeated to RGB, RGB becomes grayscale by the ITU-R
601-2 luma transform PIL uses (``L = 0.299 R + 0.587 G + 0.114 B``), alpha is dropped
(or added, opaque, for a four-channel model).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.fx
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as TF

from .card import ModelCard, Preprocessing
from .data.io import read_image
from .data.transforms import Resize
from .errors import UserError
from .log import logger
from .models.base import crop_to, pad_to_multiple, resize_to
from .run import RunDir, RunNotFoundError, is_hf_folder, model_from_state, read_model_file
from .runtime import fast_bfloat16, select_device
from .tta import predict_logits

ImageLike = str | Path | Image.Image | np.ndarray | torch.Tensor

GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")
CHANNEL_NAMES = {1: "grayscale", 2: "grayscale + alpha", 3: "RGB", 4: "RGBA"}


class InputError(UserError):
    """An input that cannot be predicted; the message names it and says what would work."""


# --------------------------------------------------------------------------- results
@dataclass
class Classification:
    """Top-k classes of one image, most probable first."""

    labels: list[str]
    indices: list[int]
    probabilities: list[float]
    all_probabilities: np.ndarray | None = None  # (C,) when asked for

    @property
    def label(self) -> str:
        return self.labels[0]

    @property
    def probability(self) -> float:
        return self.probabilities[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "topk": [
                {"label": label, "index": index, "probability": p}
                for label, index, p in zip(self.labels, self.indices, self.probabilities)
            ]
        }


@dataclass
class MultiLabel:
    """Every label of one image with its sigmoid probability (independent yes/no
    decisions); ``labels`` are those at or above ``threshold``, most probable first."""

    class_names: list[str]
    probabilities: list[float]  # one per class, in class order
    threshold: float  # the model card's, chosen on validation in training

    @property
    def labels(self) -> list[str]:
        order = sorted(range(len(self.probabilities)), key=lambda i: -self.probabilities[i])
        return [self.class_names[i] for i in order if self.probabilities[i] >= self.threshold]

    def to_dict(self) -> dict[str, Any]:
        return {
            "labels": self.labels,
            "threshold": self.threshold,
            "probabilities": dict(zip(self.class_names, self.probabilities)),
        }


@dataclass
class Segmentation:
    """A class index per pixel, at the input image's own size."""

    mask: np.ndarray  # (H, W), uint8 for up to 256 classes, else int32
    class_names: list[str]
    probabilities: np.ndarray | None = None  # (C, H, W) float32 when asked for

    def class_fractions(self) -> dict[str, float]:
        """Share of the image's pixels predicted as each class present."""
        counts = np.bincount(self.mask.ravel(), minlength=len(self.class_names))
        total = max(int(counts.sum()), 1)
        return {self.class_names[i]: int(c) / total for i, c in enumerate(counts) if c}


# --------------------------------------------------------------------------- inputs
def as_items(images: ImageLike | Sequence[ImageLike]) -> tuple[list[ImageLike], bool]:
    """(items, single): one image, a list of images, or a 4-D batch."""
    if isinstance(images, (str, Path, Image.Image)):
        return [images], True
    if isinstance(images, (np.ndarray, torch.Tensor)):
        if images.ndim in (2, 3):
            return [images], True
        if images.ndim == 4:
            return list(images), False
        raise InputError(
            f"an array of shape {tuple(images.shape)}: expected (H, W), one image with "
            "channels, or a 4-D batch"
        )
    if isinstance(images, (list, tuple)):
        return list(images), False
    raise InputError(
        f"cannot predict a {type(images).__name__}: pass file paths, PIL images, "
        "numpy arrays or tensors (one, or a list)"
    )


def to_image(item: ImageLike, in_channels: int, name: str, max_pixels: int) -> torch.Tensor:
    """One input as a (C, H, W) tensor, uint8 or float in [0, 1], with the model's channels."""
    if isinstance(item, (str, Path)):
        return read_image_file(item, in_channels, max_pixels)
    if isinstance(item, Image.Image):
        mode = {1: "L", 3: "RGB", 4: "RGBA"}.get(in_channels)
        if mode is None:
            raise InputError(
                f"{name}: a PIL image cannot give a {in_channels}-channel model its input"
            )
        return _from_numpy(np.asarray(item.convert(mode)), name)
    if isinstance(item, np.ndarray):
        image = _from_numpy(item, name)
        if item.ndim == 3 and image.shape[0] != in_channels and item.shape[0] == in_channels:
            raise InputError(
                f"{name}: numpy arrays are read as (H, W, C) and this one looks (C, H, W) "
                f"{tuple(item.shape)}; pass array.transpose(1, 2, 0) or a tensor"
            )
        return fit_channels(image, in_channels, name)
    if isinstance(item, torch.Tensor):
        image = item.detach().cpu()
        if image.ndim == 2:
            image = image.unsqueeze(0)
        if image.ndim != 3:
            raise InputError(f"{name}: a tensor of shape {tuple(item.shape)}, expected (C, H, W)")
        return fit_channels(_check_dtype(image, name), in_channels, name)
    raise InputError(f"{name}: cannot predict a {type(item).__name__}")


def _from_numpy(array: np.ndarray, name: str) -> torch.Tensor:
    if array.ndim not in (2, 3):
        raise InputError(f"{name}: an array of shape {array.shape}, expected (H, W) or (H, W, C)")
    array = np.ascontiguousarray(array)
    image = torch.from_numpy(array if array.flags.writeable else array.copy())
    image = image.unsqueeze(0) if image.ndim == 2 else image.permute(2, 0, 1)
    return _check_dtype(image, name)


def _check_dtype(image: torch.Tensor, name: str) -> torch.Tensor:
    if image.dtype == torch.uint8:
        return image
    if image.is_floating_point():
        return image.float()
    raise InputError(
        f"{name}: pixels of type {image.dtype}; pass uint8 (0-255) or float (0-1) values"
    )


def luma(rgb: torch.Tensor) -> torch.Tensor:
    """(3, H, W) RGB -> (1, H, W) grayscale as PIL's ``convert("L")`` computes it: the
    ITU-R 601-2 transform, in PIL's fixed point for uint8 (so arrays and files agree)."""
    if rgb.dtype == torch.uint8:
        r, g, b = (c.to(torch.int32) for c in rgb[:3])
        return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).to(torch.uint8).unsqueeze(0)
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=rgb.dtype).view(3, 1, 1)
    return (rgb[:3] * weights).sum(dim=0, keepdim=True)


def fit_channels(image: torch.Tensor, in_channels: int, name: str) -> torch.Tensor:
    """Give ``image`` (C, H, W) the model's channels by the channel policy of training
    (``data.io.read_image``): grayscale is repeated to RGB (and RGBA, opaque alpha);
    colour becomes grayscale by :func:`luma`; alpha is dropped. Other counts (a
    3-channel image for a 5-band model) are an :class:`InputError` naming the input.
    """
    channels = image.shape[0]
    if channels == in_channels:
        return image
    opaque = 255 if image.dtype == torch.uint8 else 1.0
    if channels in (1, 2) and in_channels in (3, 4):
        rgb = image[:1].expand(3, *image.shape[1:])
        alpha = [torch.full_like(image[:1], opaque)] if in_channels == 4 else []
        return torch.cat([rgb, *alpha])
    if channels == 3 and in_channels == 4:
        return torch.cat([image, torch.full_like(image[:1], opaque)])
    if (channels, in_channels) in ((4, 3), (2, 1)):
        return image[:in_channels]
    if in_channels == 1 and channels in (3, 4):
        return luma(image)
    wanted = CHANNEL_NAMES.get(in_channels, f"{in_channels} channels")
    hint = f"pass a ({in_channels}, H, W) array or tensor"
    raise InputError(
        f"{name}: has {channels} channels ({CHANNEL_NAMES.get(channels, 'other')}), "
        f"the model takes {in_channels} ({wanted}); {hint}"
    )


def read_image_file(path: str | Path, in_channels: int, max_pixels: int) -> torch.Tensor:
    """A file as uint8 (C, H, W) with the model's channels, read exactly as training
    reads it (``data.io.read_image``); errors name the file."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not an image file")
    return read_image(path, in_channels, max_pixels)  # "empty file", "not an image", ...


# --------------------------------------------------------------------------- the predictor
Precision = Literal["auto", "float32", "bfloat16"]
PRECISIONS = ("auto", "float32", "bfloat16")


@dataclass(frozen=True)
class Compute:
    """How forward passes run: bfloat16 autocast or not, channels_last input or not,
    BatchNorm folded into the convolutions before it or not."""

    bfloat16: bool
    channels_last: bool
    fold_batchnorm: bool = False

    @classmethod
    def choose(cls, precision: str, device: torch.device, zoo_model: bool = True) -> Compute:
        """``float32``: contiguous float32, bit for bit the evaluation's numbers.
        ``bfloat16``: bfloat16 autocast on channels_last input, wherever asked.
        ``auto``: what pays on ``device``: bfloat16 (and channels_last) where the device
        computes it natively (``runtime.fast_bfloat16``); elsewhere float32, on
        channels_last input on a CPU, where oneDNN's convolutions are faster in that
        layout (the same precision, summed in another order: logits within ~1e-6).
        Both but ``float32`` fold BatchNorm into the convolution before it
        (:func:`folded_for_inference`), as ONNX Runtime does. channels_last and folding
        are kept to pixelwise's own models (``zoo_model``): a user's model may ``view``
        its activations, which that layout refuses, or compute in Python what tracing
        cannot follow."""
        if precision not in PRECISIONS:
            raise UserError(
                f"precision={precision!r}: use one of {', '.join(PRECISIONS)} "
                "(float32 reproduces the evaluation exactly)"
            )
        if precision == "float32":
            return cls(bfloat16=False, channels_last=False)
        if precision == "bfloat16" or fast_bfloat16(device):
            return cls(bfloat16=True, channels_last=zoo_model, fold_batchnorm=zoo_model)
        cpu = device.type == "cpu"
        return cls(bfloat16=False, channels_last=zoo_model and cpu, fold_batchnorm=zoo_model)


@dataclass
class Predictor:
    """A model in eval mode and its card; ``predict`` does the rest."""

    model: nn.Module
    card: ModelCard
    device: torch.device
    source: str = ""
    max_image_pixels: int = 89_478_485
    precision: Precision = "auto"
    compile: bool = False

    def __post_init__(self) -> None:
        self.model.eval()
        zoo_model = ":" not in self.card.model  # not a user's class by import path
        self.compute = Compute.choose(self.precision, self.device, zoo_model)
        if self.compute.channels_last:
            # Weights in the inputs' layout (in place): oneDNN would otherwise reorder
            # each convolution's weights on every call (bench/bench_inference.py).
            self.model.to(memory_format=torch.channels_last)
        self._compiled = compiled_for_inference(self.model) if self.compile else None
        self._folded: tuple[WeightsStamp, nn.Module] | None = None

    @property
    def forward_model(self) -> nn.Module:
        """What the forward passes call: the compiled module, ``model`` with BatchNorm
        folded (made again whenever ``model``'s weights change), or ``model`` itself."""
        if self._compiled is not None:
            return self._compiled
        if not self.compute.fold_batchnorm:
            return self.model
        stamp = WeightsStamp.of(self.model)
        if self._folded is None or not self._folded[0].same(stamp):
            self._folded = (stamp, folded_for_inference(self.model))
        return self._folded[1]

    @property
    def preprocessing(self) -> Preprocessing:
        return self.card.preprocessing

    @property
    def task(self) -> str:
        return self.card.task

    @property
    def class_names(self) -> list[str]:
        return list(self.card.class_names)

    def load_image(self, item: ImageLike, name: str | None = None) -> torch.Tensor:
        """One input as (C, H, W) uint8 or float with the model's channels (errors name it)."""
        label = name or (str(item) if isinstance(item, (str, Path)) else "image")
        return to_image(item, self.card.in_channels, label, self.max_image_pixels)

    def transform(self, image: torch.Tensor, resize: bool = True) -> torch.Tensor:
        """Evaluation's preprocessing of one image: resize (bilinear, antialiased), /255,
        normalise."""
        return self.prepare([image], resize)[0]

    def prepare(self, images: list[torch.Tensor], resize: bool = True) -> torch.Tensor:
        """Evaluation's preprocessing of images of one size (after resizing) as one batch.

        Only an image not yet at the card's size is resized, one by one; the scaling to
        [0, 1] and the normalisation run once on the stacked batch. They are elementwise,
        so every pixel gets the numbers it would get alone.
        """
        prep = self.preprocessing
        if resize and prep.resize:
            size = list(prep.resize)
            step = Resize(size, antialias=prep.antialias)
            images = [
                image if list(image.shape[-2:]) == size else self._resized(step, image)
                for image in images
            ]
        if all(image.dtype == torch.uint8 for image in images):
            batch = TF.to_dtype(torch.stack(images), torch.float32, scale=True)
        else:
            batch = torch.stack([TF.to_dtype(x, torch.float32, scale=True) for x in images])
        if prep.normalize:
            batch = TF.normalize(batch, list(prep.mean), list(prep.std), inplace=True)
        return batch

    @staticmethod
    def _resized(step: Resize, image: torch.Tensor) -> torch.Tensor:
        return step(tv_tensors.Image(image)).as_subclass(torch.Tensor)

    @torch.inference_mode()
    def predict(
        self,
        images: ImageLike | Sequence[ImageLike],
        topk: int = 5,
        return_probabilities: bool = False,
        sliding_window: bool | None = None,
        batch_size: int = 32,
        tta: bool = False,
    ) -> Any:
        """Predict one image (one result) or several (a list, in order), ``batch_size``
        images per forward pass.

        Classification gives a :class:`Classification` (top ``topk`` labels and their
        probabilities); multi-label a :class:`MultiLabel` (every label's probability, the
        labels at or above the card's threshold); segmentation a :class:`Segmentation` (a
        mask at the image's own size). ``sliding_window`` None follows the card (how the
        run was evaluated). ``tta=True`` averages each image with its mirror
        (``pixelwise.tta.hflip_tta``: two forward passes), as ``eval.tta_hflip``
        (``card.preprocessing.tta_hflip``) made the run's evaluation do; it is never
        applied unless asked.
        """
        if batch_size < 1:
            raise UserError(f"batch_size={batch_size}: must be at least 1")
        items, single = as_items(images)
        results: list[Any] = []
        for start in range(0, len(items), batch_size):  # read as they are predicted
            chunk = [
                self.load_image(item, "image" if single else f"image {start + i}")
                for i, item in enumerate(items[start : start + batch_size])
            ]
            if self.task == "classification":
                results += self._classify(chunk, topk, return_probabilities, tta)
            elif self.task == "multilabel":
                results += self._multilabel(chunk, tta)
            else:
                results += self._segment(chunk, return_probabilities, sliding_window, tta)
        return results[0] if single else results

    @torch.inference_mode()  # also when called directly: freezing needs grad off
    def logits(
        self, batch: torch.Tensor, window: Sequence[int] | None = None, tta: bool = False
    ) -> torch.Tensor:
        """float32 logits of a preprocessed batch, with flip averaging (``tta``) and
        windows, in the predictor's ``precision``. Where compiling fails (no C++
        compiler, an operation inductor cannot freeze), one warning says so and the
        predictor goes on uncompiled."""
        if self._compiled is not None:
            try:
                return self._logits(batch, window, tta)
            except torch._dynamo.exc.BackendCompilerFailed as error:
                cause = getattr(error, "inner_exception", error)
                first_line = (str(cause).strip().splitlines() or [""])[0]
                logger.warning(
                    f"{self.source or 'model'}: torch.compile failed "
                    f"({type(cause).__name__}: {first_line}); predicting without compiling"
                )
                self._compiled = None
        return self._logits(batch, window, tta)

    def _logits(self, batch: torch.Tensor, window: Sequence[int] | None, tta: bool) -> torch.Tensor:
        prep = self.preprocessing
        batch = batch.to(self.device)
        if self.compute.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        autocast = torch.autocast(
            self.device.type, dtype=torch.bfloat16, enabled=self.compute.bfloat16
        )
        with autocast:
            logits = predict_logits(
                self.forward_model,
                batch,
                tta_hflip=tta,
                window=tuple(window) if window else None,
                overlap=prep.window_overlap,
                weighting=prep.window_weighting,
            )
        return logits.float()

    def _classify(
        self, images: list[torch.Tensor], topk: int, return_probabilities: bool, tta: bool
    ) -> list[Classification]:
        probabilities = self.logits(self.prepare(images), tta=tta).softmax(dim=1).cpu()
        top = probabilities.topk(min(topk, probabilities.shape[1]), dim=1)
        names = self.class_names
        all_probabilities = probabilities.numpy() if return_probabilities else None
        return [
            Classification(
                labels=[names[i] for i in indices],
                indices=indices,
                probabilities=values,
                all_probabilities=None if all_probabilities is None else all_probabilities[row],
            )
            for row, (values, indices) in enumerate(zip(top.values.tolist(), top.indices.tolist()))
        ]

    def _multilabel(self, images: list[torch.Tensor], tta: bool) -> list[MultiLabel]:
        probabilities = torch.sigmoid(self.logits(self.prepare(images), tta=tta)).cpu()
        threshold = 0.5 if self.card.threshold is None else float(self.card.threshold)
        return [MultiLabel(self.class_names, row, threshold) for row in probabilities.tolist()]

    def _segment(
        self,
        images: list[torch.Tensor],
        return_probabilities: bool,
        sliding: bool | None,
        tta: bool,
    ) -> list[Segmentation]:
        prep = self.preprocessing
        sliding = prep.sliding_window if sliding is None else sliding
        window = (prep.window_size or self.card.image_size) if sliding else None
        resize = not sliding and prep.resize is not None
        by_size: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for index, image in enumerate(images):  # one batch per size after resizing
            by_size[tuple(prep.resize) if resize else tuple(image.shape[-2:])].append(index)
        results: list[Segmentation | None] = [None] * len(images)
        for indices in by_size.values():
            batch = self.prepare([images[i] for i in indices], resize=not sliding)
            logits = self.logits(batch, window, tta)
            for row, index in enumerate(indices):
                size = tuple(images[index].shape[-2:])
                results[index] = self._mask(logits[row : row + 1], size, return_probabilities)
        return [r for r in results if r is not None]

    def _mask(
        self, logits: torch.Tensor, size: tuple[int, int], return_probabilities: bool
    ) -> Segmentation:
        """Logits (1, C, h, w) -> a mask at ``size``: logits are upsampled bilinearly."""
        if tuple(logits.shape[-2:]) != size:
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        dtype = np.uint8 if logits.shape[1] <= 256 else np.int32
        mask = logits[0].argmax(dim=0).cpu().numpy().astype(dtype)
        probabilities = logits[0].softmax(dim=0).cpu().numpy() if return_probabilities else None
        return Segmentation(mask, self.class_names, probabilities)


def compiled_for_inference(model: nn.Module) -> nn.Module:
    """``torch.compile`` for prediction: inductor's freezing treats the weights as
    constants (BatchNorm folded into the convolutions, weights prepacked), which is
    sound because a predictor never trains. One graph per input shape (``dynamic=False``),
    each compiled when first seen: for a classifier, or images resized to the card's
    size, a full batch and the last, smaller one; segmentation at each image's own size
    compiles each new (batch, height, width) until torch's recompile limit (8), after
    which it runs uncompiled. The weights are read when a shape is compiled: change them
    and make a new predictor."""
    return torch.compile(model, dynamic=False, options={"freezing": True})


@dataclass(frozen=True, eq=False)  # compare with same(): == would compare tensor values
class WeightsStamp:
    """Which tensors a model holds and how often each was changed in place: a new value
    for any parameter or buffer (``load_state_dict``, an optimiser step, assigning a new
    tensor) makes a different stamp. The tensors themselves are kept, not their ``id``,
    which a new tensor may reuse once the old one is freed."""

    tensors: tuple[torch.Tensor, ...]
    versions: tuple[int, ...]

    @classmethod
    def of(cls, model: nn.Module) -> WeightsStamp:
        tensors = (*model.parameters(), *model.buffers())
        return cls(tensors, tuple(t._version for t in tensors))

    def same(self, other: WeightsStamp) -> bool:
        return (
            len(self.tensors) == len(other.tensors)
            and all(a is b for a, b in zip(self.tensors, other.tensors))
            and self.versions == other.versions
        )


class _ConvAndNormLeaves(torch.fx.Tracer):
    """Traces through containers and blocks; convolutions and norms stay single calls,
    including subclasses such as ``ShiftOnlyBatchNorm``. The segmentation models' size
    helpers (which branch on sizes) are called as they are, and a slice of a
    ``Sequential`` made in ``forward`` (VGG's ``classifier[:-1]``) is traced through."""

    def __init__(self) -> None:
        super().__init__(autowrap_functions=(pad_to_multiple, crop_to, resize_to))

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        leaf = isinstance(module, (nn.modules.conv._ConvNd, nn.modules.batchnorm._BatchNorm))
        return leaf or super().is_leaf_module(module, qualified_name)

    def path_of_module(self, module: nn.Module) -> str:
        try:
            return super().path_of_module(module)
        except NameError:  # not one of the model's modules
            if isinstance(module, nn.Sequential):
                return "<sequential made in forward>"
            raise


def _foldable(conv: nn.Module | None, norm: nn.Module | None) -> bool:
    """A plain convolution (no forward of its own, such as weight standardisation) then
    an eval-mode BatchNorm of the same dimensions that uses its running statistics."""
    pairs = ((nn.Conv1d, nn.BatchNorm1d), (nn.Conv2d, nn.BatchNorm2d), (nn.Conv3d, nn.BatchNorm3d))
    return (
        any(isinstance(conv, c) and isinstance(norm, n) for c, n in pairs)
        and type(conv).forward in (nn.Conv1d.forward, nn.Conv2d.forward, nn.Conv3d.forward)
        and type(norm).forward is nn.modules.batchnorm._BatchNorm.forward
        and norm.track_running_stats
        and norm.running_mean is not None
        and not norm.training
    )


def folded_for_inference(model: nn.Module) -> nn.Module:
    """``model`` with each BatchNorm that only ever sees a convolution's output folded into
    that convolution's weights and bias (``torch.nn.utils.fusion.fuse_conv_bn_eval``):
    one pass over the activations fewer per pair, the same function in float32 up to
    rounding (logits within ~1e-5). A ``torch.fx`` graph module that calls ``model``'s
    own modules except the folded convolutions (new copies; ``model`` is left as it
    was). ``model`` itself where nothing folds or ``torch.fx`` cannot trace it (Python
    control flow on tensor values)."""
    try:
        graph = _ConvAndNormLeaves().trace(model)
    except Exception as error:  # noqa: BLE001 (any Python a forward runs may refuse tracing)
        logger.debug(f"BatchNorm not folded: tracing failed ({type(error).__name__}: {error})")
        return model
    modules = dict(model.named_modules())
    calls = Counter(node.target for node in graph.nodes if node.op == "call_module")
    folds: list[tuple[torch.fx.Node, torch.fx.Node]] = []
    for node in graph.nodes:
        source = node.args[0] if node.op == "call_module" and len(node.args) == 1 else None
        if (
            isinstance(source, torch.fx.Node)
            and source.op == "call_module"
            and len(source.users) == 1  # the convolution's output goes to the norm alone
            and calls[source.target] == calls[node.target] == 1  # neither called elsewhere
            and not node.kwargs
            and _foldable(modules.get(source.target), modules.get(node.target))
        ):
            folds.append((source, node))
    if not folds:
        return model
    folded = torch.fx.GraphModule(model, graph)  # fresh containers, model's own leaves
    for conv, norm in folds:
        fused = fuse_conv_bn_eval(modules[conv.target], modules[norm.target])
        parent, _, name = conv.target.rpartition(".")
        setattr(folded.get_submodule(parent), name, fused)
        norm.replace_all_uses_with(conv)
        graph.erase_node(norm)
    folded.recompile()
    return folded.eval()


# --------------------------------------------------------------------------- loading
def load(
    path: str | Path,
    device: str | torch.device = "auto",
    checkpoint: str = "best",
    precision: Precision = "auto",
    compile: bool = False,
) -> Predictor:
    """A :class:`Predictor` from a run directory (its ``checkpoint``: best, last or ema),
    a ``.pt`` checkpoint or a ``.safetensors`` export. ``precision`` (``auto``,
    ``float32`` or ``bfloat16``): see :meth:`Compute.choose`; ``compile``: see
    :func:`compiled_for_inference`."""
    path = Path(path)
    target = select_device(str(device))
    if (
        path.is_dir()
        and not (path / "checkpoints").is_dir()
        and (path / f"{checkpoint}.pt").is_file()
    ):
        path = path / f"{checkpoint}.pt"  # a folder of checkpoints without a run around it
    if path.is_dir() and not is_hf_folder(path):
        run = RunDir(path)
        model, card = run.load_model(checkpoint)
        source = run.find_checkpoint(checkpoint)
    elif path.exists():  # a checkpoint file, a .safetensors export or a Hugging Face folder
        card, state = read_model_file(path)
        model = model_from_state(card, state, str(path))
        source = path
    else:
        raise RunNotFoundError(f"no run directory or checkpoint at {path}")
    return Predictor(
        model.to(target), card, target, str(source), precision=precision, compile=compile
    )
