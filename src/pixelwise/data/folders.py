"""Classification from files: a folder per class (ImageFolder), or a list of ``path,label``.

``image_folder``::

    root/train/<class>/*.jpg   root/val/<class>/...   root/test/<class>/...   (own splits)
    root/<class>/*.jpg                                                        (one pool)

Class names are the sorted folder names of the training split, as torchvision's
``ImageFolder`` has them; files are listed in its order too, but each real file once
(``ImageLister``: a folder link back into the dataset is not followed). A training class
folder without image files is refused, naming it, unless ``data.class_names`` lists the
classes. ``csv``: ``data.list_file`` lines ``path,label`` (a header line
starting with ``path``/``file``/``image`` is skipped), label a class name or an index;
paths relative to ``data.root`` (or to the list's folder). ``{split}`` in the list file's
name gives one list per split (``{split}.csv`` -> ``train.csv``, ``val.csv``, ...).

``multilabel_csv`` (``task: multilabel``): the same lists, each image with any number of
labels, either as one column of names split by ``data.label_separator`` (``path,labels``
with ``cat;dog``; an empty field is an image without labels) or as one 0/1 column per
label under a header naming them (``path,cat,dog,bird``). Items are (image, multi-hot
vector of int64).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import torch
from torch.utils.data import Dataset, Subset
from torchvision import tv_tensors

from ..config import DataConfig
from .base import FileFacts, ProblemLog, RawDataset, require_root
from .io import IMAGE_EXTENSIONS, DataError, check_channels, image_kind, is_image_file, read_image
from .splits import carve_missing_splits

_HEADER_WORDS = ("path", "file", "filename", "image", "image_path")


class ImageFiles(RawDataset):
    """Image files with one class label each."""

    def __init__(self, samples: list[tuple[str, int]], in_channels: int, max_pixels: int) -> None:
        super().__init__()
        self.paths = [str(path) for path, _ in samples]
        self.labels = [label for _, label in samples]
        self.in_channels = in_channels
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, index: int) -> tuple[tv_tensors.Image, int]:
        image = read_image(self.paths[index], self.in_channels, self.max_pixels)
        return tv_tensors.Image(image), self.labels[index]

    def inspect(
        self, index: int, with_image: bool = True
    ) -> tuple[tv_tensors.Image | None, int, FileFacts]:
        image, label, facts = super().inspect(index, with_image)
        if with_image:
            facts.image_kind = image_kind(self.paths[index])
        return image, label, facts

    def describe(self, index: int) -> str:
        return self.paths[index]


def split_names(cfg: DataConfig) -> list[str]:
    return [cfg.train_split, cfg.val_split, cfg.test_split]


# --------------------------------------------------------------------------- image_folder
def build_image_folder(
    cfg: DataConfig, seed: int, split_file: Path | None
) -> tuple[dict[str, Dataset], list[str]]:
    check_channels(cfg.in_channels)
    root = require_root(cfg, "class folders")
    split_dirs = {
        name: root / name
        for name in split_names(cfg)
        if (root / name).is_dir() and any(p.is_dir() for p in (root / name).iterdir())
    }
    if cfg.train_split not in split_dirs:
        split_dirs = {cfg.train_split: root}  # class folders directly under root
    problems = ProblemLog(cfg.on_error)
    class_names = class_folder_names(split_dirs[cfg.train_split])
    if not class_names:
        raise DataError(
            f"data.root={cfg.root}: no class folders in {split_dirs[cfg.train_split]} "
            f"({folder_contents(split_dirs[cfg.train_split])}); data.format=image_folder "
            "reads root/<class>/*.jpg or root/train/<class>/*.jpg"
        )
    class_to_idx = {name: i for i, name in enumerate(class_names)}
    own: dict[str, Dataset] = {}
    for name, folder in split_dirs.items():
        names = class_folder_names(folder)
        check_class_names(class_names, names, name, folder, problems)
        samples: list[tuple[str, int]] = []
        lister = ImageLister(root, problems)
        for cls in names:
            if cls not in class_to_idx:
                continue
            files = lister.images(folder / cls)
            if not files:
                empty_class(folder / cls, name == cfg.train_split, cfg, problems)
            samples += [(f, class_to_idx[cls]) for f in files]
        own[name] = ImageFiles(samples, cfg.in_channels, cfg.max_image_pixels)
        if not samples:
            problems.add("empty_split", folder, f"{folder}: no image files in any class folder")
    for dataset in own.values():
        dataset.problems = list(problems)  # type: ignore[attr-defined]
    problems.summarize(str(root))
    return carve_missing_splits(own, cfg, seed, split_file), class_names


def class_folder_names(folder: Path) -> list[str]:
    """Sorted names of the folders (or links to folders) in ``folder``, as torchvision's
    ``find_classes``."""
    return sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())


def empty_class(folder: Path, training: bool, cfg: DataConfig, problems: ProblemLog) -> None:
    """A class folder without images: in the training split an error (a class that cannot
    be learned) unless ``data.class_names`` lists the classes; elsewhere a warning."""
    contents = folder_contents(folder)
    if training and cfg.class_names is None:
        raise DataError(
            f"{folder}: no image files ({contents}), so class {folder.name!r} has nothing to "
            "learn from; add its images, remove the folder, or list every class in "
            "data.class_names to train with it anyway"
        )
    problems.add("empty_class", folder, f"{folder}: no image files ({contents})", "warning")


def folder_contents(folder: Path, shown: int = 3) -> str:
    """What a folder without image files holds, for messages."""
    entries = sorted(p.name for p in folder.iterdir())
    if not entries:
        return "the folder is empty"
    names = ", ".join(entries[:shown]) + (", ..." if len(entries) > shown else "")
    extensions = ", ".join(IMAGE_EXTENSIONS)
    return f"it holds {len(entries)} entries: {names}; image files end in {extensions}"


class ImageLister:
    """Image files under class folders, each real file once.

    Links are followed (a dataset assembled from links to another disk is common), but a
    directory link that leads back into the dataset (``class_a/loop -> ..``) is not: it
    would list the same files again under another name, up to the system's limit of
    nested links, and copies would land in every carved split. A file reached a second
    time through a link is listed once, where it was first found. Both are warnings.
    Order: as torchvision's ``make_dataset`` (folders, then files, sorted by path).
    """

    def __init__(self, tree: Path, problems: ProblemLog) -> None:
        self.tree = Path(os.path.realpath(tree))
        self.problems = problems
        self.seen_files: dict[str, str] = {}  # real path -> where it was listed

    def images(self, top: Path) -> list[str]:
        by_folder: dict[str, list[tuple[str, str]]] = {}  # folder -> (name, real path)
        seen_dirs: set[str] = set()
        pending = [top]
        while pending:
            folder = pending.pop()
            real_folder = os.path.realpath(folder)
            if real_folder in seen_dirs:
                continue
            seen_dirs.add(real_folder)
            files = by_folder.setdefault(str(folder), [])
            for entry in os.scandir(folder):
                if entry.is_dir():
                    if not (entry.is_symlink() and self._leads_into_tree(Path(entry.path))):
                        pending.append(Path(entry.path))
                elif is_image_file(entry.name):  # broken links too: check reports them
                    real = (
                        os.path.realpath(entry.path)
                        if entry.is_symlink()
                        else os.path.join(real_folder, entry.name)
                    )
                    files.append((entry.name, real))
        listed = []  # strings: a Path per file costs more than the whole listing
        for folder in sorted(by_folder):
            for name, real in sorted(by_folder[folder]):
                path = os.path.join(folder, name)
                if self._first_time(path, real):
                    listed.append(path)
        return listed

    def _leads_into_tree(self, link: Path) -> bool:
        target = Path(os.path.realpath(link))
        inside = target == self.tree or self.tree in target.parents
        if inside or target in self.tree.parents:
            self.problems.add(
                "link_loop",
                link,
                f"{link}: a folder link back into the dataset ({target}); not followed, so "
                "its files are not listed twice",
                "warning",
            )
            return True
        return False

    def _first_time(self, path: str, real: str) -> bool:
        first = self.seen_files.setdefault(real, path)
        if first == path:
            return True
        self.problems.add(
            "duplicate_file",
            path,
            f"{path}: the same file as {first} (a link); listed once",
            "warning",
        )
        return False


def check_class_names(
    train: list[str], names: list[str], split: str, where: Path | str, problems: ProblemLog
) -> None:
    """Another split's classes must be the training split's (a missing one is a warning)."""
    extra = sorted(set(names) - set(train))
    missing = sorted(set(train) - set(names))
    if extra:
        problems.add(
            "class_mismatch",
            where,
            f"{where}: split {split!r} has classes the training split lacks: {', '.join(extra)}",
        )
    if missing:
        problems.add(
            "class_mismatch",
            where,
            f"{where}: split {split!r} has no samples of: {', '.join(missing)}",
            "warning",
        )


# --------------------------------------------------------------------------- csv
def build_csv(
    cfg: DataConfig, seed: int, split_file: Path | None
) -> tuple[dict[str, Dataset], list[str]]:
    check_channels(cfg.in_channels)
    if cfg.list_file is None:
        raise DataError("data.format=csv needs data.list_file (lines of path,label)")
    lists = list_files_by_split(cfg)
    problems = ProblemLog(cfg.on_error)
    rows = {name: read_label_list(path) for name, path in lists.items()}
    index, class_names = label_index(cfg, rows[cfg.train_split])
    own: dict[str, Dataset] = {}
    for split, entries in rows.items():
        base = Path(cfg.root).expanduser() if cfg.root else lists[split].parent
        samples = []
        for line, (path, label) in entries:
            where = f"{lists[split]}:{line}"
            target = index.get(str(int(label)) if label.isdigit() else label)
            if target is None:
                problems.add("class_mismatch", where, f"{where}: unknown class {label!r}")
                continue
            file = base / path
            if not file.is_file():
                problems.add("missing_image", file, f"{where}: listed file {file} not found")
                continue
            samples.append((str(file), target))
        own[split] = ImageFiles(samples, cfg.in_channels, cfg.max_image_pixels)
    for dataset in own.values():
        dataset.problems = list(problems)  # type: ignore[attr-defined]
    problems.summarize(str(cfg.list_file))
    return carve_missing_splits(own, cfg, seed, split_file), class_names


def list_files_by_split(cfg: DataConfig) -> dict[str, Path]:
    """``data.list_file`` (relative to ``data.root``), once per split with ``{split}``."""
    assert cfg.list_file is not None
    base = Path(cfg.root).expanduser() if cfg.root else Path(".")
    template = cfg.list_file
    if "{split}" not in template:
        path = base / template if not Path(template).is_absolute() else Path(template)
        if not path.is_file():
            raise DataError(f"data.list_file={template}: not found at {path}")
        return {cfg.train_split: path}
    found = {}
    for name in split_names(cfg):
        path = base / template.replace("{split}", name)
        if path.is_file():
            found[name] = path
    if cfg.train_split not in found:
        raise DataError(
            f"data.list_file={template}: no list for the training split at "
            f"{base / template.replace('{split}', cfg.train_split)}"
        )
    return found


def read_label_list(path: Path) -> list[tuple[int, tuple[str, str]]]:
    """(line number, (path, label)) per line of a ``path,label`` file."""
    entries = []
    with path.open(newline="") as f:
        for number, row in enumerate(csv.reader(f), start=1):
            if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
                continue
            if number == 1 and row[0].strip().lower() in _HEADER_WORDS:
                continue
            if len(row) < 2:
                raise DataError(f"{path}:{number}: expected path,label, got {','.join(row)!r}")
            entries.append((number, (row[0].strip(), row[1].strip())))
    if not entries:
        raise DataError(f"{path}: no path,label lines")
    return entries


def label_index(
    cfg: DataConfig, train_rows: list[tuple[int, tuple[str, str]]]
) -> tuple[dict[str, int], list[str]]:
    """{label as written: class index} and the class names.

    Integer labels are class indices (names ``"0".."n-1"`` unless configured); other labels
    are class names, indexed in ``data.class_names`` order, else sorted (as ImageFolder).
    """
    labels = {label for _, (_, label) in train_rows}
    if all(label.isdigit() for label in labels):
        count = max(
            max(int(label) for label in labels) + 1,
            cfg.num_classes or 0,
            len(cfg.class_names or []),
        )
        names = [str(i) for i in range(count)]
        return {name: i for i, name in enumerate(names)}, names
    names = list(cfg.class_names) if cfg.class_names else sorted(labels)
    return {name: i for i, name in enumerate(names)}, names


# --------------------------------------------------------------------------- multilabel_csv
class MultiLabelFiles(RawDataset):
    """Image files with a set of labels each, as a multi-hot (num_classes,) vector."""

    task = "multilabel"

    def __init__(
        self,
        samples: list[tuple[str, list[int]]],
        num_classes: int,
        in_channels: int,
        max_pixels: int,
    ) -> None:
        super().__init__()
        self.paths = [str(path) for path, _ in samples]
        self.label_sets = [sorted(set(labels)) for _, labels in samples]
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, index: int) -> tuple[tv_tensors.Image, torch.Tensor]:
        image = read_image(self.paths[index], self.in_channels, self.max_pixels)
        return tv_tensors.Image(image), self.load_target(index)

    def load_target(self, index: int) -> torch.Tensor:
        target = torch.zeros(self.num_classes, dtype=torch.int64)
        target[self.label_sets[index]] = 1
        return target

    def describe(self, index: int) -> str:
        return self.paths[index]


def label_matrix(dataset: Dataset) -> torch.Tensor:
    """The (N, C) multi-hot targets of a multi-label split (carved subsets included),
    without reading images."""
    if isinstance(dataset, Subset):
        return label_matrix(dataset.dataset)[list(dataset.indices)]
    if not isinstance(dataset, MultiLabelFiles):
        raise DataError(f"{type(dataset).__name__} is not a multi-label dataset")
    if not len(dataset):
        return torch.zeros(0, dataset.num_classes, dtype=torch.int64)
    return torch.stack([dataset.load_target(i) for i in range(len(dataset))])


_TRUE, _FALSE = ("1", "1.0", "true", "yes"), ("0", "0.0", "false", "no", "")


def read_multilabel_list(
    path: Path, separator: str
) -> tuple[list[str] | None, list[tuple[int, str, list[str]]]]:
    """(label columns of the header, or None for one column of names) and
    (line number, image path, label names) per line."""
    columns: list[str] | None = None
    entries = []
    with path.open(newline="") as f:
        for number, row in enumerate(csv.reader(f), start=1):
            if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
                continue
            if number == 1 and row[0].strip().lower() in _HEADER_WORDS:
                if len(row) > 2:
                    columns = [name.strip() for name in row[1:]]
                continue
            if columns is None:
                field = row[1] if len(row) > 1 else ""
                labels = [label.strip() for label in field.split(separator) if label.strip()]
            else:
                labels = _labels_from_columns(row, columns, f"{path}:{number}")
            entries.append((number, row[0].strip(), labels))
    if not entries:
        raise DataError(f"{path}: no image lines (path,labels or path,<0/1 per label>)")
    return columns, entries


def _labels_from_columns(row: list[str], columns: list[str], where: str) -> list[str]:
    if len(row) != len(columns) + 1:
        raise DataError(
            f"{where}: {len(row) - 1} label values for the header's {len(columns)} labels"
        )
    labels = []
    for name, value in zip(columns, row[1:]):
        value = value.strip().lower()
        if value not in _TRUE + _FALSE:
            raise DataError(f"{where}: label {name!r} is {value!r}; label columns hold 0 or 1")
        if value in _TRUE:
            labels.append(name)
    return labels


def build_multilabel_csv(
    cfg: DataConfig, seed: int, split_file: Path | None
) -> tuple[dict[str, Dataset], list[str]]:
    check_channels(cfg.in_channels)
    if cfg.list_file is None:
        raise DataError(
            "data.format=multilabel_csv needs data.list_file (lines of path,labels with "
            "labels such as cat;dog, or a header path,<label>,... and 0/1 columns)"
        )
    lists = list_files_by_split(cfg)
    problems = ProblemLog(cfg.on_error)
    tables = {name: read_multilabel_list(path, cfg.label_separator) for name, path in lists.items()}
    columns, train_entries = tables[cfg.train_split]
    if cfg.class_names:
        class_names = list(cfg.class_names)
    elif columns is not None:
        class_names = columns
    else:
        class_names = sorted({label for _, _, labels in train_entries for label in labels})
    if len(class_names) < 2:
        raise DataError(
            f"data.list_file={cfg.list_file}: {len(class_names)} label(s) in the training list; "
            "multi-label classification needs at least two"
        )
    index = {name: i for i, name in enumerate(class_names)}
    own: dict[str, Dataset] = {}
    for split, (_, entries) in tables.items():
        base = Path(cfg.root).expanduser() if cfg.root else lists[split].parent
        samples = []
        for line, path, labels in entries:
            where = f"{lists[split]}:{line}"
            unknown = [label for label in labels if label not in index]
            if unknown:
                problems.add("class_mismatch", where, f"{where}: unknown labels {unknown}")
                continue
            file = base / path
            if not file.is_file():
                problems.add("missing_image", file, f"{where}: listed file {file} not found")
                continue
            samples.append((str(file), [index[label] for label in labels]))
        dataset = MultiLabelFiles(samples, len(class_names), cfg.in_channels, cfg.max_image_pixels)
        dataset.problems = list(problems)
        own[split] = dataset
    problems.summarize(str(cfg.list_file))
    return carve_missing_splits(own, cfg, seed, split_file), class_names
