"""``pixelwise models [PATTERN] [--task ...]``: models with task, parameters and input size."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        help="list the model zoo",
        description="List every model (or those matching a shell-style PATTERN such as "
        "'resnet*') with its task, parameter count and input size.",
    )
    p.add_argument(
        "pattern", nargs="?", help="shell-style name pattern, e.g. 'resnet*' or '*unet*'"
    )
    p.add_argument("--task", choices=["classification", "segmentation"], help="only this task")
    p.set_defaults(func=run)


def parameter_count(name: str) -> int:
    """Count parameters without allocating them: build on the meta device."""
    import torch

    from ..models import create_model

    with torch.device("meta"):
        model = create_model(name)
    return sum(p.numel() for p in model.parameters())


def run(args: argparse.Namespace) -> int:
    from ..models import ModelError, get_spec, list_models

    names = list_models(args.pattern, task=args.task)
    if not names:
        task = f" of task {args.task}" if args.task else ""
        raise ModelError(
            f"no model{task} matches {args.pattern!r}; `pixelwise models` lists them all"
        )
    print(f"{'name':<26} {'task':<15} {'params':>10}  {'input':<12} description")
    for name in names:
        spec = get_spec(name)
        size = "x".join(str(s) for s in spec.input_size)
        params = parameter_count(name)
        print(f"{name:<26} {spec.task:<15} {params / 1e6:>9.2f}M  {size:<12} {spec.description}")
    return 0
