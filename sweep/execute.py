"""Running one sweep cell: quantize (reusing an artifact with the same fingerprint), then
evaluate (reusing records), then write its status. A cell runs inside a worker process
(`sweep.worker`, started by `sweep.pool`), so a crash, a kill or the OOM killer fails only
that cell; `python -m evaluate cell <spec.json>` runs one in the foreground.

A failure is the cell's: its status says why in one line (`failure_reason`; a full disk
names the folder that is full), the traceback goes to the cell's log."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
import traceback
from pathlib import Path
from typing import Optional

from common.environments import DISPATCHED, REPO_ROOT, interpreter, needs_dispatch
from common.storage import read_manifest
from configs.compose import compose
from configs.sweep_schema import EvalSweepConfig
from evaluate.run import evaluate_artifact
from quantize.pipeline import quantize_job
from sweep.cells import Cell, config_from_dict, log_path, record_status
from sweep.plan import job_and_method
from sweep.reasons import failure_reason

log = logging.getLogger("sweep")


def execute_cell(cfg: EvalSweepConfig, cell: Cell, *, run: Optional[str] = None, artifact: Optional[str] = None) -> dict:
    """Quantize (unless `artifact`, made by an earlier step, is given) then evaluate one cell;
    records and returns its status. Any exception is the cell's failure: its reason goes to
    the status, its traceback to stderr (the cell's log)."""
    started, step = time.time(), "quantize"
    common = {"log": str(log_path(cfg, cell)), **({"run": run} if run else {})}
    try:
        folder = Path(artifact) if artifact else _quantize(cell)
        step = "evaluate"
        records = evaluate_artifact(compose("evaluate_run", [f"artifact={folder}", *cell.eval_overrides]))
    except Exception as error:  # noqa: BLE001 - any failure is this cell's, recorded and isolated
        traceback.print_exc()
        return record_status(cfg, cell, status="failed", reason=failure_reason(error, cfg, step),
                             seconds=round(time.time() - started, 1), **common)
    return record_status(cfg, cell, status="done", artifact=str(folder), records=[str(r) for r in records],
                         seconds=round(time.time() - started, 1), **common)


def _quantize(cell: Cell) -> Path:
    """The cell's artifact, made in this process, or by `python -m quantize` with the
    interpreter of the method's environment when the cell runs elsewhere (the sweep's
    workers make it in a worker of that environment instead: see `sweep.plan.cell_steps`)."""
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
    """Entry of `python -m evaluate cell <spec.json>`: one cell in the foreground (spec:
    {"config": <sweep config>, "cell": <cell>}); exit code 1 if it failed."""
    spec = json.loads(Path(spec_file).read_text())
    cfg = config_from_dict(spec["config"])
    status = execute_cell(cfg, Cell.from_dict(spec["cell"]), run=spec.get("run"), artifact=spec.get("artifact"))
    return 0 if status["status"] == "done" else 1


