"""How close to the machine's limit: the recipes' training FLOP/s against this CPU's peak.

    python bench/bench_peak.py [--threads 2] [--seconds 1.0] [--steps 6]
        [--recipes cifar10_fast camvid_fast] [--cifar ../shared/data/cifar10]
        [--camvid ../shared/data/camvid] [--e2e-samples-per-class 500] [--no-e2e]
        [--out bench/results/peak.json]

The peak is measured, not read off a data sheet: forward bfloat16 convolutions
(channels_last, 3x3, 64 to 512 channels at the feature-map sizes of CIFAR and CamVid
networks) and large square matrix products, each run for ``--seconds`` and timed per
call; the best shape is the peak (float32 is measured too, for reference). A recipe's
work per training image is counted by ``torch.utils.flop_counter.FlopCounterMode`` over
the forward, loss and backward of one batch at the recipe's image size under bfloat16
autocast and channels_last (2 FLOPs per multiply-add of convolutions and matrix
products; elementwise work, normalisation and the optimiser are not counted, so the
fraction is a lower bound on how busy the arithmetic units are). Its speed is measured
twice: the training step alone (``build_parts`` and ``train_one_epoch``, pixelwise's own
code, on random batches already in memory) and end to end (one epoch of ``pixelwise train``'s
training on the real data in its own process, ``train/images_per_second`` of its
``metrics.jsonl``: reading, cache, augmentation and loader workers included). Achieved FLOP/s = FLOPs per image x
images per second; the fraction of the bf16 peak is a CPU "MFU". Writes
``bench/results/peak.json``.
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
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("PIXELWISE_QUIET", "1")  # no progress bars in the timed loop

from bench_scaling import NO_EVALUATION, train_once  # noqa: E402
from common import machine  # noqa: E402  (bench/ is on sys.path when a script runs)

from pixelwise.config import ExperimentConfig, load_config  # noqa: E402
from pixelwise.engine.build import build_parts  # noqa: E402
from pixelwise.engine.distributed import DistContext  # noqa: E402
from pixelwise.engine.precision import resolve_amp  # noqa: E402
from pixelwise.engine.trainer import compute_loss, train_one_epoch  # noqa: E402

# (batch, channels, height, width) of 3x3 convolutions, channels in = channels out: the
# stages of a CIFAR ResNet at batch 256 and of a CamVid U-Net encoder at batch 8.
CONV_SHAPES = [
    (256, 64, 32, 32),
    (256, 128, 16, 16),
    (256, 256, 8, 8),
    (256, 512, 4, 4),
    (8, 64, 90, 120),
    (8, 128, 45, 60),
    (8, 256, 23, 30),
    (8, 512, 12, 15),
]
MATMUL_SIZES = [1024, 2048, 4096]  # n x n times n x n


def best_seconds(work: Callable[[], object], seconds: float) -> float:
    """The fastest call of ``work`` over about ``seconds`` of calls (after one warm-up):
    the best, not the median, because a peak is what the machine can do when nothing
    else runs."""
    work()
    best, spent = float("inf"), 0.0
    while spent < seconds:
        start = time.perf_counter()
        work()
        elapsed = time.perf_counter() - start
        best, spent = min(best, elapsed), spent + elapsed
    return best


def conv_gflops(shape: tuple[int, int, int, int], dtype: torch.dtype, seconds: float) -> float:
    batch, channels, height, width = shape
    x = torch.randn(batch, channels, height, width, dtype=dtype)
    x = x.to(memory_format=torch.channels_last)
    weight = torch.randn(channels, channels, 3, 3, dtype=dtype)
    weight = weight.to(memory_format=torch.channels_last)
    flops = 2 * batch * channels * height * width * channels * 9  # 'same' padding
    with torch.no_grad():
        elapsed = best_seconds(lambda: F.conv2d(x, weight, padding=1), seconds)
    return flops / elapsed / 1e9


def matmul_gflops(n: int, dtype: torch.dtype, seconds: float) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    return 2 * n**3 / best_seconds(lambda: a @ b, seconds) / 1e9


def measure_peak(seconds: float, batch_fraction: float, matmul_sizes: list[int]) -> dict:
    """GFLOP/s of every shape in bfloat16 and float32, and the best of each dtype.
    ``batch_fraction`` shrinks the convolutions' batches (quick checks only)."""
    table: dict[str, dict[str, float]] = {}
    for dtype, name in ((torch.bfloat16, "bfloat16"), (torch.float32, "float32")):
        rows = {}
        for b, c, h, w in CONV_SHAPES:
            b = max(1, round(b * batch_fraction))
            label = f"conv3x3 {c}ch {h}x{w} batch {b}"
            rows[label] = conv_gflops((b, c, h, w), dtype, seconds)
            print(f"  {name} {label}: {rows[label]:,.1f} GFLOP/s", flush=True)
        for n in matmul_sizes:
            label = f"matmul {n}x{n}x{n}"
            rows[label] = matmul_gflops(n, dtype, seconds)
            print(f"  {name} {label}: {rows[label]:,.1f} GFLOP/s", flush=True)
        table[name] = rows

    def best(dtype: str, kind: str) -> tuple[str, float]:
        return max(
            ((k, v) for k, v in table[dtype].items() if k.startswith(kind)), key=lambda i: i[1]
        )

    summary = {}
    for dtype in table:
        conv_shape, conv = best(dtype, "conv")
        mm_shape, mm = best(dtype, "matmul")
        summary[dtype] = {
            "peak_gflops": round(max(conv, mm), 1),
            "peak_shape": conv_shape if conv >= mm else mm_shape,
            "conv_peak_gflops": round(conv, 1),
            "conv_peak_shape": conv_shape,
            "matmul_peak_gflops": round(mm, 1),
            "matmul_peak_shape": mm_shape,
        }
    shapes = {d: {k: round(v, 1) for k, v in rows.items()} for d, rows in table.items()}
    return {"summary": summary, "shapes": shapes}


def recipe_config(name: str, roots: dict[str, str], overrides: list[str]) -> ExperimentConfig:
    root = roots["camvid" if name.startswith("camvid") else "cifar"]
    return load_config(name, [f"data.root={root}", "device=cpu", *overrides])


def class_count(cfg: ExperimentConfig) -> int:
    return cfg.data.num_classes or len(cfg.data.class_names or []) or 10


def random_batch(
    cfg: ExperimentConfig, classes: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    height, width = cfg.data.image_size
    images = torch.randn(cfg.data.batch_size, 3, height, width, generator=g)
    shape = (
        (cfg.data.batch_size,)
        if cfg.task == "classification"
        else (cfg.data.batch_size, height, width)
    )
    return images, torch.randint(0, classes, shape, generator=g)


def training_flops_per_image(cfg: ExperimentConfig, classes: int) -> float:
    """FLOPs of forward + loss + backward of one batch, per image, as training runs it."""
    parts = build_parts(cfg, classes, DistContext(device=torch.device("cpu")), batches_per_epoch=1)
    images, targets = random_batch(cfg, classes, 0)
    if cfg.train.channels_last:
        images = images.to(memory_format=torch.channels_last)
    parts.model.train()
    counter = FlopCounterMode(display=False)
    with counter:
        with parts.precision.autocast():
            loss, _ = compute_loss(parts, parts.forward_model(images), images, targets)
        loss.backward()
    return counter.get_total_flops() / len(images)


def step_images_per_second(cfg: ExperimentConfig, classes: int, steps: int, repeats: int) -> float:
    """Median images/s of ``train_one_epoch`` over ``steps`` random batches in memory."""
    batches = [random_batch(cfg, classes, seed) for seed in range(steps)]
    parts = build_parts(cfg, classes, DistContext(device=torch.device("cpu")), len(batches))
    train_one_epoch(parts, batches, 0)  # type: ignore[arg-type]  (warm-up)
    rates = []
    for epoch in range(1, repeats + 1):
        start = time.perf_counter()
        train_one_epoch(parts, batches, epoch)  # type: ignore[arg-type]
        rates.append(steps * cfg.data.batch_size / (time.perf_counter() - start))
    return statistics.median(rates)


def end_to_end(
    name: str, roots: dict[str, str], samples_per_class: int, threads: int, extra: list[str]
) -> dict:
    """One epoch of ``pixelwise train``'s training on the real data, in its own process
    (bench_scaling.train_once); its own images/s covers the training steps only (the
    one-off cache fill is not in it)."""
    root = roots["camvid" if name.startswith("camvid") else "cifar"]
    overrides = [f"data.root={root}", "train.epochs=1", *NO_EVALUATION]
    if not name.startswith("camvid") and samples_per_class:
        overrides.append(f"data.samples_per_class={samples_per_class}")
    run = train_once(name, [*overrides, *extra], threads)
    run["images_per_second"] = 1000 / run["seconds_per_1000_images"]
    return run


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=1.0, help="timing per peak shape")
    parser.add_argument(
        "--batch-fraction", type=float, default=1.0, help="of the conv shapes' batches"
    )
    parser.add_argument("--matmul-sizes", type=int, nargs="+", default=MATMUL_SIZES)
    parser.add_argument("--recipes", nargs="+", default=["cifar10_fast", "camvid_fast"])
    parser.add_argument("--steps", type=int, default=6, help="training steps per timed pass")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per recipe")
    parser.add_argument("--cifar", default=str(ROOT.parent / "shared" / "data" / "cifar10"))
    parser.add_argument("--camvid", default=str(ROOT.parent / "shared" / "data" / "camvid"))
    parser.add_argument(
        "--e2e-samples-per-class",
        type=int,
        default=500,
        help="CIFAR-10 training images per class of the end-to-end epoch (0: all 5,000)",
    )
    parser.add_argument("--no-e2e", action="store_true", help="skip the end-to-end runs")
    parser.add_argument(
        "overrides",
        nargs="*",
        help="key=value overrides for every recipe (e.g. data.batch_size=64)",
    )
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "peak.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    roots = {"cifar": args.cifar, "camvid": args.camvid}

    print(f"peak, {args.threads} threads:", flush=True)
    peak = measure_peak(args.seconds, args.batch_fraction, args.matmul_sizes)
    bf16_peak = peak["summary"]["bfloat16"]["peak_gflops"]
    f32_peak = peak["summary"]["float32"]["peak_gflops"]
    recipes = {}
    for name in args.recipes:
        cfg = recipe_config(name, roots, args.overrides)
        classes = class_count(cfg)
        flops = training_flops_per_image(cfg, classes)
        rate = step_images_per_second(cfg, classes, args.steps, args.repeats)
        # The peak of the precision the recipe trains in (float32 where train.amp=off).
        amp = resolve_amp(cfg.train.amp, torch.device("cpu"))  # auto: bf16 where native
        reference = bf16_peak if amp == "bf16" else f32_peak
        entry = {
            "image_size": list(cfg.data.image_size),
            "batch_size": cfg.data.batch_size,
            "model": cfg.model.name
            + (f" ({cfg.model.encoder} encoder)" if cfg.model.encoder else ""),
            "precision": ("bf16 autocast" if amp == "bf16" else "float32")
            + (", channels_last" if cfg.train.channels_last else ""),
            "training_gflops_per_image": round(flops / 1e9, 3),
            "step_images_per_second": round(rate, 1),
            "step_gflops": round(flops * rate / 1e9, 1),
            "peak_gflops": reference,
            "step_fraction_of_peak": round(flops * rate / 1e9 / reference, 3),
        }
        print(f"{name}: {flops / 1e9:.3f} GFLOP/image, step {rate:.1f} images/s", flush=True)
        if not args.no_e2e:
            e2e = end_to_end(name, roots, args.e2e_samples_per_class, args.threads, args.overrides)
            entry["end_to_end"] = e2e
            entry["end_to_end_images_per_second"] = round(e2e["images_per_second"], 1)
            entry["end_to_end_gflops"] = round(flops * e2e["images_per_second"] / 1e9, 1)
            entry["end_to_end_fraction_of_peak"] = round(entry["end_to_end_gflops"] / reference, 3)
            print(f"{name}: end to end {e2e['images_per_second']:.1f} images/s", flush=True)
        recipes[name] = entry

    result = {
        "name": "peak",
        "what": f"training FLOP/s of the recipes against this CPU's measured peak, "
        f"{args.threads} threads",
        "peak_bf16_gflops": bf16_peak,
        "peak_float32_gflops": f32_peak,
        "peak": peak,
        "recipes": recipes,
        "flops_counted": "FlopCounterMode: convolutions and matrix products, 2 FLOPs per "
        "multiply-add, forward + loss + backward of one batch; the optimiser is not counted",
        "machine": machine(),
        "command": "python " + " ".join([os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]]),
        "date": datetime.date.today().isoformat(),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"peak: bf16 {bf16_peak:,.1f} GFLOP/s, float32 {f32_peak:,.1f} GFLOP/s")
    for name, entry in recipes.items():
        print(
            f"{name}: step {entry['step_gflops']:,.1f} GFLOP/s = "
            f"{entry['step_fraction_of_peak']:.1%} of the peak of its precision"
        )
    print(f"written: {out}")


if __name__ == "__main__":
    main()
