"""Where sweep cells run: local subprocesses, or submitit jobs (locally or on Slurm).

Slurm settings follow hydra-submitit-launcher's SlurmQueueConf keys (partition, account,
qos, gpus_per_node, cpus_per_task, mem_gb, timeout_min, setup, max_num_timeout,
array parallelism); cells are submitted directly with submitit, the library that
launcher wraps, because each cell is a plain function call, not a Hydra multirun job.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm import tqdm

from configs.sweep_schema import EvalSweepConfig

log = logging.getLogger("sweep")


def launch(cfg: EvalSweepConfig, cells: list) -> None:
    if cfg.launcher.name == "local":
        _launch_local(cfg, cells)
    else:
        _launch_submitit(cfg, cells)


def _launch_local(cfg: EvalSweepConfig, cells: list) -> None:
    from evaluate.sweep import run_cell_in_subprocess

    with ThreadPoolExecutor(max_workers=cfg.launcher.max_parallel) as pool:
        futures = [pool.submit(run_cell_in_subprocess, cfg, cell) for cell in cells]
        for future in tqdm(futures, desc="cells", unit="cell"):
            future.result()


def _launch_submitit(cfg: EvalSweepConfig, cells: list) -> None:
    import submitit

    from evaluate.sweep import cell_status, run_cell

    folder = Path(cfg.sweeps_dir) / cfg.sweep.name / "submitit"
    cluster = "local" if cfg.launcher.name == "submitit_local" else "slurm"
    executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
    executor.update_parameters(**_parameters(cfg, cluster))
    jobs = executor.map_array(run_cell, [cfg] * len(cells), cells)
    log.info("submitted %d %s job(s) to %s", len(jobs), cfg.sweep.name, cluster)
    for cell, job in tqdm(list(zip(cells, jobs)), desc="cells", unit="cell"):
        try:
            job.result()
        except Exception as error:  # noqa: BLE001 - the job failed; its cell is recorded failed
            if cell_status(cfg, cell)["status"] != "failed":
                from evaluate.sweep import _write_status

                _write_status(cfg, cell, status="failed", reason=str(error).strip().splitlines()[-1][:500],
                              log=str(Path(job.paths.stderr)))


def _parameters(cfg: EvalSweepConfig, cluster: str) -> dict:
    launcher = cfg.launcher
    common = {"timeout_min": launcher.timeout_min, "cpus_per_task": launcher.cpus_per_task,
              "mem_gb": launcher.mem_gb, "slurm_array_parallelism": launcher.max_parallel}
    if cluster == "local":
        return {"timeout_min": launcher.timeout_min, "cpus_per_task": launcher.cpus_per_task}
    slurm = {"gpus_per_node": launcher.gpus_per_node, "slurm_setup": list(launcher.setup),
             "slurm_max_num_timeout": launcher.max_num_timeout,
             "slurm_additional_parameters": dict(launcher.additional_parameters)}
    for key in ("partition", "account", "qos"):
        if getattr(launcher, key):
            slurm[f"slurm_{key}"] = getattr(launcher, key)
    return {**common, **slurm}
