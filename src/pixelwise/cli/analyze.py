"""``pixelwise analyze MODEL_OR_RUN``: a model layer by layer, and what a trained one sees.

Without a picture flag it prints the per-layer table (output shape, parameters, MACs,
receptive field, cumulative stride) and the totals; ``--layer NAME`` works one layer's
formulas through by hand. On a run directory, ``--features LAYER``, ``--tsne`` and
``--gradcam`` draw pictures into ``RUN_DIR/analysis/``, each named after what produced
it (``picture_file``). ``--input-size`` is refused where it is ambiguous or below the
model's total stride (``parse_input_size``, ``check_input_size``).
"""

from __future__ import annotations

import argparse
import hashlib
import re
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import MissingFileError, UserError

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

    from ..run import RunDir

FLOPS_SENTENCE = (
    "FLOPs = 2 x MACs (a multiply and an add per multiply-accumulate). Libraries disagree on\n"
    'which one they call "FLOPs": torchvision\'s GFLOPS, fvcore and most papers count MACs,\n'
    "torch.utils.flop_counter counts 2 x MACs; both are given here."
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "analyze",
        help="per-layer complexity and receptive fields; feature maps, t-SNE, Grad-CAM",
        description="Take a model apart: for a zoo model name or a run directory, a per-layer "
        "table of output shape, parameters, MACs, receptive field and cumulative stride, with "
        "totals. On a run directory, --features, --tsne and --gradcam draw what the trained "
        "model sees (PNG files in RUN_DIR/analysis, or --output). Formulas: docs/analysis.md.",
    )
    p.add_argument("target", help="model name (see `pixelwise models`) or run directory")
    p.add_argument(
        "--input-size",
        help="CxHxW, HxW or one side, e.g. 3x224x224 (default: the model's or the run's)",
    )
    p.add_argument("--num-classes", type=int, help="classes of a zoo model (default: its own)")
    p.add_argument("--layer", help="work this layer's output size, RF, params and MACs by hand")
    p.add_argument(
        "--all-layers", action="store_true", help="also list layers without params or MACs"
    )
    pictures = p.add_argument_group("pictures of a trained run (TARGET is a run directory)")
    pictures.add_argument("--features", metavar="LAYER", help="feature maps of LAYER, as grids")
    pictures.add_argument(
        "--tsne",
        nargs="*",
        metavar="LAYER",
        help="t-SNE of a split's features, coloured by class (default layers: the first "
        "stage and the penultimate features; 'penultimate' names the latter)",
    )
    pictures.add_argument(
        "--gradcam",
        action="store_true",
        help="Grad-CAM and Grad-CAM++ heat maps of the images (classification: the predicted "
        "class; segmentation: the mask of the class predicted on most pixels)",
    )
    pictures.add_argument(
        "--gradcam-layer",
        metavar="LAYER",
        help="Grad-CAM layer (default: the deepest stage or conv whose map is at least 4x4)",
    )
    pictures.add_argument(
        "--gradcam-class",
        metavar="NAME",
        help="explain this class (name or index) instead of the predicted one",
    )
    pictures.add_argument(
        "--image", nargs="+", metavar="PATH", help="image files (default: --count split images)"
    )
    pictures.add_argument("--split", help="split to draw from (default: test, else val)")
    pictures.add_argument("--count", type=int, default=8, help="images for maps (default 8)")
    pictures.add_argument(
        "--samples", type=int, default=1000, help="images for t-SNE (default 1000)"
    )
    pictures.add_argument("--output", help="folder for the pictures (default RUN_DIR/analysis)")
    p.set_defaults(func=run)


def parse_input_size(text: str, channels: int = 3) -> tuple[int, int, int]:
    """'3x224x224' -> (3, 224, 224); '224x160' -> (channels, 224, 160); '224' -> square.

    Refused with a ``UserError``: a size that is not one to three positive integers,
    and the two slips that read as a valid size with another meaning: ``3x32`` (a
    3-pixel-high image, or channels and a side?) and ``224x224x3`` (channels last).
    """
    try:
        parts = [int(v) for v in text.lower().replace("×", "x").split("x")]
    except ValueError:
        parts = []
    if not 1 <= len(parts) <= 3 or min(parts) < 1:
        raise UserError(f"--input-size {text!r}: expected CxHxW, HxW or one side, e.g. 3x224x224")
    if len(parts) == 2 and parts[0] <= 4 < parts[1]:
        height, width = parts
        raise UserError(
            f"--input-size {text!r} is ambiguous: as HxW it is {height} pixel(s) high and "
            f"{width} wide; write {height}x{width}x{width} for {height} channel(s) of "
            f"{width}x{width}, or give both sides, e.g. {width}x{width}"
        )
    if len(parts) == 3 and parts[2] <= 4 < parts[0]:
        raise UserError(
            f"--input-size {text!r} reads as {parts[0]} channels of {parts[1]}x{parts[2]}: "
            f"channels come first (CxHxW), e.g. {parts[2]}x{parts[0]}x{parts[1]}"
        )
    if len(parts) == 1:
        parts = [channels, parts[0], parts[0]]
    elif len(parts) == 2:
        parts = [channels, *parts]
    return parts[0], parts[1], parts[2]


def total_stride(model: nn.Module, size: tuple[int, ...]) -> tuple[float, float]:
    """(height, width) of the input pixels between two pixels of the model's coarsest
    feature map, measured at ``size``: the largest cumulative stride of a layer whose
    output is still a map (global and squeeze-excite pools, whose one pixel spans any
    input, are left out)."""
    from ..analysis import complexity

    strides = [(1.0, 1.0)]
    for row in complexity(model, size).rows:
        shape = row.output_shape or ()
        if (
            len(shape) == 3
            and min(shape[1:]) > 1
            and row.stride != "-"
            and "Adaptive" not in row.type
        ):
            jump = [float(v) for v in row.stride.split("x")]
            strides.append((jump[0], jump[-1]))
    return max(s[0] for s in strides), max(s[1] for s in strides)


def check_input_size(
    model: nn.Module, size: tuple[int, ...], default: tuple[int, ...], label: str
) -> None:
    """Refuse a spatial size below the model's total stride (measured at its own size
    ``default``): its coarsest feature map would be under one pixel, or padding alone."""
    stride_h, stride_w = total_stride(model, tuple(default))
    if size[1] < stride_h or size[2] < stride_w:
        least = f"{size[0]}x{max(size[1], int(stride_h))}x{max(size[2], int(stride_w))}"
        stride = f"{stride_h:g}" if stride_h == stride_w else f"{stride_h:g}x{stride_w:g}"
        raise UserError(
            f"--input-size {'x'.join(map(str, size))} is smaller than {label}'s total stride "
            f"of {stride} pixels (its coarsest feature map would be under one pixel); "
            f"use at least {least}, e.g. its own size {'x'.join(map(str, default))}"
        )


def run(args: argparse.Namespace) -> int:
    target = Path(args.target)
    is_run = target.is_dir() or target.is_file()
    wants_pictures = args.features or args.tsne is not None or args.gradcam
    if wants_pictures:
        if not is_run:
            raise UserError(
                f"--features, --tsne and --gradcam need a trained run directory, got {args.target!r}"
            )
        return draw_pictures(args, target)
    return print_complexity(args, target if is_run else None)


# --------------------------------------------------------------------------- the table
def _model_for(
    args: argparse.Namespace, run_dir: Path | None
) -> tuple[nn.Module, tuple[int, ...], str]:
    """(model on the meta device, input size, label) for a zoo name or a run."""
    import torch

    from ..models import create_model, get_spec

    if run_dir is None:
        spec = get_spec(args.target)
        default = spec.input_size
        size = parse_input_size(args.input_size, default[0]) if args.input_size else default
        build = partial(
            create_model, args.target, num_classes=args.num_classes, in_channels=size[0]
        )
        label = args.target
    else:
        from ..run import RunDir

        run = RunDir(run_dir)
        card = run.read_checkpoint(run.default_checkpoint()).card
        default = (card.in_channels, *card.image_size)
        size = parse_input_size(args.input_size, card.in_channels) if args.input_size else default
        build = partial(
            create_model,
            card.model,
            num_classes=card.num_classes,
            in_channels=size[0],
            **card.options,
        )
        label = f"{card.model} ({run.path})"
    try:
        with torch.device("meta"):
            model = build()
    except (NotImplementedError, RuntimeError):
        model = build()
    own = (size[0], *default[1:])  # the model's own sides, with the channels asked for
    if tuple(size) != own:
        check_input_size(model, tuple(size), own, label.split(" ")[0])
    return model, tuple(size), label


def print_complexity(args: argparse.Namespace, run_dir: Path | None) -> int:
    from ..analysis import complexity, explain_layer, format_count

    model, size, label = _model_for(args, run_dir)
    result = complexity(model, size)
    shown = [
        r
        for r in result.rows
        if args.all_layers
        or r.params
        or r.macs
        or r.note
        or "Pool" in r.type
        or "Upsample" in r.type
    ]
    name_width = min(max((len(r.name) for r in shown), default=5), 48)
    type_width = min(max((len(r.type) for r in shown), default=4), 24)
    print(f"{label} at {'x'.join(map(str, size))} (per image)\n")
    header = (
        f"{'layer':<{name_width}}  {'type':<{type_width}}  {'output':>14}  {'params':>12}  "
        f"{'MACs':>15}  {'RF':>7}  {'stride':>6}"
    )
    print(header)
    print("-" * len(header))
    for r in shown:
        print(
            f"{r.name[:name_width]:<{name_width}}  {r.type[:type_width]:<{type_width}}  "
            f"{r.shape_text:>14}  {r.params:>12,}  {r.macs:>15,}  {r.receptive_field:>7}  "
            f"{r.stride:>6}" + (f"  ({r.note})" if r.note else "")
        )
    print("-" * len(header))
    hidden = len(result.rows) - len(shown)
    if hidden:
        print(f"({hidden} layers without parameters or MACs hidden; --all-layers lists them)")
    print(f"\ntotal parameters  {result.params:>18,}  ({format_count(result.params)})")
    print(
        f"total MACs        {result.macs:>18,}  ({format_count(result.macs)})"
        f"    FLOPs {result.flops:,} ({format_count(result.flops)})"
    )
    by_type = sorted(result.macs_by_type().items(), key=lambda kv: -kv[1])
    shares = [f"{t} {100 * m / max(result.macs, 1):.1f}%" for t, m in by_type if m]
    print(f"MACs by layer type: {', '.join(shares[:6])}")
    print(FLOPS_SENTENCE)
    if args.layer:
        print()
        print(explain_layer(model, args.layer, size))
    return 0


# --------------------------------------------------------------------------- pictures
def _load_images(
    args: argparse.Namespace, run: RunDir, split: str
) -> tuple[torch.Tensor, list[np.ndarray], list[str]]:
    """(normalised batch, display arrays, captions) from --image files or a split."""
    import torch
    from torchvision import tv_tensors

    from ..data.io import read_image
    from ..data.transforms import build_transform
    from ..viz.images import to_display

    cfg = run.config()
    mean, std = run.read_checkpoint(run.default_checkpoint()).card.mean_std
    if args.image:
        transform = build_transform(cfg.data, train=False, task=cfg.task)
        tensors, captions = [], []
        for path in args.image:
            if not Path(path).is_file():
                raise MissingFileError(f"--image {path}: no such file")
            raw = read_image(path, cfg.data.in_channels, cfg.data.max_image_pixels)
            image, _ = transform(tv_tensors.Image(raw), 0)
            tensors.append(image.as_subclass(torch.Tensor))
            captions.append(Path(path).name)
        images = torch.stack(tensors)
    else:
        from ..viz.samples import spread_indices

        dataset = run.splits().datasets[split]
        items = [dataset[i] for i in spread_indices(len(dataset), args.count)]
        images = torch.stack([item[0] for item in items])
        names = _class_names(run)
        captions = [
            f"{split} #{i}: {names[int(item[1])]}" if item[1].dim() == 0 else f"{split} #{i}"
            for i, item in zip(spread_indices(len(dataset), args.count), items)
        ]
    return images, [to_display(img, mean, std) for img in images], captions


def picture_file(out: Path, kind: str, layers: list[str], source: str, checkpoint: str) -> Path:
    """``<kind>_<layers>_<source>[-<checkpoint>].png`` in ``out``: a picture's name says
    what produced it, so one analysis never overwrites another's (the rule of
    ``RunDir.eval_file``). ``layers`` are joined by ``+``; ``source`` names the images
    (``test-17``: image 17 of the test split; ``test-8images``; a file's stem); the
    checkpoint is named unless it is ``best``."""
    parts = [kind, "+".join(layers), source]
    name = "_".join(re.sub(r"[^\w.+-]", "_", part) for part in parts)
    return out / f"{name}{'' if checkpoint == 'best' else f'-{checkpoint}'}.png"


def _image_names(args: argparse.Namespace, run: RunDir, split: str) -> list[str]:
    """One name per image of ``_load_images``: ``<split>-<index>``, or the file's stem
    (``-2``, ``-3`` for stems taken twice)."""
    if not args.image:
        from ..viz.samples import spread_indices

        size = len(run.splits().datasets[split])
        return [f"{split}-{i}" for i in spread_indices(size, args.count)]
    names: list[str] = []
    for path in args.image:
        stem, name, n = Path(path).stem, Path(path).stem, 1
        while name in names:
            n += 1
            name = f"{stem}-{n}"
        names.append(name)
    return names


def _images_source(args: argparse.Namespace, run: RunDir, split: str) -> str:
    """The name of a set of images in one picture: ``test-8images``, the files' stems
    (up to three), or their count and a digest of their paths."""
    names = _image_names(args, run, split)
    if not args.image:
        return f"{split}-{len(names)}images"
    if len(names) <= 3:
        return "+".join(names)
    digest = hashlib.sha1("\n".join(args.image).encode()).hexdigest()[:8]
    return f"{len(names)}images-{digest}"


def _checkpoint_name(run: RunDir) -> str:
    return run.read_checkpoint(run.default_checkpoint()).path.stem


def _class_names(run: RunDir) -> list[str]:
    return list(run.read_checkpoint(run.default_checkpoint()).card.class_names)


def _model(run: RunDir) -> nn.Module:
    return run.load_model(run.default_checkpoint())[0]


def draw_pictures(args: argparse.Namespace, target: Path) -> int:
    from ..run import RunDir

    run = RunDir(target)
    split = args.split or _default_split(run)
    out = Path(args.output) if args.output else run.analysis_dir
    written = []
    if args.features:
        written += _draw_features(args, run, split, out)
    if args.tsne is not None:
        written.append(_draw_tsne(args, run, split, out))
    if args.gradcam:
        written.append(_draw_gradcam(args, run, split, out))
    for path in written:
        print(f"written: {path}")
    return 0


def _default_split(run: RunDir) -> str:
    datasets = run.splits().datasets
    cfg = run.config()
    for name in (cfg.data.test_split, cfg.data.val_split):
        if name in datasets:
            return name
    return next(iter(datasets))


def _draw_features(args: argparse.Namespace, run: RunDir, split: str, out: Path) -> list[Path]:
    from ..analysis import feature_maps
    from ..viz.features import plot_feature_maps

    images, pictures, captions = _load_images(args, run, split)
    maps = feature_maps(_model(run), args.features, images)
    names, checkpoint = _image_names(args, run, split), _checkpoint_name(run)
    return [
        plot_feature_maps(
            maps[i],
            picture_file(out, "features", [args.features], names[i], checkpoint),
            title=f"{args.features} · {captions[i]}",
            image=pictures[i],
        )
        for i in range(len(images))
    ]


def _draw_tsne(args: argparse.Namespace, run: RunDir, split: str, out: Path) -> Path:
    from ..analysis import default_tsne_layers, layer_features, tsne_embedding
    from ..viz.features import plot_tsne

    if run.config().task != "classification":
        raise UserError("--tsne colours images by their class: it needs a classification run")
    model = _model(run)
    layers = args.tsne or default_tsne_layers(model)
    dataset = run.splits().datasets[split]
    sets = layer_features(model, dataset, layers, max_samples=args.samples)
    embeddings = {s.layer: tsne_embedding(s.features, seed=run.config().seed) for s in sets}
    count = len(sets[0].labels)
    title = f"t-SNE of {count} {split} images"
    path = picture_file(
        out, "tsne", [s.layer for s in sets], f"{split}-{count}images", _checkpoint_name(run)
    )
    return plot_tsne(embeddings, sets[0].labels, _class_names(run), path, title)


def _draw_gradcam(args: argparse.Namespace, run: RunDir, split: str, out: Path) -> Path:
    """Grad-CAM and Grad-CAM++ of a classifier's class or of a segmentation model's mask
    of one class (its logits summed over the pixels predicted as it)."""
    from ..analysis import grad_cam
    from ..viz.features import plot_gradcam
    from ..viz.segmentation import background_index

    names = _class_names(run)
    segmentation = run.config().task == "segmentation"
    chosen = _class_index(args.gradcam_class, names) if args.gradcam_class else None
    images, pictures, captions = _load_images(args, run, split)
    cam = grad_cam(
        _model(run),
        images,
        layer=args.gradcam_layer,
        target_classes=None if chosen is None else [chosen] * len(images),
        skip_class=background_index(names) if segmentation else None,
    )
    if cam.coverage is not None:
        labels = [
            f"{caption}\n{names[int(c)]}: {float(share):.0%} of pixels"
            for caption, c, share in zip(captions, cam.classes, cam.coverage)
        ]
        target = "the named class's logits over its predicted pixels (outlined)"
    else:
        arrow = "for" if chosen is not None else "→"
        labels = [
            f"{caption}\n{arrow} {names[int(c)]} ({float(p):.0%})"
            for caption, c, p in zip(captions, cam.classes, cam.probabilities)
        ]
        target = "the named class's logit"
    return plot_gradcam(
        pictures,
        cam.heatmaps,
        labels,
        picture_file(
            out,
            "gradcam" if chosen is None else f"gradcam-{names[chosen]}",  # the class explained
            [cam.layer],
            _images_source(args, run, split),
            _checkpoint_name(run),
        ),
        title=f"Grad-CAM and Grad-CAM++ at {cam.layer}: evidence for {target}",
        heatmaps_plusplus=cam.heatmaps_plusplus,
        masks=cam.masks,
    )


def _class_index(text: str, names: list[str]) -> int:
    """``--gradcam-class``: a class name (any case) or index."""
    lowered = [name.lower() for name in names]
    if text.lower() in lowered:
        return lowered.index(text.lower())
    if text.isdigit() and int(text) < len(names):
        return int(text)
    shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
    raise UserError(f"--gradcam-class {text!r}: not a class of this run ({shown})")
