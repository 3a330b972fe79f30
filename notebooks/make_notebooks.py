"""Writes the tutorial notebooks (without outputs) from the cells below.

    python notebooks/make_notebooks.py

Edit the cells here, not the .ipynb files, then run this script: the notebooks stay
reviewable as Python, and the committed .ipynb files never carry outputs.
tests/test_notebooks.py executes both (with fewer epochs: it rewrites the cell tagged
``parameters``).
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent


def md(text: str) -> nbformat.NotebookNode:
    return new_markdown_cell(text.strip())


def code(text: str, tags: tuple[str, ...] = ()) -> nbformat.NotebookNode:
    cell = new_code_cell(text.strip())
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


# --------------------------------------------------------------------------- shared cells
SETUP = md(
    """
**Before you start.** From the repository root: `make demo` (or `python -m venv .venv`,
`.venv/bin/pip install -e ".[dev]"`), then open this notebook with that environment's
kernel (Jupyter, JupyterLab or VS Code). Everything runs on a CPU; nothing is
downloaded.
"""
)

CLASSIFICATION = [
    md(
        """
# Image classification, top to bottom

You will train a small convolutional network to read handwritten digits, then look at
what it learned. Every step is one call into `pixelwise`, and each returns plain Python
objects you can inspect:

1. **Data**: scikit-learn's 1,797 handwritten digits (8x8 greyscale, embedded in the
   package), split 70/15/15 into train/val/test.
2. **Model**: a three-stage CNN (`small_cnn`) and what it costs.
3. **Training**: one call that trains, keeps the best checkpoint and evaluates it.
4. **Figures**: learning curves and the confusion matrix.
5. **Pictures**: what the network looks at (Grad-CAM).
6. **Prediction**: the trained model on an image file, from its checkpoint alone.

It takes about two minutes on a laptop CPU.
"""
    ),
    SETUP,
    md(
        """
## Parameters

`EPOCHS` is the one knob worth turning: 15 epochs reach about 99% test accuracy; 1
epoch takes seconds and already reaches about 90%.
"""
    ),
    code(
        """
EPOCHS = 15          # passes over the training images
OUTPUT_DIR = "runs"  # each run gets its own folder here; nothing is ever overwritten
""",
        tags=("parameters",),
    ),
    code(
        """
import json

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Image, display

import pixelwise
from pixelwise.analysis import complexity, grad_cam
from pixelwise.config import load_config
from pixelwise.data import build_datasets
from pixelwise.experiment import run_experiment
from pixelwise.models import create_model
from pixelwise.run import RunDir

torch.manual_seed(0)
print("pixelwise", pixelwise.__version__, "| torch", torch.__version__)
"""
    ),
    md(
        """
## 1. Data

A *config* says everything about an experiment: the data, the model, the optimiser, the
schedule. `digits` is a recipe that ships with pixelwise
(`src/pixelwise/configs/digits.yaml`); `key=value` overrides change any field, exactly
as on the command line (`pixelwise train digits train.epochs=15`).
"""
    ),
    code(
        """
cfg = load_config("digits", [f"train.epochs={EPOCHS}", f"output_dir={OUTPUT_DIR}"])
print("task:", cfg.task, "| format:", cfg.data.format, "| input size:", cfg.data.image_size)
print("model:", cfg.model.name, cfg.model.options)
print("optimiser:", cfg.optim.name, "lr", cfg.optim.lr, "| schedule:", cfg.schedule.name)
"""
    ),
    md(
        """
`build_datasets` reads the data and splits it with a fixed seed. `splits.raw` holds
the images as stored (uint8); `splits.datasets` the same images after the transforms
the model sees (resized to 16x16, normalised, and randomly shifted during training).
"""
    ),
    code(
        """
splits = build_datasets(cfg)
names = splits.class_names
for split, dataset in splits.datasets.items():
    print(f"{split:5} {len(dataset):5} images")

train_raw = splits.raw["train"]
fig, axes = plt.subplots(2, 10, figsize=(10, 2.4))
for ax, index in zip(axes.flat, range(20)):
    image, label = train_raw[index]
    ax.imshow(image[0], cmap="gray_r")
    ax.set_title(names[label], fontsize=9)
    ax.axis("off")
fig.suptitle("training images and their labels")
plt.show()
"""
    ),
    md(
        """
## 2. Model

`create_model` builds any architecture of the zoo by name (`pixelwise models` lists
them). `complexity` counts parameters and multiply-accumulates (MACs) layer by layer,
by formula, for one input of the given size.
"""
    ),
    code(
        """
model = create_model(cfg.model.name, num_classes=len(names), in_channels=1, **cfg.model.options)
print(model)
cost = complexity(model, input_size=(1, *cfg.data.image_size))
print(f"{cost.params:,} parameters, {cost.macs / 1e6:.1f} M multiply-accumulates per image")
"""
    ),
    md(
        """
## 3. Training

`run_experiment` is what `pixelwise train` runs: the training loop (keeping
`checkpoints/best.pt`, the epoch with the best validation accuracy), then an
evaluation of that checkpoint on the test split, the plots and an HTML report, all in
one run directory.
"""
    ),
    code(
        """
result, test = run_experiment(cfg)
run_dir = result.run_dir
print("run directory:", run_dir)
print(f"best val accuracy {result.best_value:.3f} at epoch {result.best_epoch}")
print(f"test accuracy {test.figures['accuracy']:.3f}")
"""
    ),
    md(
        """
## 4. Figures

Every epoch is one line of `metrics.jsonl` (strict JSON). The training loss falls on
every epoch; the validation accuracy tells you when more epochs stop helping.
"""
    ),
    code(
        """
epochs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
x = [e["epoch"] for e in epochs]
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
left.plot(x, [e["train/loss"] for e in epochs], marker="o", label="train")
left.plot(x, [e["val/loss"] for e in epochs], marker="o", label="val")
left.set(xlabel="epoch", ylabel="loss", title="loss")
left.legend()
right.plot(x, [e["val/accuracy"] for e in epochs], marker="o", color="tab:green")
right.set(xlabel="epoch", ylabel="accuracy", title="validation accuracy")
for ax in (left, right):
    ax.xaxis.get_major_locator().set_params(integer=True)
plt.tight_layout()
plt.show()
"""
    ),
    md(
        """
The run directory already holds the pictures `pixelwise train` draws: the curves, the
confusion matrix of the test split (rows: true class, columns: prediction) and more.
"""
    ),
    code(
        """
for png in sorted((run_dir / "plots").glob("*.png")):
    print(png.name)
    display(Image(filename=str(png), width=520))
"""
    ),
    code(
        """
print("per-class recall on the test split:")
for name, recall in zip(test.class_names, test.figures["recall"]):
    print(f"  {name}: {recall:.2f}")
"""
    ),
    md(
        """
## 5. Pictures: where the network looks

Grad-CAM weighs the last stage's feature maps by how much each one raises the predicted
class's score. Bright regions are what the prediction rests on.
"""
    ),
    code(
        """
model, card = RunDir(run_dir).load_model("best")
test_set = splits.datasets["test"]
images = torch.stack([test_set[i][0] for i in range(8)])
labels = [test_set[i][1] for i in range(8)]
cam = grad_cam(model, images)

fig, axes = plt.subplots(2, 8, figsize=(12, 3.4))
for i in range(8):
    axes[0, i].imshow(images[i, 0], cmap="gray_r")
    axes[0, i].set_title(f"true {names[labels[i]]}", fontsize=9)
    axes[1, i].imshow(images[i, 0], cmap="gray_r")
    axes[1, i].imshow(cam.heatmaps[i], cmap="jet", alpha=0.5)
    p = cam.probabilities[i].item()
    axes[1, i].set_title(f"pred {names[cam.classes[i]]} {p:.0%}", fontsize=9)
for ax in axes.flat:
    ax.axis("off")
fig.suptitle(f"Grad-CAM at layer {cam.layer}")
plt.show()
"""
    ),
    md(
        """
## 6. Prediction from the checkpoint alone

`pixelwise.load` needs no config: the checkpoint carries a *model card* (architecture,
class names, input size, normalisation). It accepts image files, PIL images, arrays and
tensors, and resizes and normalises them as training did.
"""
    ),
    code(
        """
from PIL import Image as PILImage

digit, label = splits.raw["test"][0]
PILImage.fromarray(digit[0].numpy()).save("a_digit.png")   # an image file, as a user has

predictor = pixelwise.load(run_dir)
prediction = predictor.predict("a_digit.png", topk=3)
print("true label:", names[label])
print("prediction:", prediction.label, f"({prediction.probability:.1%})")
print("top 3:", list(zip(prediction.labels, [round(p, 3) for p in prediction.probabilities])))
"""
    ),
    md(
        """
## Where next

- `pixelwise report RUN_DIR` opens everything above (and more) as one HTML page:
  `report.html` in the run directory.
- Try another model: `cfg = load_config("digits", ["model.name=resnet20",
  "model.options={}"])`, or another optimiser (`optim.name=adamw optim.lr=3e-3`).
- The same calls train on your own images: `data.format=image_folder data.root=...`
  (docs/data.md). The segmentation notebook (`02_segmentation_digits.ipynb`) is next.
"""
    ),
]

SEGMENTATION = [
    md(
        """
# Semantic segmentation, top to bottom

Segmentation is classification of every pixel. You will train a small U-Net to find
handwritten digits on a canvas and say, pixel by pixel, which digit each stroke belongs
to (or background):

1. **Data**: a synthetic set built from scikit-learn's digits: 32x32 canvases with a
   few digits each, and their masks (11 classes: background and 0-9).
2. **Model**: a U-Net (an encoder that shrinks, a decoder that grows back, skip
   connections between them).
3. **Training**: the same loop as classification; the figures are now per pixel
   (pixel accuracy, IoU per class, mean IoU).
4. **Figures**: curves, IoU per class, the learning GIF.
5. **Pictures**: predicted masks next to the truth.
6. **Prediction**: a mask for a new canvas, from the checkpoint alone.

It takes a few minutes on a laptop CPU.
"""
    ),
    SETUP,
    md(
        """
## Parameters

15 epochs (about five minutes) reach a test mean IoU near 0.3, still rising: the
background is found almost perfectly and the strokes well, but which of the ten digits
a stroke belongs to is hard to tell pixel by pixel for a network this small; more
epochs keep improving it. 2 epochs take under a minute.
"""
    ),
    code(
        """
EPOCHS = 15           # passes over the training canvases
NUM_SAMPLES = 2000    # canvases in all (train, val and test)
OUTPUT_DIR = "runs"
""",
        tags=("parameters",),
    ),
    code(
        """
import json

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Image, display

import pixelwise
from pixelwise.analysis import complexity
from pixelwise.config import load_config
from pixelwise.data import build_datasets
from pixelwise.experiment import run_experiment
from pixelwise.models import create_model
from pixelwise.run import RunDir

torch.manual_seed(0)
CLASS_COLOURS = "tab20"  # one colour per class index in the mask pictures below


def show_mask(ax, mask, title):
    ax.imshow(mask, cmap=CLASS_COLOURS, vmin=0, vmax=19, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.axis("off")
"""
    ),
    md(
        """
## 1. Data

No bundled recipe this time: the config is built from the defaults and `key=value`
overrides, which is also how you would start a YAML file of your own
(`pixelwise train my.yaml`).
"""
    ),
    code(
        """
overrides = [
    "name=digit-segmentation",
    "task=segmentation",
    "data.format=digits_segmentation",   # synthetic canvases from the embedded digits
    f"data.num_samples={NUM_SAMPLES}",
    "data.image_size=[32, 32]",
    "data.in_channels=1",
    "data.batch_size=16",
    "data.augment=none",                 # no flips: a mirrored 2 is not a 2
    "model.name=unet",
    "model.options={base_channels: 16}", # a narrow U-Net: fast on a CPU
    "loss.terms=[{name: cross_entropy}, {name: dice}]",  # Dice: small classes count too
    "optim.name=adamw",
    "optim.lr=0.01",
    "optim.weight_decay=1e-4",
    "train.best_metric=val/miou",
    f"train.epochs={EPOCHS}",
    f"output_dir={OUTPUT_DIR}",
]
cfg = load_config(None, overrides)
splits = build_datasets(cfg)
names = splits.class_names
print("classes:", names)
for split, dataset in splits.datasets.items():
    print(f"{split:5} {len(dataset):5} canvases")
"""
    ),
    code(
        """
train_raw = splits.raw["train"]
fig, axes = plt.subplots(2, 6, figsize=(10, 3.6))
for i in range(6):
    image, mask = train_raw[i]
    axes[0, i].imshow(image[0], cmap="gray_r")
    axes[0, i].set_title(f"canvas {i}", fontsize=9)
    axes[0, i].axis("off")
    present = ", ".join(names[c] for c in np.unique(mask.numpy()) if c != 0)
    show_mask(axes[1, i], mask, f"mask: {present}")
fig.suptitle("input canvases (top) and what each pixel is (bottom)")
plt.show()
"""
    ),
    md(
        """
## 2. Model

A U-Net's output has the input's height and width and one channel per class: a score
for every class at every pixel.
"""
    ),
    code(
        """
model = create_model("unet", num_classes=len(names), in_channels=1, **cfg.model.options)
with torch.no_grad():
    scores = model(torch.zeros(1, 1, 32, 32))
print("input (1, 1, 32, 32) -> scores", tuple(scores.shape))
cost = complexity(model, input_size=(1, 32, 32))
print(f"{cost.params:,} parameters, {cost.macs / 1e6:.1f} M multiply-accumulates per canvas")
"""
    ),
    md(
        """
## 3. Training

The same call as for classification. Each epoch also predicts a fixed set of
validation canvases, which become `learning.gif`.
"""
    ),
    code(
        """
result, test = run_experiment(cfg)
run_dir = result.run_dir
print("run directory:", run_dir)
print(f"best val mIoU {result.best_value:.3f} at epoch {result.best_epoch}")
print(f"test: pixel accuracy {test.figures['pixel_accuracy']:.3f}, mIoU {test.figures['miou']:.3f}")
"""
    ),
    md(
        """
## 4. Figures

*IoU* (intersection over union) of a class is the overlap of its predicted and true
pixels divided by their union; the mean over classes (mIoU) is the usual summary,
because pixel accuracy is dominated by the background.
"""
    ),
    code(
        """
epochs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
x = [e["epoch"] for e in epochs]
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.5))
left.plot(x, [e["train/loss"] for e in epochs], marker="o", label="train loss")
left.plot(x, [e["val/loss"] for e in epochs], marker="o", label="val loss")
left.plot(x, [e["val/miou"] for e in epochs], marker="o", label="val mIoU")
left.set(xlabel="epoch", title="training")
left.xaxis.get_major_locator().set_params(integer=True)
left.legend()
iou = [np.nan if v is None else v for v in test.figures["iou"]]
right.bar(test.class_names, iou, color="tab:blue")
right.set(ylim=(0, 1), ylabel="IoU", title=f"test IoU per class (mIoU {test.figures['miou']:.2f})")
plt.tight_layout()
plt.show()
"""
    ),
    code(
        """
display(Image(filename=str(run_dir / "learning.gif")))
"""
    ),
    md(
        """
## 5. Pictures: predictions next to the truth
"""
    ),
    code(
        """
model, card = RunDir(run_dir).load_model("best")
test_set = splits.datasets["test"]
fig, axes = plt.subplots(3, 6, figsize=(10, 5.4))
for i in range(6):
    image, mask = test_set[i]
    with torch.no_grad():
        predicted = model(image[None]).argmax(1)[0]
    axes[0, i].imshow(splits.raw["test"][i][0][0], cmap="gray_r")
    axes[0, i].axis("off")
    show_mask(axes[1, i], mask, "truth")
    correct = (predicted == mask).float().mean().item()
    show_mask(axes[2, i], predicted, f"prediction ({correct:.0%})")
plt.tight_layout()
plt.show()
"""
    ),
    md(
        """
## 6. Prediction from the checkpoint alone

A new canvas, as an array: `predict` returns a mask at the input's own size.
"""
    ),
    code(
        """
canvas, truth = splits.raw["test"][6]
predictor = pixelwise.load(run_dir)
segmentation = predictor.predict(canvas[0].numpy())
print("mask", segmentation.mask.shape, "classes found:",
      [names[c] for c in np.unique(segmentation.mask) if c != 0])
fig, axes = plt.subplots(1, 3, figsize=(7, 2.6))
axes[0].imshow(canvas[0], cmap="gray_r")
axes[0].axis("off")
show_mask(axes[1], truth, "truth")
show_mask(axes[2], segmentation.mask, "predicted")
plt.show()
"""
    ),
    md(
        """
## Where next

- `pixelwise report RUN_DIR` gathers the curves, figures and sample predictions in one
  page; `pixelwise eval RUN_DIR --tta` scores the test split with flip averaging.
- Real data: the CamVid and Oxford-IIIT Pet recipes (`camvid_unet`, `pet_segnet`,
  docs/recipes.md) use the same calls on image/mask folders.
- Losses for small classes: `loss.terms=[{name: cross_entropy}, {name: dice}]`
  (docs/training.md).
"""
    ),
]

NOTEBOOKS = {
    "01_classification_digits.ipynb": CLASSIFICATION,
    "02_segmentation_digits.ipynb": SEGMENTATION,
}


def build(name: str, cells: list[nbformat.NotebookNode]) -> nbformat.NotebookNode:
    notebook = new_notebook(cells=[nbformat.from_dict(dict(cell)) for cell in cells])
    for index, cell in enumerate(notebook.cells):
        cell.id = f"{name[:2]}-{index:02d}"  # stable ids: regenerating changes nothing
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    notebook.metadata["language_info"] = {"name": "python"}
    return notebook


def main() -> None:
    for name, cells in NOTEBOOKS.items():
        notebook = build(name, cells)
        nbformat.validate(notebook)
        nbformat.write(notebook, HERE / name)
        print(f"wrote {HERE / name}")


if __name__ == "__main__":
    main()
