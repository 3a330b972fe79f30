"""camvid_fast end to end: pixelwise's training loop on its real data path vs a
hand-written PyTorch loop over the same files, images per second.

    python bench/bench_camvid_loop.py [--camvid ../shared/data/camvid] [--steps 0]
        [--repeats 5] [--threads 2] [--out bench/results/camvid_loop.json] [key=value ...]

pixelwise runs what ``pixelwise train camvid_fast`` runs for an epoch: ``build_datasets``
(the SegNet list files, index masks with Unlabelled ignored, the in-memory cache of
decoded pixels), ``build_loader`` (its workers), the ``default`` segmentation
augmentation (resize to 180x240, random scale 0.5-2, crop, horizontal flip,
normalise), ``build_parts`` (U-Net on a ResNet-18 encoder, AdamW, the poly schedule,
bfloat16 autocast, channels_last) and ``train_one_epoch``. The hand-written loop is what
a PyTorch user writes for the same job: a ``Dataset`` over ``train.txt`` that decodes
each PNG pair with ``torchvision.io``, the same augmentation written with
``torchvision.transforms.v2``, a plain ``DataLoader`` with the recipe's batch size and
workers, and forward, ``F.cross_entropy(ignore_index=255)``, backward and
``torch.optim.AdamW`` under the same autocast and memory format, around the same
network with the same starting weights. A pass is one epoch (or ``--steps`` steps);
passes are interleaved and their order rotates every round, and the ratio is the
median of the per-round ratios, as in bench/bench_train.py. The one-off filling of
pixelwise's cache happens in the warm-up pass, outside the timing. Writes
``bench/results/camvid_loop.json``.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.io import decode_image, read_file
from torchvision.transforms import v2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("PIXELWISE_QUIET", "1")  # no progress bars in the timed loop

from common import machine  # noqa: E402  (bench/ is on sys.path when a script runs)

from pixelwise.config import ExperimentConfig, load_config  # noqa: E402
from pixelwise.data import build_datasets, build_loader  # noqa: E402
from pixelwise.engine.build import build_parts  # noqa: E402
from pixelwise.engine.distributed import DistContext  # noqa: E402
from pixelwise.engine.precision import resolve_amp  # noqa: E402
from pixelwise.engine.trainer import train_one_epoch  # noqa: E402

IGNORE = 255
UNLABELLED = 11


class CamVidPairs(Dataset):
    """The pairs of SegNet's ``train.txt``, decoded from their PNG files on every read."""

    def __init__(self, root: Path, transform: Callable) -> None:
        self.pairs = []
        for line in (root / "train.txt").read_text().splitlines():
            if line.strip():
                image, mask = (root / p.split("/CamVid/", 1)[1] for p in line.split())
                self.pairs.append((image, mask))
        self.transform = transform

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image_path, mask_path = self.pairs[index]
        image = tv_tensors.Image(decode_image(read_file(str(image_path))))
        mask = decode_image(read_file(str(mask_path)))[0]
        mask[mask == UNLABELLED] = IGNORE
        image, mask = self.transform(image, tv_tensors.Mask(mask))
        return image, mask.long()


def hand_written_transform(cfg: ExperimentConfig) -> v2.Compose:
    """camvid_fast's training augmentation written out with transforms.v2."""
    height, width = cfg.data.image_size
    short = min(height, width)
    fill = {tv_tensors.Image: 0, tv_tensors.Mask: IGNORE}
    return v2.Compose(
        [
            v2.Resize((height, width), antialias=True),
            v2.RandomResize(round(short * 0.5), round(short * 2.0) + 1),
            v2.RandomCrop((height, width), pad_if_needed=True, fill=fill),
            v2.RandomHorizontalFlip(),
            v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True),
            v2.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--camvid", default=str(ROOT.parent / "shared" / "data" / "camvid"))
    parser.add_argument("--steps", type=int, default=0, help="steps per pass (0: one epoch)")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes per contestant")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "camvid_loop.json"))
    parser.add_argument("overrides", nargs="*", help="key=value overrides of camvid_fast")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    cfg = load_config("camvid_fast", [f"data.root={args.camvid}", "device=cpu", *args.overrides])
    memory_format = torch.channels_last if cfg.train.channels_last else torch.contiguous_format

    splits = build_datasets(cfg)
    loader = build_loader(splits.datasets["train"], cfg.data, train=True, device=device)
    steps = args.steps or len(loader)
    parts = build_parts(cfg, splits.num_classes, DistContext(device=device), len(loader))
    model = copy.deepcopy(parts.model)  # the same network and starting weights
    plain_loader = DataLoader(
        CamVidPairs(Path(args.camvid), hand_written_transform(cfg)),
        batch_size=cfg.data.batch_size,
        shuffle=True,
        num_workers=cfg.data.num_workers,
        drop_last=True,
    )
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay
    )
    amp = resolve_amp(cfg.train.amp, torch.device("cpu"))  # auto: as pixelwise resolves it
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp == "bf16")

    def hand_written() -> None:
        model.train()
        for step, (x, y) in enumerate(plain_loader):
            if step == steps:
                break
            x = x.to(device, memory_format=memory_format)
            optimizer.zero_grad(set_to_none=True)
            with autocast:
                loss = F.cross_entropy(model(x), y, ignore_index=IGNORE)
            loss.backward()
            optimizer.step()

    epoch = {"n": 0}

    def pixelwise() -> None:
        train_one_epoch(parts, loader, epoch["n"], after_step=lambda done: done >= steps)
        epoch["n"] += 1

    def timed(work: Callable[[], None]) -> tuple[float, float]:
        """(wall seconds, CPU seconds of this process: loader workers not included)."""
        wall, cpu = time.perf_counter(), time.process_time()
        work()
        return time.perf_counter() - wall, time.process_time() - cpu

    contestants = {"pixelwise": pixelwise, "hand_written": hand_written}
    for work in contestants.values():  # warm-up: the cache fill, allocator, first calls
        work()
    seconds: dict[str, list[tuple[float, float]]] = {name: [] for name in contestants}
    names = list(contestants)
    for repeat in range(args.repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            seconds[name].append(timed(contestants[name]))
            print(f"  {name}: {seconds[name][-1][0]:.2f} s", flush=True)

    images = steps * cfg.data.batch_size

    def rates(name: str) -> list[float]:
        return [images / s[0] for s in seconds[name]]

    ratios = [a / b for a, b in zip(rates("pixelwise"), rates("hand_written"))]
    ratio = statistics.median(ratios)
    quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratio] * 3
    height, width = cfg.data.image_size
    result = {
        "name": Path(args.out).stem,
        "what": f"camvid_fast training end to end ({height}x{width}, batch "
        f"{cfg.data.batch_size}, {cfg.data.num_workers} loader workers, "
        f"{resolve_amp(cfg.train.amp, torch.device('cpu'))} "
        f"autocast, channels_last, AdamW), {steps} steps per pass, {args.repeats} "
        "interleaved passes each",
        "unit": "images/s",
        "pixelwise": round(statistics.median(rates("pixelwise")), 2),
        "baseline": round(statistics.median(rates("hand_written")), 2),
        "baseline_name": "hand-written loop: Dataset over train.txt decoding PNGs, "
        "transforms.v2, DataLoader, AdamW",
        "ratio": round(ratio, 3),
        "ratio_definition": "median over rounds of the per-round ratio of pixelwise to "
        "hand-written images per second (wall clock)",
        "ratio_quartiles": [round(quartiles[0], 3), round(quartiles[2], 3)],
        "target": ">= 1.0x",
        "device": "cpu",
        "machine": machine(),
        "command": "python " + " ".join([os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]]),
        "date": datetime.date.today().isoformat(),
        "images_per_second": {n: [round(x, 2) for x in rates(n)] for n in names},
        "cpu_seconds_main_process": {n: [round(s[1], 2) for s in seconds[n]] for n in names},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(
        f"pixelwise {result['pixelwise']} images/s, hand-written {result['baseline']} images/s, "
        f"ratio {ratio:.3f}x (quartiles {quartiles[0]:.3f}-{quartiles[2]:.3f})"
    )
    print(f"written: {out}")


if __name__ == "__main__":
    main()
