"""Input pipeline: pixelwise vs torchvision's ImageFolder with the same transforms.v2, side by side.

    python bench/bench_data.py --root ../shared/data/cifar10/train [--per-class 1000]
        [--workers 2] [--batch-size 256] [--repeats 5]

Three loaders over the same files (the first ``--per-class`` images of each class
folder), the same worker count and batch size, in one process:

* ``torchvision``: ``datasets.ImageFolder`` (PIL decode) with ``v2.Compose([ToImage,
  Resize, RandomCrop(padding=4), RandomHorizontalFlip, ToDtype, Normalize])``, the
  pipeline a user would write;
* ``pixelwise``: ``build_datasets`` + ``build_loader`` with ``data.format=image_folder``
  and the ``default`` preset (the same transforms), as ``pixelwise train`` runs it;
* ``pixelwise_cached``: the same with ``data.cache=true`` (decoded once, before timing;
  the one-off fill time is reported separately).

Each loader keeps its workers (persistent) and runs one untimed warm-up epoch (worker
start-up, the OS file cache); then timed epochs run interleaved, the order rotating
every repeat, because the machine is shared and noisy. An epoch is timed from the first
to the last batch: decode, augment, collate. The statistic is the median images/s.
Before timing, the script checks that both pipelines give the same tensors without
augmentation. Writes ``bench/results/data.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Subset
from torchvision import datasets
from torchvision.transforms import v2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from common import machine  # noqa: E402  (bench/ is on sys.path when a script runs)

from pixelwise.config import ExperimentConfig, from_dict  # noqa: E402
from pixelwise.data import build_datasets, build_loader  # noqa: E402
from pixelwise.data.transforms import normalization  # noqa: E402


def first_per_class(targets: list[int], per_class: int) -> list[int]:
    seen: dict[int, int] = {}
    keep = []
    for i, t in enumerate(targets):
        seen[t] = seen.get(t, 0) + 1
        if seen[t] <= per_class:
            keep.append(i)
    return keep


def pixelwise_config(args: argparse.Namespace, cache: bool, augment: str) -> ExperimentConfig:
    data = {
        "format": "image_folder",
        "root": args.root,
        "image_size": [args.size, args.size],
        "val_fraction": 0.0,
        "test_fraction": 0.0,
        "samples_per_class": args.per_class,
        "batch_size": args.batch_size,
        "num_workers": args.workers,
        "persistent_workers": True,
        "pin_memory": False,
        "cache": cache,
        "augment": augment,
    }
    return from_dict(ExperimentConfig, {"data": data}, source="bench")


def torchvision_loader(args: argparse.Namespace, augment: bool) -> DataLoader:
    mean, std = normalization(pixelwise_config(args, False, "default").data)
    size = [args.size, args.size]
    steps: list = [v2.ToImage(), v2.Resize(size, antialias=True)]
    if augment:
        steps += [v2.RandomCrop(size, padding=4), v2.RandomHorizontalFlip(0.5)]
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]
    folder = datasets.ImageFolder(args.root, transform=v2.Compose(steps))
    subset = Subset(folder, first_per_class(folder.targets, args.per_class))
    return DataLoader(
        subset,
        batch_size=args.batch_size,
        shuffle=augment,
        num_workers=args.workers,
        persistent_workers=args.workers > 0,
        generator=torch.Generator().manual_seed(0),
    )


def pixelwise_loader(args: argparse.Namespace, cache: bool, augment: bool) -> DataLoader:
    cfg = pixelwise_config(args, cache, "default" if augment else "none")
    dataset = build_datasets(cfg).datasets["train"]
    return build_loader(dataset, cfg.data, train=augment, device=torch.device("cpu"))


def epoch_seconds(loader: DataLoader) -> tuple[float, int]:
    start = time.perf_counter()
    count = 0
    for images, _ in loader:
        count += images.shape[0]
    return time.perf_counter() - start, count


def check_same_tensors(args: argparse.Namespace) -> float:
    """Largest difference between the two pipelines' first batch, without augmentation."""
    small = argparse.Namespace(**{**vars(args), "workers": 0, "batch_size": 64})
    theirs, their_labels = next(iter(torchvision_loader(small, augment=False)))
    loader = pixelwise_loader(small, cache=False, augment=False)
    ours, our_labels = next(iter(loader))
    assert torch.equal(their_labels, our_labels), "labels differ"
    return float((theirs - ours).abs().max())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", required=True, help="class folders, e.g. cifar10/train")
    parser.add_argument("--per-class", type=int, default=1000, help="images per class folder")
    parser.add_argument("--size", type=int, default=32, help="training image size")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5, help="timed epochs per loader")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "data.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)  # as in loader workers; the main process only iterates

    difference = check_same_tensors(args)
    print(f"same images without augmentation: max |difference| = {difference:.2e}")
    assert difference < 1e-5, "the two pipelines decode or normalise differently"

    started = time.perf_counter()
    cached = pixelwise_loader(args, cache=True, augment=True)
    fill_seconds = time.perf_counter() - started
    loaders = {
        "torchvision": torchvision_loader(args, augment=True),
        "pixelwise": pixelwise_loader(args, cache=False, augment=True),
        "pixelwise_cached": cached,
    }
    for loader in loaders.values():  # warm-up: worker start-up, page cache
        epoch_seconds(loader)
    rates: dict[str, list[float]] = {name: [] for name in loaders}
    names = list(loaders)
    for repeat in range(args.repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            seconds, count = epoch_seconds(loaders[name])
            rates[name].append(count / seconds)
        print(f"  repeat {repeat + 1}: " + ", ".join(f"{n} {r[-1]:,.0f}" for n, r in rates.items()))
    median = {name: statistics.median(r) for name, r in rates.items()}
    images = len(loaders["torchvision"].dataset)  # type: ignore[arg-type]

    result = {
        "name": "data",
        "what": f"decode + augment + collate of {images:,} images ({args.per_class} per class "
        f"of {args.root}), batch {args.batch_size}, {args.workers} workers, median of "
        f"{args.repeats} interleaved epochs",
        "unit": "images/s",
        "pixelwise": round(median["pixelwise"], 1),
        "baseline": round(median["torchvision"], 1),
        "baseline_name": "torchvision ImageFolder + transforms.v2",
        "ratio": round(median["pixelwise"] / median["torchvision"], 3),
        "pixelwise_cached": round(median["pixelwise_cached"], 1),
        "ratio_cached": round(median["pixelwise_cached"] / median["torchvision"], 3),
        "cache_fill_seconds": round(fill_seconds, 2),
        "target": ">= 1.0x, well above with the cache",
        "max_difference_without_augmentation": difference,
        "machine": machine(),
        "command": "python " + " ".join([os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]]),
        "date": datetime.date.today().isoformat(),
        "images_per_second": {name: [round(r, 1) for r in rs] for name, rs in rates.items()},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    for name, value in median.items():
        print(f"  {name:18s} {value:9,.0f} images/s  (median of {args.repeats})")
    print(
        f"ratio pixelwise / torchvision: {result['ratio']:.2f}x; "
        f"with the in-memory cache: {result['ratio_cached']:.2f}x "
        f"(cache filled once in {fill_seconds:.1f} s)"
    )
    print(f"written: {out}")


if __name__ == "__main__":
    main()
