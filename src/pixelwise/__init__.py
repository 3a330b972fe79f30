"""pixelwise: image classification and semantic segmentation on PyTorch, written to be read.

``pixelwise.load(run_dir_or_checkpoint).predict(images)`` predicts from a checkpoint
alone (see ``pixelwise.inference``); torch is imported only when it is called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .inference import Predictor

from ._version import __version__


def load(path: Any, device: Any = "auto", checkpoint: str = "best") -> Predictor:
    """A predictor from a run directory, a checkpoint or a ``.safetensors`` export
    (:func:`pixelwise.inference.load`)."""
    from .inference import load as load_predictor  # torch only when a model is loaded

    return load_predictor(path, device=device, checkpoint=checkpoint)


__all__ = ["__version__", "load"]
