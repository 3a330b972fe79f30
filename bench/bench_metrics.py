"""Confusion-matrix update: pixelwise vs torchmetrics' MulticlassJaccardIndex, side by side.

    python bench/bench_metrics.py [--device cpu|cuda] [--batches 8] [--batch-size 4]

Both update a 21-class matrix from the same batches of 512x512 masks (piecewise-constant
"ground truth" regions, predictions that disagree on about 20% of pixels, 5% of pixels
at the ignore label 255), in one process, with interleaved repeats (the order alternates
every repeat) because the machines are shared and noisy. The statistic is the median
over repeats of megapixels per second. Before timing, the script asserts that both give
the identical confusion matrix and the same mIoU and per-class IoU.

torchmetrics is measured twice: as users get it (``validate_args=True``, which checks
the values of every batch) and with ``validate_args=False``. pixelwise always checks
its inputs (out-of-range values raise). Writes ``bench/results/metrics.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from common import machine  # noqa: E402  (bench/ is on sys.path when a script runs)

from pixelwise.metrics import ConfusionMatrix  # noqa: E402

IGNORE = 255


def make_batches(
    count: int, batch_size: int, size: int, num_classes: int, device: torch.device, seed: int = 0
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(preds, target) int64 masks: blocky regions, 20% wrong predictions, 5% ignored."""
    g = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(count):
        coarse = torch.randint(0, num_classes, (batch_size, 1, size // 32, size // 32), generator=g)
        target = torch.nn.functional.interpolate(coarse.float(), size=(size, size)).long()[:, 0]
        noise = torch.randint(0, num_classes, target.shape, generator=g)
        preds = torch.where(torch.rand(target.shape, generator=g) < 0.2, noise, target)
        target[torch.rand(target.shape, generator=g) < 0.05] = IGNORE
        batches.append((preds.to(device), target.to(device)))
    return batches


def timed(update: Callable, reset: Callable, batches: list, device: torch.device) -> float:
    """Seconds to update over every batch (the GPU finished), after a reset."""
    reset()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for preds, target in batches:
        update(preds, target)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--num-classes", type=int, default=21)
    parser.add_argument("--size", type=int, default=512, help="mask height and width")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--batches", type=int, default=8, help="batches per timed pass")
    parser.add_argument("--repeats", type=int, default=9, help="timed passes per contestant")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "metrics.json"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from torchmetrics.classification import MulticlassJaccardIndex

    device = torch.device(args.device)
    c = args.num_classes
    batches = make_batches(args.batches, args.batch_size, args.size, c, device)
    pixels = sum(t.numel() for _, t in batches)

    ours = ConfusionMatrix(c, ignore_index=IGNORE)
    checked = MulticlassJaccardIndex(c, ignore_index=IGNORE).to(device)
    unchecked = MulticlassJaccardIndex(c, ignore_index=IGNORE, validate_args=False).to(device)
    contestants = {
        "pixelwise": (ours.update, ours.reset),
        "torchmetrics": (checked.update, checked.reset),
        "torchmetrics_no_validation": (unchecked.update, unchecked.reset),
    }

    # Identical numbers first (this pass also warms up every code path).
    for update, reset in contestants.values():
        timed(update, reset, batches, device)
    assert torch.equal(ours.matrix.cpu(), checked.confmat.cpu().long()), "matrices differ"
    assert torch.equal(ours.matrix.cpu(), unchecked.confmat.cpu().long()), "matrices differ"
    figures = ours.compute()
    theirs = float(checked.compute())
    assert abs(figures["miou"] - theirs) < 1e-6, (figures["miou"], theirs)
    per_class = MulticlassJaccardIndex(c, ignore_index=IGNORE, average="none").to(device)
    for preds, target in batches:
        per_class.update(preds, target)
    assert torch.allclose(
        torch.tensor(figures["iou"], dtype=torch.float64),
        per_class.compute().cpu().double(),
        atol=1e-6,
    )

    seconds: dict[str, list[float]] = {name: [] for name in contestants}
    names = list(contestants)
    for repeat in range(args.repeats):
        for name in names if repeat % 2 == 0 else names[::-1]:
            seconds[name].append(timed(*contestants[name], batches, device))
    mpx = {name: pixels / statistics.median(s) / 1e6 for name, s in seconds.items()}

    result = {
        "name": "metrics",
        "what": f"confusion-matrix update, {c} classes, {args.batch_size}x{args.size}x{args.size} "
        f"masks, {args.batches} batches per pass, median of {args.repeats} interleaved passes",
        "unit": "Mpx/s",
        "pixelwise": round(mpx["pixelwise"], 2),
        "baseline": round(mpx["torchmetrics"], 2),
        "baseline_name": "torchmetrics MulticlassJaccardIndex, default validate_args=True",
        "ratio": round(mpx["pixelwise"] / mpx["torchmetrics"], 3),
        "baseline_no_validation": round(mpx["torchmetrics_no_validation"], 2),
        "ratio_no_validation": round(mpx["pixelwise"] / mpx["torchmetrics_no_validation"], 3),
        "target": ">= 1.0x, identical numbers",
        "identical": True,
        "miou": figures["miou"],
        "device": str(device),
        "machine": machine(device),
        "command": "python " + " ".join([os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]]),
        "date": datetime.date.today().isoformat(),
        "seconds": {name: [round(x, 5) for x in s] for name, s in seconds.items()},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"identical confusion matrices and mIoU ({figures['miou']:.6f}) on {device}")
    for name, value in mpx.items():
        print(f"  {name:28s} {value:9.1f} Mpx/s  (median of {args.repeats})")
    print(
        f"ratio pixelwise / torchmetrics: {result['ratio']:.2f}x "
        f"({result['ratio_no_validation']:.2f}x against validate_args=False)"
    )
    print(f"written: {out}")


if __name__ == "__main__":
    main()
