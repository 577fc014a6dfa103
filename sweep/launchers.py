"""Where sweep cells run: on a pool of local worker processes (`sweep.pool`), or in submitit
jobs (locally or on Slurm) that each run a batch of cells on a pool of their own.

Slurm settings follow hydra-submitit-launcher's SlurmQueueConf keys (partition, account,
qos, gpus_per_node, cpus_per_task, mem_gb, timeout_min, setup, max_num_timeout,
array parallelism); batches are submitted directly with submitit, the library that
launcher wraps, as one job array over the batches (`launcher.cells_per_job` cells each;
by default ceil(cells / max_parallel), so the array fills its parallelism with the fewest
start-ups). Inside a job the cells run one after another on worker processes, with the
local launcher's isolation; a job requeued after preemption or its time limit runs its
batch again and skips the cells already done.
"""

from __future__ import annotations

import contextlib
import logging
import math
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable, Iterator, Optional

import submitit
from tqdm import tqdm

from configs.errors import ConfigError
from configs.sweep_schema import EvalSweepConfig
from sweep.cells import Cell, cell_status, record_status, sweep_folder
from sweep.plan import cell_steps
from sweep.pool import Pool

log = logging.getLogger("sweep")
POLL_SECONDS = 2
STOPPED_JOB_WAIT_S = 300  # a job whose workers were signalled waits this long for Slurm to end it
SLURM_COMMANDS = ("sbatch", "srun", "scancel", "scontrol")


class Launcher:
    """Runs one phase's cells (`run(cells) -> {cell: status}`); `stop(signum)` stops it."""

    def __init__(self, run: Callable[[list], dict], stop: Callable[[int], None]):
        self.run, self.stop = run, stop


@contextlib.contextmanager
def open_launcher(cfg: EvalSweepConfig, run: str) -> Iterator[Launcher]:
    """The launcher for a whole sweep run (its workers live across both phases)."""
    if cfg.launcher.name == "local":
        with Pool(cfg, run, cfg.launcher.max_parallel, cells_per_worker=cfg.launcher.cells_per_worker) as pool:
            yield Launcher(pool.run, pool.stop)
    else:
        jobs = _Submitit(cfg, run)
        try:
            yield Launcher(jobs.run, jobs.stop)
        except BaseException:
            jobs.stop(None)
            raise


def check_launcher(cfg: EvalSweepConfig) -> None:
    """launcher=slurm needs Slurm's commands and a controller that answers: a ConfigError
    (one line) when planning, dry run included, instead of a submitit traceback later."""
    if cfg.launcher.name != "slurm":
        return
    missing = [command for command in SLURM_COMMANDS if shutil.which(command) is None]
    if missing:
        raise ConfigError(f"launcher=slurm: {', '.join(missing)} not found on PATH (Slurm's client commands are not "
                          "installed here); run on a Slurm login node, or use launcher=local or launcher=submitit_local")
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=20)
        answer = (ping.stdout + ping.stderr).strip().splitlines()
        up = ping.returncode == 0 and any("UP" in line for line in answer)
    except (OSError, subprocess.TimeoutExpired) as error:
        answer, up = [str(error)], False
    if not up:
        said = answer[0] if answer else "no answer"
        raise ConfigError(f"launcher=slurm: the Slurm controller does not answer (`scontrol ping`: {said}); "
                          "check that slurmctld is up, or use launcher=local or launcher=submitit_local")


def make_batches(cfg: EvalSweepConfig, cells: list[Cell]) -> list[list[Cell]]:
    """`launcher.cells_per_job` cells per job (default: ceil(cells / max_parallel)); cells of
    one environment together, so that a job starts as few workers as it can."""
    size = cfg.launcher.cells_per_job or max(1, math.ceil(len(cells) / cfg.launcher.max_parallel))
    ordered = sorted(cells, key=_environment)  # stable: plan order within an environment
    return [ordered[i:i + size] for i in range(0, len(ordered), size)]


def _environment(cell: Cell) -> str:
    try:
        return cell_steps(cell)[0][0]
    except ConfigError:  # the job records it failed, with the reason
        return ""


class BatchJob(submitit.helpers.Checkpointable):
    """One submitit job: a batch of cells on a one-slot pool of workers inside the job, so
    that a cell that crashes fails alone and the next one gets a new worker. Requeued after
    preemption or a time limit (submitit calls `checkpoint`, which resubmits the same
    batch), it skips the cells already done."""

    def __call__(self, cfg: EvalSweepConfig, cells: list[Cell], run: str) -> dict:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", force=True)
        with Pool(cfg, run, 1, cells_per_worker=cfg.launcher.cells_per_worker, progress=False) as pool:
            outcomes = pool.run(cells)
        if pool.stopping is not None:
            # Its workers were signalled: Slurm is requeuing or cancelling this job and kills
            # it in a moment. Returning would write a result that says the batch is over,
            # while a requeued job runs it again (skipping what is done).
            log.info("the job's workers were stopped by %s; waiting for Slurm to end this job",
                     signal.Signals(pool.stopping).name)
            time.sleep(STOPPED_JOB_WAIT_S)
            raise RuntimeError(f"the job's cells were interrupted by {signal.Signals(pool.stopping).name}")
        return {cell.id: outcome for cell, outcome in outcomes.items()}


class _Submitit:
    def __init__(self, cfg: EvalSweepConfig, run: str):
        self.cfg, self.run_id, self.started = cfg, run, time.time()
        self.cluster = "local" if cfg.launcher.name == "submitit_local" else "slurm"
        requeues = {"slurm_max_num_timeout": cfg.launcher.max_num_timeout} if self.cluster == "slurm" else {}
        self.executor = submitit.AutoExecutor(folder=sweep_folder(cfg) / "submitit", cluster=self.cluster, **requeues)
        self.executor.update_parameters(**_parameters(cfg, self.cluster))
        self.jobs: list = []

    def run(self, cells: list[Cell]) -> dict[Cell, dict]:
        batches = make_batches(self.cfg, cells)
        jobs = self.executor.map_array(BatchJob(), [self.cfg] * len(batches), batches, [self.run_id] * len(batches))
        self.jobs += jobs
        log.info("submitted %d job(s) of sweep %s to %s (%d cells, up to %d per job)", len(jobs), self.cfg.sweep.name,
                 self.cluster, len(cells), max(len(b) for b in batches))
        return self._wait(list(zip(batches, jobs)))

    def stop(self, signum: Optional[int]) -> None:
        for job in self.jobs:
            if not job.done():
                job.cancel(check=False)

    def _finished(self, status: dict) -> bool:
        """Done (by any run), or failed in this run (an older failure is being retried)."""
        return status["status"] == "done" or (status["status"] == "failed" and status.get("finished", 0) >= self.started)

    def _wait(self, pending: list) -> dict[Cell, dict]:
        """Wait until every cell has a status from this run or its job ended, within a deadline.

        A cell's own status file is the source of truth: without Slurm accounting, submitit
        cannot see a job that was killed (OOM, scancel, time limit) and would wait forever.
        """
        launcher = self.cfg.launcher
        deadline = time.monotonic() + 60 * launcher.timeout_min * (launcher.max_num_timeout + 1) + 120
        outcomes: dict[Cell, dict] = {}
        progress = tqdm(total=sum(len(batch) for batch, _ in pending), desc="cells", unit="cell")
        while pending:
            still = []
            for batch, job in pending:
                for cell in batch:
                    status = cell_status(self.cfg, cell)
                    if cell not in outcomes and self._finished(status):
                        outcomes[cell] = status
                        progress.update()
                left = [cell for cell in batch if cell not in outcomes]
                if left and job.done():
                    self._job_ended(job, left, outcomes)
                    progress.update(len(left))
                elif left and time.monotonic() > deadline:
                    job.cancel(check=False)
                    for cell in left:
                        outcomes[cell] = record_status(self.cfg, cell, status="failed", run=self.run_id,
                                                       reason="no result before the deadline (killed?)",
                                                       log=str(job.paths.stderr))
                    progress.update(len(left))
                elif left:
                    still.append((batch, job))
            pending = still
            if pending:
                time.sleep(POLL_SECONDS)
        progress.close()
        return outcomes

    def _job_ended(self, job, cells: list[Cell], outcomes: dict) -> None:
        """The job ended and these cells have no status of this run: take the job's own
        answer (kept in memory when the sweeps folder could not be written), else fail them."""
        error = job.exception()
        answers = {} if error else (job.result() or {})
        for cell in cells:
            answer = answers.get(cell.id) or {}
            if answer.get("status") in ("done", "failed"):
                outcomes[cell] = answer
                continue
            if error:
                reason = str(error).strip().splitlines()[-1][:500]
            elif answer.get("status") == "pending":
                reason = "the job stopped before this cell finished (interrupted or requeued too often)"
            else:
                reason = "the job ended without a status for this cell"
            outcomes[cell] = record_status(self.cfg, cell, status="failed", reason=reason, run=self.run_id,
                                           log=str(Path(job.paths.stderr)))


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
