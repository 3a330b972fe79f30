"""Tiny datasets in each exact on-disk format, written into a test's tmp_path."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from PIL import Image

from pixelwise.config import ExperimentConfig, from_dict, validate


def make_config(task: str = "classification", **data) -> ExperimentConfig:
    """An ExperimentConfig with these data keys, validated like a YAML file."""
    cfg = from_dict(ExperimentConfig, {"task": task, "data": data}, source="<test>")
    validate(cfg, "<test>")
    return cfg


def pixels(height: int, width: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (height, width, channels) if channels > 1 else (height, width)
    return rng.integers(0, 256, shape, dtype=np.uint8)


def save(path: Path, array: np.ndarray, mode: str | None = None, **kwargs) -> Path:
    """Save ``array`` with PIL in the format of ``path``'s extension, converted to ``mode``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array)
    if mode == "P":
        image = image.convert("RGB").quantize(colors=16)
    elif mode is not None:
        image = image.convert(mode)
    image.save(path, **kwargs)
    return path


def class_folders(
    root: Path, counts: dict[str, int], size: tuple[int, int] = (8, 10), ext: str = ".png"
) -> Path:
    for c, (name, count) in enumerate(counts.items()):
        for i in range(count):
            save(root / name / f"{i:03d}{ext}", pixels(*size, seed=100 * c + i))
    return root


def cifar_batches(root: Path, per_batch: int = 4, hundred: bool = False) -> Path:
    """The python-pickle release: cifar-10-batches-py/ or cifar-100-python/."""
    rng = np.random.default_rng(0)
    if hundred:
        folder = root / "cifar-100-python"
        files = {"train": 5 * per_batch, "test": per_batch}
        names = [f"class{i}" for i in range(100)]
        key, meta_name, meta_key = "fine_labels", "meta", "fine_label_names"
    else:
        folder = root / "cifar-10-batches-py"
        files = {f"data_batch_{i}": per_batch for i in range(1, 6)}
        files["test_batch"] = per_batch
        names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse"]
        names += ["ship", "truck"]
        key, meta_name, meta_key = "labels", "batches.meta", "label_names"
    folder.mkdir(parents=True)
    for name, count in files.items():
        data = rng.integers(0, 256, (count, 3072), dtype=np.uint8)
        labels = [i % len(names) for i in range(count)]
        with (folder / name).open("wb") as f:
            pickle.dump({"data": data, key: labels}, f)
    with (folder / meta_name).open("wb") as f:
        pickle.dump({meta_key: names}, f)
    return root


def blocks_mask(height: int, width: int, num_classes: int, block: int = 4, seed: int = 0):
    """A mask of constant square blocks of random classes."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, num_classes, (-(-height // block), -(-width // block)))
    return np.kron(small, np.ones((block, block), dtype=np.int64))[:height, :width].astype(np.uint8)


def mask_pairs(
    root: Path,
    stems: list[str],
    size: tuple[int, int] = (12, 16),
    num_classes: int = 3,
    image_dir: str = "images",
    mask_dir: str = "masks",
    suffix: str = "",
) -> Path:
    for i, stem in enumerate(stems):
        save(root / image_dir / f"{stem}.jpg", pixels(*size, seed=i))
        save(root / mask_dir / f"{stem}{suffix}.png", blocks_mask(*size, num_classes, seed=i))
    return root


def pet_tree(root: Path, trainval: int = 6, test: int = 2, size: tuple[int, int] = (10, 12)):
    """oxford-iiit-pet/images, annotations/trimaps (1 pet, 2 background, 3 border), lists."""
    base = root / "oxford-iiit-pet"
    breeds = [("Abyssinian", 1, 1), ("basset_hound", 2, 2)]  # name, class id, species
    lines = {"trainval": [], "test": []}
    count = 0
    for split, n in (("trainval", trainval), ("test", test)):
        for i in range(n):
            name, class_id, species = breeds[i % 2]
            image_id = f"{name}_{count}"
            count += 1
            save(base / "images" / f"{image_id}.jpg", pixels(*size, seed=count))
            trimap = blocks_mask(*size, 3, seed=count) + 1  # values 1, 2, 3
            save(base / "annotations" / "trimaps" / f"{image_id}.png", trimap)
            lines[split].append(f"{image_id} {class_id} {species} {class_id}")
    for split, rows in lines.items():
        (base / "annotations" / f"{split}.txt").write_text("".join(f"{r}\n" for r in rows))
    return root


def voc_tree(root: Path, train: int = 3, val: int = 2, size: tuple[int, int] = (10, 12)):
    """VOCdevkit/VOC2012 with palette-PNG masks holding 0..20 and 255 outlines."""
    base = root / "VOCdevkit" / "VOC2012"
    palette = [v for i in range(256) for v in (i, (7 * i) % 256, (13 * i) % 256)]
    sets = base / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    for split, n in (("train", train), ("val", val)):
        ids = [f"2007_{split}{i}" for i in range(n)]
        for k, image_id in enumerate(ids):
            save(base / "JPEGImages" / f"{image_id}.jpg", pixels(*size, seed=k))
            mask = blocks_mask(*size, 21, seed=k)
            mask[0, :] = 255  # an outline
            image = Image.frombytes("P", (size[1], size[0]), mask.tobytes())
            image.putpalette(palette)
            (base / "SegmentationClass").mkdir(parents=True, exist_ok=True)
            image.save(base / "SegmentationClass" / f"{image_id}.png")
        (sets / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return root


def disk_mask(height: int, width: int, seed: int = 0, value: int = 255) -> np.ndarray:
    """A 0/``value`` mask of one disk, whose edges JPEG compression smears (blocks aligned
    to JPEG's 8x8 grid would survive it exactly)."""
    yy, xx = np.mgrid[:height, :width]
    cy, cx, r = height // 3 + seed, width // 3 + 2 * seed, min(height, width) // 4 + seed
    return (((yy - cy) ** 2 + (xx - cx) ** 2) <= r * r).astype(np.uint8) * value


def jpeg_mask_pairs(root: Path, count: int = 3, size: tuple[int, int] = (30, 40)) -> Path:
    """A binary dataset whose 0/255 masks were saved as JPEG: images/*.jpg, masks/*.jpg."""
    for i in range(count):
        save(root / "images" / f"{i}.jpg", pixels(*size, seed=i))
        save(root / "masks" / f"{i}.jpg", disk_mask(*size, seed=i))
    return root
