"""Accuracy within a fixed CPU budget: train a recipe and read its curve against time.

    python bench/bench_budget.py --results cifar_budget --run fast \\
        --config cifar10_fast --metric val/accuracy -- data.root=../shared/data/cifar10

Runs ``pixelwise train CONFIG overrides...`` in a subprocess, then reads the run's
``metrics.jsonl``: the training minutes of each epoch come from ``train/samples /
train/images_per_second`` (evaluation and the one-off decoding into the cache are
excluded), and each point is the metric after that many minutes of training. The
run's final evaluation (``eval/<split>.json``, with the recipe's test-time
augmentation) is recorded beside the curve. Several runs (a recipe and its baseline,
or one recipe at several budgets) append to the same ``bench/results/<results>.json``,
which ``bench/run_all.py`` turns into a table and a plot in docs/benchmarks.md.

``--existing RUN_DIR`` collects a run that has already finished instead of training.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from common import machine  # bench/ is on sys.path when a script runs

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def curve(run_dir: Path, metrics: list[str]) -> list[dict]:
    records = [
        json.loads(line)
        for line in (run_dir / "metrics.jsonl").read_text().splitlines()
        if line.strip()
    ]
    minutes, points = 0.0, []
    for record in records:
        minutes += record["train/samples"] / record["train/images_per_second"] / 60
        if any(m in record for m in metrics):  # epochs without validation (val_every) add time
            points.append(
                {
                    "epoch": record["epoch"],
                    "minutes": minutes,
                    **{m: record.get(m) for m in metrics},
                }
            )
    return points


def final_evaluation(run_dir: Path, metrics: list[str]) -> dict | None:
    """The figures of the run's last evaluation (``eval/*.json``), named like the curve's."""
    files = sorted((run_dir / "eval").glob("*.json"), key=lambda f: f.stat().st_mtime)
    if not files:
        return None
    report = json.loads(files[-1].read_text())
    figures = report["figures"]
    return {
        "split": report["split"],
        "checkpoint": report.get("checkpoint"),
        "epoch": report.get("epoch"),
        "tta_hflip": bool(report.get("inference", {}).get("tta_hflip")),
        "tta_translate": int(report.get("inference", {}).get("tta_translate") or 0),
        **{m: figures.get(m.split("/", 1)[-1]) for m in metrics},
        # Segmentation: each class's IoU, for the per-class table of docs/benchmarks.md.
        **(
            {"class_names": report["class_names"], "iou": figures["iou"]}
            if report.get("task") == "segmentation" and "iou" in figures
            else {}
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--results", required=True, help="name of bench/results/<name>.json")
    parser.add_argument("--run", required=True, help="label of this run in the table")
    parser.add_argument("--config", required=True, help="recipe (bundled name or YAML path)")
    parser.add_argument(
        "--metric", action="append", required=True, help="metrics to report, e.g. val/accuracy"
    )
    parser.add_argument(
        "--output-dir", default=None, help="where the run directory goes (default: a temp dir)"
    )
    parser.add_argument(
        "--existing", type=Path, default=None, help="collect this finished run; do not train"
    )
    parser.add_argument("overrides", nargs="*", help="key=value overrides for the recipe")
    args = parser.parse_args()

    bench_command = ["python", "bench/bench_budget.py"]
    for option in ("results", "run", "config"):
        bench_command += [f"--{option}", getattr(args, option)]
    for metric in args.metric:
        bench_command += ["--metric", metric]
    if args.existing is not None:  # collected, not trained: say from where
        bench_command += ["--existing", str(args.existing)]
    bench_command += args.overrides
    # The load average says how much else ran; of a finished run's start it is unknown.
    host = machine(load=args.existing is None)
    if args.existing is not None:
        run_dir = args.existing
    else:
        output_dir = Path(args.output_dir or tempfile.mkdtemp(prefix="pixelwise-budget-"))
        slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in args.run)
        run_dir = output_dir / f"{args.results}-{slug}"
        command = [
            "--quiet",
            "train",
            args.config,
            *args.overrides,
            f"output_dir={output_dir}",
            f"name={run_dir.name}",
        ]
        pixelwise = str(Path(sys.executable).parent / "pixelwise")
        subprocess.run([pixelwise, *command], check=True, cwd=ROOT)
    points = curve(run_dir, args.metric)

    path = RESULTS / f"{args.results}.json"
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = json.loads(path.read_text()) if path.is_file() else {"points": []}
    result["points"] = [p for p in result["points"] if p["run"] != args.run]
    result["points"] += [{"run": args.run, **p} for p in points]
    result.setdefault("runs", {})[args.run] = {
        "command": shlex.join(bench_command),
        "machine": host,
        "date": datetime.date.today().isoformat(),
        "final": final_evaluation(run_dir, args.metric),
    }
    result["metrics"] = args.metric
    path.write_text(json.dumps(result, indent=1))
    for p in points:
        print(
            f"{args.run}: epoch {p['epoch']:>3}  {p['minutes']:7.1f} min  "
            + "  ".join(f"{m}={p[m]:.4f}" for m in args.metric)
        )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
