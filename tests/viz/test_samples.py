"""The most confident mistakes: found in order, and captioned where the caption fits."""

from __future__ import annotations

import torch
from matplotlib.transforms import Bbox
from torch import nn
from torch.utils.data import TensorDataset

from pixelwise.viz.samples import Mistake, mistakes_figure, most_confident_mistakes, plot_mistakes

NAMES = ["airplane", "automobile", "a class with a very long name indeed", "cat"]


def test_mistakes_are_the_surest_wrong_answers():
    images = torch.eye(4).reshape(4, 1, 2, 2)
    targets = torch.tensor([0, 1, 2, 3])
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 4, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(
            torch.tensor([[0.0, 5, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0], [0, 0, 0, 9]])
        )
    mistakes = most_confident_mistakes(model, TensorDataset(images, targets))
    assert [(m.index, m.true, m.predicted) for m in mistakes] == [(1, 1, 0), (2, 2, 1)]
    assert mistakes[0].confidence > mistakes[1].confidence


def test_no_caption_runs_into_a_picture(tmp_path, check_picture):
    torch.manual_seed(0)
    dataset = TensorDataset(torch.randn(12, 3, 32, 32), torch.zeros(12, dtype=torch.long))
    mistakes = [Mistake(i, i % 4, (i + 1) % 4, 0.99 - i / 100) for i in range(12)]
    fig = mistakes_figure(dataset, mistakes, NAMES)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    pictures = [ax.get_window_extent() for ax in fig.axes]
    whole = fig.bbox
    for ax in fig.axes:
        caption = ax.title.get_window_extent(renderer)
        assert whole.x0 <= caption.x0 and caption.x1 <= whole.x1 and caption.y1 <= whole.y1
        inside = Bbox.from_extents(caption.x0 + 1, caption.y0 + 1, caption.x1 - 1, caption.y1 - 1)
        assert not any(inside.overlaps(box) for box in pictures), ax.title.get_text()
    assert "…" in fig.axes[2].title.get_text()  # a long name is cut, not spilled over
    check_picture(plot_mistakes(dataset, mistakes, NAMES, tmp_path / "m.png"), 900, 350)
