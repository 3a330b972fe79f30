from __future__ import annotations

import json

import numpy as np
import yaml
from PIL import Image

from pixelwise.cli import main


def write_config(tmp_path, root, **data):
    path = tmp_path / "data.yaml"
    block = {"format": "image_folder", "root": str(root), "val_fraction": 0, "test_fraction": 0}
    path.write_text(
        yaml.safe_dump({"name": "t", "task": "classification", "data": {**block, **data}})
    )
    return path


def folders(root, broken=False):
    for c, name in enumerate(["a", "b"]):
        (root / name).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.full((4, 4, 3), 60 * c + i, dtype=np.uint8)).save(
                root / name / f"{i}.png"
            )
    if broken:
        (root / "a" / "bad.png").write_bytes(b"not a png")
    return root


def test_check_a_bundled_config_by_name(capsys):
    assert main(["-q", "data", "check", "digits"]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "train" in out


def test_check_exit_status_follows_the_problems(tmp_path, capsys):
    good = write_config(tmp_path, folders(tmp_path / "good"))
    assert main(["-q", "data", "check", str(good)]) == 0
    bad = write_config(tmp_path, folders(tmp_path / "bad", broken=True))
    report = tmp_path / "report.json"
    assert main(["-q", "data", "check", str(bad), "--json", str(report)]) == 1
    assert "bad.png" in capsys.readouterr().out
    assert json.loads(report.read_text())["problems"][0]["kind"] == "unreadable"


def test_config_errors_are_one_line_with_status_2(tmp_path, capsys):
    path = write_config(tmp_path, tmp_path / "nowhere")
    assert main(["-q", "data", "check", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nowhere" in err


def test_stats_writes_a_json_that_class_weights_can_name(tmp_path, capsys):
    config = write_config(tmp_path, folders(tmp_path / "d"), in_channels=3)
    out = tmp_path / "stats.json"
    assert main(["-q", "data", "stats", str(config), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    saved = json.loads(out.read_text())
    assert saved["class_counts"] == [2, 2] and len(saved["mean"]) == 3
    assert f"data.class_weights={out}" in printed

    from pixelwise.config import load_config
    from pixelwise.data.stats import resolve_class_weights

    cfg = load_config(config, [f"data.class_weights={out}"])
    assert resolve_class_weights(cfg.data, 2).tolist() == [1.0, 1.0]
