"""The HTML report opened in a real headless Chromium: its DOM holds the plots and tables,
and a screenshot shows the plots were decoded and drawn.

Needs Debian's `chromium` (`apt-get install -y --no-install-recommends chromium`). When it
is missing the test FAILS (it does not skip), so CI cannot pass without having looked.
Deselect it on a workstation with `-m "not browser"`.

The screenshot and the HTML are kept in the test's tmp dir; set REPORT_TEST_ARTIFACTS=<dir>
(e.g. tests/artifacts) to also copy them there for CI to upload.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

APT = "apt-get install -y --no-install-recommends chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--hide-scrollbars"]
PLOT_COLOURS = {"matplotlib blue (plot lines)": (31, 119, 180), "matplotlib orange (plot lines)": (255, 127, 14)}
HEIGHT = 6000  # down to the per-task table, where the at-floor rows are
TIER_PIXELS = (("negligible", (26, 152, 80), 500), ("inconclusive", (194, 165, 207), 2000),
               ("at floor", (146, 197, 222), 1000))  # the floor cells: #92c5de in the per-task table
TABLES = ("viability", "floors", "best_methods", "method_pairs", "cliffs", "variants", "quality_by_task", "behaviour", "deployment", "decisions_budget",
          "decisions_scenario", "provenance_versions")


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail(f"Chromium is not installed; the HTML report test needs it: {APT}", pytrace=False)


def run_chromium(exe: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([exe, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                            timeout=180)
    assert result.returncode == 0, f"chromium exited {result.returncode}: {result.stderr[-2000:]}"
    return result


class DomSummary(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.tables, self.tier_cells, self.rows = [], [], 0, 0
        self.cells_by_class, self._open = {}, None  # tier class -> the texts of its cells

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        elif tag == "table":
            self.tables.append(attrs.get("id", ""))
        elif tag == "td" and (attrs.get("class") or "").startswith("tier-"):
            self.tier_cells += 1
            self._open = attrs["class"]
            self.cells_by_class.setdefault(self._open, []).append("")
        elif tag == "tr":
            self.rows += 1

    def handle_data(self, data):
        if self._open:
            self.cells_by_class[self._open][-1] += data

    def handle_endtag(self, tag):
        if tag == "td":
            self._open = None


@pytest.mark.browser
def test_the_html_report_renders_in_headless_chromium(sweep_report, tmp_path):
    exe = chromium()
    url = sweep_report.html.resolve().as_uri()

    dom = run_chromium(exe, tmp_path / "profile-dom", "--dump-dom", url).stdout
    summary = DomSummary()
    summary.feed(dom)
    assert len(summary.images) == 5 and all(src.startswith("data:image/png;base64,") for src in summary.images)
    assert {f"table-{name}" for name in TABLES} <= set(summary.tables)
    assert summary.tier_cells >= 10 and summary.rows > 50
    assert "Key findings" in dom and "rtn-w3a16-g32" in dom
    # the inconclusive and at-floor verdicts are cells of their own, written as such
    assert set(summary.cells_by_class["tier-inconclusive"]) == {"inconclusive"}
    assert len(summary.cells_by_class["tier-inconclusive"]) >= 4
    assert set(summary.cells_by_class["tier-at-floor"]) == {"at floor"}
    assert len(summary.cells_by_class["tier-at-floor"]) == 5  # small's arc rows: baseline and 4 variants
    assert "left out of tiers (baseline at the floor: baseline 27.0% (27/100)" in dom
    warnings = dom[dom.index('id="warnings"'):]
    assert "baseline format compliance 75% &lt; 80%" in warnings[: warnings.index("</div>")]

    screenshot = tmp_path / "report-screenshot.png"
    run_chromium(exe, tmp_path / "profile-shot", f"--window-size=1400,{HEIGHT}", f"--screenshot={screenshot}", url)
    assert screenshot.is_file()
    _keep(screenshot, sweep_report.html)

    from PIL import Image

    pixels = np.asarray(Image.open(screenshot).convert("RGB")).astype(int)
    assert pixels.shape[:2] == (HEIGHT, 1400)
    for name, colour in PLOT_COLOURS.items():  # colours only the embedded plots use: the PNGs were drawn
        close = (np.abs(pixels - np.array(colour)) <= 12).all(axis=-1).sum()
        assert close >= 50, f"{name} not found in the screenshot: were the plots rendered? ({screenshot})"
    for name, colour, least in TIER_PIXELS:  # drawn, not only present: the map and the table cells
        close = (np.abs(pixels - np.array(colour)) <= 6).all(axis=-1).sum()
        assert close >= least, f"{name} cells not visible in the screenshot ({close} pixels; {screenshot})"


def _keep(screenshot: Path, html: Path) -> None:
    target = os.environ.get("REPORT_TEST_ARTIFACTS")
    if target:
        folder = Path(target)
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy2(screenshot, folder / screenshot.name)
        shutil.copy2(html, folder / "report.html")
