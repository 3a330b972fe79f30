"""``pixelwise models [PATTERN] [--task ...] [--pretrained]``: the zoo with each model's
metadata (``pixelwise.models.metadata``); one exact name prints all of it."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        help="list the model zoo",
        description="List every model (or those matching a shell-style PATTERN such as "
        "'resnet*') with its task, parameters, MACs per image and input size; an exact "
        "name prints its whole metadata, including how torchvision's weights expect images.",
    )
    p.add_argument(
        "pattern", nargs="?", help="shell-style name pattern, e.g. 'resnet*' or '*unet*'"
    )
    p.add_argument("--task", choices=["classification", "segmentation"], help="only this task")
    p.add_argument(
        "--pretrained",
        action="store_true",
        help="only models torchvision publishes weights for (model.weights=torchvision)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..models import MODELS, ModelError, get_spec, list_models
    from ..models.metadata import model_meta

    names = list_models(args.pattern, task=args.task, pretrained=args.pretrained)
    if not names:
        task = f" of task {args.task}" if args.task else ""
        raise ModelError(
            f"no model{task} matches {args.pattern!r}; `pixelwise models` lists them all"
        )
    if args.pattern in MODELS:
        print(describe(model_meta(args.pattern), get_spec(args.pattern).description))
        return 0
    header = f"{'name':<26} {'task':<15} {'params':>9} {'GMACs':>8}  {'input':<11} pretrained"
    print(header)
    for name in names:
        meta = model_meta(name)
        size = "x".join(str(s) for s in meta.input_size)
        pretrained = "torchvision" if meta.pretrained else ""
        print(
            f"{name:<26} {meta.task:<15} {meta.params / 1e6:>8.2f}M {meta.macs / 1e9:>8.2f}  "
            f"{size:<11} {pretrained}"
        )
    return 0


def describe(meta, description: str) -> str:
    lines = [
        f"{meta.name}: {description}",
        f"  task          {meta.task}",
        f"  parameters    {meta.params:,} (with {meta.num_classes} classes)",
        f"  MACs / image  {meta.macs:,} at {'x'.join(map(str, meta.input_size))} "
        f"(FLOPs = 2 x MACs = {meta.flops:,})",
    ]
    pretrained = meta.pretrained
    if pretrained is None:
        lines.append("  pretrained    none published (train it, or give model.weights=PATH)")
    else:
        lines += [
            f"  pretrained    {pretrained.source} (model.weights=torchvision, local cache)",
            f"  preprocessing resize {pretrained.resize_size}, crop {pretrained.crop_size}, "
            f"{pretrained.interpolation}, mean {list(pretrained.mean)}, std {list(pretrained.std)}",
        ]
        lines += [f"  {name:<13} {value}" for name, value in pretrained.metrics.items()]
    return "\n".join(lines)
