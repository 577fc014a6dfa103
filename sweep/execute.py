"""Running one sweep cell: quantize (reusing an artifact with the same fingerprint), then
evaluate (reusing records), then write its status. Locally a cell runs in its own process
(`python -m evaluate cell <spec.json>`), so a crash, a kill or the OOM killer fails only
that cell; in a submitit job it runs in the job's process."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Optional

from omegaconf import OmegaConf

from common.environments import DISPATCHED, REPO_ROOT, interpreter, needs_dispatch
from common.storage import read_manifest, write_json_atomic
from configs.compose import compose
from configs.errors import ConfigError
from configs.sweep_schema import EvalSweepConfig
from evaluate.run import evaluate_artifact
from quantize.pipeline import quantize_job
from sweep.cells import Cell, cell_status, log_path, status_path, write_status
from sweep.plan import cell_python, job_and_method

log = logging.getLogger("sweep")


def run_cell(cfg: EvalSweepConfig, cell: Cell) -> dict:
    """Quantize then evaluate one cell; always ends by writing its status file."""
    started = time.time()
    try:
        artifact = _quantize(cell)
        records = evaluate_artifact(compose("evaluate_run", [f"artifact={artifact}", *cell.eval_overrides]))
    except Exception as error:  # noqa: BLE001 - any failure is this cell's, recorded and isolated
        reason = f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
        write_status(cfg, cell, status="failed", reason=reason, log=str(log_path(cfg, cell)),
                      seconds=round(time.time() - started, 1))
        raise
    status = {"status": "done", "artifact": str(artifact), "records": [str(r) for r in records],
              "seconds": round(time.time() - started, 1), "log": str(log_path(cfg, cell))}
    write_status(cfg, cell, **status)
    return status


def run_cell_in_subprocess(cfg: EvalSweepConfig, cell: Cell, python: Optional[str] = None) -> None:
    """The local launcher: one process per cell, output to the cell's log file. A crash,
    a kill or the OOM killer fails only this cell."""
    spec_file = status_path(cfg, cell).with_suffix(".spec.json")
    spec_file.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(spec_file, {"config": dataclasses.asdict(cfg), "cell": dataclasses.asdict(cell)})
    log_file = log_path(cfg, cell)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "a") as handle:
        process = subprocess.run([python or cell_python(cell), "-m", "evaluate", "cell", str(spec_file)], cwd=REPO_ROOT,
                                 stdout=handle, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    if process.returncode != 0 and cell_status(cfg, cell)["status"] != "failed":
        write_status(cfg, cell, status="failed", reason=_exit_reason(process.returncode), log=str(log_file))


def cell_pythons(cfg: EvalSweepConfig, cells: list[Cell]) -> dict[Cell, str]:
    """The interpreter of each cell; a cell whose environment is gone since planning is
    recorded failed (and left out) instead of stopping the sweep."""
    pythons = {}
    for cell in cells:
        try:
            pythons[cell] = cell_python(cell)
        except ConfigError as error:
            write_status(cfg, cell, status="failed", reason=f"ConfigError: {error}", log=str(log_path(cfg, cell)))
    return pythons


def _quantize(cell: Cell) -> Path:
    """The cell's artifact, made in this process, or by `python -m quantize` with the
    interpreter of the method's environment when the cell runs elsewhere (AutoAWQ: made
    in legacy, evaluated in gptqmodel, where its checkpoint loads)."""
    job, method = job_and_method(cell)
    if not needs_dispatch(method.environment):
        return quantize_job(job)
    python = interpreter(method.environment, method.runs_in(), method.alternative())
    log.info("%s: quantizing with %s", cell.id, python)
    result = subprocess.run([str(python), "-m", "quantize", *cell.quantize_overrides], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                            text=True, check=False, env={**os.environ, DISPATCHED: method.environment})
    print(result.stdout, end="", flush=True)  # its stderr went where this process's goes
    if result.returncode != 0:
        raise RuntimeError(f"python -m quantize in the '{method.environment}' environment exited with code "
                           f"{result.returncode} (see its output above)")
    artifact = Path(result.stdout.strip().splitlines()[-1]) if result.stdout.strip() else None
    if artifact is None or read_manifest(artifact) is None:  # `python -m quantize` prints the folder last
        raise RuntimeError(f"python -m quantize in the '{method.environment}' environment did not print a complete "
                           f"artifact folder (last line: {str(artifact)!r})")
    return artifact


def run_cell_from_spec(spec_file: Path) -> int:
    """Entry of `python -m evaluate cell <spec.json>` (used by the local launcher)."""
    spec = json.loads(Path(spec_file).read_text())
    cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(EvalSweepConfig), spec["config"]))
    cell = Cell(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec["cell"].items()})
    run_cell(cfg, cell)
    return 0


def _exit_reason(returncode: int) -> str:
    if returncode < 0:
        name = signal.Signals(-returncode).name
        hint = " (out of memory?)" if -returncode == signal.SIGKILL else ""
        return f"killed by {name}{hint}"
    return f"exited with code {returncode}"


