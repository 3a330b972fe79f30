"""How soft a distillation teacher's outputs are at each temperature, on training images.

    python bench/bench_teacher_softness.py RUN_DIR --images ../shared/data/cifar10/train

Prints the mean top probability of ``softmax(logits / T)`` over the first ``--count``
images of each class folder (training images: the temperature is a training choice, so
the test split stays out of it). A teacher trained with label smoothing is already soft
at T=1; docs/recipes.md uses this to choose ``distill.temperature``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torchvision.io import decode_image

from pixelwise.models.base import split_output
from pixelwise.run import RunDir


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", type=Path, help="the teacher's run directory")
    parser.add_argument("--images", type=Path, required=True, help="class folders of images")
    parser.add_argument("--count", type=int, default=100, help="images per class")
    parser.add_argument("--temperatures", type=float, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()

    run = RunDir(args.run)
    which = run.default_checkpoint()
    model, card = run.load_model(which)
    mean, std = card.mean_std
    files = [
        f
        for folder in sorted(args.images.iterdir())
        for f in sorted(folder.iterdir())[: args.count]
    ]
    images = torch.stack([decode_image(str(f)) for f in files]).float() / 255
    if mean is not None and std is not None:
        images = (images - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(
            1, -1, 1, 1
        )
    with torch.no_grad():
        logits = split_output(model(images))[0]
    print(f"{args.run} ({which}.pt), {len(files)} images of {args.images}")
    for t in args.temperatures:
        top = (logits / t).softmax(1).max(1).values.mean().item()
        print(f"T={t:g}: mean top probability {top:.3f} (uniform: {1 / logits.shape[1]:.3f})")


if __name__ == "__main__":
    main()
