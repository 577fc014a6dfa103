"""Cells on long-lived workers, end to end on the quick tiny family: the same records as a
fresh process per cell and as batched submitit jobs; a worker killed mid-cell fails only
that cell; a killed sweep takes its workers down; memory is released between cells."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from configs.compose import compose
from evaluate import store
from sweep.cells import log_path
from sweep.plan import plan_cells
from sweep.pool import Pool
from tests.conftest import REPO_ROOT, TINY_QUICK
from tests.sweep.identical import differences
from tests.sweep.test_sweep_e2e import (EVAL, assert_resumes_exactly, done_cells, kill_hook_env, start_sweep, sweep,
                                        sweep_args)

pytestmark = pytest.mark.slow


def worker_pids(root: Path) -> dict[str, list[int]]:
    """cell id -> the worker pids its log names, attempt after attempt."""
    return {p.stem: [int(pid) for pid in re.findall(r"----- \w+ in worker (\d+)", p.read_text())]
            for p in (root / "sweeps" / "small" / "logs").glob("*.log")}


def test_records_are_identical_whichever_way_a_cell_ran(finished, tmp_path):
    """Workers (the finished sweep: 2 slots), a fresh process per cell, and submitit jobs
    that each run a batch of cells on a worker of their own."""
    root, _ = finished
    assert any(len(set(pids)) == 1 and "its cell #2" in (root / "sweeps" / "small" / "logs" / f"{cell}.log").read_text()
               for cell, pids in worker_pids(root).items())  # a worker did run several cells
    fresh = sweep(tmp_path / "fresh", "launcher.cells_per_worker=1")
    assert fresh.returncode == 0 and "4 done, 0 reused, 0 failed" in fresh.stdout, fresh.stderr[-3000:]
    assert len({pid for pids in worker_pids(tmp_path / "fresh").values() for pid in pids}) == 4
    batched = sweep(tmp_path / "batched", "launcher=submitit_local", "launcher.cells_per_job=2")
    assert batched.returncode == 0 and "4 done, 0 reused, 0 failed" in batched.stdout, batched.stderr[-3000:]
    assert "submitted 1 job(s)" in batched.stderr and "submitted 2 job(s)" in batched.stderr  # 1 baseline; 3 variants by 2
    assert differences(root, tmp_path / "fresh") == []
    assert differences(root, tmp_path / "batched") == []


def run_with_hook(root: Path, env: dict, *extra: str) -> subprocess.CompletedProcess:
    process = start_sweep(root, env, *extra, output=subprocess.PIPE)
    stdout, stderr = process.communicate(timeout=900)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.mark.parametrize("signal_name, reason", [("SIGKILL", "worker killed by SIGKILL (out of memory?)"),
                                                 ("SIGSEGV", "worker killed by SIGSEGV")])
def test_a_worker_killed_mid_cell_fails_only_that_cell(tmp_path, finished, signal_name, reason):
    """Killed while evaluating the first variant (its first record published, its second
    being written): that cell alone fails, with its reason and log; the next cells run on a
    new worker; nothing of it stays in the system's temporary folder; a retry completes
    with the results of an uninterrupted sweep."""
    root, systemp = tmp_path / "lab", tmp_path / "systemp"
    systemp.mkdir()
    baseline_records = sum(r["artifact"]["is_baseline"] for _, r in store.iter_records(finished[0] / "results"))
    env = {**kill_hook_env(tmp_path, f"record-write:{baseline_records + 2}", QLAB_KILL_SIGNAL=signal_name,
                           QLAB_KILL_TARGET="self"), "TMPDIR": str(systemp)}
    result = run_with_hook(root, env)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "3 done, 0 reused, 1 failed, 0 pending" in result.stdout
    failed = [line for line in result.stdout.splitlines() if line.strip().startswith("failed ")]
    assert len(failed) == 1 and "tiny-s__rtn-8__" in failed[0] and reason in failed[0]
    pids = worker_pids(root)
    killed = next(pid for cell, p in pids.items() if "rtn-8" in cell for pid in p)
    assert all(killed not in p for cell, p in pids.items() if "rtn-4" in cell or "hqq" in cell)  # replaced
    assert not list(systemp.iterdir()) and not (root / "results" / ".tmp").exists()  # no lm-eval task folder left
    retried = sweep(root, "--retry-failed")
    assert retried.returncode == 0 and "1 done, 3 reused, 0 failed" in retried.stdout
    assert not [p for p in (root / "results" / "records").glob("*/.*")]  # the killed cell's staging is gone too
    assert differences(finished[0], root) == []


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_killed_sweep_takes_its_workers_down_and_resumes_exactly(tmp_path, finished):
    """SIGKILL to the sweep alone (not its process group) while two workers run cells:
    the orphaned workers stop by themselves, leave nothing half-written, and a rerun
    finishes with the results of an uninterrupted sweep."""
    process = start_sweep(tmp_path, None, "launcher.max_parallel=2")
    deadline = time.monotonic() + 600
    while not (len(children(process.pid)) >= 2 and done_cells(tmp_path) >= 1):  # in the variants' phase
        assert process.poll() is None and time.monotonic() < deadline, "the sweep ended before it could be killed"
        time.sleep(0.5)
    workers = children(process.pid)
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    deadline = time.monotonic() + 60
    while any(alive(pid) for pid in workers):
        assert time.monotonic() < deadline, "orphaned workers kept running"
        time.sleep(0.5)
    assert done_cells(tmp_path) < 4
    assert not (tmp_path / "results" / ".tmp").exists() or not list((tmp_path / "results" / ".tmp").iterdir())
    assert_resumes_exactly(tmp_path)
    assert differences(finished[0], tmp_path) == []


def test_a_worker_releases_memory_between_cells(tmp_path, tiny_family, monkeypatch):
    """One worker runs 21 cells (3 sizes x 7 variants); its peak memory stays within 1.2x
    the peak of a fresh process that runs the largest of those cells alone (after its
    baseline, as in a sweep)."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    methods = "[{method: rtn, bits: [8, 4]}, {method: hqq, bits: [4, 2]}, {method: gptq, bits: [4]}, {method: bnb_nf4}]"

    def config(root: Path, models: str):
        return compose("evaluate_sweep", ["sweep.name=memory", f"sweep.models={models}", f"sweep.methods={methods}",
                                          "sweep.eval_overrides=[" + ",".join(f'"{o}"' for o in EVAL) + "]",
                                          "sweep.quantize_overrides=[" + ",".join(f'"{o}"' for o in TINY_QUICK) + "]",
                                          f"output_dir={root / 'artifacts'}", f"results_dir={root / 'results'}",
                                          f"sweeps_dir={root / 'sweeps'}", "report=false"])

    cfg = config(tmp_path / "many", "[tiny-s, tiny-m, tiny-l]")
    cells = plan_cells(cfg)
    assert len(cells) == 21
    with Pool(cfg, "memory-test", 1, progress=False) as pool:
        outcomes = {**pool.run([c for c in cells if c.is_baseline]), **pool.run([c for c in cells if not c.is_baseline])}
    assert all(o["status"] == "done" for o in outcomes.values()), {c.id: o.get("reason") for c, o in outcomes.items()}
    assert len({o["worker"]["pid"] for o in outcomes.values()}) == 1  # all in one worker
    peaks = {cell: o["worker"]["cell_peak_rss_bytes"] for cell, o in outcomes.items()}
    largest = max(peaks, key=peaks.get)
    worker_peak = max(max(peaks.values()), *(o["worker"]["process_max_rss_bytes"] for o in outcomes.values()))

    alone = config(tmp_path / "alone", f"[{largest.model}]")
    def variant(c):
        return c.method, tuple(o for o in c.quantize_overrides if o.startswith("quant."))

    single = [c for c in plan_cells(alone) if c.is_baseline or variant(c) == variant(largest)]
    baseline, cell = [c for c in single if c.is_baseline], [c for c in single if not c.is_baseline]
    with Pool(alone, "memory-test-alone", 1, cells_per_worker=1, progress=False) as pool:
        pool.run(baseline)
        fresh = pool.run(cell)[cell[0]] if cell else pool.run(baseline)[baseline[0]]
    fresh_peak = max(fresh["worker"]["cell_peak_rss_bytes"], fresh["worker"]["process_max_rss_bytes"])
    print(f"\nworker peak after 21 cells: {worker_peak / 2**20:.0f} MB; fresh process, largest cell "
          f"({largest.id}) alone: {fresh_peak / 2**20:.0f} MB; ratio {worker_peak / fresh_peak:.3f}; RSS after each cell: "
          + ", ".join(f"{o['worker']['rss_after_bytes'] / 2**20:.0f}" for o in outcomes.values()))
    assert worker_peak <= 1.2 * fresh_peak
    assert log_path(cfg, largest).is_file()
