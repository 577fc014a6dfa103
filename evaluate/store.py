"""The results store: one record per (artifact, task, settings), with its samples beside it.

Layout under `results_dir`:
    records/<artifact fingerprint[:16]>/<task>--<settings fingerprint[:12]>/
        manifest.json    the record (metrics, settings, provenance; schema_version)
        samples.jsonl    one line per evaluated sample (model answer, scores)
    table.parquet, table.csv   a flat view of every complete record (derived, rebuildable)

A record folder is published exactly like an artifact (`common.storage`): written under
a hidden name and renamed when complete, so concurrent writers (Slurm array tasks on a
shared filesystem) and killed runs never leave a half-written record and need no locks.
Looking a record up before evaluating makes a repeated evaluation do nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Iterator, Optional

import pandas as pd

from common.storage import publish, read_manifest, replace_atomically, staging_folder, write_json_atomic

SAMPLES = "samples.jsonl"


def record_folder(results_dir: Path, artifact_fingerprint: str, task: str, settings_fingerprint: str) -> Path:
    return Path(results_dir) / "records" / artifact_fingerprint[:16] / f"{task}--{settings_fingerprint[:12]}"


def find_record(folder: Path) -> Optional[dict]:
    """The complete record in `folder`, or None."""
    return read_manifest(folder)


def write_record(folder: Path, record: dict, samples: Iterable[dict]) -> Path:
    """Publish a record and its samples atomically; an existing complete record wins."""
    with staging_folder(folder) as staging:
        with open(staging / SAMPLES, "w") as handle:
            for sample in samples:
                handle.write(json.dumps(sample, default=str) + "\n")
        return publish(staging, folder, {"kind": "eval_record", **record})


def read_samples(folder: Path) -> list[dict]:
    with open(Path(folder) / SAMPLES) as handle:
        return [json.loads(line) for line in handle]


def iter_records(results_dir: Path) -> Iterator[tuple[Path, dict]]:
    """(folder, record) for every complete record; incomplete folders are skipped."""
    for folder in sorted((Path(results_dir) / "records").glob("*/*")):
        if folder.name.startswith("."):
            continue
        record = read_manifest(folder)
        if record is not None:
            yield folder, record


def table(results_dir: Path) -> pd.DataFrame:
    """One row per record: identity columns, settings, and every scalar metric."""
    rows = [_flatten(folder, record) for folder, record in iter_records(results_dir)]
    return pd.DataFrame(rows)


def write_table(results_dir: Path) -> pd.DataFrame:
    """Rebuild table.parquet and table.csv from the records, atomically."""
    frame = table(results_dir)
    results_dir = Path(results_dir)
    for name, writer in (("table.parquet", frame.to_parquet), ("table.csv", frame.to_csv)):
        replace_atomically(results_dir / name, lambda tmp: writer(tmp, index=False))
    write_json_atomic(results_dir / "table.columns.json", list(frame.columns))
    return frame


def _flatten(folder: Path, record: dict) -> dict:
    artifact = record.get("artifact", {})
    row = {
        "record": str(folder),
        "task": record.get("task"),
        "n": record.get("n"),
        "schema_version": record.get("schema_version"),
        **{f"artifact_{k}": v for k, v in artifact.items() if not isinstance(v, (dict, list))},
        "settings_fingerprint": record.get("settings_fingerprint"),
    }
    for section in ("metrics", "baseline", "speed"):
        for key, value in _scalars(record.get(section) or {}):
            row[f"{section}_{key}" if section != "metrics" else key] = value
    return row


def _scalars(mapping: dict, prefix: str = ""):
    for key, value in mapping.items():
        if isinstance(value, dict):
            yield from _scalars(value, f"{prefix}{key}_")
        elif not isinstance(value, list):
            yield f"{prefix}{key}", value
