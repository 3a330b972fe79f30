"""CIFAR-10 and CIFAR-100 from their original python-pickle batches, read without running code.

Layout (what ``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz`` unpack to)::

    root/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}
    root/cifar-100-python/{train, test, meta}

``data.root`` may be the folder holding ``cifar-10-batches-py`` or that folder itself.
The batches are pickles, and a pickle can name any function to call while it loads
(``os.system`` included): torchvision reads them with plain ``pickle.load`` and, with its
MD5 check off (it is here, so that small files in the same format load too), would run
whatever a crafted batch asks. ``read_batch`` admits only the globals a CIFAR batch
needs (numpy's array reconstruction and dtype; ``_codecs.encode`` for bytes in protocol 2
pickles written by Python 3) and refuses anything else before calling it, naming the
file and the refused global. The dataset's own train/test split is kept; val is carved
from train.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from ..config import DataConfig
from .base import RawDataset, require_root
from .io import DataError, convert_channels
from .splits import carve_missing_splits


@dataclass(frozen=True)
class CifarRelease:
    folder: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    meta: str
    label_key: str
    names_key: str

    @property
    def files(self) -> list[str]:
        return [*self.train, *self.test, self.meta]


CIFAR10 = CifarRelease(
    "cifar-10-batches-py",
    tuple(f"data_batch_{i}" for i in range(1, 6)),
    ("test_batch",),
    "batches.meta",
    "labels",
    "label_names",
)
CIFAR100 = CifarRelease(
    "cifar-100-python", ("train",), ("test",), "meta", "fine_labels", "fine_label_names"
)

# (module, name) a CIFAR batch may name: the original release (Python 2, numpy 1) names
# numpy.core.multiarray._reconstruct, numpy.ndarray and numpy.dtype; numpy 2 writes
# numpy._core; protocol 5 stores arrays through _frombuffer; Python 3 writing protocol 2
# stores bytes through _codecs.encode. None of them runs code named by the file.
SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class UnsafePickleError(DataError):
    """A pickle that names a function outside ``SAFE_GLOBALS``; nothing in it was run."""

    kind = "unsafe_pickle"


class _SafeUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose every global (the only way a pickle reaches a callable)
    must be in ``SAFE_GLOBALS``."""

    def __init__(self, file: io.BufferedReader, path: Path) -> None:
        super().__init__(file, encoding="latin1")  # Python 2 str -> str, as torchvision
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in SAFE_GLOBALS:
            raise UnsafePickleError(
                f"refused to load {self.path}: unpickling it would call {module}.{name}; "
                "nothing in it was run (a CIFAR batch holds only arrays, lists, strings and "
                "numbers: replace the file with the original release)"
            )
        if module.startswith("numpy.core") and hasattr(np, "_core"):  # numpy 2 renamed it
            module = "numpy._core" + module.removeprefix("numpy.core")
        return super().find_class(module, name)


def read_batch(path: Path) -> dict[str, Any]:
    """One CIFAR python batch (or meta file) as a dict, loaded by ``_SafeUnpickler``."""
    try:
        with path.open("rb") as f:
            loaded = _SafeUnpickler(f, path).load()
    except DataError:
        raise
    except Exception as err:  # truncated or not a pickle
        raise DataError(f"{path}: not a CIFAR python batch ({type(err).__name__}: {err})") from err
    if not isinstance(loaded, dict):
        raise DataError(f"{path}: not a CIFAR python batch (holds a {type(loaded).__name__})")
    return loaded


class TensorImages(RawDataset):
    """Decoded uint8 images held in one (N, C, H, W) tensor, with class labels."""

    def __init__(self, images: torch.Tensor, labels: list[int], in_channels: int, name: str):
        super().__init__()
        self.images = images
        self.labels = labels
        self.in_channels = in_channels
        self.name = name

    def __len__(self) -> int:
        return len(self.labels)

    def load(self, index: int) -> tuple[tv_tensors.Image, int]:
        image = convert_channels(self.images[index], self.in_channels)
        return tv_tensors.Image(image), self.labels[index]

    def describe(self, index: int) -> str:
        return f"{self.name}[{index}]"


def _read_split(
    folder: Path, files: tuple[str, ...], release: CifarRelease, num_classes: int
) -> tuple[np.ndarray, list[int]]:
    arrays, labels = [], []
    for name in files:
        path = folder / name
        batch = read_batch(path)
        data, batch_labels = batch.get("data"), batch.get(release.label_key)
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
            raise DataError(f"{path}: 'data' is not a uint8 array of rows of 3072 pixels")
        if data.shape[1] != 3 * 32 * 32 or not isinstance(batch_labels, list):
            raise DataError(
                f"{path}: expected 'data' of shape (N, 3072) and a '{release.label_key}' list"
            )
        if len(batch_labels) != len(data) or not all(
            isinstance(v, (int, np.integer)) and 0 <= v < num_classes for v in batch_labels
        ):
            raise DataError(
                f"{path}: '{release.label_key}' must hold one class index 0..{num_classes - 1} "
                "per image"
            )
        arrays.append(data)
        labels.extend(int(v) for v in batch_labels)
    return np.concatenate(arrays).reshape(-1, 3, 32, 32), labels


def _build(release: CifarRelease, cfg: DataConfig, seed: int, split_file: Path | None):
    root = require_root(cfg, f"{release.folder}/")
    if root.name == release.folder:
        root = root.parent
    folder = root / release.folder
    missing = [name for name in release.files if not (folder / name).is_file()]
    if missing:
        raise DataError(
            f"data.root={cfg.root}: {folder} lacks {', '.join(missing)} (expected the "
            f"unpacked python-pickle release: {', '.join(release.files)})"
        )
    names = read_batch(folder / release.meta).get(release.names_key)
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise DataError(f"{folder / release.meta}: no '{release.names_key}' list of names")
    own: dict[str, Dataset] = {}
    for split, files, part in (
        (cfg.train_split, release.train, "train"),
        (cfg.test_split, release.test, "test"),
    ):
        data, labels = _read_split(folder, files, release, len(names))
        images = torch.from_numpy(data)
        own[split] = TensorImages(images, labels, cfg.in_channels, f"{release.folder}/{part}")
    return carve_missing_splits(own, cfg, seed, split_file), list(names)


def build_cifar10(cfg: DataConfig, seed: int, split_file: Path | None):
    return _build(CIFAR10, cfg, seed, split_file)


def build_cifar100(cfg: DataConfig, seed: int, split_file: Path | None):
    return _build(CIFAR100, cfg, seed, split_file)
