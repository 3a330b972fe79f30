"""Input pipeline: the same images read from WebDataset shards vs from a class folder.

    python bench/bench_shards.py --root ../shared/data/cifar10/train [--per-class 1000]
        [--workers 2] [--batch-size 256] [--shard-size 1000] [--repeats 3]

The first ``--per-class`` images of each class folder (``data.format=image_folder``) are
written to tar shards with ``pixelwise.data.shards.write_shards`` (what ``pixelwise data
shard`` does) in a temporary directory; then two training loaders, built as ``pixelwise
train`` builds them (``build_datasets`` + ``build_loader``, the same preset transforms,
workers and batch size), are timed over one epoch each, interleaved ``--repeats`` times
after an untimed warm-up: ``folder`` (one PNG/JPEG file per image) and ``shards``
(``data.format=webdataset``, shuffle buffer ``--buffer``). The statistic is the median
images/s. Needs the ``shards`` extra (webdataset). Writes ``bench/results/shards.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from common import machine  # noqa: E402  (bench/ is on sys.path when a script runs)

from pixelwise.config import ExperimentConfig, from_dict, validate  # noqa: E402
from pixelwise.data import build_datasets, build_loader, build_raw_splits  # noqa: E402
from pixelwise.data.shards import write_shards  # noqa: E402


def config(data: dict) -> ExperimentConfig:
    cfg = from_dict(ExperimentConfig, {"task": "classification", "data": data}, "<bench>")
    validate(cfg, "<bench>")
    return cfg


def epoch_rate(loader: torch.utils.data.DataLoader) -> float:
    start, images = time.perf_counter(), 0
    for batch, _ in loader:
        images += len(batch)
    return images / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="class folders (image_folder layout)")
    parser.add_argument("--per-class", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--shard-size", type=int, default=1000)
    parser.add_argument("--buffer", type=int, default=1000, help="data.shuffle_buffer")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "shards.json"))
    args = parser.parse_args()

    common = {
        "batch_size": args.batch_size,
        "num_workers": args.workers,
        "image_size": [args.image_size, args.image_size],
        "val_fraction": 0.0,
        "test_fraction": 0.0,
    }
    folder_cfg = config(
        {"format": "image_folder", "root": args.root, "samples_per_class": args.per_class, **common}
    )
    device = torch.device("cpu")
    with tempfile.TemporaryDirectory() as tmp:
        raw, names = build_raw_splits(folder_cfg)
        start = time.perf_counter()
        counts = write_shards(raw, names, Path(tmp), args.shard_size)
        write_seconds = time.perf_counter() - start
        shard_cfg = config(
            {"format": "webdataset", "root": tmp, "shuffle_buffer": args.buffer, **common}
        )
        loaders = {}
        for name, cfg in (("folder", folder_cfg), ("shards", shard_cfg)):
            train = build_datasets(cfg).datasets["train"]
            loaders[name] = build_loader(train, cfg.data, train=True, device=device)
            epoch_rate(loaders[name])  # warm-up: worker start-up, the OS file cache
        rates: dict[str, list[float]] = {name: [] for name in loaders}
        for repeat in range(args.repeats):
            order = list(loaders)[repeat % 2 :] + list(loaders)[: repeat % 2]
            for name in order:
                rates[name].append(epoch_rate(loaders[name]))
    result = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": machine(),
        "images": counts["train"],
        "shards": -(-counts["train"] // args.shard_size),
        "write_seconds": round(write_seconds, 2),
        "args": vars(args),
        "images_per_second": {name: round(statistics.median(r), 1) for name, r in rates.items()},
        "all_rates": {name: [round(x, 1) for x in r] for name, r in rates.items()},
    }
    for name, rate in result["images_per_second"].items():
        print(f"{name:>7}: {rate:10.1f} images/s")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
