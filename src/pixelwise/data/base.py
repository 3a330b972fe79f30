"""What every raw split shares: strict loading, the ``on_error`` policy, and problems.

A raw split yields ``(tv_tensors.Image uint8 (C, H, W), int | tv_tensors.Mask (H, W))``.
``load(i)`` is strict: a bad file raises ``DataError`` naming it. ``dataset[i]`` applies
``data.on_error``: ``raise`` is ``load``; ``skip`` logs the file, records it in the run's
``skipped_files.tsv`` and returns the next readable item instead (the epoch keeps its
length, and a file found bad is not read again in that process). ``pixelwise data check``
calls ``load`` on everything, and also reports the ``problems`` a format found while
listing its files (images without masks, class folders that differ between splits).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch.utils.data import ConcatDataset, Dataset, Subset
from torchvision import tv_tensors

from ..log import logger
from .io import DataError

SKIPPED_FILE = "skipped_files.tsv"


@dataclass
class Problem:
    """Something wrong with the data; ``error`` breaks training, ``warning`` does not."""

    kind: str  # unreadable | missing_mask | missing_image | size_mismatch | out_of_range | ...
    path: str
    message: str
    severity: str = "error"
    loud: bool = False  # a warning that makes the figures meaningless (copies across splits)


@dataclass
class FileFacts:
    """What ``data check`` reports about an item's files besides their pixels: the kind
    of each file (format and mode, ``"JPEG RGB"``) and the values a mask file stores
    before decoding (stored value, or ``(r, g, b)`` colour, -> pixels)."""

    image_kind: str | None = None
    mask_kind: str | None = None
    mask_values: dict[Any, int] | None = None
    mask_path: str | None = None
    mask_resized: bool = False  # resized to its image (data.resize_masks=nearest)


class RawDataset(Dataset):
    """Base of every format's split. Subclasses define ``__len__``, ``load`` and ``describe``;
    classification splits keep ``labels`` (no I/O needed to count classes)."""

    task = "classification"
    on_error = "raise"
    skip_log: Path | None = None
    labels: list[int] | None = None
    strata: list[int] | None = None  # groups to stratify carved splits by, when not labels

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self._bad: set[int] = set()

    def __len__(self) -> int:
        raise NotImplementedError

    def load(self, index: int) -> tuple[tv_tensors.Image, Any]:
        raise NotImplementedError

    def describe(self, index: int) -> str:
        """The file(s) behind item ``index``, for messages."""
        return f"item {index}"

    def inspect(
        self, index: int, with_image: bool = True
    ) -> tuple[tv_tensors.Image | None, Any, FileFacts]:
        """``load`` (or ``load_target`` without the image) plus the files' facts, strictly;
        formats with files override it to report them."""
        if with_image:
            image, target = self.load(index)
            return image, target, FileFacts()
        return None, self.load_target(index), FileFacts()

    def load_target(self, index: int) -> Any:
        """The target alone (a label without I/O; a mask without decoding the image)."""
        if self.labels is not None:
            return self.labels[index]
        return self.load(index)[1]

    def __getitem__(self, index: int) -> tuple[tv_tensors.Image, Any]:
        if self.on_error == "raise":
            return self.load(index)
        for step in range(len(self)):
            candidate = (index + step) % len(self)
            if candidate in self._bad:
                continue
            try:
                return self.load(candidate)
            except DataError as err:
                self._bad.add(candidate)
                record_skip(self.skip_log, self.describe(candidate), err)
        raise DataError(f"every file of this split is unreadable (first: {self.describe(0)})")


class ProblemLog(list):
    """Problems a format finds while listing files. With ``on_error=raise`` an error
    stops the build at once; with ``skip`` the unusable file is left out and recorded."""

    def __init__(self, on_error: str) -> None:
        super().__init__()
        self.on_error = on_error

    def add(self, kind: str, path: str | Path, message: str, severity: str = "error") -> None:
        if severity == "error" and self.on_error == "raise":
            raise DataError(
                f"{message} (data.on_error=skip leaves such files out; "
                "`pixelwise data check CONFIG` lists every problem)"
            )
        self.append(Problem(kind, str(path), message, severity))

    def summarize(self, what: str) -> None:
        if self:
            errors = sum(p.severity == "error" for p in self)
            logger.warning(
                f"{what}: {errors} file(s) left out, {len(self) - errors} warning(s), "
                f"first: {self[0].message} (`pixelwise data check` lists them all)"
            )


def require_root(cfg: Any, what: str = "") -> Path:
    """``data.root`` as an existing directory, or an error saying what is expected there."""
    if cfg.root is None:
        raise DataError(
            f"data.root is not set: data.format={cfg.format} reads {what or 'files'} from a "
            "folder (layouts: docs/data.md)"
        )
    root = Path(cfg.root).expanduser()
    if not root.is_dir():
        raise DataError(f"data.root={cfg.root}: no such directory (resolved to {root.resolve()})")
    return root


def record_skip(log_path: Path | None, what: str, err: BaseException) -> None:
    """Log a skipped file and append it to the run's list (safe from worker processes:
    one short ``O_APPEND`` write per line)."""
    reason = str(err).replace("\t", " ").replace("\n", " ")
    logger.warning(f"data.on_error=skip: skipping {what}: {reason}")
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{what}\t{reason}\n".encode())
        finally:
            os.close(fd)


def skipped_files(run_dir: str | Path) -> dict[str, str]:
    """Files skipped under ``data.on_error=skip`` in a run: {file: reason}, each once."""
    path = Path(run_dir) / SKIPPED_FILE
    if not path.is_file():
        return {}
    skipped: dict[str, str] = {}
    for line in path.read_text().splitlines():
        what, _, reason = line.partition("\t")
        skipped.setdefault(what, reason)
    return skipped


# --------------------------------------------------------------------------- views
def base_datasets(dataset: Dataset) -> list[RawDataset]:
    """The ``RawDataset``s under subsets and concatenations."""
    if isinstance(dataset, Subset):
        return base_datasets(dataset.dataset)
    if isinstance(dataset, ConcatDataset):
        return [b for d in dataset.datasets for b in base_datasets(d)]
    return [dataset] if isinstance(dataset, RawDataset) else []


def locate(dataset: Dataset, index: int) -> tuple[Dataset, int]:
    """The underlying dataset and index of item ``index`` of a subset view."""
    while isinstance(dataset, Subset):
        dataset, index = dataset.dataset, int(dataset.indices[index])
    return dataset, index


def labels_of(dataset: Dataset) -> list[int] | None:
    """Class labels of a classification split (subsets included) without reading files."""
    own = getattr(dataset, "labels", None)
    if own is not None:
        return list(own)
    if isinstance(dataset, Subset):
        inner = labels_of(dataset.dataset)
        return None if inner is None else [inner[i] for i in dataset.indices]
    return None


def strata_of(dataset: Dataset) -> list[int] | None:
    """What a carved split is stratified by: class labels, else a format's groups."""
    labels = labels_of(dataset)
    return labels if labels is not None else getattr(dataset, "strata", None)


def task_of(dataset: Dataset) -> str:
    bases = base_datasets(dataset)
    return bases[0].task if bases else "classification"
