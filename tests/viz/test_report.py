"""The HTML report: written from a run directory alone, valid, self-contained, readable."""

from __future__ import annotations

import importlib.util
import io
import os
import shutil
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image, ImageStat

from pixelwise.cli import main
from pixelwise.config import load_config
from pixelwise.experiment import run_experiment
from pixelwise.viz.report import write_report

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
BROWSER_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def quick_overrides(root: Path) -> list[str]:
    """The digits quick start cut to one short epoch (as ``tiny_digits_overrides``)."""
    return [
        f"output_dir={root}",
        "train.epochs=1",
        "schedule.warmup_epochs=0",
        "train.tensorboard=false",
        "train.report=false",
        "data.batch_size=64",
        "model.options={width: 8, dropout: 0.0}",
    ]


@pytest.fixture
def digits_run(trained_digits) -> Path:
    """The session's shared digits run (tests/conftest.py)."""
    return trained_digits.run_dir


class PageParser(HTMLParser):
    """Collects headings, image sources and every reference to another resource."""

    def __init__(self) -> None:
        super().__init__()
        self.headings: list[str] = []
        self.images: list[str] = []
        self.references: list[str] = []
        self.open_tags: list[str] = []
        self._heading: str | None = None

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        if tag not in ("meta", "img", "br", "link", "input"):
            self.open_tags.append(tag)
        if tag == "img":
            self.images.append(values.get("src") or "")
        for key in ("src", "href"):
            if key in values and tag != "img":
                self.references.append(values[key] or "")
        if tag in ("h1", "h2", "h3"):
            self._heading = ""

    def handle_endtag(self, tag):
        assert self.open_tags and self.open_tags[-1] == tag, (
            f"</{tag}> closes {self.open_tags[-1:]}"
        )
        self.open_tags.pop()
        if tag in ("h1", "h2", "h3") and self._heading is not None:
            self.headings.append(self._heading.strip())
            self._heading = None

    def handle_data(self, data):
        if self._heading is not None:
            self._heading += data


def parse(path: Path) -> PageParser:
    parser = PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    assert parser.open_tags == [], f"unclosed tags: {parser.open_tags}"
    return parser


def test_classification_report_is_complete_and_self_contained(digits_run):
    (digits_run / "plots" / "curves.png").unlink()  # recomputed from metrics.jsonl
    path = write_report(digits_run)
    assert path == digits_run / "report.html" and path.stat().st_size > 10_000
    page = parse(path)
    assert page.headings[0] == "digits-cnn"
    for heading in (
        "Run summary and configuration",
        "Training curves",
        "Final metrics (test)",
        "Per class",
        "Confusion matrix (test)",
        "Most confident mistakes",
        "Model complexity",
    ):
        assert heading in page.headings
    assert len(page.images) == 3  # curves, confusion matrix, mistakes
    assert all(src.startswith("data:image/png;base64,") for src in page.images)
    assert all(ref.startswith("#") for ref in page.references)  # in-page links only
    text = path.read_text()
    assert "could not be made" not in text and "FLOPs" in text and "small_cnn" in text


def test_report_command(digits_run, capsys):
    assert main(["report", str(digits_run), "--output", str(digits_run / "again.html")]) == 0
    assert "again.html" in capsys.readouterr().out
    assert (digits_run / "again.html").is_file()
    assert main(["report", str(digits_run / "missing")]) == 2


@pytest.mark.slow
def test_segmentation_run_ends_with_a_report_with_overlays_and_the_learning_gif(tmp_path):
    overrides = quick_overrides(tmp_path) + [
        "name=digit-seg",
        "task=segmentation",
        "data.format=digits_segmentation",
        "data.image_size=[32, 32]",
        "data.num_samples=120",
        "model.name=unet",
        "model.options={base_channels: 4}",
        "train.best_metric=val/miou",
        "train.learning_gif=true",
        "train.gif_images=4",
        "train.report=true",  # written by the end of training, not by this test
    ]
    cfg = load_config("digits", overrides)
    result, _ = run_experiment(cfg)
    assert (result.run_dir / "learning.gif").is_file()
    page = parse(result.run_dir / "report.html")
    assert "Sample predictions (test)" in page.headings and "The model learning" in page.headings
    assert "Final metrics (test)" in page.headings and "Model complexity" in page.headings
    assert any(src.startswith("data:image/gif;base64,") for src in page.images)
    assert all(src.startswith("data:image/") for src in page.images)
    assert "could not be made" not in (result.run_dir / "report.html").read_text()


def no_browser_here() -> None:
    """Skip where no headless Chromium is installed, except in CI (``CI`` set, as CI
    services set ``CI=true``): there a missing browser fails, so the report's browser
    check cannot go silent."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if not shutil.which("chromium"):
        missing.append("chromium on PATH")
    if importlib.util.find_spec("selenium") is None:
        missing.append("the selenium package")
    if not missing:
        return
    reason = f"no headless browser: {', '.join(missing)} missing"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run this test (.ci/run installs chromium chromium-driver)")
    pytest.skip(f"{reason} (CI installs Debian's chromium chromium-driver)")


def test_a_missing_browser_fails_in_ci_and_skips_elsewhere(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run this test"):
        no_browser_here()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="chromium on PATH missing"):
        no_browser_here()


@pytest.mark.browser
def test_headless_browser_shows_the_headings(digits_run):
    no_browser_here()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    path = write_report(digits_run)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in BROWSER_FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="pixelwise-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument("--window-size=1200,1600")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get(path.resolve().as_uri())
        headings = driver.find_elements(By.CSS_SELECTOR, "h1, h2")
        assert headings[0].text == "digits-cnn"
        assert all(h.is_displayed() for h in headings)
        assert {"Training curves", "Model complexity"} <= {h.text for h in headings}
        # Every embedded image decoded (a broken data URI has no natural width).
        assert driver.execute_script(
            "return Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)"
        )
        screenshot = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("L")
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    assert screenshot.width >= 1000
    assert ImageStat.Stat(screenshot).stddev[0] > 10  # text and pictures, not a blank page
    assert len(screenshot.getcolors(maxcolors=1 << 16) or range(1 << 16)) > 50
