"""Where the numbers come from, and what may be wrong with them.

Provenance: the report's date and settings, the records' dates, git revisions, library
versions, hardware, calibration fingerprints (read from the artifact manifests when the
artifacts are still there; never the weights), sample counts and evaluation settings.
Warnings: the baseline gate of every record (a suspect pipeline; report/floors.py adds the
shapes only the whole store shows), and every note the collection made (missing
baselines, settings that differ, records set aside).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
import datetime as dt
import json
from collections import Counter, defaultdict
from pathlib import Path

import pandas as pd

from configs.report_schema import ReportConfig
from report.collect import Collection, Note

SETTINGS_SHOWN = ("limit", "num_fewshot", "max_gen_toks", "apply_chat_template", "seed", "scoring_version")


@dataclass(frozen=True)
class Suspect:
    """A sign that the pipeline, not quantization, made some numbers: the records it puts in doubt."""

    where: str
    reason: str
    records: frozenset = frozenset()  # (variant key, task) quality records

    @property
    def line(self) -> str:
        return f"{self.where}: {self.reason}"


def record_suspects(collection: Collection) -> list[Suspect]:
    """One per reason of every record whose own baseline gate (written by evaluate run) says
    the pipeline, not quantization, is suspect."""
    found = []
    for (key, task), entry in sorted(collection.quality.items(), key=lambda item: item[0][1]):
        gate = (entry.record.get("baseline") or {}).get("gate") or {}
        if gate.get("suspect_pipeline"):
            variant = collection.variants[key]
            found += [Suspect(f"{variant.model} {variant.label} {task}", reason, frozenset({(key, task)}))
                      for reason in gate.get("reasons", [])]
    return found


def warnings_table(collection: Collection, suspects: list[Suspect]) -> pd.DataFrame:
    notes = [Note("warning", "baseline gate", s.line) for s in suspects] + collection.notes
    versions = _distinct(collection, lambda r: r.get("versions") or {})
    for library, values in versions.items():
        if len(values) > 1:
            notes.append(Note("warning", "versions", f"records were made with {library} " + ", ".join(sorted(values))))
    devices = {(e.record.get("speed") or {}).get("device") for e in collection.speed.values()}
    if any(d and not d.startswith("cuda") for d in devices):
        notes.append(Note("info", "speed", "some speed records were measured on CPU: throughput and $/1M tokens "
                                           "describe that CPU, and memory is estimated from size on disk"))
    order = {"warning": 0, "info": 1}
    rows = [dataclasses.asdict(n) for n in sorted(notes, key=lambda n: order.get(n.level, 2))]
    return pd.DataFrame(rows, columns=["level", "where", "message"])


def provenance(collection: Collection, cfg: ReportConfig) -> dict[str, pd.DataFrame]:
    entries = collection.entries
    dates = [_mtime(e.folder) for e in entries]
    run = [
        ("report built", dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
        ("results store", str(Path(cfg.results_dir).resolve())),
        ("records used", str(len(entries))),
        ("records dated", f"{_date(min(dates))} to {_date(max(dates))}" if dates else "-"),
        ("primary metric", cfg.primary_metric),
        ("filters", " ".join(f"{name}={list(getattr(cfg, name)) or 'all'}" for name in ("models", "methods", "tasks"))),
        ("report settings", json.dumps({k: v for k, v in dataclasses.asdict(cfg).items()
                                        if k in ("tiers", "stats", "floor", "cliff", "cost", "decisions")},
                                       default=str)),
    ]
    git = Counter(_revision(e.record.get("git") or {}) for e in entries)
    hardware = Counter(_hardware(e.record.get("hardware") or {}) for e in entries)
    versions = _distinct(collection, lambda r: r.get("versions") or {})
    return {
        "run": _frame(run, ["item", "value"]),
        "git": _frame([(commit, str(n)) for commit, n in git.most_common()], ["git revision", "records"]),
        "versions": _frame([(lib, ", ".join(sorted(v))) for lib, v in sorted(versions.items())],
                           ["library", "version"]),
        "hardware": _frame([(h, str(n)) for h, n in hardware.most_common()], ["hardware", "records"]),
        "samples": _samples(collection),
        "artifacts": _artifacts(collection),
    }


def _samples(collection: Collection) -> pd.DataFrame:
    by_task = defaultdict(list)
    for (_, task), entry in collection.quality.items():
        by_task[task].append(entry.record)
    rows = []
    for task, records in sorted(by_task.items()):
        counts = sorted({r.get("n") for r in records}, key=str)
        settings = {json.dumps({k: (r.get("settings") or {}).get(k) for k in SETTINGS_SHOWN}) for r in records}
        rows.append((task, ", ".join(str(c) for c in counts), str(len(records)), " | ".join(sorted(settings))))
    return _frame(rows, ["task", "n per variant", "records", "settings"])


def _artifacts(collection: Collection) -> pd.DataFrame:
    rows = []
    for variant in sorted(collection.variants.values(), key=lambda v: (v.model, v.label)):
        manifest = _artifact_manifest(variant.path)
        calibration = (manifest or {}).get("calibration") or {}
        rows.append((variant.model, variant.label, variant.key[:16],
                     calibration.get("fingerprint", "-")[:16] if manifest else "artifact not found",
                     (manifest or {}).get("created", "-"), variant.path))
    return _frame(rows, ["model", "variant", "fingerprint", "calibration", "created", "path"])


def _artifact_manifest(path: str):
    try:
        return json.loads((Path(path) / "manifest.json").read_text())
    except (OSError, ValueError):
        return None


def _distinct(collection: Collection, pick) -> dict[str, set]:
    values = defaultdict(set)
    for entry in collection.entries:
        for key, value in pick(entry.record).items():
            values[key].add(str(value))
    return values


def _revision(git: dict) -> str:
    return (git.get("commit") or "unknown") + (" (dirty)" if git.get("dirty") else "")


def _hardware(info: dict) -> str:
    device = info.get("gpu") or info.get("cpu") or "cpu"
    count = f" x{info['gpu_count']}" if info.get("gpu_count", 1) > 1 else ""
    return f"{info.get('host', '?')}: {device}{count}"


def _frame(rows, columns) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns)


def _mtime(folder: Path) -> float:
    try:
        return (Path(folder) / "manifest.json").stat().st_mtime
    except OSError:
        return 0.0


def _date(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
