"""``pixelwise tune lr``: a plot and a suggested rate, nothing trained that stays."""

from __future__ import annotations

from pixelwise.cli import main


def test_tune_lr_prints_a_suggestion_and_writes_the_plot(tmp_path, capsys):
    runs = tmp_path / "runs"
    code = main(
        [
            "tune",
            "lr",
            "digits",
            f"output_dir={runs}",
            "data.image_size=[8, 8]",
            "data.num_workers=0",
            "model.options={width: 4, dropout: 0.0}",
            "--steps",
            "60",
            "--start",
            "1e-5",
            "--out",
            str(tmp_path / "plots"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "suggested optim.lr=" in out and "of the smoothed loss)" in out
    plot = tmp_path / "plots" / "lr_range_digits-cnn.png"  # the config's name
    assert plot.read_bytes()[:4] == b"\x89PNG"
    assert f"plot: {plot}" in out
    assert not runs.exists()  # no run directory


def test_tune_lr_refuses_an_empty_range(capsys):
    assert main(["tune", "lr", "digits", "--start", "1", "--end", "0.1"]) == 2
    assert "0 < --start < --end" in capsys.readouterr().err
