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
    assert json.loads(report.read_text())["problems"][0]["kind"] == "not_an_image"


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


def jpeg_mask_config(tmp_path):
    """A binary dataset whose 0/255 masks are JPEGs, as found on public dataset sites."""
    yy, xx = np.mgrid[:30, :40]
    for i in range(3):
        image = np.random.default_rng(i).integers(0, 256, (30, 40, 3), dtype=np.uint8)
        disk = (((yy - 10 - i) ** 2 + (xx - 13 - i) ** 2) <= (7 + i) ** 2) * 255
        (tmp_path / "d" / "images").mkdir(parents=True, exist_ok=True)
        (tmp_path / "d" / "masks").mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(tmp_path / "d" / "images" / f"{i}.jpg")
        Image.fromarray(disk.astype(np.uint8)).save(tmp_path / "d" / "masks" / f"{i}.jpg")
    path = tmp_path / "seg.yaml"
    data = {"format": "mask_folder", "root": str(tmp_path / "d"), "mask_mode": "binary"}
    data |= {"val_fraction": 0, "test_fraction": 0}
    path.write_text(yaml.safe_dump({"name": "s", "task": "segmentation", "data": data}))
    return path


def test_check_and_stats_from_the_command_line_warn_loudly_once(tmp_path):
    import os
    import subprocess
    import sys

    config = jpeg_mask_config(tmp_path)
    env = {**os.environ, "PIXELWISE_QUIET": "1"}
    check = subprocess.run(
        [sys.executable, "-m", "pixelwise", "data", "check", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert check.returncode == 0, check.stderr
    lines = check.stdout.splitlines()
    assert [line.split("]")[0] for line in lines if line.startswith("WARNING")] == [
        "WARNING: [lossy_mask"
    ]
    assert "train mask files: JPEG L (3)" in check.stdout
    assert "train stored mask values: 0: " in check.stdout
    assert any("[too_many_values]" in line and "data.mask_threshold" in line for line in lines)
    assert "OK: nothing found that would break training, but the figures" in lines[-1]
    stats = subprocess.run(
        [
            sys.executable,
            "-m",
            "pixelwise",
            "data",
            "stats",
            str(config),
            "--out",
            str(tmp_path / "s.json"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert stats.returncode == 0, stats.stderr
    assert sum(line.startswith("WARNING: [lossy_mask]") for line in stats.stdout.splitlines()) == 1
    saved = json.loads((tmp_path / "s.json").read_text())
    assert {p["kind"] for p in saved["problems"]} == {"lossy_mask", "too_many_values"}


def test_check_warns_once_about_training_images_in_another_split(tmp_path, capsys):
    root = folders(tmp_path / "d")
    (root / "test" / "a").mkdir(parents=True)
    for i in range(2):
        (root / "test" / "a" / f"copy{i}.png").write_bytes((root / "a" / f"{i}.png").read_bytes())
    (root / "train").mkdir()
    for name in ("a", "b"):
        (root / name).rename(root / "train" / name)
    config = write_config(tmp_path, root)
    assert main(["-q", "data", "check", str(config)]) == 0
    out = capsys.readouterr().out
    warnings = [line for line in out.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1 and "2 image(s) are in more than one split" in warnings[0]
    assert out.count("duplicates_across_splits") == 1
