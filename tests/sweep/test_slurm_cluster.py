"""The local Slurm cluster from scripts/slurm_cluster.sh really runs submitit jobs.

The session fixture starts (or finds) the cluster; a failure to start fails the test with the
script's output instead of skipping, so a broken cluster never passes CI silently."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slurm

SCRIPT = REPO_ROOT / "scripts" / "slurm_cluster.sh"
JOB_DEADLINE_S = 120


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    """Start the local cluster (idempotent: a cluster already up is reused)."""
    try:
        result = subprocess.run(["bash", str(SCRIPT), "start"], cwd=REPO_ROOT, capture_output=True, text=True,
                                timeout=900)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"scripts/slurm_cluster.sh start did not finish in {e.timeout} s", pytrace=False)
    if result.returncode != 0:
        pytest.fail(f"scripts/slurm_cluster.sh start exited {result.returncode}:\n"
                    f"{result.stdout[-3000:]}\n{result.stderr[-6000:]}", pytrace=False)


def where_am_i(x: int, probe: str) -> dict:
    """Runs inside the Slurm job: what the job sees of Slurm, Python and the filesystem."""
    import submitit

    env = submitit.JobEnvironment()
    return {
        "square": x * x,
        "submitit_job_id": env.job_id,
        "array_job_id": os.environ.get("SLURM_ARRAY_JOB_ID"),
        "array_task_id": os.environ.get("SLURM_ARRAY_TASK_ID"),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "partition": os.environ.get("SLURM_JOB_PARTITION"),
        "python": sys.executable,
        "host": socket.gethostname(),
        "probe": Path(probe).read_text(),
    }


def _job_logs(jobs) -> str:
    out = []
    for job in jobs:
        for path in (job.paths.stdout, job.paths.stderr):
            if path.exists():
                out.append(f"--- {path.name} ---\n{path.read_text()[-2000:]}")
    queue = subprocess.run(["squeue", "-a"], capture_output=True, text=True).stdout
    return "\n".join(out) + "\n--- squeue ---\n" + queue


def test_submitit_array_runs_on_the_local_cluster(slurm_cluster, tmp_path):
    import submitit

    probe = tmp_path / "probe.txt"
    probe.write_text("written by the test process")
    executor = submitit.AutoExecutor(folder=tmp_path / "submitit", cluster="slurm")
    executor.update_parameters(slurm_partition="debug", timeout_min=5, cpus_per_task=1, name="slurm-cluster-test",
                               slurm_additional_parameters={"chdir": str(REPO_ROOT)})
    jobs = executor.map_array(where_am_i, [1, 2, 3], [str(probe)] * 3)
    assert len(jobs) == 3

    # Wait with a deadline: without accounting storage submitit cannot learn that a job died
    # without a result, and job.result() would then wait forever.
    deadline = time.monotonic() + JOB_DEADLINE_S
    while not all(job.done() for job in jobs):
        if time.monotonic() > deadline:
            subprocess.run(["scancel", *{job.job_id.split("_")[0] for job in jobs}], capture_output=True)
            pytest.fail(f"jobs not done after {JOB_DEADLINE_S} s\n{_job_logs(jobs)}", pytrace=False)
        time.sleep(1)

    try:
        results = [job.result() for job in jobs]
    except Exception as e:  # noqa: BLE001 - show the jobs' logs with any failure
        pytest.fail(f"a job failed: {e}\n{_job_logs(jobs)}", pytrace=False)

    assert [r["square"] for r in results] == [1, 4, 9]
    array_id = jobs[0].job_id.split("_")[0]
    for job, r in zip(jobs, results):
        # The job ran under Slurm, as one task of one array, in partition debug.
        assert r["slurm_job_id"] and r["submitit_job_id"] == job.job_id
        assert r["array_job_id"] == array_id
        assert r["partition"] == "debug"
        # Same machine, same filesystem, same interpreter as the test.
        assert r["python"] == sys.executable
        assert r["host"] == socket.gethostname()
        assert r["probe"] == "written by the test process"
    assert sorted(r["array_task_id"] for r in results) == ["0", "1", "2"]


def test_status_reports_the_cluster_up(slurm_cluster):
    result = subprocess.run(["bash", str(SCRIPT), "status"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "debug" in result.stdout and "cluster: up" in result.stdout
