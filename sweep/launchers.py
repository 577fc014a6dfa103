"""Where sweep cells run: local subprocesses, or submitit jobs (locally or on Slurm).

Slurm settings follow hydra-submitit-launcher's SlurmQueueConf keys (partition, account,
qos, gpus_per_node, cpus_per_task, mem_gb, timeout_min, setup, max_num_timeout,
array parallelism); cells are submitted directly with submitit, the library that
launcher wraps, because each cell is a plain function call, not a Hydra multirun job.
"""

from __future__ import annotations

import logging
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import submitit
from tqdm import tqdm

from configs.sweep_schema import EvalSweepConfig
from sweep.cells import cell_status, log_path, write_status
from sweep.execute import cell_pythons, run_cell, run_cell_in_subprocess
from sweep.plan import cell_python

log = logging.getLogger("sweep")
POLL_SECONDS = 2


def launch(cfg: EvalSweepConfig, cells: list) -> None:
    if cfg.launcher.name == "local":
        _launch_local(cfg, cells)
    else:
        _launch_submitit(cfg, cells)


def _launch_local(cfg: EvalSweepConfig, cells: list) -> None:
    pythons = cell_pythons(cfg, cells)  # here, not in the threads: composing is not thread-safe
    with ThreadPoolExecutor(max_workers=cfg.launcher.max_parallel) as pool:
        futures = [pool.submit(run_cell_in_subprocess, cfg, cell, pythons[cell]) for cell in cells if cell in pythons]
        for future in tqdm(futures, desc="cells", unit="cell"):
            future.result()


def _launch_submitit(cfg: EvalSweepConfig, cells: list) -> None:
    folder = Path(cfg.sweeps_dir) / cfg.sweep.name / "submitit"
    cluster = "local" if cfg.launcher.name == "submitit_local" else "slurm"
    requeues = {"slurm_max_num_timeout": cfg.launcher.max_num_timeout} if cluster == "slurm" else {}
    executor = submitit.AutoExecutor(folder=folder, cluster=cluster, **requeues)
    executor.update_parameters(**_parameters(cfg, cluster))
    jobs = executor.map_array(_run_cell_job, [cfg] * len(cells), cells)
    log.info("submitted %d job(s) of sweep %s to %s", len(jobs), cfg.sweep.name, cluster)
    _wait(cfg, list(zip(cells, jobs)))


def _run_cell_job(cfg: EvalSweepConfig, cell) -> dict:
    """One cell inside a submitit job; its log also goes to the cell's log file. A cell
    whose method runs in another environment runs there, as a subprocess."""
    if cell_python(cell) != sys.executable:
        run_cell_in_subprocess(cfg, cell)
        return cell_status(cfg, cell)

    path = log_path(cfg, cell)
    path.parent.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s",
                        handlers=[logging.StreamHandler(), logging.FileHandler(path)])
    try:
        return run_cell(cfg, cell)
    except Exception:
        log.exception("cell %s failed", cell.id)
        raise


def _wait(cfg: EvalSweepConfig, pending: list) -> None:
    """Wait until every cell has a status file or its job ended, within a deadline.

    A cell's own status file is the source of truth: without Slurm accounting, submitit
    cannot see a job that was killed (OOM, scancel, time limit) and would wait forever.
    """
    deadline = time.monotonic() + 60 * cfg.launcher.timeout_min * (cfg.launcher.max_num_timeout + 1) + 120
    progress = tqdm(total=len(pending), desc="cells", unit="cell")
    while pending:
        still = []
        for cell, job in pending:
            finished = cell_status(cfg, cell)["status"] in ("done", "failed")
            if not finished and job.done():
                error = job.exception()
                reason = str(error).strip().splitlines()[-1][:500] if error else "the job ended without a status"
                write_status(cfg, cell, status="failed", reason=reason, log=str(job.paths.stderr))
                finished = True
            if not finished and time.monotonic() > deadline:
                job.cancel(check=False)
                write_status(cfg, cell, status="failed", reason="no result before the deadline (killed?)",
                              log=str(job.paths.stderr))
                finished = True
            if finished:
                progress.update()
            else:
                still.append((cell, job))
        pending = still
        if pending:
            time.sleep(POLL_SECONDS)
    progress.close()


def _parameters(cfg: EvalSweepConfig, cluster: str) -> dict:
    launcher = cfg.launcher
    common = {"timeout_min": launcher.timeout_min, "cpus_per_task": launcher.cpus_per_task,
              "mem_gb": launcher.mem_gb, "slurm_array_parallelism": launcher.max_parallel}
    if cluster == "local":
        return {"timeout_min": launcher.timeout_min, "cpus_per_task": launcher.cpus_per_task}
    slurm = {"gpus_per_node": launcher.gpus_per_node, "slurm_setup": list(launcher.setup),
             "slurm_additional_parameters": dict(launcher.additional_parameters)}
    for key in ("partition", "account", "qos"):
        if getattr(launcher, key):
            slurm[f"slurm_{key}"] = getattr(launcher, key)
    return {**common, **slurm}
