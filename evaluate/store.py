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

Records are checked where they are read (manifest, every file it lists and its size, each
samples line): a damaged record is named in a warning and skipped by readers, and an
evaluation recomputes it. The table is derived: `ensure_table` rebuilds it from the records,
with a warning, when it is missing, unreadable or out of date.
"""

from __future__ import annotations

import csv as _csv
import json
import logging
from pathlib import Path
from typing import Iterable, Iterator, Optional

import pandas as pd

from common.files import parquet_problem, read_jsonl
from common.storage import (check_manifest, folder_problem, publish, replace_atomically, staging_folder,
                            write_json_atomic, writing)

log = logging.getLogger(__name__)

SAMPLES = "samples.jsonl"
TABLES = ("table.parquet", "table.csv")
REWRITE_RECORD = "it is recomputed by the next `python -m evaluate run` of its artifact (or delete the folder)"


def record_folder(results_dir: Path, artifact_fingerprint: str, task: str, settings_fingerprint: str) -> Path:
    return Path(results_dir) / "records" / artifact_fingerprint[:16] / f"{task}--{settings_fingerprint[:12]}"


def find_record(folder: Path) -> Optional[dict]:
    """The complete record in `folder`, or None (none there, or a damaged one: see check_record)."""
    return check_record(folder)[0]


def check_record(folder: Path) -> tuple[Optional[dict], Optional[str]]:
    """(record, None) for a complete, readable record; (None, None) where there is none;
    (None, what is wrong) for a damaged one (its manifest, a file it lists, a samples line)."""
    if not Path(folder).exists():
        return None, None
    problem = folder_problem(folder)
    if problem is not None:
        return None, problem
    return check_manifest(folder)[0], None


def write_record(folder: Path, record: dict, samples: Iterable[dict], *, replace: bool = False) -> Path:
    """Publish a record and its samples atomically; an existing complete record wins, unless
    `replace` (the one there is damaged)."""
    with staging_folder(folder) as staging:
        with writing(f"{SAMPLES} of record {folder.parent.name}/{folder.name}", folder.parent), \
                open(staging / SAMPLES, "w") as handle:
            for sample in samples:
                handle.write(json.dumps(sample, default=str) + "\n")
        return publish(staging, folder, {"kind": "eval_record", **record}, replace=replace)


def read_samples(folder: Path) -> list[dict]:
    """The record's samples; a damaged samples file is a BadFile naming its line."""
    return read_jsonl(Path(folder) / SAMPLES, REWRITE_RECORD)


def iter_records(results_dir: Path) -> Iterator[tuple[Path, dict]]:
    """(folder, record) for every complete record. A damaged one is named in a warning and
    skipped; staging folders of runs in progress are not records yet."""
    for folder in sorted((Path(results_dir) / "records").glob("*/*")):
        if folder.name.startswith(".") or not folder.is_dir():
            continue
        record, problem = check_record(folder)
        if problem is not None:
            log.warning("skipping the damaged record %s (%s); %s", folder, problem, REWRITE_RECORD)
        elif record is not None:
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


def ensure_table(results_dir: Path) -> Optional[pd.DataFrame]:
    """The table, rebuilt from the records with a warning when it is missing, not readable
    (not Parquet, emptied, truncated, not CSV) or does not list the records there are; None
    where there are no records and no table."""
    results_dir = Path(results_dir)
    if not (results_dir / "records").is_dir() and not any((results_dir / name).exists() for name in TABLES):
        return None
    records = [str(folder) for folder, _ in iter_records(results_dir)]
    problem = table_problem(results_dir, records)
    if problem is None:
        return pd.read_parquet(results_dir / "table.parquet")
    log.warning("%s; rebuilding the results table from the %d records", problem, len(records))
    return write_table(results_dir)


def table_problem(results_dir: Path, records: list[str]) -> Optional[str]:
    """What is wrong with the table files, given the records it should list, or None."""
    parquet, csv = (Path(results_dir) / name for name in TABLES)
    problems = [f"{parquet} is missing" if not parquet.is_file() else _said(parquet, parquet_problem(parquet)),
                None if csv.is_file() else f"{csv} is missing"]
    if any(problems):  # both named: an emptied table.parquet is what to know of, more than a missing CSV
        return " and ".join(problem for problem in problems if problem)
    if not records:
        return None
    frame = pd.read_parquet(parquet)
    try:
        with open(csv, newline="", encoding="utf-8") as handle:
            rows = list(_csv.reader(handle))
    except (UnicodeDecodeError, _csv.Error) as error:
        return f"{csv} is not a valid CSV table ({type(error).__name__}: {str(error).strip()[:120]})"
    if not rows or rows[0] != list(frame.columns):
        return f"{csv} does not have the columns of {parquet.name} (damaged or out of date)"
    short = next((number for number, row in enumerate(rows[1:], 2) if len(row) != len(rows[0])), None)
    if short is not None:
        return f"{csv} is truncated or damaged (line {short} does not have the {len(rows[0])} fields of its header)"
    in_csv = [row[rows[0].index("record")] for row in rows[1:]] if "record" in rows[0] else []
    in_parquet = frame["record"].astype(str).tolist() if "record" in frame.columns else []
    expected = sorted(map(_record_key, records))
    for path, listed in ((parquet, in_parquet), (csv, in_csv)):
        if sorted(map(_record_key, listed)) != expected:
            return f"{path} lists {len(listed)} records, the results folder holds {len(records)} (out of date)"
    return None


def _said(path: Path, problem: Optional[str]) -> Optional[str]:
    return f"{path} {problem}" if problem else None


def _record_key(folder: str) -> str:
    """<artifact>/<task--settings>: the same record whether results_dir was given relative or absolute."""
    return "/".join(Path(folder).parts[-2:])


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
