"""One self-contained HTML page per run: ``write_report(run_dir) -> run_dir/report.html``.

Everything comes from the run directory's own files (``config.yaml``,
``metrics.jsonl``, ``checkpoints/best.pt``, ``eval/<split>.json``, ``plots/``,
``learning.gif``); what is missing is recomputed from the checkpoint and the run's
data, and a section that cannot be made says why instead of failing the report.
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

from ..log import logger
from ..metrics import headline
from .run_files import RunFiles

REPORT_FILE = "report.html"
PER_CLASS_KEYS = ("precision", "recall", "f1", "iou", "dice", "support")

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
def summary_section(run: RunFiles) -> str:
    cfg, card = run.cfg, run.card
    best_metric = (run.state or {}).get("best_metric") or cfg.best_metric
    best_value = (run.state or {}).get("best_value")
    rows = [
        ("run", run.run_dir.name),
        ("task", run.task),
        ("model", card.get("model", cfg.model.name)),
        ("model options", json.dumps(card.get("model_options", cfg.model.options)) or "{}"),
        ("data", f"{cfg.data.format} ({cfg.data.root or 'embedded'})"),
        ("classes", len(run.class_names()) if card or run.records else cfg.data.num_classes),
        ("input", f"{cfg.data.in_channels} x {' x '.join(map(str, cfg.data.image_size))}"),
        ("epochs run", f"{len(run.records)} of {cfg.train.epochs}"),
        ("optimiser", f"{cfg.optim.name}, lr {cfg.optim.lr}, schedule {cfg.schedule.name}"),
    ]
    if best_value is not None:
        rows.append(
            (
                f"best {best_metric}",
                f"{best_value:.4f} at epoch {(run.state or {}).get('best_epoch')}",
            )
        )
    body = table(["", "value"], rows)
    config = html.escape(run.config_text)
    body += f"<details><summary>config.yaml</summary><pre>{config}</pre></details>"
    return section("summary", "Run summary and configuration", body)


def curves_section(run: RunFiles) -> str:
    path = run.run_dir / "plots" / "curves.png"
    if not path.is_file():
        if not run.records:
            return section("curves", "Training curves", note("metrics.jsonl has no epochs yet."))
        from .plots import plot_curves

        plot_curves(run.records, path, run.task)
    return section(
        "curves", "Training curves", image(path, "loss, metrics and learning rate per epoch")
    )


def metrics_section(run: RunFiles, evaluated: tuple[str, dict[str, Any]] | None) -> str:
    if evaluated is None:
        return section(
            "metrics", "Final metrics", note("no eval/<split>.json and no checkpoint to evaluate.")
        )
    split, payload = evaluated
    figures, names = payload["figures"], payload.get("class_names") or run.class_names()
    scalars = list(headline(figures, run.task).items())
    epoch = payload.get("epoch")
    body = (
        f'<p class="lead">{html.escape(split)} split, checkpoint of epoch {epoch}.</p>'
        if epoch
        else ""
    )
    body += table(["figure", "value"], scalars)
    per_class = [k for k in PER_CLASS_KEYS if isinstance(figures.get(k), list)]
    if per_class:
        rows = [[name] + [figures[k][i] for k in per_class] for i, name in enumerate(names)]
        body += "<h3>Per class</h3>" + table(["class", *per_class], rows)
    return section("metrics", f"Final metrics ({split})", body)


def confusion_section(run: RunFiles, evaluated: tuple[str, dict[str, Any]] | None) -> str:
    if evaluated is None:
        return section("confusion", "Confusion matrix", note("not evaluated."))
    split, payload = evaluated
    path = run.run_dir / "plots" / f"confusion_{split}.png"
    if not path.is_file() and "confusion_matrix" in payload:
        from .plots import plot_confusion_matrix

        names = payload.get("class_names") or run.class_names()
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


def samples_section(run: RunFiles, split: str) -> str:
    dataset = run.splits().datasets[split]
    mean, std = (
        (run.card.get("mean"), run.card.get("std"))
        if run.card.get("normalize", True)
        else (None, None)
    )
    names = run.class_names()
    if run.task == "classification":
        from .samples import most_confident_mistakes, plot_mistakes

        mistakes = most_confident_mistakes(run.model(), dataset)
        if not mistakes:
            return section(
                "samples", "Most confident mistakes", note(f"no mistakes on the {split} split.")
            )
        path = plot_mistakes(
            dataset, mistakes, names, run.run_dir / "plots" / f"mistakes_{split}.png", mean, std
        )
        intro = lead(
            f"The wrong answers the model was surest of, on the {split} split: true → predicted."
        )
        return section(
            "samples", "Most confident mistakes", intro + image(path, "most confident mistakes")
        )
    from .samples import predict_masks
    from .segmentation import plot_segmentation

    images, masks, predictions = predict_masks(run.model(), dataset)
    path = plot_segmentation(
        images,
        masks,
        predictions,
        names,
        run.run_dir / "plots" / f"segmentation_{split}.png",
        mean,
        std,
    )
    body = image(path, "image, ground truth, prediction and overlay")
    gif = run.run_dir / "learning.gif"
    body += "<h3>The model learning</h3>" + (
        image(gif, "predictions of fixed validation images after every epoch")
        if gif.is_file()
        else note("no learning.gif in this run (train.learning_gif was off).")
    )
    return section("samples", f"Sample predictions ({split})", body)


def complexity_section(run: RunFiles) -> str:
    from ..analysis.complexity import format_count, model_complexity

    cfg, card = run.cfg, run.card
    options = dict(card.get("model_options", cfg.model.options))
    if cfg.model.encoder is not None:
        options.setdefault("encoder", cfg.model.encoder)
    size = (
        card.get("in_channels", cfg.data.in_channels),
        *card.get("image_size", cfg.data.image_size),
    )
    result = model_complexity(
        card.get("model", cfg.model.name), size, num_classes=len(run.class_names()), **options
    )
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


def _evaluated(run: RunFiles) -> tuple[str, dict[str, Any]] | None:
    """The saved evaluation, or a fresh one of the best checkpoint (test, else val)."""
    found = run.eval_split()
    if found is not None or run.state is None:
        return found
    from ..engine.evaluate import evaluate_run

    for split in (run.cfg.data.test_split, run.cfg.data.val_split):
        try:
            evaluate_run(run.run_dir, split=split)
            return run.eval_split()
        except Exception as err:  # noqa: BLE001 - the report is written without figures
            logger.warning(f"report: could not evaluate the {split} split: {err}")
    return None


# --------------------------------------------------------------------------- the page
def write_report(run_dir: str | Path, path: str | Path | None = None) -> Path:
    """Write ``report.html`` (or ``path``) for a run directory and return its path."""
    from .. import __version__

    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise FileNotFoundError(f"{run_dir} has no config.yaml: is it a pixelwise run directory?")
    run = RunFiles(run_dir)
    evaluated = _evaluated(run)
    split = evaluated[0] if evaluated else run.cfg.data.val_split
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
    name = html.escape(run.cfg.name)
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
{lead(f"{run.task} · {run.card.get('model', run.cfg.model.name)} · {run_dir}")}
{nav}
{chr(10).join(parts)}
<footer>written by pixelwise {__version__} on {when}</footer>
</body>
</html>
"""
    out = Path(path) if path is not None else run_dir / REPORT_FILE
    out.write_text(page, encoding="utf-8")
    return out
