"""A sweep cell: one (model, method, bits) variant, and its status file
`<sweeps_dir>/<name>/cells/<cell id>.json` and log, the sweep's record of what is done. A
cell writes its status atomically when it ends; "done" counts only while the cell's
artifact and records are still complete on disk."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from common.storage import fingerprint, read_manifest, write_json_atomic
from configs.sweep_schema import EvalSweepConfig


@dataclasses.dataclass(frozen=True)
class Cell:
    model: str
    method: str
    quantize_overrides: tuple[str, ...]
    eval_overrides: tuple[str, ...]

    @property
    def key(self) -> str:
        return fingerprint({"quantize": self.quantize_overrides, "eval": self.eval_overrides})[:10]

    @property
    def id(self) -> str:
        settings = [o.split("=", 1)[1] for o in self.quantize_overrides if o.startswith(("quant.bits=", "quant.group_size="))]
        model = Path(self.model).name if "/" in self.model else self.model  # a local folder
        return "__".join([model, "-".join([self.method, *settings]), self.key])

    @property
    def is_baseline(self) -> bool:
        return self.method == "none"


def status_path(cfg: EvalSweepConfig, cell: Cell) -> Path:
    return Path(cfg.sweeps_dir) / cfg.sweep.name / "cells" / f"{cell.id}.json"


def log_path(cfg: EvalSweepConfig, cell: Cell) -> Path:
    return Path(cfg.sweeps_dir) / cfg.sweep.name / "logs" / f"{cell.id}.log"


def cell_status(cfg: EvalSweepConfig, cell: Cell) -> dict:
    """done (and still complete on disk), failed, or pending."""
    try:
        status = json.loads(status_path(cfg, cell).read_text())
    except (OSError, ValueError):
        return {"status": "pending"}
    if status.get("status") == "done" and not _outputs_complete(status):
        return {"status": "pending", "note": "outputs missing or incomplete"}
    return status


def _outputs_complete(status: dict) -> bool:
    folders = [status.get("artifact"), *status.get("records", [])]
    return all(folder and read_manifest(Path(folder)) is not None for folder in folders)


def write_status(cfg: EvalSweepConfig, cell: Cell, **fields) -> None:
    path = status_path(cfg, cell)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {"cell": dataclasses.asdict(cell), "id": cell.id, **fields})


