"""Segmentation training throughput of camvid_fast's network (a U-Net decoder on a
ResNet-18 encoder) on random batches: images per second of the training step.

    python bench/bench_segmentation_step.py [--device cuda] [--size 360 480] [--batch-size 8]
        [--steps 20] [--amp bf16] [--channels-last] [--compile] [--out FILE.json]

The step is forward, cross-entropy over every pixel, backward and an SGD step; the
first steps (compilation, cuDNN's algorithm search) are left out of the timing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from pixelwise.models import create_model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", type=int, nargs=2, default=[360, 480])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--amp", choices=["off", "bf16"], default="bf16")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--out")
    args = parser.parse_args()
    device = torch.device(args.device)
    model = create_model("unet", num_classes=11, encoder="resnet18").to(device)
    memory = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory)
    step_model = torch.compile(model) if args.compile else model
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    images = torch.randn(args.batch_size, 3, *args.size, device=device).to(memory_format=memory)
    masks = torch.randint(0, 11, (args.batch_size, *args.size), device=device)
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16)
        if args.amp == "bf16"
        else contextlib.nullcontext()
    )

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss = F.cross_entropy(step_model(images), masks)
        loss.backward()
        optimizer.step()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(args.warmup):
        step()
    sync()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync()
    seconds = time.perf_counter() - start
    result = {
        "network": "camvid_fast (U-Net decoder on ResNet-18)",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "size": args.size,
        "batch_size": args.batch_size,
        "amp": args.amp,
        "channels_last": args.channels_last,
        "compile": args.compile,
        "images_per_second": args.steps * args.batch_size / seconds,
    }
    print(json.dumps(result))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
