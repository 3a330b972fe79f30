"""The tutorial notebooks run top to bottom (with fewer epochs), so they cannot rot.

Each notebook's cell tagged ``parameters`` is replaced by ``FAST`` (the defaults are
what a learner runs: a few minutes on a CPU) and the notebook is executed with nbclient
on the current interpreter, in a temporary working directory. The committed files carry
no outputs, and they are what ``notebooks/make_notebooks.py`` writes.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path

import pytest


def dev_dependency(module: str):
    """The ``dev`` extra's modules: skipped in an environment built before they were
    added, a failure in CI (``CI`` set), which installs the extra."""
    if os.environ.get("CI"):
        return importlib.import_module(module)
    return pytest.importorskip(
        module, reason=f"{module} is in the dev extra: pip install -e .[dev]"
    )


nbformat = dev_dependency("nbformat")
nbclient = dev_dependency("nbclient")
dev_dependency("ipykernel")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
FAST = {
    "01_classification_digits.ipynb": 'EPOCHS = 1\nOUTPUT_DIR = "runs"',
    "02_segmentation_digits.ipynb": 'EPOCHS = 1\nNUM_SAMPLES = 120\nOUTPUT_DIR = "runs"',
}


def read(name: str):
    return nbformat.read(NOTEBOOKS / name, as_version=4)


def test_every_notebook_is_tested():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(FAST)


@pytest.mark.parametrize("name", sorted(FAST))
def test_committed_without_outputs_and_as_generated(name):
    sys.path.insert(0, str(NOTEBOOKS))
    try:
        import make_notebooks
    finally:
        sys.path.remove(str(NOTEBOOKS))
    notebook = read(name)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, (name, cell.source[:40])
    generated = make_notebooks.build(name, make_notebooks.NOTEBOOKS[name])
    assert [c.source for c in notebook.cells] == [c.source for c in generated.cells], (
        f"{name} differs from notebooks/make_notebooks.py: run it again"
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FAST))
def test_notebook_runs_top_to_bottom(name, tmp_path, monkeypatch):
    notebook = read(name)
    parameters = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(parameters) == 1, f"{name}: one cell tagged 'parameters'"
    parameters[0].source = FAST[name]

    # The kernel is this interpreter (not whatever "python3" kernel is installed), with
    # this checkout's sources first on its path.
    kernel = tmp_path / "jupyter" / "kernels" / "pixelwise-test"
    kernel.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec = {"argv": argv, "display_name": "pixelwise test", "language": "python"}
    (kernel / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT / "src"), *sys.path]))
    monkeypatch.setenv("PIXELWISE_QUIET", "1")
    work = tmp_path / "work"
    work.mkdir()
    client = nbclient.NotebookClient(
        notebook,
        timeout=600,
        kernel_name="pixelwise-test",
        resources={"metadata": {"path": str(work)}},
    )
    client.execute()
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    ]
    assert not errors
    assert list((work / "runs").iterdir()), "the notebook wrote no run directory"
