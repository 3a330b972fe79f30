"""Training throughput: the pixelwise loop vs a minimal hand-written PyTorch loop.

    python bench/bench_train.py [--cifar ../shared/data/cifar10] [--device cpu|cuda]
        [--model resnet18] [--batch-size 64] [--steps 5] [--repeats 21]
        [--amp bf16] [--channels-last] [--compile] [--out bench/results/NAME.json]

On a GPU, the ResNet-50 benchmark of docs/benchmarks.md:

    python bench/bench_train.py --device cuda --model resnet50 --image-size 224 \
        --batch-size 128 --amp bf16 --channels-last --compile \
        --out bench/results/train_gpu_resnet50.json

pixelwise runs the exact code path of ``pixelwise train``: ``build_parts`` (model from
the zoo, loss, optimiser with its parameter groups, schedule, precision) and
``train_one_epoch`` (autocast context, per-step schedule, the on-device training
confusion matrix, NaN checks). The hand-written loop is the four lines of every
PyTorch tutorial around torchvision's model of the same name with the same weights
(pixelwise's zoo is weight-compatible), ``F.cross_entropy`` and the same SGD. Both
get the same speed settings (``--amp bf16``: bfloat16 autocast; ``--channels-last``;
``--compile``: ``torch.compile`` of the model) and see the same batches, already in memory: CIFAR-10 images decoded once (``--cifar``),
or random 32x32 images. A third contestant runs pixelwise's own model in the
hand-written loop, which separates the cost of the engine from that of the model.
Passes are interleaved (the order rotates every round) on this shared, noisy machine;
each pass records wall-clock and CPU time (``time.process_time``). A ratio is the
median over rounds of the per-round ratio: neighbouring passes share the machine's
load, so the per-round ratio cancels most of it, and the median ignores bursts; the
quartiles of the per-round ratios say how noisy the run was. Writes
``bench/results/train.json``.
"""

from __future__ import annotations

import argparse
import copy
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("PIXELWISE_QUIET", "1")  # no progress bars in the timed loop

from common import machine  # noqa: E402  (bench/ is on sys.path when a script runs)

from pixelwise.config import ExperimentConfig, load_config  # noqa: E402
from pixelwise.engine.build import build_parts  # noqa: E402
from pixelwise.engine.distributed import DistContext  # noqa: E402
from pixelwise.engine.trainer import train_one_epoch  # noqa: E402


def cifar_batches(
    root: Path, count: int, batch_size: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The first ``count`` training images of each class folder, decoded and normalised."""
    from torchvision.io import decode_image

    classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    per_class = -(-count * batch_size // len(classes))
    images, labels = [], []
    for label, name in enumerate(classes):
        for path in sorted((root / "train" / name).iterdir())[:per_class]:
            images.append(decode_image(str(path)))
            labels.append(label)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    x = torch.stack([images[i] for i in order]).float() / 255
    mean = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
    std = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)
    x = (x - mean) / std
    y = torch.tensor(labels)[order]
    return [
        (x[i : i + batch_size], y[i : i + batch_size])
        for i in range(0, count * batch_size, batch_size)
    ]


def random_batches(
    count: int, batch_size: int, size: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [
        (
            torch.randn(batch_size, 3, size, size, generator=g),
            torch.randint(0, 10, (batch_size,), generator=g),
        )
        for _ in range(count)
    ]


def bench_config(args: argparse.Namespace) -> ExperimentConfig:
    return load_config(
        None,
        [
            f"device={args.device}",
            f"model.name={args.model}",
            f"data.batch_size={args.batch_size}",
            "optim.name=sgd",
            f"optim.lr={args.lr}",
            "optim.momentum=0.9",
            "optim.weight_decay=0.0005",
            "schedule.name=cosine",
            "train.epochs=100",
            "train.log_every=50",
            f"train.amp={args.amp}",
            f"train.channels_last={str(args.channels_last).lower()}",
            f"train.compile={str(args.compile).lower()}",
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--cifar", help="CIFAR-10 folder (train/<class>/*.jpg); default: random images"
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--model", default="resnet18", help="a name in both pixelwise and torchvision"
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=32, help="random images only")
    parser.add_argument("--steps", type=int, default=5, help="optimiser steps per timed pass")
    parser.add_argument("--repeats", type=int, default=21, help="timed passes per contestant")
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    parser.add_argument("--amp", choices=["off", "bf16"], default="off", help="autocast dtype")
    parser.add_argument("--channels-last", action="store_true", help="NHWC memory format")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "train.json"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import torchvision

    device = torch.device(args.device)
    cpu_batches = (
        cifar_batches(Path(args.cifar), args.steps, args.batch_size)
        if args.cifar
        else random_batches(args.steps, args.batch_size, args.image_size)
    )
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    batches = [(x.to(device, memory_format=memory_format), y.to(device)) for x, y in cpu_batches]
    images = sum(len(y) for _, y in batches)

    torch.manual_seed(0)
    reference = torchvision.models.get_model(args.model, num_classes=10)
    reference = reference.to(device, memory_format=memory_format)
    cfg = bench_config(args)
    parts = build_parts(cfg, 10, DistContext(device=device), batches_per_epoch=len(batches))
    parts.model.load_state_dict(reference.state_dict())  # the same weights to start from
    same_model = copy.deepcopy(parts.model)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def timed(work: Callable[[], None]) -> tuple[float, float]:
        """(wall seconds, CPU seconds of this process) of ``work``."""
        sync()
        wall, cpu = time.perf_counter(), time.process_time()
        work()
        sync()
        return time.perf_counter() - wall, time.process_time() - cpu

    def hand_written_loop(model: torch.nn.Module) -> Callable[[], tuple[float, float]]:
        optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)
        forward = torch.compile(model) if args.compile else model
        autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp == "bf16")

        def loop() -> None:
            model.train()
            for x, y in batches:
                optimizer.zero_grad(set_to_none=True)
                with autocast:
                    loss = F.cross_entropy(forward(x), y)
                loss.backward()
                optimizer.step()

        return lambda: timed(loop)

    epoch = {"n": 0}

    def pixelwise_loop() -> None:
        train_one_epoch(parts, batches, epoch["n"])  # type: ignore[arg-type]
        epoch["n"] += 1

    contestants = {
        "hand_written": hand_written_loop(reference),
        "hand_written_pixelwise_model": hand_written_loop(same_model),
        "pixelwise": lambda: timed(pixelwise_loop),
    }
    for run in contestants.values():  # warm-up: allocator, kernels, first-call costs
        run()
    seconds: dict[str, list[tuple[float, float]]] = {name: [] for name in contestants}
    names = list(contestants)
    for repeat in range(args.repeats):  # rotate the order: no contestant always goes first
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            seconds[name].append(contestants[name]())

    def rates(name: str, clock: int) -> list[float]:
        return [images / s[clock] for s in seconds[name]]

    def ratios(a: str, b: str, clock: int) -> list[float]:
        return [x / y for x, y in zip(rates(a, clock), rates(b, clock))]

    def ratio(a: str, b: str, clock: int) -> float:
        return statistics.median(ratios(a, b, clock))

    median = {name: statistics.median(rates(name, 0)) for name in names}
    median_cpu = {name: statistics.median(rates(name, 1)) for name in names}
    quartiles = statistics.quantiles(ratios("pixelwise", "hand_written", 0), n=4)
    data = (
        f"CIFAR-10 JPEGs from {args.cifar}"
        if args.cifar
        else f"random {args.image_size}x{args.image_size} images"
    )
    speed = [f"{args.amp} autocast" if args.amp != "off" else "float32"]
    speed += ["channels_last"] * args.channels_last + ["torch.compile"] * args.compile
    settings = " + ".join(speed)
    result = {
        "name": Path(args.out).stem,
        "what": f"training throughput, {args.model} (10 classes), batch {args.batch_size}, "
        f"SGD momentum 0.9, {settings}, {data} in memory, {args.steps} steps per pass, "
        f"{args.repeats} interleaved passes each",
        "unit": "images/s",
        "pixelwise": round(median["pixelwise"], 1),
        "baseline": round(median["hand_written"], 1),
        "baseline_name": f"hand-written loop around torchvision.models.{args.model}",
        "ratio": round(ratio("pixelwise", "hand_written", 0), 3),
        "ratio_definition": "median over rounds of the per-round ratio of pixelwise to "
        "hand-written images per second (wall clock)",
        "ratio_quartiles": [round(quartiles[0], 3), round(quartiles[2], 3)],
        "ratio_cpu_time": round(ratio("pixelwise", "hand_written", 1), 3),
        "ratio_engine_only": round(ratio("pixelwise", "hand_written_pixelwise_model", 0), 3),
        "ratio_engine_only_cpu_time": round(
            ratio("pixelwise", "hand_written_pixelwise_model", 1), 3
        ),
        "ratio_model_only": round(ratio("hand_written_pixelwise_model", "hand_written", 0), 3),
        "images_per_cpu_second": {k: round(v, 1) for k, v in median_cpu.items()},
        "target": ">= 0.97x",
        "device": str(device),
        "machine": machine(device),
        "command": "python " + " ".join([os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]]),
        "date": datetime.date.today().isoformat(),
        "images_per_second": {name: [round(x, 1) for x in rates(name, 0)] for name in names},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    for name, value in median.items():
        print(f"  {name:30s} {value:8.1f} images/s  {median_cpu[name]:8.1f} images/CPU-s")
    print(
        f"ratio pixelwise / hand-written: {result['ratio']:.3f}x wall clock "
        f"(quartiles {quartiles[0]:.3f}-{quartiles[2]:.3f}), "
        f"{result['ratio_cpu_time']:.3f}x CPU time; engine alone (same model): "
        f"{result['ratio_engine_only']:.3f}x wall, {result['ratio_engine_only_cpu_time']:.3f}x CPU"
    )
    print(f"written: {out}")


if __name__ == "__main__":
    main()
