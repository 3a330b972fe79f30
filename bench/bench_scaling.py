"""Memory and time as a recipe grows: more training images, larger images.

    python bench/bench_scaling.py --recipe cifar10_fast [--per-class 500 1000 2000 5000]
    python bench/bench_scaling.py --recipe camvid_fast [--sizes 180x240 360x480]
        [--epochs 1] [--cifar ...] [--camvid ...] [--out bench/results/scaling.json]
        [key=value ...]

Each configuration is its own training process (``fit``, the training of ``pixelwise
train``, on the real data: ``train.epochs=1`` by default, no validation, none of the
command's evaluation, plots and report after training), so that one
configuration's memory never lingers in the next. Its peak resident memory is the
``ru_maxrss`` that ``os.wait4`` returns for that process: the largest resident set of
the training process or of any loader worker it waited for (the cache sits in shared
memory, which each process that reads it counts once). Its epoch time is ``train/samples
/ train/images_per_second`` of the run's ``metrics.jsonl``: the training steps only,
not the one-off decoding into the cache. CIFAR-10 (``cifar10_fast``) grows by
``data.samples_per_class`` (500 per class = 5,000 images ... 5,000 = all 50,000);
CamVid (``camvid_fast``) by ``data.image_size``. Growth is linear where the time per
image (per pixel) stays constant and the memory grows by the cache's bytes per image.
Each recipe's rows replace that recipe's rows in ``bench/results/scaling.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import machine  # bench/ is on sys.path when a script runs

ROOT = Path(__file__).resolve().parent.parent
NO_EVALUATION = [
    "data.val_split=none",
    "data.test_split=none",
    "train.best_metric=train/loss",
    "train.best_mode=min",
    "train.tensorboard=false",
]
# The child: ``pixelwise train``'s training (``fit``), without the evaluation, plots and
# report that the command runs after it.
TRAIN = (
    "import sys; from pixelwise.config import load_config; "
    "from pixelwise.engine.trainer import fit; fit(load_config(sys.argv[1], sys.argv[2:]))"
)


def train_once(recipe: str, overrides: list[str], threads: int) -> dict:
    """One training process: its peak resident memory, wall time and epoch time."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PIXELWISE_QUIET": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])
    with tempfile.TemporaryDirectory(prefix="pixelwise-scaling-") as scratch:
        command = [sys.executable, "-c", TRAIN, recipe, *overrides]
        command += [f"output_dir={scratch}", "name=run"]
        start = time.perf_counter()
        child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        if child.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed with exit status {child.returncode}")
        lines = (Path(scratch) / "run" / "metrics.jsonl").read_text().splitlines()
        records = [json.loads(line) for line in lines if line.strip()]
    images = sum(r["train/samples"] for r in records)
    seconds = sum(r["train/samples"] / r["train/images_per_second"] for r in records)
    return {
        "overrides": overrides,
        "training_images": records[0]["train/samples"],
        "epochs": len(records),
        "epoch_seconds": round(seconds / len(records), 2),
        "seconds_per_1000_images": round(1000 * seconds / images, 3),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),  # Linux reports KiB
        "process_seconds": round(wall, 1),
    }


def linearity(rows: list[dict], unit: str) -> None:
    """Ratios against the first (smallest) row: of the work and of time and memory."""
    first = rows[0]
    for row in rows:
        work = row[unit] / first[unit]
        row["work_ratio"] = round(work, 3)
        row["time_ratio"] = round(row["epoch_seconds"] / first["epoch_seconds"], 3)
        row["time_per_work_ratio"] = round(row["time_ratio"] / work, 3)  # 1.0: linear
        row["memory_ratio"] = round(row["peak_rss_mib"] / first["peak_rss_mib"], 3)
        extra = row[unit] - first[unit]
        row["extra_mib_per_extra_unit"] = (
            round((row["peak_rss_mib"] - first["peak_rss_mib"]) / extra, 6) if extra else None
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recipe", choices=["cifar10_fast", "camvid_fast"], required=True)
    parser.add_argument("--per-class", type=int, nargs="+", default=[500, 1000, 2000, 5000])
    parser.add_argument("--sizes", nargs="+", default=["180x240", "360x480"], help="HxW")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cifar", default=str(ROOT.parent / "shared" / "data" / "cifar10"))
    parser.add_argument("--camvid", default=str(ROOT.parent / "shared" / "data" / "camvid"))
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "scaling.json"))
    parser.add_argument("overrides", nargs="*", help="key=value overrides of every run")
    args = parser.parse_args()
    cifar = args.recipe == "cifar10_fast"
    base = [
        f"data.root={args.cifar if cifar else args.camvid}",
        f"train.epochs={args.epochs}",
        *NO_EVALUATION,
        *args.overrides,
    ]
    rows = []
    if cifar:
        for per_class in args.per_class:
            row = train_once(
                args.recipe, [*base, f"data.samples_per_class={per_class}"], args.threads
            )
            row["setting"] = f"{row['training_images']:,} images"
            rows.append(row)
            print(json.dumps(row), flush=True)
        linearity(rows, "training_images")
    else:
        for size in args.sizes:
            height, width = (int(v) for v in size.split("x"))
            row = train_once(
                args.recipe, [*base, f"data.image_size=[{height},{width}]"], args.threads
            )
            row["setting"] = f"{height}x{width}"
            row["pixels_per_image"] = height * width
            rows.append(row)
            print(json.dumps(row), flush=True)
        linearity(rows, "pixels_per_image")

    out = Path(args.out)
    result = json.loads(out.read_text()) if out.is_file() else {"name": out.stem, "recipes": {}}
    result["recipes"][args.recipe] = {
        "grows_by": "training images (data.samples_per_class)" if cifar else "data.image_size",
        "rows": rows,
        "machine": machine(),
        "command": "python " + " ".join([os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]]),
        "date": datetime.date.today().isoformat(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    for row in rows:
        print(
            f"{row['setting']:>14}: epoch {row['epoch_seconds']:8.1f} s, peak RSS "
            f"{row['peak_rss_mib']:8.1f} MiB, time per unit of work x{row['time_per_work_ratio']}"
        )
    print(f"written: {out}")


if __name__ == "__main__":
    main()
