"""A complete tiny-family folder (a build in the cache, or the release): where its
checkpoints, data and reports are. Light to import: no torch."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from models.tiny.generator import TASKS

# Bump when the folder layout, the tokenizer or the training code changes what a build
# holds (with GENERATOR_VERSION and the settings, it keys the cache and the release).
LAYOUT_VERSION = 5
MANIFEST = "build.json"  # a build's; written last, so its presence means complete
RELEASE_MANIFEST = "manifest.json"  # the release's: the build's plus its files' checksums


@dataclass(frozen=True)
class TinyFamily:
    """A completed build or the release: where its checkpoints, data and reports are."""

    root: Path

    @cached_property
    def manifest(self) -> dict:
        release = self.root / RELEASE_MANIFEST
        return json.loads((release if release.is_file() else self.root / MANIFEST).read_text())

    @property
    def sizes(self) -> tuple[str, ...]:
        return tuple(self.manifest["sizes"])

    def model_path(self, size: str) -> Path:
        if size not in self.sizes:
            raise ValueError(f"size {size!r} is not in this build; built: {', '.join(self.sizes)}")
        return self.root / size

    def data_path(self, task: str) -> Path:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; choices: {', '.join(TASKS)}")
        return self.root / "data" / f"tiny_{task}.jsonl"

    def answers_path(self, size: str) -> Path:
        """The recorded greedy answers of `size` to every held-out prompt (see release.py)."""
        return self.root / "data" / f"answers-{size}.jsonl"

    @property
    def calibration_path(self) -> Path:
        return self.root / "data" / "calibration.jsonl"

    @property
    def calibration_text_path(self) -> Path:
        return self.root / "data" / "calibration.txt"

    @cached_property
    def report(self) -> dict:
        return json.loads((self.root / "data" / "train_report.json").read_text())


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
