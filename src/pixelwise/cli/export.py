"""``pixelwise export CHECKPOINT --format onnx|safetensors|torchscript [--out PATH]``"""

from __future__ import annotations

import argparse

from ._common import add_checkpoint_choice


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export to ONNX, safetensors or TorchScript",
        description="Export a checkpoint and verify the export: it is read back and run on "
        "the same inputs as the PyTorch model (ONNX through ONNX Runtime), and the largest "
        "absolute difference is printed. ONNX has a dynamic batch dimension (and dynamic "
        "height and width for segmentation where the model allows); every format carries "
        "the model card.",
    )
    p.add_argument("checkpoint", help="run directory or checkpoint file (.pt)")
    p.add_argument(
        "--format", default="onnx", choices=["onnx", "safetensors", "torchscript", "hf"], dest="fmt"
    )
    p.add_argument(
        "--out", help="output file (default: beside the checkpoint, e.g. checkpoints/best.onnx)"
    )
    p.add_argument("--opset", type=int, help="ONNX opset (default: the exporter's)")
    add_checkpoint_choice(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..export import export

    result = export(args.checkpoint, args.fmt, out=args.out, opset=args.opset, which=args.which)
    how = (
        result.format if result.format == result.exporter else f"{result.format}, {result.exporter}"
    )
    print(f"wrote {result.path} ({how})")
    if result.format not in ("safetensors", "hf"):
        print(f"dynamic dimensions: {', '.join(result.dynamic) or 'none'}")
    for note in result.notes:
        print(f"note: {note}")
    checked = ", ".join("x".join(map(str, shape)) for shape, _ in result.checks)
    runtime = "ONNX Runtime" if result.format == "onnx" else "the reloaded export"
    print(f"verified with {runtime} on inputs {checked}")
    print(f"max abs difference vs PyTorch: {result.max_abs_diff:.3g}")
    return 0
