"""Exporting a checkpoint to ONNX, safetensors or TorchScript, verified after writing.

Every export is read back and run on the same seeded inputs as the PyTorch model; the
largest absolute difference of the logits is reported (``ExportResult.max_abs_diff``).

- **ONNX**: ``torch.export`` (the dynamo exporter) with a dynamic batch dimension and,
  for segmentation, dynamic height and width, checked with ONNX Runtime at sizes other
  than the one traced (sizes that are not a multiple of the model's output stride
  included). Segmentation models that pad internally are exported through
  :class:`ExportableModel`, which pads unconditionally, so that the padding stays a
  function of the input size instead of being fixed at trace time. Where dynamic
  height and width do not export or do not verify, the export falls back to the
  card's ``image_size`` with a dynamic batch and says so. The model card is stored
  as the ONNX metadata property ``pixelwise_card`` (JSON).
- **safetensors**: the state dict (no pickle, nothing runs on load) with the model card
  as the string metadata ``pixelwise_card``; ``pixelwise.load`` reads it back.
- **TorchScript**: ``torch.jit.trace`` (deprecated by PyTorch in favour of
  ``torch.export``), the card as the extra file ``pixelwise_card.json``. Tracing fixes
  Python-computed sizes, so segmentation models that pad keep the traced height and
  width; the check says which dimensions may vary.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .card import ModelCard
from .errors import UserError
from .inference import load
from .log import logger
from .models.base import split_output

FORMATS = ("onnx", "safetensors", "torchscript", "hf")
SUFFIXES = {
    "onnx": ".onnx",
    "safetensors": ".safetensors",
    "torchscript": ".torchscript.pt",
    "hf": "-hf",  # a folder
}
CARD_KEY = "pixelwise_card"
# A check counts as passed below this difference, relative to the logits' scale; the
# tests hold exports to 1e-4 absolute.
CHECK_TOLERANCE = 1e-3


class ExportError(UserError):
    """An export that could not be written or did not reproduce the PyTorch model."""


@dataclass
class ExportResult:
    path: Path
    format: str
    max_abs_diff: float  # over every passed check
    checks: list[tuple[list[int], float]]  # (input shape, max abs difference)
    dynamic: list[str]  # dimensions that may vary: batch, height, width
    exporter: str
    notes: list[str] = field(default_factory=list)


class ExportableModel(nn.Module):
    """The model's main logits; segmentation models that pad get export-friendly padding.

    A :class:`~pixelwise.models.base.SegmentationModel` pads to a multiple of its
    ``size_divisor`` only where needed, a branch that tracing fixes for the traced size.
    Padding by ``(d - size % d) % d`` always (zero when already a multiple) computes the
    same logits and keeps the amount a function of the input size.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.pads = hasattr(model, "forward_padded") and hasattr(model, "size_divisor")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if not self.pads:
            return split_output(self.model(images))[0]
        height, width = images.shape[-2], images.shape[-1]
        d = self.model.size_divisor
        padded = F.pad(images, (0, (d - width % d) % d, 0, (d - height % d) % d))
        logits, _ = self.model.forward_padded(padded)
        return logits[:, :, :height, :width]


# --------------------------------------------------------------------------- inputs
def check_inputs(card: ModelCard, dynamic: Sequence[str]) -> list[torch.Tensor]:
    """Seeded inputs: the traced shape first, then other batches and (if dynamic) sizes."""
    channels = card.in_channels
    height, width = card.image_size
    shapes = [(2, height, width), (1, height, width), (3, height, width)]
    if "height" in dynamic:
        shapes += [(1, height + 13, width + 7), (2, max(1, height // 2) + 3, 2 * width - 1)]
    generator = torch.Generator().manual_seed(0)
    return [torch.randn(n, channels, h, w, generator=generator) for n, h, w in shapes]


def compare(reference: torch.Tensor, output: Any) -> float:
    """Max abs difference, or infinity where shapes differ (a size fixed at trace time)."""
    output = torch.as_tensor(output)
    if tuple(output.shape) != tuple(reference.shape):
        return float("inf")
    return float((output.float() - reference.float()).abs().max())


def run_checks(model: nn.Module, inputs: list[torch.Tensor], run) -> list[tuple[list[int], float]]:
    """``run(x)`` on each input against the model; a run that fails counts as infinity."""
    checks = []
    with torch.no_grad():
        for x in inputs:
            try:
                difference = compare(split_output(model(x))[0], run(x))
            except Exception as err:  # a size the model or the runtime does not take
                logger.debug(f"check at {tuple(x.shape)} failed: {err}")
                difference = float("inf")
            checks.append((list(x.shape), difference))
    return checks


def passed(checks: list[tuple[list[int], float]], scale: float) -> bool:
    return all(diff <= CHECK_TOLERANCE * max(1.0, scale) for _, diff in checks)


def _scale(model: nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        return float(split_output(model(x))[0].abs().max())


# --------------------------------------------------------------------------- ONNX
def export_onnx(
    model: nn.Module, card: ModelCard, out: Path, opset: int | None = None
) -> ExportResult:
    """Dynamic batch (and height/width for segmentation) where it exports and verifies."""
    net = ExportableModel(model).eval()
    attempts = [["batch", "height", "width"], ["batch"]]
    if card.task != "segmentation":
        attempts = attempts[1:]
    notes: list[str] = []
    for dynamic in attempts:
        inputs = check_inputs(card, dynamic)
        try:
            _write_onnx(net, inputs[0], dynamic, card, out, opset)
        except Exception as err:
            notes.append(f"dynamic {', '.join(dynamic)} did not export: {_first_line(err)}")
            logger.info(notes[-1])
            continue
        checks = run_checks(model, inputs, onnx_runner(out))
        if passed(checks, _scale(model, inputs[0])):
            return ExportResult(out, "onnx", _max(checks), checks, dynamic, "torch.export", notes)
        failed = [shape for shape, diff in checks if diff > CHECK_TOLERANCE]
        notes.append(f"dynamic {', '.join(dynamic)} exported but disagrees at {failed}")
        logger.info(notes[-1])
    out.unlink(missing_ok=True)  # never leave an unverified export behind
    raise ExportError(f"{out}: no ONNX export reproduced the model ({'; '.join(notes)})")


def onnx_runner(path: Path):
    """``run(images) -> logits`` with ONNX Runtime on the CPU."""
    import onnxruntime as ort  # optional dependency (the export extra)

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"images": x.numpy()})[0]


def _write_onnx(
    net: nn.Module,
    example: torch.Tensor,
    dynamic: Sequence[str],
    card: ModelCard,
    out: Path,
    opset: int | None,
) -> None:
    from torch.export import Dim  # loads the exporter: only when exporting

    axes = {0: Dim.DYNAMIC}
    if "height" in dynamic:
        axes.update({2: Dim.DYNAMIC, 3: Dim.DYNAMIC})
    with warnings.catch_warnings(), quiet_loggers("onnx_ir", "onnxscript", "torch.onnx"):
        warnings.simplefilter("ignore")
        program = torch.export.export(net, (example,), dynamic_shapes=(axes,), strict=False)
        onnx_program = torch.onnx.export(
            program,
            (example,),
            dynamo=True,
            opset_version=opset,
            input_names=["images"],
            output_names=["logits"],
            verbose=False,
        )
    onnx_program.model.metadata_props[CARD_KEY] = json.dumps(card.to_dict())
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx_program.save(str(out))
    name_dimensions(out, dynamic)


def name_dimensions(path: Path, dynamic: Sequence[str]) -> None:
    """Rename the exporter's symbols (``s77``) to ``batch``, ``height``, ``width``."""
    import onnx  # optional dependency (the export extra)

    model = onnx.load(str(path), load_external_data=False)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    names = {}
    for axis, name in zip((0, 2, 3), ("batch", "height", "width")):
        if name in dynamic and dims[axis].dim_param:
            names[dims[axis].dim_param] = name
    if not names:
        return
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b")
    graph = model.graph
    for value in [*graph.input, *graph.output, *graph.value_info]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param:
                dim.dim_param = pattern.sub(lambda m: names[m.group(1)], dim.dim_param)
    onnx.save(model, str(path))


# --------------------------------------------------------------------------- safetensors
def export_safetensors(model: nn.Module, card: ModelCard, out: Path) -> ExportResult:
    """Weights and the card; verified by loading them into a model built from the card."""
    from safetensors.torch import save_file  # optional dependency (the export extra)

    # Copies: safetensors refuses tensors that share memory (tied weights).
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out), metadata={CARD_KEY: json.dumps(card.to_dict()), "format": "pt"})
    reloaded = load(out, device="cpu", precision="float32").model
    for key, value in reloaded.state_dict().items():
        if not torch.equal(value, tensors[key]):
            raise ExportError(f"{out}: tensor {key} changed on the round trip")
    inputs = check_inputs(card, [])[:2]
    checks = run_checks(model, inputs, lambda x: split_output(reloaded(x))[0])
    return ExportResult(out, "safetensors", _max(checks), checks, [], "safetensors")


# --------------------------------------------------------------------------- Hugging Face
def export_hf(model: nn.Module, card: ModelCard, out: Path) -> ExportResult:
    """A folder as ``save_pretrained`` writes one: ``model.safetensors`` and
    ``config.json`` (timm's keys: ``architecture``, ``num_classes``, ``in_chans``,
    ``pretrained_cfg``, ``label_names``; and the whole card as ``pixelwise_card``), plus a
    ``README.md`` model card. Shared by uploading the folder to a hub repository;
    ``pixelwise.load(folder)`` reads it back, verified here."""
    from safetensors.torch import save_file  # optional dependency (the export extra)

    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(hf_config(card), indent=1))
    (out / "README.md").write_text(hf_readme(card))
    reloaded = load(out, device="cpu", precision="float32").model
    inputs = check_inputs(card, [])[:2]
    checks = run_checks(model, inputs, lambda x: split_output(reloaded(x))[0])
    return ExportResult(out, "hf", _max(checks), checks, [], "safetensors + config.json")


def hf_config(card: ModelCard) -> dict[str, Any]:
    prep = card.preprocessing
    return {
        "architecture": card.model,
        "num_classes": card.num_classes,
        "in_chans": card.in_channels,
        "label_names": list(card.class_names),
        "pretrained_cfg": {
            "input_size": [card.in_channels, *card.image_size],
            "mean": list(prep.mean),
            "std": list(prep.std),
            "interpolation": prep.interpolation,
            "task": card.task,
        },
        "pixelwise_card": card.to_dict(),
    }


def hf_readme(card: ModelCard) -> str:
    trained = f"{card.epochs} epochs" if card.epochs else "an unknown number of epochs"
    best = f", best {card.best_metric} {card.best_value:.4f}" if card.best_value is not None else ""
    return f"""---
library_name: pixelwise
tags: [pixelwise, {card.task}, image-{"classification" if card.task == "classification" else "segmentation"}]
---
# {card.run_name or card.model}

A `{card.model}` {card.task} model trained with pixelwise {card.version} on
`{card.dataset}` for {trained}{best}. Classes: {", ".join(card.class_names)}.
Input: {card.in_channels} x {card.image_size[0]} x {card.image_size[1]}.

```python
import pixelwise

predictor = pixelwise.load("path/to/this/folder")
print(predictor.predict("image.png"))
```
"""


# --------------------------------------------------------------------------- TorchScript
def export_torchscript(model: nn.Module, card: ModelCard, out: Path) -> ExportResult:
    """``torch.jit.trace`` at the card's size; checks say which dimensions may vary."""
    net = ExportableModel(model).eval()
    segmentation = card.task == "segmentation"
    inputs = check_inputs(card, ["batch", "height", "width"] if segmentation else ["batch"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation and "trace might not generalize"
        try:
            traced = torch.jit.trace(net, inputs[0], check_trace=False)
        except Exception as err:
            raise ExportError(
                f"{card.model}: torch.jit.trace cannot trace it ({_first_line(err)}); "
                "export to ONNX instead"
            ) from err
        out.parent.mkdir(parents=True, exist_ok=True)
        torch.jit.save(
            traced, str(out), _extra_files={f"{CARD_KEY}.json": json.dumps(card.to_dict())}
        )
        reloaded = torch.jit.load(str(out), map_location="cpu")
    checks = run_checks(model, inputs, reloaded)
    scale = _scale(model, inputs[0])
    traced_size, batches, sizes = checks[:1], checks[1:3], checks[3:]
    if not passed(traced_size, scale):
        out.unlink(missing_ok=True)
        raise ExportError(f"{out}: the traced model disagrees with PyTorch at the traced size")
    dynamic = ["batch"] if passed(batches, scale) else []
    if sizes and dynamic and passed(sizes, scale):
        dynamic += ["height", "width"]
    kept = traced_size + (batches if dynamic else []) + (sizes if "height" in dynamic else [])
    notes = ["torch.jit.trace is deprecated in PyTorch; ONNX (torch.export) is the maintained path"]
    if segmentation and "height" not in dynamic:
        notes.append(f"height and width are fixed at {list(card.image_size)} (traced padding)")
    return ExportResult(out, "torchscript", _max(kept), kept, dynamic, "torch.jit.trace", notes)


# --------------------------------------------------------------------------- entry point
def default_output(checkpoint: Path, format: str) -> Path:
    """Beside the checkpoint: ``checkpoints/best.pt`` -> ``checkpoints/best.onnx``."""
    return checkpoint.with_name(checkpoint.name.split(".")[0] + SUFFIXES[format])


def export(
    checkpoint: str | Path,
    format: str = "onnx",
    out: str | Path | None = None,
    opset: int | None = None,
    which: str = "best",
) -> ExportResult:
    """Export a run directory's ``which`` checkpoint (or a checkpoint file) and verify it."""
    if format not in FORMATS:
        raise ExportError(f"unknown export format {format!r} (valid: {', '.join(FORMATS)})")
    # float32: the model as trained, in its own layout (auto would make it channels_last).
    predictor = load(checkpoint, device="cpu", checkpoint=which, precision="float32")
    source = Path(predictor.source)
    model, card = predictor.model.eval(), predictor.card
    path = Path(out) if out is not None else default_output(source, format)
    if path.resolve() == source.resolve():
        raise ExportError(f"{path}: the export would overwrite its own checkpoint; pass --out")
    if format == "onnx":
        return export_onnx(model, card, path, opset)
    if format == "safetensors":
        return export_safetensors(model, card, path)
    if format == "hf":
        return export_hf(model, card, path)
    return export_torchscript(model, card, path)


@contextlib.contextmanager
def quiet_loggers(*names: str) -> Iterator[None]:
    """Silence the exporters' own warnings (empty attributes and the like) while exporting;
    what matters to a user is the verification, which is reported."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _max(checks: list[tuple[list[int], float]]) -> float:
    return max(diff for _, diff in checks)


def _first_line(err: BaseException) -> str:
    lines = [line for line in str(err).splitlines() if line.strip()]
    summary = next((line for line in lines if "Error" in line or "error" in line), None)
    return (summary or (lines[0] if lines else type(err).__name__)).strip()[:300]
