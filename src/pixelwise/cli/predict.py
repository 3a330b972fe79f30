"""``pixelwise predict CHECKPOINT INPUTS... [--out DIR] [--tta]``: predict image files with a checkpoint.

Inputs are files, folders (searched recursively for image files) or glob patterns.
Classification writes ``predictions.csv`` and ``predictions.json`` (top-k labels and
probabilities); multi-label the same files with the labels at or above the card's
threshold and every label's probability; segmentation writes ``masks/<name>.png`` (class indices),
``overlays/<name>.png`` (class colours over the image) and ``predictions.json``.
An input that cannot be predicted (missing, empty, not an image, wrong channels, a file
name that is not UTF-8, an empty folder) is reported in one line naming it; the others
are still predicted, and the exit status is 1 when any failed. Without ``--out`` the
files go to a new ``predictions/`` folder in the current directory
(``default_out_dir``), named on the last line.
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import sys
from pathlib import Path
from typing import Any

from ..errors import UserError, writing
from ._common import add_checkpoint_choice


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="predict image files with a trained checkpoint",
        description="Predict image files with a checkpoint alone: the model, the class names "
        "and the preprocessing come from the checkpoint's model card. Classification writes "
        "predictions.csv/.json with the top-k labels; multi-label with every label at or above "
        "the threshold chosen on validation (and each label's probability); segmentation writes index-mask PNGs, "
        "colour overlays and predictions.json.",
    )
    p.add_argument("checkpoint", help="run directory, checkpoint (.pt) or .safetensors export")
    p.add_argument(
        "inputs", nargs="+", help="image files, folders (searched recursively) or glob patterns"
    )
    p.add_argument(
        "--out",
        help="folder for the predictions (created; default: a new predictions/ in the current "
        "directory, predictions-2/ and so on when that holds files)",
    )
    p.add_argument("--topk", type=int, default=5, help="classification: labels per image")
    p.add_argument("--batch-size", type=int, default=32, help="images per forward pass")
    p.add_argument(
        "--sliding-window",
        action="store_true",
        help="segmentation: predict each image at its own size with windows of the training "
        "size (default: as the run was evaluated)",
    )
    p.add_argument(
        "--tta",
        action="store_true",
        help="average each image with its horizontal mirror (two forward passes; the run's "
        "eval.tta_hflip), not done unless asked",
    )
    p.add_argument(
        "--precision",
        choices=["auto", "float32", "bfloat16"],
        default="auto",
        help="auto: bfloat16 where the device computes it natively, else float32; "
        "float32 reproduces pixelwise eval exactly",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the model for prediction (inductor, weights frozen): seconds "
        "to compile each batch shape once, faster for many images",
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    add_checkpoint_choice(p)
    p.set_defaults(func=run)


# --------------------------------------------------------------------------- inputs
def expand_inputs(inputs: list[str]) -> tuple[list[Path], list[str]]:
    """(files to predict, one-line errors): folders and globs give their image files."""
    from ..data.io import IMAGE_EXTENSIONS, is_image_file

    files: list[Path] = []
    errors: list[str] = []
    kinds = ", ".join(IMAGE_EXTENSIONS)
    for text in inputs:
        path = Path(text)
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and is_image_file(p) and not p.name.startswith(".")
            )
            files += found
            if not found:
                errors.append(f"{text}: folder has no image files ({kinds})")
        elif any(c in text for c in "*?["):
            found = sorted(Path(p) for p in glob.glob(text, recursive=True))
            images = [p for p in found if p.is_file() and is_image_file(p)]
            files += images
            if not images:
                errors.append(f"{text}: no image file matches this pattern")
        else:
            errors.append(f"{text}: no such file or folder")
    unique = list(dict.fromkeys(files))  # a file named twice is predicted once
    named = [path for path in unique if utf8_name(path)]
    errors += [
        f"{escaped(path)}: the file name is not valid UTF-8, so the CSV and JSON could not "
        "name it; rename the file"
        for path in unique
        if not utf8_name(path)
    ]
    return named, errors


def utf8_name(path: Path) -> bool:
    """Whether the path can be written as text: a name made of bytes that are not UTF-8
    (a Latin-1 ``café.jpg`` copied from an old disk) reaches Python as lone surrogates."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def escaped(path: Path) -> str:
    """The path with each byte that is not UTF-8 written as ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def output_names(files: list[Path]) -> dict[Path, str]:
    """A distinct file stem per input: ``a/x.png`` and ``b/x.jpg`` give ``x`` and ``x-2``."""
    names: dict[Path, str] = {}
    taken: set[str] = set()
    for path in files:
        name, n = path.stem, 1
        while name in taken:
            n += 1
            name = f"{path.stem}-{n}"
        taken.add(name)
        names[path] = name
    return names


# --------------------------------------------------------------------------- outputs
def default_out_dir(parent: Path) -> Path:
    """``predictions/`` in ``parent``, or the first of ``predictions-2/``, ``-3/``, ...
    that is empty or absent: without ``--out``, earlier predictions are never overwritten
    (and never inside an input folder, where the next run would predict them)."""
    out, n = parent / "predictions", 1
    while out.exists() and (not out.is_dir() or any(out.iterdir())):
        n += 1
        out = parent / f"predictions-{n}"
    return out


def write_classification(out: Path, records: list[dict[str, Any]], topk: int) -> None:
    header = ["input"]
    for rank in range(1, topk + 1):
        header += [f"label_{rank}", f"probability_{rank}"]
    with (out / "predictions.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for record in records:
            row = [record["input"]]
            for entry in record["topk"]:
                row += [entry["label"], f"{entry['probability']:.6f}"]
            writer.writerow(row)


def write_multilabel(out: Path, records: list[dict[str, Any]], class_names: list[str]) -> None:
    """One row per image: its labels (``;``-separated, most probable first), then each
    label's probability in class order."""
    with (out / "predictions.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["input", "labels", *(f"probability_{name}" for name in class_names)])
        for record in records:
            probabilities = [f"{record['probabilities'][name]:.6f}" for name in class_names]
            writer.writerow([record["input"], ";".join(record["labels"]), *probabilities])


def save_segmentation(
    out: Path, name: str, image: Any, result: Any, colors: Any = None
) -> dict[str, Any]:
    """``masks/<name>.png`` (indices; 16-bit above 256 classes) and ``overlays/<name>.png``
    (in the card's ``class_colors``, else the default palette)."""
    import numpy as np
    from PIL import Image

    from ..viz.colors import class_colors
    from ..viz.segmentation import background_index, overlay

    (out / "masks").mkdir(exist_ok=True)
    (out / "overlays").mkdir(exist_ok=True)
    mask = result.mask
    stored = mask if mask.dtype == np.uint8 else mask.astype(np.uint16)
    mask_path = out / "masks" / f"{name}.png"
    Image.fromarray(stored).save(mask_path)
    picture = image.numpy()
    picture = picture[:3] if picture.shape[0] >= 3 else np.repeat(picture[:1], 3, axis=0)
    names = result.class_names
    blended = overlay(
        picture.transpose(1, 2, 0),
        mask,
        class_colors(len(names), colors),
        background=background_index(names),
    )
    overlay_path = out / "overlays" / f"{name}.png"
    Image.fromarray(blended).save(overlay_path)
    return {
        "mask": str(mask_path.relative_to(out)),
        "overlay": str(overlay_path.relative_to(out)),
        "size": list(mask.shape),
        "class_fractions": result.class_fractions(),
    }


# --------------------------------------------------------------------------- the command
def run(args: argparse.Namespace) -> int:
    from ..data.io import DataError
    from ..inference import InputError, load
    from ..log import progress

    if args.topk < 1 or args.batch_size < 1:
        raise UserError("--topk and --batch-size must be at least 1")
    predictor = load(
        args.checkpoint,
        device=args.device,
        checkpoint=args.which,
        precision=args.precision,
        compile=args.compile,
    )
    files, failed = expand_inputs(args.inputs)
    out = Path(args.out) if args.out else default_out_dir(Path.cwd())
    with writing(out):  # before any image is read: a folder that cannot be written
        out.mkdir(parents=True, exist_ok=True)
    names = output_names(files)
    segmentation = predictor.task == "segmentation"
    records: list[dict[str, Any]] = []
    batches = [files[i : i + args.batch_size] for i in range(0, len(files), args.batch_size)]
    for batch in progress(batches, desc="predict", unit="batch"):
        loaded = []
        for path in batch:
            try:
                loaded.append((path, predictor.load_image(path)))
            except (InputError, DataError, OSError) as err:
                failed.append(str(err).strip().splitlines()[0])
        if not loaded:
            continue
        results = predictor.predict(
            [image for _, image in loaded],
            topk=args.topk,
            sliding_window=True if args.sliding_window else None,
            batch_size=args.batch_size,
            tta=args.tta,
        )
        for (path, image), result in zip(loaded, results):
            if segmentation:
                colors = predictor.card.class_colors
                saved = save_segmentation(out, names[path], image, result, colors)
                records.append({"input": str(path), **saved})
            else:
                records.append({"input": str(path), **result.to_dict()})

    if predictor.task == "multilabel":
        with writing(out / "predictions.csv"):
            write_multilabel(out, records, predictor.class_names)
    elif not segmentation:
        with writing(out / "predictions.csv"):
            write_classification(out, records, min(args.topk, len(predictor.class_names)))
    summary = {
        "checkpoint": predictor.source,
        "task": predictor.task,
        "class_names": predictor.class_names,
        "predictions": records,
        "failed": failed,
    }
    with writing(out / "predictions.json"):
        (out / "predictions.json").write_text(json.dumps(summary, indent=1))
    report(records, failed, out, segmentation)
    return 1 if failed else 0


def report(records: list[dict[str, Any]], failed: list[str], out: Path, segmentation: bool) -> None:
    if not segmentation and len(records) <= 20:
        for record in records:
            print(f"{record['input']}: {prediction_line(record)}")
    print(f"{len(records)} image(s) predicted -> {out}")
    if failed:
        print(f"{len(failed)} input(s) failed:", file=sys.stderr)
        for line in failed:
            print(f"  {line}", file=sys.stderr)


def prediction_line(record: dict[str, Any]) -> str:
    """``cat (0.912)`` for a classification; for multi-label every label at or above the
    threshold, ``cat (0.912), dog (0.640)``, or ``no label >= 0.43``."""
    if "topk" in record:
        best = record["topk"][0]
        return f"{best['label']} ({best['probability']:.3f})"
    chosen = [f"{name} ({record['probabilities'][name]:.3f})" for name in record["labels"]]
    return ", ".join(chosen) or f"no label >= {record['threshold']:.2f}"
