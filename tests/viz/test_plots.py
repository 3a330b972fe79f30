"""Curves read at report size: a log loss axis when it spans decades, whole epochs,
coinciding series drawn once; confusion matrices as PNG files."""

from __future__ import annotations

import numpy as np
import pytest

from pixelwise.viz.plots import (
    LEGEND_FONT_SIZE,
    curves_figure,
    plot_confusion_matrix,
    plot_curves,
    series,
    series_label,
    spans_decades,
)


def camvid_like_records(epochs: int = 7) -> list[dict]:
    """A first-epoch loss of 239 (CamVid's), then ordinary ones; balanced classes, so
    train accuracy, balanced accuracy and macro F1 are the same numbers."""
    records = []
    for e in range(1, epochs + 1):
        accuracy = 0.5 + e / 20
        records.append(
            {
                "epoch": e,
                "lr": 0.01,
                "train/loss": 239.0 if e == 1 else 1.5 / e,
                "val/loss": 2.0 / e,
                "train/accuracy": accuracy,
                "train/balanced_accuracy": accuracy,
                "train/macro_f1": accuracy + 1e-9,  # equal to float noise
                "val/accuracy": accuracy - 0.1,
                "val/balanced_accuracy": accuracy - 0.12,
                "val/macro_f1": accuracy - 0.13,
            }
        )
    return records


def test_loss_spanning_more_than_a_decade_is_drawn_on_a_log_axis():
    fig = curves_figure(camvid_like_records(), "classification")
    assert fig.axes[0].get_yscale() == "log"
    assert "log" in fig.axes[0].get_title()
    gentle = [{"epoch": e, "train/loss": 1.0 / e, "val/loss": 1.1 / e} for e in range(1, 5)]
    assert curves_figure(gentle, "classification").axes[0].get_yscale() == "linear"
    assert spans_decades([239.0, 0.2]) and not spans_decades([2.0, 0.5, float("nan"), 0.0])


def test_epoch_ticks_are_whole_epochs():
    fig = curves_figure(camvid_like_records(epochs=3), "classification")
    fig.canvas.draw()
    for ax in fig.axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_coinciding_series_are_drawn_once_and_the_legend_names_them_all():
    records = camvid_like_records()
    groups = series(records, ["train/accuracy", "train/balanced_accuracy", "train/macro_f1"])
    assert [names for names, _ in groups] == [
        ["train/accuracy", "train/balanced_accuracy", "train/macro_f1"]
    ]
    assert series_label(groups[0][0]) == "train/accuracy = balanced_accuracy = macro_f1"
    assert series_label(["train/accuracy", "val/accuracy"]) == "train/accuracy = val/accuracy"
    metrics = curves_figure(records, "classification").axes[1]
    assert len(metrics.get_lines()) == 4  # three train series as one, three val ones
    labels = [t.get_text() for t in metrics.get_legend().get_texts()]
    assert labels[0] == "train/accuracy = balanced_accuracy = macro_f1"
    assert "val/balanced_accuracy" in labels


def test_curves_png_is_report_sized_with_readable_legends(tmp_path, check_picture):
    records = camvid_like_records()
    fig = curves_figure(records, "classification")
    for ax in fig.axes:
        legend = ax.get_legend()
        assert legend is not None
        assert all(t.get_fontsize() >= LEGEND_FONT_SIZE >= 10 for t in legend.get_texts())
    picture = check_picture(plot_curves(records, tmp_path / "curves.png"), 1000, 400)
    assert picture.width <= 1100  # the report's width: shown at its own size, not shrunk


@pytest.mark.parametrize("normalize", [True, False])
def test_confusion_matrix_png(tmp_path, check_picture, normalize):
    matrix = np.array([[5, 1, 0], [0, 4, 2], [1, 0, 7]])
    path = plot_confusion_matrix(
        matrix, ["cat", "dog", "bird"], tmp_path / "cm.png", normalize=normalize, title="val"
    )
    check_picture(path, 300, 250)
