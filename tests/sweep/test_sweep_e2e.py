"""`python -m evaluate sweep` end to end on the quick tiny family: resumable, idempotent,
failure-isolated, and safe to kill at any moment."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from evaluate import store
from common.storage import read_manifest
from tests.conftest import REPO_ROOT, TINY_QUICK, run_cli

pytestmark = pytest.mark.slow

EVAL = ["eval.limit=8", "eval.batch_size=8", "speed.prompt_tokens=8", "speed.new_tokens=3", "speed.repeats=1",
        "diagnostics.kl_prompts=2"]
FAST = ["sweep.eval_overrides=[" + ",".join(f'"{o}"' for o in EVAL) + "]",
        "sweep.quantize_overrides=[" + ",".join(f'"{o}"' for o in TINY_QUICK) + "]", "report=false"]
SMALL = ["sweep.name=small", "sweep.models=[tiny-s]", "sweep.methods=[{method: rtn, bits: [8, 4]}, {method: hqq, bits: [4]}]"]


def sweep_args(root: Path, *extra: str) -> list[str]:
    return ["sweep", *SMALL, *FAST, f"output_dir={root / 'artifacts'}", f"results_dir={root / 'results'}",
            f"sweeps_dir={root / 'sweeps'}", *extra]


def sweep(root: Path, *extra: str):
    return run_cli("evaluate", *sweep_args(root, *extra), timeout=900)


def assert_store_consistent(root: Path, cells: int) -> None:
    """Every cell done, one record per (artifact, task, settings), every artifact complete."""
    records = list(store.iter_records(root / "results"))
    keys = [(r["artifact"]["fingerprint"], r["task"], r["settings_fingerprint"]) for _, r in records]
    assert len(keys) == len(set(keys))
    assert len({k[0] for k in keys}) == cells
    visible = [p for p in (root / "artifacts").glob("*/*") if not p.name.startswith(".")]
    assert len(visible) == cells and all(read_manifest(p) for p in visible)


def test_sweep_runs_every_cell_and_shares_the_baseline(finished):
    root, result = finished
    assert "4 done, 0 reused, 0 failed" in result.stdout
    assert_store_consistent(root, cells=4)
    variants = [r for _, r in store.iter_records(root / "results") if not r["artifact"]["is_baseline"] and r["task"] == "tiny_arc"]
    assert len(variants) == 3
    assert len({r["baseline"]["baseline_fingerprint"] for r in variants}) == 1


def test_rerun_of_a_finished_sweep_does_no_work(finished):
    root, _ = finished
    logs = {p: p.stat().st_size for p in (root / "sweeps" / "small" / "logs").iterdir()}
    again = sweep(root)
    assert again.returncode == 0
    assert "0 done, 4 reused, 0 failed" in again.stdout
    assert {p: p.stat().st_size for p in (root / "sweeps" / "small" / "logs").iterdir()} == logs


def test_rerun_with_nothing_to_do_rebuilds_a_damaged_results_table(finished):
    root, _ = finished
    table = root / "results" / "table.parquet"
    table.write_bytes(b"")
    again = sweep(root)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "0 done, 4 reused, 0 failed" in again.stdout
    assert f"{table} is empty; rebuilding the results table" in again.stderr
    assert len(pd.read_parquet(table)) == len(list(store.iter_records(root / "results")))


def test_dry_run_lists_status_and_memory_without_running(finished, tmp_path):
    root, _ = finished
    result = run_cli("evaluate", *sweep_args(root, "--dry-run"))
    assert result.returncode == 0
    lines = [line for line in result.stdout.splitlines() if "tiny-s__" in line]
    assert len(lines) == 4 and all(line.split()[0] == "done" for line in lines)
    fresh = run_cli("evaluate", *sweep_args(tmp_path, "--dry-run"))
    assert [line.split()[0] for line in fresh.stdout.splitlines() if "tiny-s__" in line] == ["pending"] * 4
    assert not (tmp_path / "artifacts").exists()


def test_invalid_cells_are_all_rejected_before_anything_runs(tmp_path):
    bad = "sweep.methods=[{method: smoothquant, bits: [4]}, {method: awq, bits: [3]}]"
    result = run_cli("evaluate", *sweep_args(tmp_path, bad))
    assert result.returncode == 2
    assert "2 invalid cell(s)" in result.stderr and "choices: 8" in result.stderr and "choices: 4, 8" in result.stderr
    assert not (tmp_path / "artifacts").exists()


def test_bad_evaluation_settings_are_said_once_for_the_whole_sweep(tmp_path):
    result = run_cli("evaluate", *sweep_args(tmp_path, """sweep.eval_overrides=["eval.tasks=[arc_easyy]"]"""))
    assert result.returncode == 2
    assert result.stderr.count("'arc_easyy'") == 1 and "invalid evaluation settings" in result.stderr
    assert not (tmp_path / "artifacts").exists()


def test_a_failing_cell_is_isolated_and_retried_only_on_request(tmp_path, tiny_family):
    """The failing cell runs first in its phase: its worker records it failed and goes on
    with the next cell."""
    failing = "sweep.methods=[{method: gptq, bits: [4], overrides: [\"calibration.num_samples=100000\"]}, {method: rtn, bits: [8]}]"
    result = sweep(tmp_path, failing)
    assert result.returncode == 1
    assert "2 done, 0 reused, 1 failed" in result.stdout
    failed_line = next(line for line in result.stdout.splitlines() if line.strip().startswith("failed tiny-s__gptq"))
    assert "num_samples=100000" in failed_line and "log:" in failed_line
    log_file = Path(failed_line.rsplit("log: ", 1)[1].rstrip(")"))
    assert log_file.is_file() and "num_samples" in log_file.read_text()
    next_cell = next(log_file.parent.glob("tiny-s__rtn-8__*.log")).read_text()
    workers = [re.search(r"----- cell in worker (\d+) .*its cell #(\d+)", text).groups()
               for text in (log_file.read_text(), next_cell)]
    assert workers[0][0] == workers[1][0] and int(workers[1][1]) == int(workers[0][1]) + 1  # the same worker went on
    again = sweep(tmp_path, failing)
    assert again.returncode == 1 and "0 done, 2 reused, 1 failed" in again.stdout
    before = log_file.read_text().count("num_samples=100000")
    retried = sweep(tmp_path, failing, "--retry-failed")
    assert retried.returncode == 1 and "0 done, 2 reused, 1 failed" in retried.stdout
    assert log_file.read_text().count("num_samples=100000") > before  # it really ran again


KILL_HOOK = Path(__file__).parent / "kill_at"  # its sitecustomize.py SIGKILLs the sweep at a named point


def start_sweep(root: Path, env: dict | None = None, *extra: str, output=subprocess.DEVNULL) -> subprocess.Popen:
    """The sweep in its own process group (its cells' workers inherit it), output discarded
    unless `output` says otherwise. One cell at a time unless `extra` says otherwise, so
    that the n-th hit of a kill point is a known moment."""
    return subprocess.Popen([sys.executable, "-m", "evaluate", *sweep_args(root, "launcher.max_parallel=1", *extra)],
                            cwd=REPO_ROOT, stdout=output, stderr=output, start_new_session=True, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **(env or {})})


def kill_hook_env(tmp_path: Path, point: str, **settings: str) -> dict:
    """The environment that makes tests/sweep/kill_at/sitecustomize.py act at `point`
    ("<name>:<n>"); settings: QLAB_KILL_SIGNAL, QLAB_KILL_TARGET."""
    return {"PYTHONPATH": os.pathsep.join([str(KILL_HOOK), str(REPO_ROOT)]), "QLAB_KILL_AT": point,
            "QLAB_KILL_COUNTER": str(tmp_path / "kill-counter"), **settings}


def published(root: Path) -> dict[Path, int]:
    """Every complete artifact and record folder, with its manifest's modification time."""
    folders = [p for p in (root / "artifacts").glob("*/*") if not p.name.startswith(".")]
    folders += [p for p in (root / "results" / "records").glob("*/*") if not p.name.startswith(".")]
    return {p: (p / "manifest.json").stat().st_mtime_ns for p in folders if read_manifest(p)}


def done_cells(root: Path) -> int:
    return sum(json.loads(p.read_text()).get("status") == "done"
               for p in (root / "sweeps" / "small" / "cells").glob("*.json") if not p.name.endswith(".spec.json"))


def assert_resumes_exactly(root: Path) -> None:
    """After a kill: nothing incomplete is visible; the rerun finishes every cell, reuses
    the finished ones, rewrites no published artifact or record, and duplicates nothing."""
    for folder in [*(root / "artifacts").glob("*/*"), *(root / "results" / "records").glob("*/*")]:
        assert folder.name.startswith(".") or read_manifest(folder) is not None, folder
    before, finished = published(root), done_cells(root)
    result = sweep(root)
    assert result.returncode == 0, result.stdout[-2000:]
    assert f"{4 - finished} done, {finished} reused, 0 failed" in result.stdout
    assert_store_consistent(root, cells=4)
    after = published(root)
    assert {p: after.get(p) for p in before} == before  # finished work was not redone
    assert len(pd.read_parquet(root / "results" / "table.parquet")) == sum("records" in p.parts for p in after)


@pytest.mark.parametrize("fraction", [0.2, 0.7])
def test_sweep_killed_at_an_arbitrary_moment_resumes_exactly(tmp_path, tiny_family, sequential_sweep_seconds,
                                                             fraction):
    """Killed a fraction of the way through (timed on this machine, so that the moment
    falls mid-sweep on a fast machine as on a slow one), or sooner if the sweep runs faster
    than it was timed (the machine's load fell): in the last cell at the latest."""
    process = start_sweep(tmp_path)
    deadline = time.monotonic() + fraction * sequential_sweep_seconds
    while time.monotonic() < deadline and done_cells(tmp_path) < 3:
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)  # the sweep and its running cell, mid-whatever
    assert process.wait() == -signal.SIGKILL, "the sweep ended before the kill: nothing was tested"
    assert done_cells(tmp_path) < 4
    assert_resumes_exactly(tmp_path)


@pytest.mark.parametrize("point", ["artifact-publish", "record-write", "record-publish", "table-write", "status-write"])
def test_sweep_killed_inside_a_write_resumes_exactly(tmp_path, tiny_family, finished, point):
    """Killed at an exact moment: inside quantize's artifact write, between two records of
    an evaluation, inside a record's write, the results table's, a cell's status file's.
    Each hit counts: the baseline cell runs first, so the n chosen here lands in the first
    variant cell after the baseline's own writes (or, for the table, in the baseline's)."""
    baseline_records = sum(r["artifact"]["is_baseline"] for _, r in store.iter_records(finished[0] / "results"))
    nth = {"artifact-publish": 2, "record-write": baseline_records + 2, "record-publish": baseline_records + 1,
           "table-write": 1, "status-write": 2}[point]
    counter = tmp_path / "kill-counter"
    process = start_sweep(tmp_path / "lab", env=kill_hook_env(tmp_path, f"{point}:{nth}"))
    assert process.wait(timeout=900) == -signal.SIGKILL, f"the sweep ended before reaching {point} #{nth}"
    assert counter.stat().st_size == nth
    root = tmp_path / "lab"
    leftovers = {  # what the kill interrupted: proof that it landed inside that write
        "artifact-publish": [p for p in (root / "artifacts").glob("*/.*.tmp-*") if (p / "manifest.json").is_file()],
        "record-write": [p for p in (root / "results" / "records").glob("*/*") if not p.name.startswith(".")][baseline_records:],
        "record-publish": [p for p in (root / "results" / "records").glob("*/.*.tmp-*") if (p / "manifest.json").is_file()],
        "table-write": list((root / "results").glob(".table.parquet.tmp-*")),
        "status-write": list((root / "sweeps" / "small" / "cells").glob(".*.json.tmp-*")),
    }[point]
    assert leftovers, f"nothing shows the kill landed inside {point}"
    assert_resumes_exactly(root)
