"""Small tiny-family sweeps through the `slurm` launcher on the local Slurm cluster: batches
of cells per job give the same records, bit for bit, as the same sweep run locally on
workers, and a cell whose worker is killed inside a batch fails alone."""

from __future__ import annotations

import subprocess
import time

import pytest

from evaluate import store
from tests.sweep.identical import differences
from tests.sweep.test_slurm_cluster import slurm_cluster  # noqa: F401 (fixture)
from tests.sweep.test_sweep_e2e import done_cells, kill_hook_env, start_sweep, sweep

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

SLURM = ["launcher=slurm", "launcher.partition=debug", "launcher.gpus_per_node=0", "launcher.cpus_per_task=1",
         "launcher.mem_gb=4", "launcher.timeout_min=20", "launcher.max_num_timeout=0"]


def comparable(results) -> dict:
    """(model, variant, task) -> the numbers that must not depend on where a cell ran."""
    rows = {}
    for _, record in store.iter_records(results):
        if record["task"] == "speed":
            continue
        key = (record["artifact"]["model"], record["artifact"]["label"], record["task"])
        metrics = {k: v for k, v in record["metrics"].items() if k != "eval_seconds"}
        rows[key] = (record["n"], metrics, (record.get("baseline") or {}).get("flips"))
    return rows


def test_slurm_batches_match_the_local_sweep(slurm_cluster, tmp_path, finished):  # noqa: F811
    on_slurm = sweep(tmp_path / "slurm", *SLURM, "launcher.cells_per_job=2")
    assert on_slurm.returncode == 0, on_slurm.stdout[-3000:] + on_slurm.stderr[-3000:]
    assert "4 done, 0 reused, 0 failed" in on_slurm.stdout
    assert "submitted 1 job(s)" in on_slurm.stderr and "submitted 2 job(s)" in on_slurm.stderr  # an array over batches
    assert list((tmp_path / "slurm" / "sweeps" / "small" / "submitit").glob("*_log.out"))  # really went through Slurm
    slurm_rows, local_rows = comparable(tmp_path / "slurm" / "results"), comparable(finished[0] / "results")
    assert len(slurm_rows) == 4 * 4 + 3  # 4 cells x 4 tasks, plus KL for the 3 variants
    assert slurm_rows == local_rows
    assert differences(finished[0], tmp_path / "slurm") == []


def test_a_worker_killed_inside_a_slurm_batch_fails_only_its_cell(slurm_cluster, tmp_path, finished):  # noqa: F811
    """The three variants in one job; the first one's worker is SIGKILLed mid-evaluation:
    that cell fails with the reason, the job goes on with the next two on a new worker."""
    baseline_records = sum(r["artifact"]["is_baseline"] for _, r in store.iter_records(finished[0] / "results"))
    env = kill_hook_env(tmp_path, f"record-write:{baseline_records + 2}", QLAB_KILL_TARGET="self")
    process = start_sweep(tmp_path / "lab", env, *SLURM, "launcher.cells_per_job=3", output=-1)
    stdout, stderr = process.communicate(timeout=900)
    assert process.returncode == 1, stdout[-3000:] + stderr[-3000:]
    assert "3 done, 0 reused, 1 failed" in stdout
    failed = [line for line in stdout.splitlines() if line.strip().startswith("failed ")]
    assert len(failed) == 1 and "rtn-8" in failed[0] and "worker killed by SIGKILL" in failed[0]
    assert "submitted 1 job(s)" in stderr and stderr.count("submitted 1 job(s)") == 2


def test_a_requeued_batch_runs_again_and_skips_the_cells_it_finished(slurm_cluster, tmp_path, finished):  # noqa: F811
    """`scontrol requeue` of the variants' job (as preemption does) once its first cell is
    done: the cell it was running stays pending (not failed), the job runs the batch again,
    skips the finished cell, and the sweep ends with the results of an uninterrupted one."""
    root = tmp_path / "lab"
    process = start_sweep(root, None, *SLURM, "launcher.cells_per_job=3", output=-1)
    deadline, logs = time.monotonic() + 600, root / "sweeps" / "small" / "logs"

    def second_variant_started() -> bool:  # the baseline and the batch's first variant are done
        started = [p for p in logs.glob("tiny-s__rtn-4__*.log") if "----- cell in worker" in p.read_text()]
        return done_cells(root) >= 2 and bool(started)

    while not second_variant_started():
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.2)
    job = max(int(p.name.split("_")[0]) for p in (root / "sweeps" / "small" / "submitit").glob("*_submitted.pkl"))
    assert subprocess.run(["scontrol", "requeue", str(job)], capture_output=True).returncode == 0
    stdout, stderr = process.communicate(timeout=900)
    assert process.returncode == 0, stdout[-3000:] + stderr[-3000:]
    assert "4 done, 0 reused, 0 failed" in stdout
    headers = {log.stem.split("__")[1]: log.read_text().count("===== ")
               for log in (root / "sweeps" / "small" / "logs").glob("*.log")}
    assert headers["rtn-8"] == 1 and headers["none"] == 1  # finished before the requeue: not run again
    assert headers["rtn-4"] == 2  # interrupted by the requeue, run again
    assert differences(finished[0], root) == []
