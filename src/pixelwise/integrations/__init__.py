"""pixelwise pieces in other loops, each module behind its own optional dependency.

``pixelwise.integrations.torchmetrics``: ``ConfusionMatrixMetric``, pixelwise's confusion
matrix as a ``torchmetrics.Metric`` (Lightning's ``self.log`` syncs and resets it).
Nothing is imported here, so ``import pixelwise`` never imports torchmetrics; examples
with Lightning and a plain loop: ``docs/integrations.md``.
"""
