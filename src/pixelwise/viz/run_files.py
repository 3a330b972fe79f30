"""A run directory read back: config, metrics, checkpoint and card, model and data.

``RunFiles(run_dir)`` reads the small files at once and loads the model (on the run's
device, from ``checkpoints/best.pt``, else ``last.pt``) and the data splits only when
asked; the report and ``pixelwise analyze`` share it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

    from ..data import DataSplits


class RunFiles:
    """Reads a run directory lazily; loads the model and the data only when needed."""

    def __init__(self, run_dir: Path) -> None:
        from ..config import load_config

        self.run_dir = run_dir
        self.config_text = (run_dir / "config.yaml").read_text()
        self.cfg = load_config(run_dir / "config.yaml")
        path = run_dir / "metrics.jsonl"
        lines = path.read_text().splitlines() if path.is_file() else []
        self.records = [json.loads(line) for line in lines if line.strip()]
        self.checkpoint_path = next(
            (
                p
                for p in (run_dir / "checkpoints" / n for n in ("best.pt", "last.pt"))
                if p.is_file()
            ),
            None,
        )
        self.state: dict[str, Any] | None = None
        if self.checkpoint_path is not None:
            from ..engine.checkpoint import load_checkpoint

            self.state = load_checkpoint(self.checkpoint_path)
        self.card: dict[str, Any] = dict(self.state.get("card") or {}) if self.state else {}
        self._model: nn.Module | None = None
        self._splits: DataSplits | None = None

    @property
    def task(self) -> str:
        return self.card.get("task", self.cfg.task)

    def splits(self) -> DataSplits:
        if self._splits is None:
            from ..data import build_datasets

            self._splits = build_datasets(self.cfg, self.run_dir)
        return self._splits

    def class_names(self) -> list[str]:
        if self.card.get("class_names"):
            return list(self.card["class_names"])
        return self.splits().class_names

    def model(self) -> nn.Module:
        """The checkpoint's weights in the run's architecture, on its device, in eval mode."""
        if self._model is None:
            if self.state is None:
                raise FileNotFoundError(f"{self.run_dir} has no checkpoints/best.pt or last.pt")
            from ..engine.build import build_model
            from ..engine.runtime import select_device

            cfg = self.cfg
            cfg.model.weights = None  # the checkpoint holds every weight
            cfg.model.encoder_weights = None
            model = build_model(cfg, len(self.class_names()))
            model.load_state_dict(self.state["model"])
            self._model = model.to(select_device(cfg.device)).eval()
        return self._model

    def eval_split(self) -> tuple[str, dict[str, Any]] | None:
        """The evaluated split's saved figures: test first, then val, then any other."""
        folder = self.run_dir / "eval"
        if not folder.is_dir():
            return None
        for name in (self.cfg.data.test_split, self.cfg.data.val_split):
            if (folder / f"{name}.json").is_file():
                return name, json.loads((folder / f"{name}.json").read_text())
        others = sorted(folder.glob("*.json"))
        return (others[0].stem, json.loads(others[0].read_text())) if others else None
