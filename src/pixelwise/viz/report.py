"""One self-contained HTML page per run: ``write_report(run_dir) -> run_dir/report.html``.

Everything comes from the run directory (``RunDir``: config, metrics, the best
checkpoint and its card, the saved evaluations, ``plots/``, ``learning.gif``). The
report evaluates nothing: figures come from ``eval/*.json`` (``pixelwise report`` and
``pixelwise.experiment`` evaluate a run that has none first); pictures that are
missing are drawn from the checkpoint and the run's data, and a section that cannot
be made says why instead of failing the report.
Every picture is embedded as a base64 ``data:`` URI and the styles are inline, so
the file opens from disk, by e-mail or in CI artefacts, with no server.
"""

from __future__ import annotations

import base64
import datetime
import html
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .._version import __version__
from ..analysis.complexity import format_count, model_complexity
from ..log import logger
from ..metrics import headline
from ..run import RunDir
from .plots import plot_confusion_matrix, plot_curves
from .samples import most_confident_mistakes, plot_mistakes, predict_masks
from .segmentation import plot_segmentation

PER_CLASS_KEYS = ("precision", "recall", "f1", "average_precision", "iou", "dice", "support")

STYLE = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 0 auto;
       max-width: 1100px; padding: 1.5rem; color: #1d2430; background: #fff; }
h1 { margin-bottom: 0.2rem; } h2 { border-bottom: 2px solid #dde3ea; padding-bottom: 0.2rem;
       margin-top: 2.2rem; } h3 { margin-top: 1.4rem; }
nav a { margin-right: 1rem; color: #2a5db0; }
table { border-collapse: collapse; margin: 0.6rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #dde3ea; padding: 0.25rem 0.6rem; text-align: left; }
th { background: #f3f6f9; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; height: auto; border: 1px solid #eef1f4; }
pre { background: #f6f8fa; padding: 0.8rem; overflow-x: auto; font-size: 0.8rem; }
.note { color: #6b7683; font-style: italic; } .lead { color: #4a5563; }
footer { margin-top: 3rem; color: #8a95a3; font-size: 0.8rem; }
"""


# --------------------------------------------------------------------------- HTML pieces
def data_uri(path: Path) -> str:
    mime = {".png": "image/png", ".gif": "image/gif", ".jpg": "image/jpeg", ".svg": "image/svg+xml"}
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"data:{mime.get(path.suffix.lower(), 'application/octet-stream')};base64,{encoded}"


def image(path: Path, alt: str) -> str:
    return f'<img src="{data_uri(path)}" alt="{html.escape(alt)}">'


def note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def lead(text: str) -> str:
    return f'<p class="lead">{html.escape(text)}</p>'


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """An HTML table; numbers are right-aligned, text left."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: Any) -> str:
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    opening = '<td class="num">' if numeric else "<td>"
    return f"{opening}{html.escape(_text(value))}</td>"


def _text(value: Any) -> str:
    if value is None:  # undefined figures are null in eval/<split>.json
        return "n/a"
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{html.escape(title)}</h2>\n{body}\n</section>'


# --------------------------------------------------------------------------- sections
def summary_section(run: RunDir) -> str:
    cfg, records = run.config(), run.metrics()
    state: dict[str, Any] = {}
    card = None
    if any(run.checkpoints_dir.glob("*.pt")):
        checkpoint = run.read_checkpoint(run.default_checkpoint())
        state, card = checkpoint.state, checkpoint.card
    best_metric = state.get("best_metric") or cfg.best_metric
    best_value = state.get("best_value")
    options = card.options if card else cfg.model.options
    rows = [
        ("run", run.path.name),
        ("task", cfg.task),
        ("model", card.model if card else cfg.model.name),
        ("model options", json.dumps(options) if options else "{}"),
        ("data", f"{cfg.data.format} ({cfg.data.root or 'embedded'})"),
        ("classes", card.num_classes if card else cfg.data.num_classes),
        ("input", f"{cfg.data.in_channels} x {' x '.join(map(str, cfg.data.image_size))}"),
        ("epochs run", f"{len(records)} of {cfg.train.epochs}"),
        ("optimiser", f"{cfg.optim.name}, lr {cfg.optim.lr}, schedule {cfg.schedule.name}"),
    ]
    if best_value is not None:
        rows.append((f"best {best_metric}", f"{best_value:.4f} at epoch {state.get('best_epoch')}"))
    body = table(["", "value"], rows)
    config = html.escape(run.config_file.read_text())
    body += f"<details><summary>config.yaml</summary><pre>{config}</pre></details>"
    return section("summary", "Run summary and configuration", body)


def curves_section(run: RunDir) -> str:
    path = run.plots_dir / "curves.png"
    if not path.is_file():
        records = run.metrics()
        if not records:
            return section("curves", "Training curves", note("metrics.jsonl has no epochs yet."))
        plot_curves(records, path, run.config().task)
    return section(
        "curves", "Training curves", image(path, "loss, metrics and learning rate per epoch")
    )


def evaluation_label(payload: dict[str, Any]) -> str:
    """What produced a saved evaluation: split, checkpoint, epoch and inference."""
    how = [f"{payload.get('split')} split", str(payload.get("checkpoint", "checkpoint"))]
    if payload.get("epoch"):
        how.append(f"epoch {payload['epoch']}")
    inference = payload.get("inference") or {}
    if inference.get("tta_hflip"):
        how.append("flip TTA")
    if inference.get("sliding_window"):
        how.append("sliding windows")
    return ", ".join(how)


def metrics_section(run: RunDir, evaluated: tuple[str, dict[str, Any]] | None) -> str:
    if evaluated is None:
        return section(
            "metrics", "Final metrics", note("not evaluated: no eval/*.json in this run.")
        )
    stem, payload = evaluated
    figures, names = payload["figures"], payload.get("class_names") or []
    scalars = list(headline(figures, run.config().task).items())
    body = f'<p class="lead">{html.escape(evaluation_label(payload))} (eval/{stem}.json).</p>'

    body += table(["figure", "value"], scalars)
    per_class = [k for k in PER_CLASS_KEYS if isinstance(figures.get(k), list)]
    if per_class:
        rows = [[name] + [figures[k][i] for k in per_class] for i, name in enumerate(names)]
        kind = "label" if payload.get("task") == "multilabel" else "class"
        body += f"<h3>Per {kind}</h3>" + table([kind, *per_class], rows)
    return section("metrics", f"Final metrics ({payload.get('split', stem)})", body)


def confusion_section(run: RunDir, evaluated: tuple[str, dict[str, Any]] | None) -> str:
    if evaluated is None:
        return section("confusion", "Confusion matrix", note("not evaluated."))
    stem, payload = evaluated
    split = payload.get("split", stem)
    if payload.get("task") == "multilabel":
        return section(
            "confusion",
            "Confusion matrix",
            note("multi-label: each label is its own yes/no decision; its counts are the "
                 "per-label precision and recall in Final metrics."),
        )  # fmt: skip
    path = run.confusion_plot_file(stem)
    if not path.is_file() and "confusion_matrix" in payload:
        names = payload.get("class_names") or []
        plot_confusion_matrix(
            payload["confusion_matrix"], names, path, title=f"{split} confusion matrix"
        )
    if not path.is_file():
        return section(
            "confusion", "Confusion matrix", note(f"no confusion matrix saved for {split}.")
        )
    return section(
        "confusion", f"Confusion matrix ({split})", image(path, f"{split} confusion matrix")
    )


def samples_section(run: RunDir, split: str) -> str:
    if run.config().data.format == "python":
        return section(
            "samples", "Sample predictions", note("the data were given in Python, not kept.")
        )
    dataset = run.splits().datasets[split]
    model, card = run.load_model(run.default_checkpoint())
    mean, std = card.mean_std
    names = list(card.class_names)
    if card.task == "multilabel":
        return section(
            "samples",
            "Sample predictions",
            note("multi-label: no single wrong answer per image to show; per-label figures "
                 "are in Final metrics, and pixelwise predict lists each image's labels."),
        )  # fmt: skip
    if card.task == "classification":
        mistakes = most_confident_mistakes(model, dataset)
        if not mistakes:
            return section(
                "samples", "Most confident mistakes", note(f"no mistakes on the {split} split.")
            )
        path = plot_mistakes(
            dataset, mistakes, names, run.plots_dir / f"mistakes_{split}.png", mean, std
        )
        intro = lead(
            f"The wrong answers the model was surest of, on the {split} split: true → predicted."
        )
        return section(
            "samples", "Most confident mistakes", intro + image(path, "most confident mistakes")
        )
    images, masks, predictions = predict_masks(model, dataset)
    path = plot_segmentation(
        images,
        masks,
        predictions,
        names,
        run.plots_dir / f"segmentation_{split}.png",
        mean,
        std,
        colors=card.class_colors,
    )
    body = image(path, "image, ground truth, prediction and overlay")
    gif = run.learning_gif
    body += "<h3>The model learning</h3>" + (
        image(gif, "predictions of fixed validation images after every epoch")
        if gif.is_file()
        else note("no learning.gif in this run (train.learning_gif was off).")
    )
    return section("samples", f"Sample predictions ({split})", body)


def complexity_section(run: RunDir) -> str:
    card = run.read_checkpoint(run.default_checkpoint()).card
    size = (card.in_channels, *card.image_size)
    result = model_complexity(card.model, size, num_classes=card.num_classes, **card.options)
    totals = [
        ("parameters", f"{result.params:,} ({format_count(result.params)})"),
        ("MACs per image", f"{result.macs:,} ({format_count(result.macs)})"),
        ("FLOPs per image (2 x MACs)", f"{result.flops:,} ({format_count(result.flops)})"),
    ]
    spatial = [
        row
        for row in result.rows
        if row.receptive_field != "-" and row.output_shape and math.prod(row.output_shape[-2:]) > 1
    ]
    if spatial:
        totals.append(
            (
                "receptive field of the last map",
                f"{spatial[-1].receptive_field} px ({spatial[-1].name})",
            )
        )
    heaviest = sorted((r for r in result.rows if r.macs), key=lambda r: -r.macs)[:10]
    rows = [
        (r.name, r.type, r.shape_text, r.params, r.macs, r.receptive_field, r.stride)
        for r in heaviest
    ]
    body = (
        f'<p class="lead">At {"x".join(map(str, size))}. FLOPs = 2 x MACs: libraries disagree on '
        'which one "FLOPs" means, so both are given. Full table: <code>pixelwise analyze RUN_DIR</code>.</p>'
        + table(["", "value"], totals)
        + "<h3>The ten heaviest layers</h3>"
        + table(["layer", "type", "output", "params", "MACs", "RF", "stride"], rows)
    )
    return section("complexity", "Model complexity", body)


def _guarded(title: str, anchor: str, make: Callable[[], str]) -> str:
    """A section, or a note saying why it could not be made (the report still gets written)."""
    try:
        return make()
    except Exception as err:  # noqa: BLE001 - one broken section must not cost the report
        logger.warning(f"report: {title} left out: {err}")
        return section(
            anchor,
            title,
            note(
                f"could not be made: {str(err).splitlines()[0] if str(err) else type(err).__name__}"
            ),
        )


# --------------------------------------------------------------------------- the page
def write_report(run: RunDir | str | Path, path: str | Path | None = None) -> Path:
    """Write ``report.html`` (or ``path``) for a run directory and return its path."""
    run = run if isinstance(run, RunDir) else RunDir(run)
    cfg = run.config()
    evaluated = run.headline_evaluation()
    split = evaluated[1].get("split", evaluated[0]) if evaluated else cfg.data.val_split
    parts = [
        summary_section(run),
        _guarded("Training curves", "curves", lambda: curves_section(run)),
        _guarded("Final metrics", "metrics", lambda: metrics_section(run, evaluated)),
        _guarded("Confusion matrix", "confusion", lambda: confusion_section(run, evaluated)),
        _guarded("Sample predictions", "samples", lambda: samples_section(run, split)),
        _guarded("Model complexity", "complexity", lambda: complexity_section(run)),
    ]
    titles = [
        ("summary", "Summary"),
        ("curves", "Curves"),
        ("metrics", "Metrics"),
        ("confusion", "Confusion"),
        ("samples", "Samples"),
        ("complexity", "Complexity"),
    ]
    nav = "<nav>" + "".join(f'<a href="#{a}">{t}</a>' for a, t in titles) + "</nav>"
    name = html.escape(cfg.name)
    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>pixelwise report: {name}</title>
<style>{STYLE}</style>
</head>
<body>
<h1>{name}</h1>
{lead(f"{cfg.task} · {cfg.model.name} · {run.path}")}
{nav}
{chr(10).join(parts)}
<footer>written by pixelwise {__version__} on {when}</footer>
</body>
</html>
"""
    out = Path(path) if path is not None else run.report_file
    out.write_text(page, encoding="utf-8")
    return out
