"""``pixelwise tune lr CONFIG [key=value ...] [--start 1e-7] [--end 10] [--steps 100] [--out DIR]``"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..engine.lr_finder import LrRangeResult


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tune",
        help="find settings before training (tune lr: the learning-rate range test)",
        description="Find settings before training a config.",
    )
    tasks = p.add_subparsers(dest="tune_task", metavar="TASK", required=True)
    lr = tasks.add_parser(
        "lr",
        help="learning-rate range test (Smith 2015): plot and a suggested optim.lr",
        description="Train on mini-batches of the config's data with a learning rate growing "
        "exponentially from --start to --end (one optimiser step each), until the end or "
        "until the smoothed loss exceeds 4x its best; write the loss against the rate as "
        "lr_range_<name>.png and print the suggested optim.lr: the steepest descent of the "
        "smoothed loss. Nothing is kept: no run directory, no checkpoint.",
    )
    lr.add_argument("config", help="YAML file or bundled config name")
    lr.add_argument(
        "overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. optim.name=adamw"
    )
    lr.add_argument("--start", type=float, default=1e-7, help="first learning rate (1e-7)")
    lr.add_argument("--end", type=float, default=10.0, help="last learning rate (10)")
    lr.add_argument("--steps", type=int, default=100, help="mini-batches, one rate each (100)")
    lr.add_argument("--out", default=".", help="folder of the plot (default: here)")
    lr.set_defaults(func=run_lr)


def run_lr(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..engine.lr_finder import find_lr

    cfg = load_config(args.config, list(args.overrides))
    result = find_lr(cfg, args.start, args.end, args.steps)
    plot = plot_lr_range(result, Path(args.out) / f"lr_range_{cfg.name}.png")
    ended = "the loss diverged" if result.diverged else "the end of the range"
    print(
        f"lr range test: {len(result.lrs)} mini-batches from {result.lrs[0]:.3g} to "
        f"{result.lrs[-1]:.3g} ({ended}); lowest smoothed loss at lr {result.best_lr:.3g}"
    )
    print(f"suggested optim.lr={result.suggestion:.3g} ({result.method} of the smoothed loss)")
    print(f"plot: {plot}")
    return 0


def plot_lr_range(result: LrRangeResult, path: Path) -> Path:
    """The raw and smoothed loss against the rate (log axis), the suggestion marked."""
    # matplotlib loads in about a second: only for this command
    import matplotlib.pyplot as plt

    from ..errors import writing
    from ..viz.figures import save_figure

    fig, ax = plt.subplots(figsize=(7.0, 4.2))
    ax.plot(result.lrs, result.losses, color="0.75", linewidth=1, label="loss")
    ax.plot(result.lrs, result.smoothed, color="C0", linewidth=2, label="smoothed loss")
    ax.axvline(result.suggestion, color="C3", linestyle="--", linewidth=1.2)
    ax.plot([], [], color="C3", linestyle="--", label=f"suggested {result.suggestion:.3g}")
    ax.set_xscale("log")
    low = min(min(result.losses), min(result.smoothed))
    ax.set_ylim(low - 0.05 * abs(low), result.smoothed[0] * 1.5)  # the divergence off the top
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title(f"learning-rate range test ({result.method})")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=9)
    fig.tight_layout()
    with writing(path):
        return save_figure(fig, path)
