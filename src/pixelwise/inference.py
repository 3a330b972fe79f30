"""Prediction from a checkpoint alone: ``pixelwise.load(path).predict(images)``.

Everything prediction needs travels in the checkpoint's model card (``card``): the
architecture and its options, the class names, the input channels, and how
evaluation prepared an image (``card["eval_preprocessing"]``: resize, ``uint8 / 255``,
normalise, then a plain forward pass, a flip average or sliding windows from
``engine.tta``). No config file is read and nothing is guessed.

Checkpoints are read with ``torch.load(weights_only=True)`` (``engine.checkpoint``):
a file whose pickle would call anything but tensor and container constructors is
refused before any of it runs. ``.safetensors`` files written by ``pixelwise export``
(weights, and the card as metadata) load the same way.

Inputs: file paths, PIL images, numpy arrays (H, W) or (H, W, C) and tensors (H, W),
(C, H, W) or (N, C, H, W); uint8 (0-255) or float (0-1). Channels must fit the model:
grayscale is repeated to RGB and alpha is dropped, but a colour image for a grayscale
model is refused (which colours to keep is the caller's choice), unless its channels
are all equal.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import nn
from torchvision import tv_tensors
from torchvision.transforms import v2

from .engine.checkpoint import CheckpointError
from .errors import UserError

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
        gray = item.mode in GRAY_MODES
        rgb = "RGBA" if in_channels == 4 else "RGB"
        array = np.asarray(item.convert("L" if gray else rgb))
        return fit_channels(_from_numpy(array, name), in_channels, name)
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


def fit_channels(image: torch.Tensor, in_channels: int, name: str) -> torch.Tensor:
    """Give ``image`` (C, H, W) the model's channels where that loses nothing but alpha.

    Grayscale is repeated to RGB (and RGBA, opaque); alpha is dropped for an RGB or a
    grayscale model; a colour image whose channels are all equal is grayscale. Anything
    else (a colour image for a grayscale model, a 3-channel image for a 4-band model
    from an array) is an :class:`InputError` naming the input.
    """
    channels = image.shape[0]
    if channels == in_channels:
        return image
    opaque = 255 if image.dtype == torch.uint8 else 1.0
    if channels == 1 and in_channels in (3, 4):
        rgb = image.expand(3, *image.shape[1:])
        alpha = [torch.full_like(image, opaque)] if in_channels == 4 else []
        return torch.cat([rgb, *alpha])
    if (channels, in_channels) in ((4, 3), (2, 1)):
        return image[:in_channels]
    if in_channels == 1 and channels in (3, 4) and bool((image[:3] == image[:1]).all()):
        return image[:1]
    wanted = CHANNEL_NAMES.get(in_channels, f"{in_channels} channels")
    hint = (
        "convert it to grayscale first (PIL: image.convert('L'))"
        if in_channels == 1
        else f"pass a ({in_channels}, H, W) array or tensor"
    )
    raise InputError(
        f"{name}: has {channels} channels ({CHANNEL_NAMES.get(channels, 'other')}), "
        f"the model takes {in_channels} ({wanted}); {hint}"
    )


def read_image_file(path: str | Path, in_channels: int, max_pixels: int) -> torch.Tensor:
    """A file as uint8 (C, H, W) with the model's channels; errors name the file."""
    from .data.io import read_image

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not an image file")
    try:
        with Image.open(path) as header:
            gray = header.mode in GRAY_MODES
    except UnidentifiedImageError as err:
        raise InputError(f"{path}: not an image file (no image format recognised)") from err
    except Exception:  # too large, or broken: read_image says which, naming the file
        gray = False
    stored = 1 if gray else (4 if in_channels == 4 else 3)
    return fit_channels(read_image(path, stored, max_pixels), in_channels, str(path))


# --------------------------------------------------------------------------- the predictor
def preprocessing_of(card: dict[str, Any]) -> dict[str, Any]:
    """The card's evaluation preprocessing; cards written before it existed resize and
    normalise as their top-level keys say."""
    default = {
        "resize": card.get("image_size"),
        "normalize": card.get("normalize", True),
        "mean": card.get("mean"),
        "std": card.get("std"),
        "tta_hflip": False,
        "sliding_window": False,
        "window_size": card.get("image_size"),
        "window_overlap": 0.5,
        "window_weighting": "gaussian",
    }
    return {**default, **(card.get("eval_preprocessing") or {})}


@dataclass
class Predictor:
    """A model in eval mode and its card; ``predict`` does the rest."""

    model: nn.Module
    card: dict[str, Any]
    device: torch.device
    source: str = ""
    max_image_pixels: int = 89_478_485
    preprocessing: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.preprocessing = preprocessing_of(self.card)
        self.model.eval()

    @property
    def task(self) -> str:
        return self.card["task"]

    @property
    def class_names(self) -> list[str]:
        return list(self.card["class_names"])

    def load_image(self, item: ImageLike, name: str | None = None) -> torch.Tensor:
        """One input as (C, H, W) uint8 or float with the model's channels (errors name it)."""
        label = name or (str(item) if isinstance(item, (str, Path)) else "image")
        return to_image(item, self.card["in_channels"], label, self.max_image_pixels)

    def transform(self, image: torch.Tensor, resize: bool = True) -> torch.Tensor:
        """Evaluation's preprocessing: resize (bilinear, antialiased), /255, normalise."""
        from .data.transforms import Resize

        prep = self.preprocessing
        steps: list[Any] = []
        if resize and prep["resize"]:
            steps.append(Resize(list(prep["resize"]), antialias=True))
        steps.append(v2.ToDtype(torch.float32, scale=True))
        if prep["normalize"]:
            steps.append(v2.Normalize(prep["mean"], prep["std"]))
        return v2.Compose(steps)(tv_tensors.Image(image)).as_subclass(torch.Tensor)

    @torch.inference_mode()
    def predict(
        self,
        images: ImageLike | Sequence[ImageLike],
        topk: int = 5,
        return_probabilities: bool = False,
        sliding_window: bool | None = None,
        batch_size: int = 32,
    ) -> Any:
        """Predict one image (one result) or several (a list, in order).

        Classification gives a :class:`Classification` (top ``topk`` labels and their
        probabilities); segmentation a :class:`Segmentation` (a mask at the image's own
        size). ``sliding_window`` None follows the card (how the run was evaluated).
        """
        items, single = as_items(images)
        results: list[Any] = []
        for start in range(0, len(items), batch_size):  # read as they are predicted
            chunk = [
                self.load_image(item, "image" if single else f"image {start + i}")
                for i, item in enumerate(items[start : start + batch_size])
            ]
            if self.task == "classification":
                results += self._classify(chunk, topk, return_probabilities)
            else:
                results += self._segment(chunk, return_probabilities, sliding_window)
        return results[0] if single else results

    def logits(self, batch: torch.Tensor, window: Sequence[int] | None = None) -> torch.Tensor:
        """Logits of a preprocessed batch, with the card's flip averaging and windows."""
        from .engine.tta import predict_logits

        prep = self.preprocessing
        return predict_logits(
            self.model,
            batch.to(self.device),
            tta_hflip=bool(prep["tta_hflip"]),
            window=tuple(window) if window else None,
            overlap=prep["window_overlap"],
            weighting=prep["window_weighting"],
        ).float()

    def _classify(
        self, images: list[torch.Tensor], topk: int, return_probabilities: bool
    ) -> list[Classification]:
        batch = torch.stack([self.transform(image) for image in images])
        probabilities = self.logits(batch).softmax(dim=1).cpu()
        top = probabilities.topk(min(topk, probabilities.shape[1]), dim=1)
        names = self.class_names
        return [
            Classification(
                labels=[names[i] for i in indices.tolist()],
                indices=indices.tolist(),
                probabilities=values.tolist(),
                all_probabilities=row.numpy() if return_probabilities else None,
            )
            for values, indices, row in zip(top.values, top.indices, probabilities)
        ]

    def _segment(
        self, images: list[torch.Tensor], return_probabilities: bool, sliding: bool | None
    ) -> list[Segmentation]:
        prep = self.preprocessing
        sliding = bool(prep["sliding_window"]) if sliding is None else sliding
        window = (prep["window_size"] or self.card["image_size"]) if sliding else None
        prepared = [self.transform(image, resize=not sliding) for image in images]
        by_size: dict[tuple[int, int], list[int]] = defaultdict(list)
        for index, x in enumerate(prepared):
            by_size[tuple(x.shape[-2:])].append(index)
        results: list[Segmentation | None] = [None] * len(images)
        for indices in by_size.values():
            logits = self.logits(torch.stack([prepared[i] for i in indices]), window)
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


# --------------------------------------------------------------------------- loading
def resolve_checkpoint(path: str | Path, checkpoint: str = "best") -> Path:
    """A checkpoint file, or ``checkpoints/<checkpoint>.pt`` of a run directory."""
    path = Path(path)
    if path.is_dir():
        for candidate in (path / "checkpoints" / f"{checkpoint}.pt", path / f"{checkpoint}.pt"):
            if candidate.is_file():
                return candidate
        raise FileNotFoundError(
            f"{path} has no checkpoints/{checkpoint}.pt: pass a run directory or a checkpoint file"
        )
    if not path.is_file():
        raise FileNotFoundError(f"no run directory or checkpoint at {path}")
    return path


def read_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(card, state dict) of a ``.pt`` checkpoint (weights only) or a ``.safetensors`` file."""
    import json

    from .engine.checkpoint import load_checkpoint

    if path.suffix == ".safetensors":
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        state = load_file(str(path))
        card = json.loads(metadata["pixelwise_card"]) if "pixelwise_card" in metadata else None
    else:
        try:
            checkpoint = load_checkpoint(path)
        except CheckpointError as err:
            raise CheckpointError(refusal(path, err)) from err
        card, state = checkpoint.get("card"), checkpoint["model"]
    if not card or "model" not in card:
        raise CheckpointError(
            f"{path}: no model card, so nothing says which model or preprocessing it needs; "
            "use a checkpoint written by `pixelwise train`"
        )
    return card, state


def refusal(path: Path, err: CheckpointError) -> str:
    """The one line that says why ``weights_only`` loading refused a file: the callable
    its pickle would have run (torch's own message starts with how to load it anyway)."""
    cause = str(err.__cause__ or "")
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", cause)
    if not found:
        return str(err)
    return (
        f"{path}: refused to load: unpickling it would call {found.group(1)}, and a pixelwise "
        "checkpoint holds only tensors and plain data (read with torch.load(weights_only=True)); "
        "nothing in it was run"
    )


def model_from_card(card: dict[str, Any]) -> nn.Module:
    """The architecture the card names, with its options and no pretrained weights."""
    from .models import create_model

    return create_model(
        card["model"],
        num_classes=card["num_classes"],
        in_channels=card["in_channels"],
        **card.get("model_options", {}),
    )


def load(
    path: str | Path,
    device: str | torch.device = "auto",
    checkpoint: str = "best",
) -> Predictor:
    """A :class:`Predictor` from a run directory, a ``.pt`` checkpoint or a ``.safetensors``
    export; ``checkpoint`` picks ``best`` or ``last`` in a run directory."""
    from .engine.checkpoint import check_compatible
    from .engine.runtime import select_device

    source = resolve_checkpoint(path, checkpoint)
    card, state = read_checkpoint(source)
    model = model_from_card(card)
    check_compatible(model, state, str(source))
    model.load_state_dict(state)
    try:
        target = select_device(str(device))
    except RuntimeError as err:  # CUDA asked for where there is none: the user's to fix
        raise ValueError(str(err)) from err
    return Predictor(model.to(target), card, target, str(source))
