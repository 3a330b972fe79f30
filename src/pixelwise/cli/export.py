"""``pixelwise export``: export to ONNX, safetensors or TorchScript."""

from __future__ import annotations

import argparse

from ._common import not_available


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export to ONNX, safetensors or TorchScript",
        description="export to ONNX, safetensors or TorchScript (not available yet)",
    )
    p.set_defaults(func=not_available("export", "issue 9"))
