"""pixelwise: image classification and semantic segmentation on PyTorch, written to be read.

``pixelwise.load(run_dir_or_checkpoint).predict(images)`` predicts from a checkpoint
alone (see ``pixelwise.inference``); ``pixelwise.fit(cfg, model=..., train_data=...)``
trains your own pieces in the pixelwise loop (``pixelwise.experiment.fit``). torch is
imported only when one of them is called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from .inference import Predictor

from ._version import __version__


def load(
    path: Any,
    device: Any = "auto",
    checkpoint: str = "best",
    precision: Literal["auto", "float32", "bfloat16"] = "auto",
    compile: bool = False,
) -> Predictor:
    """A predictor from a run directory, a checkpoint or a ``.safetensors`` export
    (:func:`pixelwise.inference.load`)."""
    from .inference import load as load_predictor  # torch only when a model is loaded

    return load_predictor(
        path, device=device, checkpoint=checkpoint, precision=precision, compile=compile
    )


def fit(*args: Any, **kwargs: Any) -> Any:
    """Train in the pixelwise loop (:func:`pixelwise.experiment.fit`): a config, and
    optionally your own ``model``, ``train_data``, ``val_data``, ``test_data``, ``loss``."""
    from .experiment import fit as fit_experiment  # torch only when training

    return fit_experiment(*args, **kwargs)


__all__ = ["__version__", "fit", "load"]
