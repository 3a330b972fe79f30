"""Fine-tuning from pretrained weights: which parameters train, and how fast.

A model declares what pretrained weights fill: ``pretrained_modules()`` (see
``models/base.py``). Parameters under those modules are *pretrained*, all others *new*:

- a classifier: everything but its head (``classifier_module_names()``);
- a segmentation model: its pretrained encoder (U-Net on a zoo encoder, SegNet,
  FCN-ResNet and DeepLabV3's ``backbone``), plus fc6/fc7 for FCN-VGG, whose fc6/fc7
  are VGG's classifier layers; nothing for the plain U-Net. Decoder and head are new.

That declaration is all this module reads about a model. The pretrained part is cut
into *stages*, shallow to deep, at the levels of the pretrained encoder's
``feature_info`` (a classifier's own; a segmentation model's ``encoder``'s): ResNet
stem, layer1..layer4; VGG one block per pooling; MobileNet the ``features`` blocks up
to each stride change. A stage holds every pretrained module registered after the
previous level up to the end of its own level; stages without parameters are dropped;
pretrained parameters after the last level (VGG's fc6/fc7) join the last stage. A
model without ``feature_info`` has each declared pretrained module as a stage; a
model without the declaration has nothing pretrained.

Strategies (``finetune.strategy``): ``full`` trains everything, ``head`` only the new
parameters, ``partial`` the new ones and the last ``trainable_stages`` stages. With
``unfreeze_after_epochs = n`` one more stage (deepest first) unfreezes every ``n``
epochs (gradual unfreezing, Howard and Ruder, 2018). BatchNorm layers whose
parameters are frozen stay in eval mode, so their running statistics stay pretrained.

Independently of pretraining, a module may declare parameters that train for their
first n epochs only (``trains_for_epochs()``: ``cifar_fastnet``'s whitening bias with
``whiten_bias_epochs``, as airbench trains it); from epoch n on they are frozen too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from ..config import FinetuneConfig
from ..models.base import SegmentationModel


def pretrained_module_names(model: nn.Module) -> list[str]:
    """The model's ``pretrained_modules()``; none for a model that declares nothing."""
    declared = getattr(model, "pretrained_modules", None)
    return list(declared()) if callable(declared) else []


def _under(name: str, modules: list[str]) -> bool:
    return any(name == m or name.startswith(m + ".") for m in modules)


def new_parameter_names(model: nn.Module) -> set[str]:
    """Parameters outside the declared pretrained modules (see the module docstring)."""
    pretrained = pretrained_module_names(model)
    return {n for n, _ in model.named_parameters() if not _under(n, pretrained)}


def epoch_limited_parameters(model: nn.Module) -> dict[str, int]:
    """Full parameter name -> the number of epochs it trains, from every module's
    ``trains_for_epochs()`` (names there are relative to the module)."""
    limits: dict[str, int] = {}
    for prefix, module in model.named_modules():
        declared = getattr(module, "trains_for_epochs", None)
        if callable(declared):
            for name, epochs in declared().items():
                limits[f"{prefix}.{name}" if prefix else name] = epochs
    return limits


def stage_levels(model: nn.Module) -> list[str]:
    """Module names (in ``model``) that end each stage: the pretrained encoder's
    ``feature_info`` levels, or else the declared pretrained modules."""
    trunk, prefix = model, ""
    if isinstance(model, SegmentationModel):
        trunk = model.encoder
        prefix = next(name for name, module in model.named_modules() if module is trunk) + "."
    info = getattr(trunk, "feature_info", None)
    if info:
        return [prefix + level.name for level in info]
    return pretrained_module_names(model)


def stage_parameter_names(model: nn.Module) -> list[list[str]]:
    """Pretrained parameters per stage, shallow to deep (empty stages dropped)."""
    new = new_parameter_names(model)
    pretrained = [n for n, _ in model.named_parameters() if n not in new]
    modules = [name for name, _ in model.named_modules()]
    position = {name: i for i, name in enumerate(modules)}
    ends = [
        max(position[m] for m in modules if m == level or m.startswith(level + "."))
        for level in stage_levels(model)
        if level in position
    ]
    if not ends:  # no level to cut at: the pretrained part is one stage
        return [pretrained] if pretrained else []
    stages: list[list[str]] = [[] for _ in ends]
    for name in pretrained:
        owner = position[name.rpartition(".")[0]]
        index = next((i for i, end in enumerate(ends) if owner <= end), len(ends) - 1)
        stages[index].append(name)
    return [s for s in stages if s]


@dataclass
class FinetunePlan:
    """What trains at each epoch; ``apply(model, epoch)`` sets ``requires_grad``."""

    cfg: FinetuneConfig
    trainable: set[str]  # parameters the model itself trains (fixed ones stay fixed)
    new: set[str]
    stages: list[list[str]]
    limited: dict[str, int] = field(default_factory=dict)  # name -> epochs it trains
    frozen: set[str] = field(default_factory=set)

    @classmethod
    def for_model(cls, model: nn.Module, cfg: FinetuneConfig) -> FinetunePlan:
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        new, stages = new_parameter_names(model), stage_parameter_names(model)
        return cls(cfg, trainable, new, stages, epoch_limited_parameters(model))

    def trainable_stages(self, epoch: int) -> int:
        """How many of the deepest stages train during ``epoch`` (0-based)."""
        if self.cfg.strategy == "full":
            return len(self.stages)
        count = 0 if self.cfg.strategy == "head" else self.cfg.trainable_stages
        if self.cfg.unfreeze_after_epochs:
            count += epoch // self.cfg.unfreeze_after_epochs
        return min(count, len(self.stages))

    def expired_at(self, epoch: int) -> set[str]:
        """Epoch-limited parameters whose epochs are over by ``epoch`` (0-based)."""
        return {name for name, epochs in self.limited.items() if epoch >= epochs} & self.trainable

    def frozen_at(self, epoch: int) -> set[str]:
        count = self.trainable_stages(epoch)
        frozen_stages = self.stages[: len(self.stages) - count]
        staged = {name for stage in frozen_stages for name in stage} & self.trainable
        return staged | self.expired_at(epoch)

    def apply(self, model: nn.Module, epoch: int) -> list[str]:
        """Freeze and unfreeze for ``epoch``; what changed, one sentence per kind (empty
        when the trainable set is as it was)."""
        frozen = self.frozen_at(epoch)
        for name, param in model.named_parameters():
            if name in self.trainable:
                param.requires_grad_(name not in frozen)
        changes = []
        if (frozen - self.limited.keys()) != (self.frozen - self.limited.keys()):
            changes.append(
                f"fine-tuning: the last {self.trainable_stages(epoch)} of "
                f"{len(self.stages)} stages train from epoch {epoch + 1}"
            )
        for name in sorted(self.expired_at(epoch) - self.frozen):
            epochs = self.limited[name]
            changes.append(
                f"{name} trains for the first {epochs} epochs only: fixed from epoch {epochs + 1}"
            )
        self.frozen = frozen
        return changes

    def lr_multipliers(self) -> dict[str, float]:
        """``pretrained_lr_mult`` for pretrained parameters, 1 for new ones."""
        mult = self.cfg.pretrained_lr_mult
        if mult == 1.0:
            return {}
        return {name: mult for name in self.trainable if name not in self.new}


def keep_frozen_norms_in_eval(model: nn.Module) -> None:
    """After ``model.train()``: BatchNorm layers with frozen parameters go back to eval
    mode, so they normalise with (and keep) their pretrained running statistics."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            params = list(module.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                module.eval()
