"""docs/integrations.md runs as written: every ```python block, each on its own, in a
fresh folder. The Lightning block is skipped only where lightning is not installed (it
is in the dev extra, so CI runs it); the others need nothing optional but torchmetrics."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[2] / "docs" / "integrations.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks() -> list[tuple[str, int, str]]:
    """(heading above the block, line number, code) for every python block."""
    text = PAGE.read_text()
    blocks = []
    for match in BLOCK.finditer(text):
        before = text[: match.start()]
        heading = re.findall(r"^## (.+)$", before, re.M)[-1]
        blocks.append((heading, before.count("\n") + 2, match.group(1)))
    return blocks


BLOCKS = python_blocks()


def test_the_page_has_the_examples_it_promises():
    code = "\n".join(code for _, _, code in BLOCKS)
    for needle in ("lightning.Trainer(", "self.log_dict(", "MaskFolder(", "optimizer.step()"):
        assert needle in code


@pytest.mark.parametrize(
    ("heading", "line", "code"), BLOCKS, ids=[f"line{line}" for _, line, _ in BLOCKS]
)
def test_block_runs_as_written(heading, line, code, tmp_path, monkeypatch):
    for package in ("lightning", "torchmetrics"):
        if re.search(rf"^(import|from) {package}\b|pixelwise\.integrations\.{package}", code, re.M):
            pytest.importorskip(package)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"{PAGE}:{line}", "exec"), {"__name__": "__doc_example__"})
