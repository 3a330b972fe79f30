"""WebDataset tar shards: ``data.format: webdataset`` reads them, ``pixelwise data shard``
writes them (docs/data.md).

A sample is ``KEY.png`` (the image) with ``KEY.cls`` (the class index as text) or
``KEY.mask.png`` (the mask, 8-bit, or 16-bit where a value exceeds 255). Beside the
shards, ``classes.json`` names the classes and ``counts.json`` counts each split's
samples (a stream has no length, and the schedule needs batches per epoch).

The training split streams: each (process, DataLoader worker) reads its own shards
(shard ``i`` goes to reader ``i mod readers``, so none is read twice and all are read),
passing over them again as often as its share of ``data.samples_per_epoch`` needs,
through a shuffle buffer. Every reader yields a whole number of batches, so every
process takes the same number of steps (DDP stays in step). Evaluation splits are read
once into memory as their encoded bytes and decoded per item: exact, ordered figures.
"""

from __future__ import annotations

import io
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from PIL import Image
from torch.utils.data import Dataset, IterableDataset, get_worker_info
from torchvision import tv_tensors

from ..config import DataConfig
from .base import RawDataset
from .io import DataError, convert_channels

CLASSES_FILE = "classes.json"
COUNTS_FILE = "counts.json"
SHARD_NAME = "{split}-%06d.tar"


def _wds() -> Any:
    try:
        import webdataset  # optional (extra "shards"): imported only when shards are used
    except ImportError as err:
        raise DataError(
            "data.format=webdataset needs the webdataset package: pip install 'pixelwise[shards]'"
        ) from err
    return webdataset


# --------------------------------------------------------------------------- sources
@dataclass
class ShardSource:
    """The shard URLs of each split, and the class names and counts found beside them."""

    urls: dict[str, list[str]]
    class_names: list[str] | None
    counts: dict[str, int]


def expand_pattern(pattern: str) -> list[str]:
    """``shards/train-{000000..000003}.tar`` -> the four paths (``::`` joins patterns);
    ``pipe:`` URLs pass through WebDataset's opener as they are."""
    return list(_wds().shardlists.expand_urls(pattern))


def _local_dir(url: str) -> Path | None:
    if url.startswith("pipe:") or "://" in url:
        return None
    return Path(url.removeprefix("file:")).parent


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: not readable JSON ({err})") from err


def find_shards(cfg: DataConfig) -> ShardSource:
    """``data.shards`` (a pattern, the training split's, or ``{split: pattern}``), else the
    ``{split}-*.tar`` files that ``pixelwise data shard`` wrote into ``data.root``."""
    urls: dict[str, list[str]] = {}
    meta_dir: Path | None = Path(cfg.root) if cfg.root else None
    if cfg.shards is not None:
        patterns = cfg.shards if isinstance(cfg.shards, dict) else {cfg.train_split: cfg.shards}
        for split, pattern in patterns.items():
            urls[split] = expand_pattern(str(pattern))
        if meta_dir is None and urls.get(cfg.train_split):
            meta_dir = _local_dir(urls[cfg.train_split][0])
    elif meta_dir is not None:
        if not meta_dir.is_dir():
            raise DataError(f"data.root={meta_dir}: no such directory of shards")
        for split in (cfg.train_split, cfg.val_split, cfg.test_split):
            found = sorted(meta_dir.glob(f"{split}-*.tar"))
            if found:
                urls[split] = [str(p) for p in found]
    if not urls.get(cfg.train_split):
        raise DataError(
            f"data.format=webdataset: no shards for the training split '{cfg.train_split}' "
            f"(set data.shards: {{{cfg.train_split}: 'dir/{cfg.train_split}-{{000000..000009}}"
            f".tar'}}, or data.root to a directory written by `pixelwise data shard`)"
        )
    class_names = None
    counts: dict[str, int] = {}
    if meta_dir is not None and (meta_dir / CLASSES_FILE).is_file():
        class_names = [str(n) for n in _read_json(meta_dir / CLASSES_FILE)]
    if meta_dir is not None and (meta_dir / COUNTS_FILE).is_file():
        counts = {str(k): int(v) for k, v in _read_json(meta_dir / COUNTS_FILE).items()}
    return ShardSource(urls, class_names, counts)


def reader_shards(urls: list[str], reader: int, readers: int) -> list[str]:
    """The shards of reader ``reader`` of ``readers`` (reader = rank * workers + worker):
    every shard goes to exactly one reader."""
    return urls[reader::readers]


def _process_rank() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


# --------------------------------------------------------------------------- decoding
def decode_sample(
    sample: dict[str, Any], in_channels: int
) -> tuple[tv_tensors.Image, int | tv_tensors.Mask]:
    """A tar sample's bytes -> ``(uint8 Image (C, H, W), label or Mask (H, W))``."""
    name = f"{sample.get('__url__', '?')}:{sample.get('__key__', '?')}"
    if "png" not in sample or ("cls" not in sample and "mask.png" not in sample):
        raise DataError(f"{name}: a sample needs .png with .cls or .mask.png, has {list(sample)}")
    array = np.array(Image.open(io.BytesIO(sample["png"])))
    array = array[:, :, None] if array.ndim == 2 else array
    image = convert_channels(
        torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1))), in_channels
    )
    if "cls" in sample:
        return tv_tensors.Image(image), int(sample["cls"].decode().strip())
    mask = np.array(Image.open(io.BytesIO(sample["mask.png"]))).astype(np.int64)
    return tv_tensors.Image(image), tv_tensors.Mask(torch.from_numpy(mask))


def _task(sample: dict[str, Any]) -> str:
    return "segmentation" if "mask.png" in sample else "classification"


def _samples(urls: list[str]) -> Iterator[dict[str, Any]]:
    wds = _wds()
    return iter(wds.tariterators.tarfile_samples(iter([{"url": u} for u in urls])))


# --------------------------------------------------------------------------- datasets
class ShardSplit(RawDataset):
    """An evaluation split: its samples' encoded bytes in memory, decoded per item."""

    def __init__(self, urls: list[str], in_channels: int) -> None:
        super().__init__()
        self.samples = list(_samples(urls))
        if not self.samples:
            raise DataError(f"{urls[0]}: no samples in {len(urls)} shard(s)")
        self.in_channels = in_channels
        self.task = _task(self.samples[0])
        if self.task == "classification":
            self.labels = [int(s["cls"].decode().strip()) for s in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> tuple[tv_tensors.Image, Any]:
        return decode_sample(self.samples[index], self.in_channels)

    def describe(self, index: int) -> str:
        sample = self.samples[index]
        return f"{sample.get('__url__')}:{sample.get('__key__')}"


class ShardStream(IterableDataset, RawDataset):
    """The training split: ``length`` samples per epoch on this process, a whole number of
    batches for each of its DataLoader workers, from that worker's own shards."""

    def __init__(
        self,
        urls: list[str],
        samples_per_epoch: int | None,
        cfg: DataConfig,
        seed: int,
        rank: int | None = None,
        world_size: int | None = None,
        task: str = "classification",
    ) -> None:
        RawDataset.__init__(self)
        own_rank, own_world = _process_rank()
        self.rank = own_rank if rank is None else rank
        self.world_size = own_world if world_size is None else world_size
        self.urls = urls
        self.batch_size = cfg.batch_size
        self.buffer = cfg.shuffle_buffer
        self.in_channels = cfg.in_channels
        self.seed = seed
        self.task = task
        self.one_pass = samples_per_epoch is None  # read every shard once (data shard, tests)
        per_rank = (samples_per_epoch or 0) // self.world_size
        self.batches = per_rank // self.batch_size
        if not self.one_pass and self.batches == 0:
            raise DataError(
                f"data.samples_per_epoch={samples_per_epoch} gives no batch of "
                f"{self.batch_size} on each of {self.world_size} process(es)"
            )

    def __len__(self) -> int:
        if self.one_pass:
            raise TypeError("a one-pass ShardStream has no length")
        return self.batches * self.batch_size

    def __getitem__(self, index: int) -> Any:
        raise TypeError("a shard stream is read in order, not by index")

    def reader(self) -> tuple[int, int, int]:
        """(reader index, readers, this reader's share of the epoch's batches)."""
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        readers = self.world_size * workers
        if len(self.urls) < readers:
            raise DataError(
                f"data.shards: {len(self.urls)} training shard(s) for {self.world_size} "
                f"process(es) x {workers} worker(s): each reader needs its own shard; write "
                "more shards (pixelwise data shard --shard-size) or lower data.num_workers"
            )
        share = self.batches // workers + (worker < self.batches % workers)
        return self.rank * workers + worker, readers, share

    def __iter__(self) -> Iterator[tuple[tv_tensors.Image, Any]]:
        reader, readers, share = self.reader()
        info = get_worker_info()
        # per epoch and reader: the loader reseeds workers each epoch; without workers the
        # global generator (seeded per run and rank) draws it
        base = info.seed if info is not None else int(torch.randint(2**62, ()).item())
        rng = random.Random(base)
        mine = reader_shards(self.urls, reader, readers)
        stream = self._passes(mine, rng)
        if self.buffer > 1:
            stream = _shuffled(stream, self.buffer, rng)
        quota = None if self.one_pass else share * self.batch_size
        for count, sample in enumerate(stream):
            if quota is not None and count >= quota:
                return
            yield decode_sample(sample, self.in_channels)

    def _passes(self, urls: list[str], rng: random.Random) -> Iterator[dict[str, Any]]:
        while True:
            order = list(urls)
            if not self.one_pass:
                rng.shuffle(order)
            found = False
            for sample in _samples(order):
                found = True
                yield sample
            if self.one_pass or not found:
                return


def _shuffled(stream: Iterator[Any], size: int, rng: random.Random) -> Iterator[Any]:
    """A shuffle buffer: keep ``size`` items, emit a random one as each new one arrives."""
    buffer: list[Any] = []
    for item in stream:
        if len(buffer) < size:
            buffer.append(item)
            continue
        index = rng.randrange(size)
        buffer[index], item = item, buffer[index]
        yield item
    rng.shuffle(buffer)
    yield from buffer


def _first_sample(urls: list[str]) -> dict[str, Any]:
    for sample in _samples(urls[:1]):
        return sample
    raise DataError(f"{urls[0]}: an empty shard")


def build_webdataset(
    cfg: DataConfig, seed: int, split_file: Path | None
) -> tuple[dict[str, Dataset], list[str]]:
    """The ``FORMATS`` entry: a stream for the training split, in-memory evaluation splits."""
    del split_file  # shards carry their own splits; nothing is carved
    source = find_shards(cfg)
    train_urls = source.urls[cfg.train_split]
    per_epoch = cfg.samples_per_epoch or source.counts.get(cfg.train_split)
    if per_epoch is None:
        raise DataError(
            "data.format=webdataset: a stream has no length; set data.samples_per_epoch "
            f"(or keep the {COUNTS_FILE} that `pixelwise data shard` writes beside the shards)"
        )
    task = _task(_first_sample(train_urls))
    splits: dict[str, Dataset] = {
        cfg.train_split: ShardStream(train_urls, per_epoch, cfg, seed, task=task)
    }
    for split, urls in source.urls.items():
        if split != cfg.train_split and urls:
            splits[split] = ShardSplit(urls, cfg.in_channels)
    class_names = source.class_names or cfg.class_names
    if class_names is None and cfg.num_classes is not None:
        class_names = [str(i) for i in range(cfg.num_classes)]
    if class_names is None:
        raise DataError(
            f"data.format=webdataset: no {CLASSES_FILE} beside the shards; set "
            "data.class_names or data.num_classes"
        )
    return splits, list(class_names)


# --------------------------------------------------------------------------- writing
def encode_sample(key: str, image: torch.Tensor, target: Any) -> dict[str, Any]:
    """One raw item as a tar sample: the image as PNG, the label as ``.cls`` text or the
    mask as ``.mask.png`` (16-bit where a value exceeds 255)."""
    array = image.as_subclass(torch.Tensor).numpy()
    array = array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG")
    sample: dict[str, Any] = {"__key__": key, "png": buffer.getvalue()}
    if isinstance(target, torch.Tensor) and target.dim() == 2:
        values = target.as_subclass(torch.Tensor).numpy()
        wide = values.max(initial=0) > 255
        mask = Image.fromarray(values.astype(np.uint16 if wide else np.uint8))
        buffer = io.BytesIO()
        mask.save(buffer, format="PNG")
        sample["mask.png"] = buffer.getvalue()
    else:
        sample["cls"] = str(int(target)).encode()
    return sample


def write_shards(
    raw: dict[str, Dataset], class_names: list[str], out: Path, shard_size: int
) -> dict[str, int]:
    """Every split's raw items into ``out/{split}-NNNNNN.tar`` (``shard_size`` samples a
    shard), with ``classes.json`` and ``counts.json``; returns the counts."""
    wds = _wds()
    out.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    for split, dataset in raw.items():
        pattern = str(out / SHARD_NAME.format(split=split))
        with wds.ShardWriter(pattern, maxcount=shard_size, verbose=0) as sink:
            for index in range(len(dataset)):  # type: ignore[arg-type]
                image, target = dataset[index]
                sink.write(encode_sample(f"{index:08d}", image, target))
        counts[split] = len(dataset)  # type: ignore[arg-type]
    (out / CLASSES_FILE).write_text(json.dumps(class_names, indent=1))
    (out / COUNTS_FILE).write_text(json.dumps(counts, indent=1))
    return counts
