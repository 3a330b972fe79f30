"""How much of the training pixels the rare classes get, with and without rare-class crops.

    python bench/bench_rare_crops.py --camvid ../shared/data/camvid [--crops 300]

Draws ``--crops`` training samples through ``camvid_native``'s training transforms (scale
0.5-2, 192x256 crops, flips) at ``data.rare_class_crop`` 0, 0.5 and 1 (seed 0 each) and
prints the share of labelled pixels in each of ``data.rare_classes`` and in all of them.
No training: this measures what the sampling does, not what it does to a model.
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from pixelwise.config import load_config
from pixelwise.data import FormatDataset


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--camvid", default="../shared/data/camvid")
    parser.add_argument("--crops", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for p in (0.0, 0.5, 1.0):
        cfg = load_config(
            "camvid_native", [f"data.root={args.camvid}", f"data.rare_class_crop={p}"]
        )
        keys = {k: v for k, v in dataclasses.asdict(cfg.data).items() if k != "format"}
        dataset = FormatDataset(cfg.data.format, "train", seed=cfg.seed, **keys)
        rare = [dataset.classes.index(name) for name in cfg.data.rare_classes]
        counts = torch.zeros(len(dataset.classes))
        torch.manual_seed(0)
        for i in range(args.crops):
            _, mask = dataset[i % len(dataset)]
            labelled = mask[mask != cfg.data.ignore_index].long()
            counts += torch.bincount(labelled, minlength=len(counts)).float()
        share = counts / counts.sum()
        print(
            f"rare_class_crop={p}: rare classes {share[rare].sum():.4f} of labelled pixels ("
            + ", ".join(f"{dataset.classes[c]} {share[c]:.4f}" for c in rare)
            + ")"
        )


if __name__ == "__main__":
    main()
