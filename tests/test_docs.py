"""Every command and Python snippet in README.md and docs/*.md runs, so the docs cannot
drift from the code.

Each fenced ``bash``/``sh``/``shell``/``console``/``python`` block is one test, run in
a fresh temporary working directory:

- Shell blocks are expanded by bash itself (variables, loops, globs, quoting) with an
  empty ``PATH``: every program a block calls is recorded instead of run, then
  ``pixelwise ...`` (and ``python -m pixelwise``, and the command after ``torchrun ...
  -m pixelwise``, in one process) runs in this process through ``pixelwise.cli.main``
  and must exit 0. ``make TARGET`` is checked against the Makefile (running it is CI
  itself). Usage lines (``pixelwise eval RUN_DIR [--split test] [--tta]``,
  ``--format onnx|safetensors``) run once without their optional parts and once with
  all of them, once per alternative.
- Python blocks run with ``exec`` in a fresh namespace; a fragment that uses names
  defined elsewhere (``model``, ``images``, ``loader``) gets them from ``SNIPPET_SETUP``.

Training is cut (``CUTS``: one epoch, tiny inputs, no worker processes, the CPU) by
rewriting the command lines and, for snippets, the overrides ``load_config`` receives
(the library itself knows nothing about this test). Data that a fresh clone lacks
(CIFAR-10, CamVid, Oxford-IIIT Pet) is a tiny fixture with the same folder layout whose
path replaces the config's ``data.root``; the docs' placeholders (``CONFIG``,
``RUN_DIR``, ``images/``) and the files they name (``seven.png``, ``runs/digits-cnn``)
are made in the working directory. A block that cannot run here is listed in
``NOT_RUN`` with the reason: a new block that is neither run nor listed, or a listed
one that no longer exists, fails ``test_every_block_is_run_or_listed``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_LANGUAGES = {"bash", "sh", "shell", "console"}
RUN_LANGUAGES = SHELL_LANGUAGES | {"python"}


# --------------------------------------------------------------------------- extraction
@dataclass(frozen=True)
class Block:
    file: str  # relative to the repository root
    line: int  # of the opening fence
    language: str
    code: str
    key: str  # "file: first code line", stable when lines above it move

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


def block_title(body: list[str]) -> str:
    """A block's first line without its comment and extra spaces: what the lists below
    name it by (edits to comments or alignment keep the name)."""
    first = next((line for line in body if line.strip()), "")
    return " ".join(re.sub(r"\s+#.*$", "", first).split())


def extract_blocks(paths: list[Path] = DOC_FILES) -> list[Block]:
    """The runnable fenced blocks, in file order."""
    blocks: list[Block] = []
    for path in paths:
        lines = path.read_text(encoding="utf-8").split("\n")
        rel = path.relative_to(ROOT).as_posix()
        seen: dict[str, int] = {}
        i = 0
        while i < len(lines):
            opening = re.match(r"^(\s*)(```+|~~~+)\s*([\w+-]*)", lines[i])
            if not opening:
                i += 1
                continue
            indent, fence, language = opening.groups()
            end = i + 1
            while end < len(lines) and not lines[end].strip().startswith(fence):
                end += 1
            body = [line.removeprefix(indent) for line in lines[i + 1 : end]]
            if language.lower() in RUN_LANGUAGES:
                code = "\n".join(body) + "\n"
                key = f"{rel}: {block_title(body)}"
                seen[key] = seen.get(key, 0) + 1
                if seen[key] > 1:
                    key += f" #{seen[key]}"
                blocks.append(Block(rel, i + 1, language.lower(), code, key))
            i = end + 1
    return blocks


# --------------------------------------------------------------------------- the lists
NOT_RUN: dict[str, str] = {
    "docs/models.md: import torch": (
        "downloads torchvision's ImageNet weights (no network in tests); the next block "
        "loads such a file, made here from torchvision's architecture"
    ),
    "docs/training.md: # node A (10.0.0.1) and node B, the same line on both except --node_rank:": (
        "one run on two machines: its two lines run together are "
        "tests/engine/test_distributed.py's two-node c10d test on 127.0.0.1"
    ),
    'docs/recipes.md: FAST="train.amp=auto train.channels_last=true train.report=false"': (
        "the transfer benchmark: 13 runs of bench/bench_budget.py, 20 epochs each "
        "(bench/ has its own tests)"
    ),
}

SLOW: set[str] = {
    "README.md: pixelwise train CONFIG [key=value ...]",
    "README.md: import pixelwise",
    "docs/training.md: from pixelwise.config import load_config",
    "docs/training.md: torchrun --nproc_per_node=2 -m pixelwise train cifar10_resnet18 --run-dir runs/c10",
    "docs/recipes.md: pixelwise data check data_cifar10",
    "docs/recipes.md: pixelwise train cifar10_resnet18",
    "docs/recipes.md: pixelwise train cifar10_pretrain_5classes",
    "docs/recipes.md: pixelwise data check data_camvid",
    "docs/inference.md: pixelwise export runs/digits-cnn --format onnx",
    "docs/inference.md: from pixelwise.export import export",
    "docs/inference.md: import json, onnxruntime as ort",
    "docs/analysis.md: pixelwise analyze runs/digits-cnn --tsne",
    "docs/analysis.md: pixelwise analyze runs/digits-cnn --gradcam --count 8",
    "docs/models.md: from pixelwise.models import create_model #2",
    "docs/models.md: from pixelwise.models import create_model #3",
}

# pixelwise commands run before a shell block (with the cuts), for what it presumes.
SHELL_SETUP: dict[str, list[list[str]]] = {
    "README.md: pixelwise train CONFIG [key=value ...]": [
        ["train", "digits", "--run-dir", "runs/x"]  # '--resume' continues it
    ],
}

# What a placeholder stands for in a usage line: a path under the block's working
# directory (made by ``Workspace``) or a value.
PLACEHOLDERS = {
    "RUN_DIR_OR_CHECKPOINT": "runs/digits-cnn",
    "RUN_DIR": "runs/digits-cnn",
    "RUN": "runs/digits-cnn",
    "CONFIG": "digits",
    "LAYER": "stages.0",
    "key=value ...": "optim.lr=3e-4",
    "/path/to/oxford-iiit-pet": "{pet}",
    "HOST": "localhost",
}
# Usage lines with a segmentation-only option read a segmentation run instead.
SEGMENTATION_ONLY_OPTIONS = ("--sliding-window",)

# Run directories the docs read without training them: copies of a shared run.
RUN_COPIES = {
    "runs/digits-cnn": "digits",
    "runs/camvid": "segmentation",
    "runs/camvid-unet": "segmentation",
    "runs/seg": "segmentation",
    "runs/cifar": "cifar",
}
# Image files and folders the docs name as inputs (greyscale digits or RGB photos).
INPUT_FILES = ["some_digit.png", "seven.png", "a.png", "b.jpg", "one.jpg", "cat.jpg", "dog.jpg"]
INPUT_FOLDERS = ["images", "photos", "scans", "best_shots"]


# --------------------------------------------------------------------------- training cuts
def cuts(config: str | None, given: list[str], fixtures: Fixtures) -> list[str]:
    """Overrides appended to a documented ``train``/``data``/``demo`` command or
    ``load_config`` call: one epoch on tiny inputs, on the CPU, with no worker processes,
    and the fixture in place of data a fresh clone does not have. A model the doc
    configures itself (``model.options=...``) is kept."""
    cfg = load_real_config(config, [o for o in given if not o.startswith("data.root=")])
    out = [
        "train.epochs=1",
        "train.tensorboard=false",
        "train.report=false",
        "train.learning_gif=false",
        "data.num_workers=0",
        "device=cpu",
        "train.amp=off",  # the speed switches only slow a CPU down (bf16 convolutions
        "train.channels_last=false",  # are emulated); their own tests cover them
        "train.compile=false",
    ]
    sets_model = any(o.startswith("model.") for o in given)
    if cfg.data.format in ("digits", "digits_segmentation"):
        out += ["data.samples_per_class=12"] if cfg.data.format == "digits" else []
        out += ["data.image_size=[8, 8]"]
        if cfg.model.name == "small_cnn" and not sets_model:
            out += ["model.options={width: 8, dropout: 0.0}"]
    elif cfg.data.format == "image_folder":
        size = "[16, 16]" if cfg.model.name == "cifar_fastnet" else "[8, 8]"  # 3 pools
        out += [f"data.root={fixtures.cifar()}", f"data.image_size={size}", "data.cache=false"]
    elif cfg.data.format == "mask_folder" and cfg.data.mask_mode == "binary":
        out += [f"data.root={fixtures.thin()}", "data.image_size=[32, 32]", "data.crop_size=null"]
        out += ["data.cache=false"] + ([] if sets_model else ["model.options={base_channels: 4}"])
    elif cfg.data.format == "mask_folder":
        out += [f"data.root={fixtures.camvid()}", "data.image_size=[32, 32]", "data.cache=false"]
    elif cfg.data.format == "oxford_pet":
        out += [f"data.root={fixtures.pet()}", "data.image_size=[16, 16]"]
    return out


# --------------------------------------------------------------------------- data fixtures
def _pixels(height: int, width: int, seed: int, channels: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (height, width, channels) if channels > 1 else (height, width)
    return rng.integers(0, 256, shape, dtype=np.uint8)


def _save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def _blocks(height: int, width: int, classes: int, seed: int) -> np.ndarray:
    small = np.random.default_rng(seed).integers(0, classes, (height // 4, width // 4))
    return np.kron(small, np.ones((4, 4), dtype=np.int64)).astype(np.uint8)


def make_cifar_folders(root: Path, train: int = 10, test: int = 2) -> Path:
    """CIFAR-10's class-folder layout (train/<class>/, test/<class>/), 8x8 JPEGs."""
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse"]
    for c, name in enumerate([*names, "ship", "truck"]):
        for split, count in (("train", train), ("test", test)):
            for i in range(count):
                _save(root / split / name / f"{i:04d}.jpg", _pixels(8, 8, 100 * c + i))
    return root


def make_camvid(root: Path, per_split: int = 4, splits=("train", "val")) -> Path:
    """SegNet's CamVid layout: <split>/ and <split>annot/ index PNGs (0..11, 11 =
    Unlabelled) listed in <split>.txt under the /SegNet/CamVid/ prefix."""
    for s, split in enumerate(splits):
        lines = []
        for i in range(per_split):
            name = f"0001TP_{s}{i:05d}.png"
            _save(root / split / name, _pixels(24, 32, 10 * s + i))
            _save(root / f"{split}annot" / name, _blocks(24, 32, 12, 10 * s + i))
            lines.append(f"/SegNet/CamVid/{split}/{name} /SegNet/CamVid/{split}annot/{name}")
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


def make_pets(root: Path, trainval: int = 8, test: int = 2) -> Path:
    """oxford-iiit-pet/images, annotations/trimaps (1 pet, 2 background, 3 border), lists."""
    base = root / "oxford-iiit-pet"
    lines: dict[str, list[str]] = {"trainval": [], "test": []}
    count = 0
    for split, n in (("trainval", trainval), ("test", test)):
        for i in range(n):
            breed, class_id = (("Abyssinian", 1), ("basset_hound", 2))[i % 2]
            image_id = f"{breed}_{count}"
            count += 1
            _save(base / "images" / f"{image_id}.jpg", _pixels(16, 20, count))
            _save(
                base / "annotations" / "trimaps" / f"{image_id}.png", _blocks(16, 20, 3, count) + 1
            )
            lines[split].append(f"{image_id} {class_id} {class_id} {class_id}")
    for split, rows in lines.items():
        (base / "annotations" / f"{split}.txt").write_text("".join(f"{r}\n" for r in rows))
    return base


class Fixtures:
    """The data and runs blocks share, each made once, when a block first needs it."""

    def __init__(self, root: Path, trained_digits: Any) -> None:
        self.root = root
        self.digits_run = Path(trained_digits.run_dir)
        self._made: dict[str, Path] = {}

    def _once(self, name: str, make: Callable[[Path], Path]) -> Path:
        if name not in self._made:
            self._made[name] = make(self.root / name)
        return self._made[name]

    def cifar(self) -> Path:
        return self._once("cifar10", make_cifar_folders)

    def camvid(self) -> Path:
        return self._once("camvid", make_camvid)

    def pet(self) -> Path:
        return self._once("pets", make_pets)

    def thin(self) -> Path:
        """Thin curves on noise, binary masks and field-of-view masks in valid/."""
        from thin_structures_data import make_thin_structures

        return self._once(
            "thin", lambda root: make_thin_structures(root, 6, 32, field_of_view=True)
        )

    def torchvision_weights(self, name: str) -> Path:
        """A torchvision architecture's (untrained) state dict, as a weights file."""

        def save(path: Path) -> Path:
            import torch
            import torchvision

            torch.save(getattr(torchvision.models, name)().state_dict(), path)
            return path

        return self._once(f"{name}.pth", save)

    def run(self, kind: str) -> Path:
        if kind == "digits":
            return self.digits_run
        return self._once(f"{kind}-run", getattr(self, f"_train_{kind}"))

    def _train_segmentation(self, out: Path) -> Path:
        """Digit canvases (32x32, 11 classes), a narrow U-Net, one short epoch."""
        from pixelwise.engine import fit

        cfg = load_real_config(
            None,
            [
                "name=digit-seg",
                "task=segmentation",
                f"output_dir={out}",
                "data.format=digits_segmentation",
                "data.num_samples=60",
                "data.image_size=[32, 32]",
                "data.in_channels=1",
                "data.batch_size=8",
                "data.augment=none",
                "model.name=unet",
                "model.options={base_channels: 4}",
                "train.epochs=1",
                "train.tensorboard=false",
                "train.report=false",
                "train.learning_gif=false",
            ],
        )
        return fit(cfg).run_dir

    def _train_cifar(self, out: Path) -> Path:
        """cifar10_resnet18 on the CIFAR-like fixture (a ResNet with layer1..layer4)."""
        from pixelwise.engine import fit

        given = [f"output_dir={out}"]
        return fit(
            load_real_config("cifar10_resnet18", given + cuts("cifar10_resnet18", given, self))
        ).run_dir


def load_real_config(path: Any, overrides: list[str] | None = None):
    """``pixelwise.config.load_config`` itself, even while snippets see the cut one."""
    from pixelwise import config

    return getattr(config.load_config, "__wrapped__", config.load_config)(path, overrides)


# --------------------------------------------------------------------------- workspace
class Workspace:
    """A block's working directory: the run copies, inputs and fixture paths it names."""

    def __init__(self, path: Path, fixtures: Fixtures, block: Block) -> None:
        self.path = path
        self.fixtures = fixtures
        self.block = block
        for name in INPUT_FILES:
            grey = name.endswith(".png")
            _save(path / name, _pixels(8, 8, len(name), channels=1 if grey else 3))
        for folder in INPUT_FOLDERS:
            for i in range(2):
                _save(path / folder / f"{folder}_{i}.png", _pixels(8, 8, i, channels=1))
        for name, kind in RUN_COPIES.items():
            if re.search(re.escape(name) + r"(?![\w-])", block.code):
                shutil.copytree(fixtures.run(kind), path / name)

    def placeholder(self, word: str, line: str) -> str:
        value = PLACEHOLDERS[word]
        if word.startswith("RUN") and any(o in line for o in SEGMENTATION_ONLY_OPTIONS):
            (self.path / "runs").mkdir(exist_ok=True)
            if not (self.path / "runs/seg").exists():
                shutil.copytree(self.fixtures.run("segmentation"), self.path / "runs/seg")
            return "runs/seg"
        if value.startswith("runs/") and not (self.path / value).exists():
            shutil.copytree(self.fixtures.run("digits"), self.path / value)
        return value.format(pet=self.fixtures.pet() if "{pet}" in value else "")


# --------------------------------------------------------------------------- shell blocks
PLACEHOLDER_PATTERN = re.compile(
    "|".join(
        re.escape(word) if not word.isidentifier() else rf"(?<![\w/.-]){word}(?![\w/.-])"
        for word in sorted(PLACEHOLDERS, key=len, reverse=True)
    )
)


def console_commands(code: str) -> str:
    """A console transcript's commands (``$ ...`` lines); other text is output."""
    return "\n".join(line[2:] for line in code.split("\n") if line.startswith("$ ")) + "\n"


def usage_variants(line: str) -> list[str]:
    """A usage line's runnable forms: without its ``[optional]`` parts and with all of
    them, once per ``a|b`` alternative. Plain commands come back as they are."""
    if not line.startswith("pixelwise ") or not re.search(r"\s\[|\|", line):
        return [line]
    line = re.sub(r"\s+#.*$", "", line)
    optional = r"(?<=\s)\[([^\]]*)\]"
    variants = [re.sub(r"\s+" + optional, "", line), re.sub(optional, r"\1", line)]
    out: list[str] = []
    for variant in dict.fromkeys(variants):
        out += alternatives(variant)
    return list(dict.fromkeys(out))


def alternatives(line: str) -> list[str]:
    """``--format onnx|safetensors`` (one word each) and ``--gradcam | --tsne | --features
    L`` or ``data check C | data stats C`` (to the end of the line) as separate lines."""
    if " | " in line:
        first, *rest = line.split(" | ")
        words = first.split()
        if rest[0].startswith("-"):  # options: the first alternative is its last option on
            start = max(i for i, w in enumerate(words) if w.startswith("-"))
        else:  # subcommands: the first alternative starts after the program
            start = 1
        head = " ".join(words[:start])
        return [f"{head} {alt}" for alt in [" ".join(words[start:]), *rest]]
    match = re.search(r"(\S+\|\S+)", line)
    if match:
        return [line.replace(match.group(1), alt) for alt in match.group(1).split("|")]
    return [line]


def shell_script(block: Block, workspace: Workspace) -> str:
    code = console_commands(block.code) if block.language == "console" else block.code
    lines: list[str] = []
    for line in code.replace("\\\n", " ").split("\n"):
        for variant in usage_variants(line):
            lines.append(
                PLACEHOLDER_PATTERN.sub(
                    lambda m, line=line: workspace.placeholder(m.group(0), line), variant
                )
            )
    return "\n".join(lines) + "\n"


def recorded_commands(script: str, cwd: Path) -> list[list[str]]:
    """Every program ``script`` calls, expanded by bash but not run: with an empty
    ``PATH`` each call lands in ``command_not_found_handle``, which records it."""
    record = cwd / ".commands"
    empty = cwd / ".empty-path"
    empty.mkdir()
    prelude = (
        "set -eu\n"
        'command_not_found_handle() { printf "%s\\0" "$@" >> "$RECORD"; printf "\\036\\0" >> "$RECORD"; }\n'
    )
    shell = shutil.which("bash") or "/bin/bash"
    env = {"PATH": str(empty), "RECORD": str(record), "HOME": str(cwd)}
    done = subprocess.run(
        [shell, "--noprofile", "--norc", "-c", prelude + script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"bash could not expand the block: {done.stderr}"
    fields = record.read_bytes().decode().split("\0") if record.exists() else []
    commands, current = [], []
    for item in fields:
        if item == "\x1e":
            commands.append(current)
            current = []
        elif item or current:
            current.append(item)
    return commands


def pixelwise_arguments(command: list[str]) -> list[str] | None:
    """The ``pixelwise`` arguments of a documented command line; None for ``make``."""
    program, args = command[0], command[1:]
    if program == "pixelwise":
        return args
    if program in ("python", "python3") and args[:2] == ["-m", "pixelwise"]:
        return args[2:]
    if program == "torchrun":
        from torch.distributed.run import get_args_parser

        parsed = get_args_parser().parse_args(args)  # torchrun's own options, checked
        assert parsed.module and parsed.training_script == "pixelwise", command
        return list(parsed.training_script_args)  # run as one process here
    if program == "make":
        makefile = (ROOT / "Makefile").read_text()
        for target in args:
            assert re.search(rf"^{re.escape(target)}\s*:", makefile, re.M), f"no make {target}"
        return None
    raise AssertionError(f"a doc command runs {program!r}, which this test cannot run: {command}")


def with_cuts(args: list[str], fixtures: Fixtures) -> list[str]:
    """``train``, ``demo`` and ``data`` commands with the training cuts after the doc's
    own overrides (a bare ``--resume`` stays last: it would read the next word)."""
    if not args:
        return args
    if args[0] == "train":
        config, given = args[1], [a for a in args[2:] if "=" in a and not a.startswith("-")]
    elif args[0] == "demo":
        config, given = "digits", [a for a in args[1:] if "=" in a]
    elif args[0] == "data" and len(args) > 2 and args[1] in ("check", "stats"):
        config, given = args[2], [a for a in args[3:] if "=" in a]
    else:
        return args
    extra = cuts(config, given, fixtures)
    if args[0] == "data":
        extra = [o for o in extra if o.startswith("data.")]
    if args[-1] == "--resume":
        return [*args[:-1], *extra, "--resume"]
    return [*args, *extra]


def run_pixelwise(args: list[str]) -> None:
    from pixelwise.cli import main

    try:
        status = main(args)
    except SystemExit as exit_:
        status = exit_.code
    assert status in (0, None), f"pixelwise {' '.join(args)} exited with {status}"


# --------------------------------------------------------------------------- python blocks
def shared_model_and_data(fixtures: Fixtures, kind: str, split: str = "test") -> dict[str, Any]:
    """A shared run's model, one split's dataset, a batch and the names, as snippets
    call them."""
    import torch

    from pixelwise.data import build_datasets
    from pixelwise.run import RunDir

    run = RunDir(fixtures.run(kind))
    model, card = run.load_model("best")
    cfg = run.config()
    splits = build_datasets(cfg, run.path)
    dataset = splits.datasets[split]
    items = [dataset[i] for i in range(min(4, len(dataset)))]
    images = torch.stack([image for image, _ in items])
    targets = [target for _, target in items]
    return {
        "model": model,
        "dataset": dataset,
        "val_dataset": splits.datasets[cfg.data.val_split],
        "images": images,
        "masks": torch.stack(targets) if kind == "segmentation" else torch.tensor(targets),
        "names": splits.class_names,
        "class_names": splits.class_names,
        "num_classes": splits.num_classes,
        "card": card,
        "mean": list(card.preprocessing.mean or []) or None,
        "std": list(card.preprocessing.std or []) or None,
    }


def setup_snippet_files(links: dict[str, str]) -> Callable[[Fixtures, Path], dict[str, Any]]:
    """Files the snippet opens, linked from fixtures: {path in cwd: torchvision name}."""

    def setup(fixtures: Fixtures, cwd: Path) -> dict[str, Any]:
        for target, name in links.items():
            source = fixtures.torchvision_weights(name)
            (cwd / target).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(source, cwd / target)
        return {}

    return setup


def setup_vgg16_meta(fixtures: Fixtures, cwd: Path) -> dict[str, Any]:
    import torch

    from pixelwise.models import create_model

    with torch.device("meta"):
        return {"model": create_model("vgg16")}


def setup_resnet_features(fixtures: Fixtures, cwd: Path) -> dict[str, Any]:
    import torch

    from pixelwise.models import create_model

    images = torch.rand(2, 3, 32, 32)
    return {
        "model": create_model("resnet18", num_classes=10).eval(),
        "images": images,
        "display_image": (images[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8),
    }


def setup_digits(fixtures: Fixtures, cwd: Path) -> dict[str, Any]:
    return shared_model_and_data(fixtures, "digits")


def setup_segmentation(fixtures: Fixtures, cwd: Path) -> dict[str, Any]:
    import torch

    ns = shared_model_and_data(fixtures, "segmentation")
    with torch.no_grad():
        ns["predictions"] = ns["model"](ns["images"]).argmax(1)
    ns.update(epochs=2, run_dir=cwd, val_miou=0.5)
    return ns


def setup_confusion_matrix_loop(fixtures: Fixtures, cwd: Path) -> dict[str, Any]:
    import torch

    from pixelwise.models import create_model

    masks = torch.randint(0, 21, (2, 32, 32))
    masks[:, 0] = 255
    model = create_model("unet", num_classes=21, base_channels=4).eval()
    return {"model": model, "loader": [(torch.rand(2, 3, 32, 32), masks)]}


def setup_unet_encoder(fixtures: Fixtures, cwd: Path) -> dict[str, Any]:
    import torch

    setup_snippet_files({"resnet34.pth": "resnet34"})(fixtures, cwd)
    return {"images": torch.rand(1, 3, 64, 64)}


def setup_exports(*names: str) -> Callable[[Fixtures, Path], dict[str, Any]]:
    """Exports of runs/digits-cnn the snippet opens (``model.safetensors``)."""

    def setup(fixtures: Fixtures, cwd: Path) -> dict[str, Any]:
        from pixelwise.export import export

        if not (cwd / "runs/digits-cnn").exists():
            shutil.copytree(fixtures.run("digits"), cwd / "runs/digits-cnn")
        for name in names:
            export(cwd / "runs/digits-cnn", Path(name).suffix.lstrip("."), out=cwd / name)
        return {}

    return setup


def setup_gradcam(fixtures: Fixtures, cwd: Path) -> dict[str, Any]:
    ns = shared_model_and_data(fixtures, "digits")
    ns["pictures"] = [np.zeros((8, 8, 3), np.uint8)] * len(ns["images"])
    ns["captions"] = [str(i) for i in range(len(ns["images"]))]
    return ns


def setup_standalone_folders(fixtures: Fixtures, cwd: Path) -> dict[str, Any]:
    """``data/leaves`` (images and masks of 3 classes) and ``data/pets`` (class folders)."""
    for i in range(8):
        _save(cwd / f"data/leaves/images/leaf{i}.png", _pixels(16, 16, i))
        _save(cwd / f"data/leaves/masks/leaf{i}.png", _blocks(16, 16, 3, i))
        _save(cwd / f"data/pets/{'cat' if i % 2 else 'dog'}/pet{i}.png", _pixels(16, 16, i))
    return {}


def setup_doc_files(doc: str, names: list[str]) -> Callable[[Fixtures, Path], dict[str, Any]]:
    """The files a doc shows as blocks whose first line names them (``# leaves.py``),
    written to the working directory and importable from it."""

    def setup(fixtures: Fixtures, cwd: Path) -> dict[str, Any]:
        text = (ROOT / doc).read_text()
        for code in re.findall(r"^```\w*\n(.*?)^```", text, flags=re.S | re.M):
            for name in names:
                if code.startswith(f"# {name}"):
                    (cwd / name).write_text(code)
        sys.path.insert(0, str(cwd))
        for name in names:
            sys.modules.pop(Path(name).stem, None)
        return {}

    return setup


SNIPPET_SETUP: dict[str, Callable[[Fixtures, Path], dict[str, Any]]] = {
    "README.md: import pixelwise": setup_snippet_files({"resnet50-torchvision.pth": "resnet50"}),
    "docs/analysis.md: from pixelwise.analysis import receptive_fields, output_size": setup_vgg16_meta,
    "docs/analysis.md: from pixelwise.analysis import feature_maps": setup_resnet_features,
    "docs/analysis.md: from pixelwise.analysis import layer_features, tsne_embedding, default_tsne_layers": setup_digits,
    "docs/analysis.md: from pixelwise.analysis import grad_cam, default_gradcam_layer": setup_gradcam,
    "docs/analysis.md: from pixelwise.viz.segmentation import plot_segmentation, plot_overlays, overlay": setup_segmentation,
    "docs/analysis.md: from pixelwise.viz.learning import LearningGif": setup_segmentation,
    "docs/metrics.md: from pixelwise.metrics import ConfusionMatrix": setup_confusion_matrix_loop,
    "docs/models.md: from pixelwise.models import create_model": setup_snippet_files(
        {"resnet18.pth": "resnet18"}
    ),
    "docs/models.md: from pixelwise.models import create_model #2": setup_snippet_files(
        {"path/to/resnet50.pth": "resnet50"}
    ),
    "docs/models.md: from pixelwise.models import create_model #3": setup_unet_encoder,
    "docs/data.md: from torch.utils.data import DataLoader": setup_standalone_folders,
    "docs/training.md: import pixelwise": setup_doc_files("docs/training.md", ["leaves.py"]),
    "docs/inference.md: import pixelwise": setup_exports("model.safetensors"),
    "docs/inference.md: import json, onnxruntime as ort": setup_exports("digits.onnx"),
}


# Files a shell block presumes, written before it runs.
SHELL_FILES: dict[str, Callable[[Fixtures, Path], dict[str, Any]]] = {
    "docs/training.md: PYTHONPATH=. pixelwise train leaves.yaml": setup_doc_files(
        "docs/training.md", ["leaves.py", "leaves.yaml"]
    ),
}


class raises_documented:
    """A snippet line documented to fail (``f(570)  # ValueError: ...``) must raise
    that exception (matched by class name, the class or one of its bases)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type | None, error: BaseException | None, tb: Any) -> bool:
        assert kind is not None, f"documented to raise {self.name}, but it ran"
        names = {c.__name__ for c in kind.__mro__}
        return self.name in names  # swallow the documented error, re-raise any other


def documented_errors(code: str) -> str:
    """Top-level lines commented ``# SomeError...`` run inside ``raises_documented``."""
    lines = []
    for line in code.split("\n"):
        match = re.match(r"^(\S.*?)\s+#\s*(\w+(?:Error|Exception))\b", line)
        lines.append(f"with __raises__({match.group(2)!r}): {match.group(1)}" if match else line)
    return "\n".join(lines)


def cut_load_config(fixtures: Fixtures) -> Callable[..., Any]:
    """``load_config`` as snippets see it: their overrides, then the training cuts."""
    from pixelwise import config

    real = config.load_config

    def load_config(path: Any = None, overrides: list[str] | None = None):
        given = list(overrides or [])
        return real(path, [*given, *cuts(str(path) if path else None, given, fixtures)])

    load_config.__wrapped__ = real  # type: ignore[attr-defined]
    return load_config


# --------------------------------------------------------------------------- the tests
BLOCKS = extract_blocks()


def block_params() -> Iterator[Any]:
    for block in BLOCKS:
        if block.key in NOT_RUN:
            continue
        marks = [pytest.mark.slow] if block.key in SLOW else []
        yield pytest.param(block, id=str(block), marks=marks)


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory, trained_digits) -> Fixtures:
    return Fixtures(tmp_path_factory.mktemp("docs-fixtures"), trained_digits)


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> Path:
    cwd = tmp_path / "work"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("PIXELWISE_QUIET", "1")
    return cwd


def test_every_block_is_run_or_listed():
    """A block is run unless NOT_RUN lists it; every name in the lists is a block."""
    keys = {block.key for block in BLOCKS}
    assert BLOCKS, "no fenced blocks found in README.md and docs/"
    stale = sorted((set(NOT_RUN) | SLOW | set(SNIPPET_SETUP) | set(SHELL_SETUP)) - keys)
    assert not stale, f"these entries name no block any more (update the lists): {stale}"


def test_usage_lines_expand_to_runnable_commands():
    assert usage_variants("pixelwise eval RUN_DIR [--split test] [--tta]") == [
        "pixelwise eval RUN_DIR",
        "pixelwise eval RUN_DIR --split test --tta",
    ]
    assert usage_variants("pixelwise export R --format onnx|safetensors  # formats") == [
        "pixelwise export R --format onnx",
        "pixelwise export R --format safetensors",
    ]
    assert usage_variants("pixelwise analyze R --gradcam | --tsne | --features L") == [
        "pixelwise analyze R --gradcam",
        "pixelwise analyze R --tsne",
        "pixelwise analyze R --features L",
    ]
    assert usage_variants("pixelwise data check C | data stats C") == [
        "pixelwise data check C",
        "pixelwise data stats C",
    ]
    assert usage_variants("pixelwise train digits model.options='{width: 8}'") == [
        "pixelwise train digits model.options='{width: 8}'"
    ]


@pytest.mark.parametrize("block", list(block_params()))
def test_doc_block_runs(block: Block, fixtures: Fixtures, workspace: Path, monkeypatch):
    space = Workspace(workspace, fixtures, block)
    if block.language == "python":
        from pixelwise import config

        namespace: dict[str, Any] = {"__name__": "__docs__", "__raises__": raises_documented}
        extra = SNIPPET_SETUP.get(block.key)
        if extra is not None:
            namespace.update(extra(fixtures, workspace))
        monkeypatch.setattr(config, "load_config", cut_load_config(fixtures))
        code = "\n" * block.line + documented_errors(
            block.code
        )  # tracebacks point at the doc's own lines
        exec(compile(code, str(ROOT / block.file), "exec"), namespace)  # noqa: S102
        return
    files = SHELL_FILES.get(block.key)
    if files is not None:
        files(fixtures, workspace)
        monkeypatch.setattr(sys, "path", list(sys.path))  # setup_doc_files extends it
    for args in SHELL_SETUP.get(block.key, []):
        run_pixelwise(with_cuts(args, fixtures))
    commands = recorded_commands(shell_script(block, space), workspace)
    assert commands, f"{block}: no command found in the block"
    for command in commands:
        args = pixelwise_arguments(command)
        if args is not None:
            run_pixelwise(with_cuts(args, fixtures))


if __name__ == "__main__":  # list the blocks: python tests/test_docs.py
    for block in BLOCKS:
        state = "listed" if block.key in NOT_RUN else "slow" if block.key in SLOW else "run"
        print(f"{state:7} {block}  {block.key.split(': ', 1)[1][:70]}", file=sys.stdout)
