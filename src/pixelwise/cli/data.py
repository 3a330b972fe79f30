"""``pixelwise data check|stats|shard CONFIG [key=value ...]``: find bad data before training,
or write a dataset as WebDataset tar shards.

``check`` reads every file once and exits 1 when anything would break training (2 for a
config error); ``stats`` prints mean/std, class frequencies and class weights and writes
them to a JSON that ``data.class_weights`` can reference.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

MAX_LISTED = 20


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "data",
        help="check datasets and compute statistics",
        description="Check a config's dataset for problems, or compute its statistics.",
    )
    actions = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check",
        help="read every file once; exit 1 if anything would break training",
        description="Read every file of every split once and report counts, sizes and "
        "problems. Exit status 1 when anything would break training.",
    )
    stats = actions.add_parser(
        "stats",
        help="mean/std, class frequencies and class weights",
        description="Per-channel mean/std, class frequencies and class weights "
        "(inverse frequency, median frequency) of the training split, written to a JSON "
        "that data.class_weights can name.",
    )
    for action in (check, stats):
        action.add_argument("config", help="YAML file or bundled config name")
        action.add_argument(
            "overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. data.root=..."
        )
        action.add_argument("--limit", type=int, help="only the first N items of each split")
        action.add_argument(
            "--workers", type=int, help="reader processes (default data.num_workers)"
        )
    shard = actions.add_parser(
        "shard",
        help="write the dataset as WebDataset tar shards (data.format=webdataset)",
        description="Write every split of a config's dataset (any format) into "
        "OUT/<split>-NNNNNN.tar shards, with classes.json and counts.json; train from them "
        "with data.format=webdataset data.root=OUT.",
    )
    shard.add_argument("config", help="YAML file or bundled config name")
    shard.add_argument(
        "overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. data.root=..."
    )
    shard.add_argument("--out", required=True, help="directory for the shards")
    shard.add_argument(
        "--shard-size", type=int, default=10_000, help="samples per shard (default 10000)"
    )
    shard.set_defaults(func=run_shard)
    check.add_argument("--json", help="also write the full report to this JSON file")
    check.set_defaults(func=run_check)
    stats.add_argument("--split", help="which split (default: data.train_split)")
    stats.add_argument("--out", help="JSON path (default: <output_dir>/data_stats/<name>.json)")
    stats.add_argument(
        "--no-pixels", action="store_true", help="skip mean/std (reads only labels or masks)"
    )
    stats.set_defaults(func=run_stats)


def _load(args: argparse.Namespace):
    from ..config import load_config

    return load_config(args.config, list(args.overrides))


def run_check(args: argparse.Namespace) -> int:
    from ..data.check import check_data
    from ..errors import writing

    cfg = _load(args)
    report = check_data(cfg, limit=args.limit, num_workers=args.workers)
    print(format_check(report))
    if args.json:
        with writing(args.json):
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(report.to_dict(), indent=1))
        print(f"report written to {args.json}")
    return 0 if report.ok else 1


def format_check(report) -> str:
    what = "pixels" if report.task == "segmentation" else "images"
    lines = [
        f"data.format={report.format} root={report.root}: {report.task}, "
        f"{len(report.class_names)} classes" + (" (first items only)" if report.limited else ""),
        "",
        f"  {'split':<10} {'items':>8} {'readable':>9}  sizes (height x width)",
    ]
    for name, split in report.splits.items():
        common = ", ".join(f"{h}x{w} ({n})" for (h, w), n in split.sizes.most_common(3))
        more = len(split.sizes) - 3
        common += f", {more} more sizes" if more > 0 else ""
        lines.append(f"  {name:<10} {split.items:>8} {split.readable:>9}  {common}")
    names = list(report.splits)
    width = max([len("class"), *(len(c) for c in report.class_names)])
    lines += [
        "",
        f"  {what} per class:",
        "  " + f"{'class':<{width}}  " + "  ".join(f"{n:>12}" for n in names),
    ]
    for c, cname in enumerate(report.class_names):
        row = "  ".join(f"{report.splits[n].class_counts[c]:>12,}" for n in names)
        lines.append(f"  {cname:<{width}}  {row}")
    if report.task == "segmentation":
        row = "  ".join(f"{report.splits[n].ignored_pixels:>12,}" for n in names)
        lines.append(f"  {'(ignored)':<{width}}  {row}")
    lines += [""] + _file_lines(report)
    quiet = [p for p in report.warnings if not p.loud]
    for label, problems in (("errors", report.errors), ("warnings", quiet)):
        if problems:
            lines.append(f"  {len(problems)} {label[:-1]}(s):")
            for p in problems[:MAX_LISTED]:
                lines.append(f"    [{p.kind}] {p.message}")
            if len(problems) > MAX_LISTED:
                lines.append(f"    ... {len(problems) - MAX_LISTED} more (--json PATH lists all)")
    lines += [f"WARNING: [{p.kind}] {p.message}" for p in report.loud]
    if not report.ok:
        lines.append(f"FAILED: {len(report.errors)} problem(s) would break training")
    elif report.loud:
        lines.append(
            "OK: nothing found that would break training, but the figures would be "
            "meaningless until the WARNING above is fixed"
        )
    else:
        lines.append("OK: nothing found that would break training")
    return "\n".join(lines)


def _file_lines(report) -> list[str]:
    """Per split: file kinds (format and mode) and the most common stored mask values."""
    from ..data.findings import histogram_text

    lines = []
    for name, split in report.splits.items():
        for label, counter in (
            ("image files", split.image_kinds),
            ("mask files", split.mask_kinds),
        ):
            if counter:
                kinds = ", ".join(f"{kind} ({n:,})" for kind, n in counter.most_common(4))
                more = len(counter) - 4
                lines.append(f"  {name} {label}: {kinds}" + (f", {more} more" if more > 0 else ""))
        if split.mask_values:
            lines.append(f"  {name} stored mask values: {histogram_text(split.mask_values)}")
    return lines + [""] if lines else lines


def run_stats(args: argparse.Namespace) -> int:
    from ..data.stats import compute_stats, write_stats

    cfg = _load(args)
    stats = compute_stats(
        cfg,
        split=args.split,
        pixel_stats=not args.no_pixels,
        num_workers=args.workers,
        limit=args.limit,
    )
    out = Path(args.out) if args.out else Path(cfg.output_dir) / "data_stats" / f"{cfg.name}.json"
    write_stats(stats, out, cfg)
    unit = "pixels" if stats.task == "segmentation" else "images"
    print(f"{stats.split} split: {stats.items} items ({stats.unreadable} unreadable)")
    if stats.mean is not None:
        print(f"  mean: {stats.mean}\n  std:  {stats.std}")
    width = max([len("class"), *(len(c) for c in stats.class_names)])
    methods = list(stats.class_weights)
    print(
        f"\n  {'class':<{width}}  {unit:>12}  {'frequency':>9}  "
        + "  ".join(f"{m:>17}" for m in methods)
    )
    for c, name in enumerate(stats.class_names):
        weights = "  ".join(f"{stats.class_weights[m][c]:>17.4f}" for m in methods)
        print(
            f"  {name:<{width}}  {stats.class_counts[c]:>12,}  "
            f"{stats.class_frequency[c]:>9.4f}  {weights}"
        )
    for problem in stats.problems:
        print(f"{'WARNING' if problem.loud else 'warning'}: [{problem.kind}] {problem.message}")
    print(f"\nwritten to {out}; use it with")
    if stats.mean is not None:
        mean, std = (json.dumps(v, separators=(",", ":")) for v in (stats.mean, stats.std))
        print(f"  data.mean={mean} data.std={std}")
    if stats.task == "multilabel":
        weights = json.dumps([round(w, 4) for w in stats.class_weights["pos_weight"]])
        print(f"  loss.pos_weight={weights}  (or loss.pos_weight=auto)".replace(", ", ","))
    else:
        print(f"  data.class_weights={out}  ({stats.default_method}; or {out}:<method>)")
    return 0


def run_shard(args: argparse.Namespace) -> int:
    from ..data import build_raw_splits
    from ..data.shards import write_shards
    from ..errors import UserError, writing

    if args.shard_size < 1:
        raise UserError(f"--shard-size must be >= 1, got {args.shard_size}")
    cfg = _load(args)
    raw, class_names = build_raw_splits(cfg)
    out = Path(args.out)
    with writing(str(out)):
        counts = write_shards(raw, class_names, out, args.shard_size)
    for split, count in counts.items():
        shards = -(-count // args.shard_size)
        print(f"{split}: {count} samples in {shards} shard(s)")
    print(f"written to {out}; train with data.format=webdataset data.root={out}")
    return 0
