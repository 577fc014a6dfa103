"""Write the report: one self-contained HTML, Markdown with PNGs beside it, CSV tables.

The HTML has no external reference at all (CSS inline, plots as base64 PNG data URIs),
so it opens offline and can be attached to an issue or a CI run as a single file.
Files are written under a temporary name and renamed, so a reader never sees half a report.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import jinja2

from report.plots import Plot
from report.tables import Table
from common.storage import replace_atomically

TEMPLATES = Path(__file__).resolve().parent / "templates"


@dataclass
class Section:
    id: str
    title: str
    intro: str = ""
    plots: list[Plot] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)


@dataclass
class Content:
    title: str
    findings: list[str]
    warnings: Table
    gate: str
    sections: list[Section]
    gate_passed: bool = True

    @property
    def severity(self) -> str:
        """The warnings box: alert (a warning or a failed gate), info (notes only) or ok."""
        raw = self.warnings.raw
        if not self.gate_passed or ("level" in raw and (raw["level"] == "warning").any()):
            return "alert"
        return "info" if len(raw) else "ok"


def write_html(content: Content, path: Path) -> Path:
    html = _environment(autoescape=True).get_template("report.html.j2").render(c=content, data_uri=_data_uri)
    return _write_text(path, html)


def write_markdown(content: Content, path: Path, plots_dir: Path) -> Path:
    plots_dir.mkdir(parents=True, exist_ok=True)
    for section in content.sections:
        for plot in section.plots:
            _write_bytes(plots_dir / f"{plot.name}.png", plot.png)
    relative = os.path.relpath(plots_dir, path.parent)
    markdown = _environment(autoescape=False).get_template("report.md.j2").render(c=content, plots=relative)
    return _write_text(path, markdown)


def write_csv(content: Content, tables_dir: Path, extra: Optional[list[Table]] = None) -> dict[str, Path]:
    tables_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for table in [content.warnings, *(t for s in content.sections for t in s.tables), *(extra or [])]:
        written[table.name] = replace_atomically(tables_dir / f"{table.name}.csv",
                                                 lambda tmp: table.raw.to_csv(tmp, index=False))
    return written


def markdown_table(table: Table) -> str:
    view = table.view
    if view.empty:
        return "_(none)_"

    def cell(value) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(c) for c in view.columns) + " |", "|" + "---|" * len(view.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in view.itertuples(index=False)]
    return "\n".join(lines)


def _environment(*, autoescape: bool) -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=autoescape,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["md_table"] = markdown_table
    return env


def _data_uri(plot: Plot) -> str:
    return "data:image/png;base64," + base64.b64encode(plot.png).decode("ascii")


def _write_text(path: Path, text: str) -> Path:
    return _write_bytes(path, text.encode("utf-8"))


def _write_bytes(path: Path, data: bytes) -> Path:
    return replace_atomically(path, lambda tmp: tmp.write_bytes(data))
