"""Prediction throughput: ``pixelwise.load(...).predict`` vs ONNX Runtime on the same model.

    python bench/bench_inference.py [--run RUN_DIR_OR_CHECKPOINT | --model NAME] [--cifar DIR]
        [--images 1000] [--batch-size 32] [--repeats 7] [--precision auto]
        [--threads 0] [--out bench/results/inference.json]

The model is ``cifar_fastnet`` as ``pixelwise train cifar10_fast`` builds it (10 classes,
3x32x32, the recipe's normalisation and flip TTA in its card), seeded and untrained:
speed does not depend on the weights (``--model NAME``: another 3x32x32 model of the zoo,
``resnet20`` say, with the same card). It is saved as a run saves its checkpoint
(weights and model card) and exported to ONNX by ``pixelwise.export.export_onnx``
(verified against PyTorch as every export is). ``--run`` takes a trained run directory
or checkpoint instead (its model must take 3x32x32 images).

The images are ``--images`` 32x32 RGB uint8 arrays, (H, W, C) as PIL and OpenCV give
them: random pixels, or the first CIFAR-10 test images of ``--cifar DIR``
(``DIR/test/<class>/*``). pixelwise gets them as a list and does everything a user
gets: reading each array, batching, preprocessing (/255, normalise), the forward pass
and the top-5 results. ONNX Runtime gets the same images already preprocessed into
float32 batches (the strict comparison: its preprocessing is not timed) and runs the
session on each batch; its top class must agree with pixelwise's (asserted). Both use
the same number of threads. With TTA (``predict(..., tta=True)``), ONNX Runtime runs
each batch and its mirror and averages the softmax, as ``pixelwise.tta.hflip_tta``
does. A third contestant, the PyTorch model alone on the preprocessed batches with
predict's settings, separates the cost of the model from that of predict. The last two
are ``pixelwise.load(..., compile=True)``, without and with TTA: the same predict,
through ``torch.compile`` with frozen weights, compiled in an untimed first pass whose
top classes must agree with the eager predictor's (``compile_seconds``: how much longer
that first pass took than a timed one). The last, ``pixelwise_unfolded``, is the
eager predictor with BatchNorm left unfolded (``compute.fold_batchnorm=False``, the
numbers of ``precision="float32"`` in ``auto``'s layout): what folding gains
(``ratio_folding``).

Passes are interleaved (the order rotates every round); a ratio is the median over
rounds of the per-round ratio of images per second. Writes
``bench/results/inference.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("PIXELWISE_QUIET", "1")

from common import machine  # noqa: E402  (bench/ is on sys.path when a script runs)

import pixelwise  # noqa: E402
from pixelwise.card import ModelCard  # noqa: E402
from pixelwise.checkpoint import save_checkpoint  # noqa: E402
from pixelwise.config import load_config  # noqa: E402
from pixelwise.export import export_onnx  # noqa: E402
from pixelwise.inference import Predictor  # noqa: E402


def recipe_checkpoint(folder: Path, model: str | None = None) -> Path:
    """``cifar10_fast``'s network (or ``model`` with its default options) and card,
    seeded, saved as a run saves a checkpoint."""
    other = [f"model.name={model}", "model.options={}"] if model else []
    cfg = load_config("cifar10_fast", ["data.num_workers=0", *other])
    card = ModelCard.from_config(cfg, [f"class{i}" for i in range(10)])
    torch.manual_seed(0)
    model = card.build()
    path = folder / "best.pt"
    save_checkpoint({"model": model.state_dict(), "card": card.to_dict()}, path)
    return path


def random_images(count: int) -> list[np.ndarray]:
    pixels = np.random.default_rng(0).integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)
    return list(pixels)


def cifar_images(root: Path, count: int) -> list[np.ndarray]:
    """The first test images of each class folder, in turn, as (32, 32, 3) uint8."""
    from PIL import Image

    folders = sorted(p for p in (root / "test").iterdir() if p.is_dir())
    files = [sorted(f.iterdir()) for f in folders]
    ordered = [f for group in zip(*files) for f in group][:count]
    return [np.asarray(Image.open(f).convert("RGB")) for f in ordered]


def preprocessed_batches(
    predictor: Predictor, images: list[np.ndarray], batch_size: int
) -> list[np.ndarray]:
    """float32 (N, 3, 32, 32) batches, normalised as the card says, for ONNX Runtime."""
    prep = predictor.preprocessing
    mean = np.asarray(prep.mean, np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(prep.std, np.float32).reshape(1, 3, 1, 1)
    x = np.stack(images).transpose(0, 3, 1, 2).astype(np.float32) / 255
    x = np.ascontiguousarray((x - mean) / std, dtype=np.float32)
    return [x[i : i + batch_size] for i in range(0, len(x), batch_size)]


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", help="run directory or checkpoint (default: cifar10_fast's net)")
    parser.add_argument("--model", help="a zoo model for 3x32x32 images (default: cifar_fastnet)")
    parser.add_argument("--cifar", help="CIFAR-10 folder (test/<class>/*); default: random")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=7, help="timed passes per contestant")
    parser.add_argument("--precision", default="auto", choices=["auto", "float32", "bfloat16"])
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "inference.json"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    with tempfile.TemporaryDirectory(prefix="bench-inference-") as tmp:
        folder = Path(tmp)
        checkpoint = Path(args.run) if args.run else recipe_checkpoint(folder, args.model)
        predictor = pixelwise.load(checkpoint, device="cpu", precision=args.precision)
        compiled = pixelwise.load(checkpoint, device="cpu", precision=args.precision, compile=True)
        unfolded = pixelwise.load(checkpoint, device="cpu", precision=args.precision)
        unfolded.compute = dataclasses.replace(unfolded.compute, fold_batchnorm=False)
        # Exported from the model in its own layout, as `pixelwise export` does.
        plain = pixelwise.load(checkpoint, device="cpu", precision="float32")
        exported = export_onnx(plain.model, plain.card, folder / "model.onnx")
        # The session reads the file whole: the folder can go.
        session = ort.InferenceSession(
            str(exported.path), options, providers=["CPUExecutionProvider"]
        )

    images = (
        cifar_images(Path(args.cifar), args.images) if args.cifar else random_images(args.images)
    )
    batches = preprocessed_batches(predictor, images, args.batch_size)
    tensors = [torch.from_numpy(b) for b in batches]

    def ort_predict(tta: bool) -> Callable[[], list[np.ndarray]]:
        def run() -> list[np.ndarray]:
            out = []
            for x in batches:
                p = softmax(session.run(None, {"images": x})[0])
                if tta:
                    mirrored = np.ascontiguousarray(x[..., ::-1])
                    p = (p + softmax(session.run(None, {"images": mirrored})[0])) / 2
                out.append(p)
            return out

        return run

    def model_alone() -> None:  # the forward passes of predict, without predict around them
        with torch.inference_mode():
            for x in tensors:
                predictor.logits(x)

    contestants: dict[str, Callable[[], object]] = {
        "pixelwise": lambda: predictor.predict(images, batch_size=args.batch_size),
        "onnxruntime": ort_predict(tta=False),
        "pytorch_model_alone": model_alone,
        "pixelwise_tta": lambda: predictor.predict(images, batch_size=args.batch_size, tta=True),
        "onnxruntime_tta": ort_predict(tta=True),
        "pixelwise_compiled": lambda: compiled.predict(images, batch_size=args.batch_size),
        "pixelwise_compiled_tta": lambda: compiled.predict(
            images, batch_size=args.batch_size, tta=True
        ),
        "pixelwise_unfolded": lambda: unfolded.predict(images, batch_size=args.batch_size),
    }

    # The same answers before any timing: the top class of every image.
    ours = [r.indices[0] for r in predictor.predict(images, batch_size=args.batch_size)]
    theirs = np.concatenate(ort_predict(tta=False)()).argmax(axis=1).tolist()
    agreement = sum(a == b for a, b in zip(ours, theirs)) / len(images)
    assert agreement >= 0.99, f"top-1 agreement with ONNX Runtime only {agreement:.3f}"
    start = time.perf_counter()  # the compiled predictor's first pass compiles it
    fast = [r.indices[0] for r in compiled.predict(images, batch_size=args.batch_size)]
    compile_seconds = time.perf_counter() - start
    agreement_compiled = sum(a == b for a, b in zip(ours, fast)) / len(images)
    assert agreement_compiled >= 0.99, f"compiled top-1 agreement only {agreement_compiled:.3f}"

    for run in contestants.values():  # warm-up: allocator, kernels, the TTA shapes
        run()
    seconds: dict[str, list[float]] = {name: [] for name in contestants}
    names = list(contestants)
    for repeat in range(args.repeats):  # rotate the order: no contestant always goes first
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            contestants[name]()
            seconds[name].append(time.perf_counter() - start)

    def rates(name: str) -> list[float]:
        return [len(images) / s for s in seconds[name]]

    def ratios(a: str, b: str) -> list[float]:
        return [x / y for x, y in zip(rates(a), rates(b))]

    def ratio(a: str, b: str) -> float:
        return statistics.median(ratios(a, b))

    median = {name: statistics.median(rates(name)) for name in names}
    spread = ratios("pixelwise", "onnxruntime")
    quartiles = statistics.quantiles(spread, n=4) if len(spread) > 1 else [spread[0]] * 3
    compute = predictor.compute
    settings = ("bfloat16 autocast" if compute.bfloat16 else "float32") + (
        " + channels_last" if compute.channels_last else ""
    )
    data = f"CIFAR-10 test images from {args.cifar}" if args.cifar else "random 32x32 images"
    model = (
        "the given checkpoint"
        if args.run
        else f"{args.model or 'cifar_fastnet'} (cifar10_fast's card, untrained)"
    )
    result = {
        "name": Path(args.out).stem,
        "what": f"prediction throughput, {model}, {args.images} {data} as uint8 arrays, "
        f"batch {args.batch_size}, precision={args.precision} ({settings}), {threads} threads, "
        f"{args.repeats} interleaved passes each",
        "unit": "images/s",
        "pixelwise": round(median["pixelwise"], 1),
        "baseline": round(median["onnxruntime"], 1),
        "baseline_name": f"ONNX Runtime {ort.__version__} on the pixelwise ONNX export, "
        "batches preprocessed beforehand",
        "ratio": round(ratio("pixelwise", "onnxruntime"), 3),
        "ratio_definition": "median over rounds of the per-round ratio of pixelwise to ONNX "
        "Runtime images per second (wall clock)",
        "ratio_quartiles": [round(quartiles[0], 3), round(quartiles[2], 3)],
        "ratio_tta": round(ratio("pixelwise_tta", "onnxruntime_tta"), 3),
        "ratio_model_only": round(ratio("pytorch_model_alone", "onnxruntime"), 3),
        "ratio_predict_overhead": round(ratio("pixelwise", "pytorch_model_alone"), 3),
        "ratio_compiled": round(ratio("pixelwise_compiled", "onnxruntime"), 3),
        "ratio_compiled_tta": round(ratio("pixelwise_compiled_tta", "onnxruntime_tta"), 3),
        "ratio_folding": round(ratio("pixelwise", "pixelwise_unfolded"), 3),
        "compile_seconds": round(
            compile_seconds - statistics.median(seconds["pixelwise_compiled"]), 1
        ),
        "top1_agreement_compiled_with_eager": agreement_compiled,
        "top1_agreement_with_onnxruntime": agreement,
        "target": ">= 1.0x (with and without TTA)",
        "device": "cpu",
        "machine": machine(),
        "command": "python " + " ".join([os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]]),
        "date": datetime.date.today().isoformat(),
        "images_per_second": {name: [round(x, 1) for x in rates(name)] for name in names},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    for name, value in median.items():
        print(f"  {name:22s} {value:8.1f} images/s")
    print(
        f"ratio pixelwise / ONNX Runtime: {result['ratio']:.3f}x "
        f"(quartiles {quartiles[0]:.3f}-{quartiles[2]:.3f}); with TTA {result['ratio_tta']:.3f}x; "
        f"model alone {result['ratio_model_only']:.3f}x; compiled {result['ratio_compiled']:.3f}x, "
        f"with TTA {result['ratio_compiled_tta']:.3f}x (compiling: {result['compile_seconds']} s); "
        f"folded / unfolded BatchNorm {result['ratio_folding']:.3f}x"
    )
    print(f"written: {out}")


if __name__ == "__main__":
    main()
