"""pixelwise's cifar10_fast against airbench94 on the same CPU and data, side by side.

    python bench/bench_airbench.py --cifar ../shared/data/cifar10 throughput \\
        [--epochs 2] [--repeats 3] [--per-class N] [override ...]
    python bench/bench_airbench.py --cifar ../shared/data/cifar10 accuracy \\
        [--epochs 10] [--per-class N] [override ...]

The peer is ``bench/airbench94.py``, a CPU port of Keller Jordan's airbench94 (2024;
bfloat16 autocast instead of ``.half()`` where the CPU has native bfloat16, float32
elsewhere, as pixelwise's ``train.amp=auto`` chooses; nothing else changed). pixelwise runs
``pixelwise.fit`` on the recipe ``cifar10_fast`` (overrides after the mode, e.g.
``data.loader=dataloader`` for the per-image pipeline). Both read the same JPEG class
folders, decoded once and kept in memory; neither counts decoding, evaluation or
model construction in its training time (airbench times its own steps; pixelwise's
``train/images_per_second`` times each epoch's loop, loading and augmentation
included).

``throughput``: ``--repeats`` rounds, each one short run of each (``--epochs``), the
order alternating every round; the ratio is the median of the per-round ratios of
images per second (neighbouring runs share the machine's load).
``accuracy``: one full run of each at ``--epochs`` (airbench's schedule stretched to
the same number of epochs), test accuracy single-view and with each one's test-time
augmentation. Writes ``bench/results/airbench.json`` (one entry per mode).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("PIXELWISE_QUIET", "1")

import airbench94  # noqa: E402  (bench/ is on sys.path when a script runs)
from common import machine  # noqa: E402

from pixelwise.config import load_config  # noqa: E402
from pixelwise.engine.evaluate import evaluate_run  # noqa: E402
from pixelwise.experiment import fit  # noqa: E402
from pixelwise.runtime import fast_bfloat16  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "airbench.json"


def first_per_class(data: tuple[torch.Tensor, torch.Tensor], count: int | None):
    """The first ``count`` images of each class (files in name order), as
    ``data.samples_per_class`` keeps them."""
    images, labels = data
    if not count:
        return data
    keep = torch.cat([torch.nonzero(labels == c).flatten()[:count] for c in labels.unique()])
    return images[keep], labels[keep]


def pixelwise_run(
    cifar: Path, epochs: int, overrides: list[str], evaluate: bool, per_class: int | None
) -> dict:
    """One ``cifar10_fast`` run; its training images/s and test accuracies."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(
            "cifar10_fast",
            [
                f"data.root={cifar}",
                f"output_dir={tmp}",
                f"train.epochs={epochs}",
                f"schedule.warmup_epochs={0.23 * epochs:.3f}",
                "train.report=false",
                "train.tensorboard=false",
                f"train.val_every={1 if evaluate else 10_000}",
                *([] if evaluate else ["eval.tta_hflip=false", "eval.tta_translate=0"]),
                *([f"data.samples_per_class={per_class}"] if per_class else []),
                *overrides,
            ],
        )
        result, _ = fit(cfg)
        samples = sum(r["train/samples"] for r in result.history)
        seconds = sum(r["train/samples"] / r["train/images_per_second"] for r in result.history)
        out = {"images_per_second": samples / seconds, "train_seconds": seconds}
        if evaluate:  # the last epoch's weights, as airbench reports them
            out["accuracy"] = {"single view": result.history[-1]["val/accuracy"]}
            for name, translate in (("mirror", 0), ("mirror + translate", 1)):
                test = evaluate_run(
                    result.run_dir,
                    checkpoint="last",
                    write=False,
                    tta_hflip=True,
                    tta_translate=translate,
                )
                out["accuracy"][name] = test.figures["accuracy"]
    return out


def airbench_run(train, test, epochs: float, evaluate: bool) -> dict:
    # bfloat16 where the CPU has it natively, as pixelwise's train.amp=auto chooses
    bf16 = fast_bfloat16(torch.device("cpu"))
    result = airbench94.train(train, test if evaluate else None, epochs=epochs, bf16=bf16)
    out = {"images_per_second": result.images_per_second, "train_seconds": result.train_seconds}
    if evaluate:
        names = {"0": "single view", "1": "mirror", "2": "mirror + translate"}
        out["accuracy"] = {names[k]: v for k, v in result.accuracy.items()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cifar", type=Path, required=True, help="CIFAR-10 class folders")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("mode", choices=["throughput", "accuracy"])
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--per-class", type=int, default=None, help="train on the first N images of each class"
    )
    parser.add_argument("overrides", nargs="*", help="pixelwise overrides (key=value)")
    args = parser.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    started_at = machine()
    train = first_per_class(airbench94.read_folders(args.cifar / "train"), args.per_class)
    test = airbench94.read_folders(args.cifar / "test")
    rounds: list[dict] = []
    if args.mode == "throughput":
        epochs = args.epochs or 2
        for i in range(args.repeats):
            order = ["airbench", "pixelwise"] if i % 2 == 0 else ["pixelwise", "airbench"]
            record = {}
            for who in order:
                if who == "airbench":
                    record[who] = airbench_run(train, test, epochs, evaluate=False)
                else:
                    record[who] = pixelwise_run(
                        args.cifar, epochs, args.overrides, False, args.per_class
                    )
                print(who, f"{record[who]['images_per_second']:.0f} images/s", flush=True)
            rounds.append(record)
    else:
        epochs = args.epochs or 10
        record = {"airbench": airbench_run(train, test, epochs, evaluate=True)}
        print("airbench", record["airbench"], flush=True)
        record["pixelwise"] = pixelwise_run(
            args.cifar, epochs, args.overrides, True, args.per_class
        )
        print("pixelwise", record["pixelwise"], flush=True)
        rounds.append(record)
    ratios = [
        r["pixelwise"]["images_per_second"] / r["airbench"]["images_per_second"] for r in rounds
    ]
    entry = {
        "mode": args.mode,
        "epochs": epochs,
        "training_images": len(train[1]),
        "precision": "bfloat16" if fast_bfloat16(torch.device("cpu")) else "float32",
        "overrides": args.overrides,
        "pixelwise_images_per_second": statistics.median(
            r["pixelwise"]["images_per_second"] for r in rounds
        ),
        "airbench_images_per_second": statistics.median(
            r["airbench"]["images_per_second"] for r in rounds
        ),
        "ratio": statistics.median(ratios),
        "ratios": ratios,
        "rounds": rounds,
        "machine": started_at,
        "date": datetime.date.today().isoformat(),
        "command": "python bench/bench_airbench.py " + " ".join(sys.argv[1:]),
        "finished": time.strftime("%H:%M"),
    }
    print(json.dumps({k: v for k, v in entry.items() if k != "rounds"}, indent=1))
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    results[args.mode] = entry
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
