"""`python -m evaluate sweep`: a models x methods x bits matrix of independent cells.

A cell is one (model, method, bits) variant: quantize (reusing an artifact with the same
fingerprint) then evaluate (reusing existing records). Cells pass paths, never models,
and each writes a status file `<sweeps_dir>/<name>/cells/<cell id>.json` atomically when
it ends. Every model's baseline cell runs first, in its own phase, so variants share it.

A rerun skips cells whose status says done and whose artifact and records are still
complete (no model is loaded), retries nothing that failed unless asked
(`sweep.retry_failed=true` / `--retry-failed`), and runs everything else. Because
artifacts and records are published by atomic renames, a sweep killed at any moment
(even SIGKILL mid-write) loses only the unfinished cells' work, and concurrent cells on
a shared filesystem never corrupt each other, without file locks.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from configs.compose import compose
from configs.errors import ConfigError
from configs.sweep_schema import EvalSweepConfig
from models.artifact import ensure_writable_dir, fingerprint, read_manifest, write_json_atomic

log = logging.getLogger("sweep")
REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclasses.dataclass(frozen=True)
class Cell:
    model: str
    method: str
    quantize_overrides: tuple[str, ...]
    eval_overrides: tuple[str, ...]

    @property
    def key(self) -> str:
        return fingerprint({"quantize": self.quantize_overrides, "eval": self.eval_overrides})[:10]

    @property
    def id(self) -> str:
        settings = [o.split("=", 1)[1] for o in self.quantize_overrides if o.startswith(("quant.bits=", "quant.group_size="))]
        model = Path(self.model).name if "/" in self.model else self.model  # a local folder
        return "__".join([model, "-".join([self.method, *settings]), self.key])

    @property
    def is_baseline(self) -> bool:
        return self.method == "none"


# -- planning ----------------------------------------------------------------------------
def plan_cells(cfg: EvalSweepConfig) -> list[Cell]:
    """Every cell of the sweep, baselines first; invalid cells are all reported at once
    (cells already done were valid when they ran and are not composed again)."""
    spec = cfg.sweep
    paths = [f"output_dir={cfg.output_dir}"]
    eval_common = (f"eval={spec.eval}", f"results_dir={cfg.results_dir}", *spec.eval_overrides)
    cells = []
    for model in spec.models:
        common = (f"model={model}", *paths, *spec.quantize_overrides)
        baseline = Cell(model, "none", ("method=none", *common), eval_common)
        cells += [baseline, *_dtype_baselines(baseline, spec)]
        for grid in spec.methods:
            for bits in grid.bits or [None]:
                quant = [f"quant.bits={bits}"] if bits is not None else []
                quant += [f"quant.group_size={grid.group_size}"] if grid.group_size is not None else []
                overrides = (f"method={grid.method}", *common, *quant, *grid.overrides)
                cells.append(Cell(model, grid.method, overrides, eval_common))
    _validate([cell for cell in cells if cell_status(cfg, cell)["status"] != "done"])
    return cells


def _dtype_baselines(baseline: Cell, spec) -> list[Cell]:
    """A variant is compared with the baseline of its own dtype (evaluate.run.find_baseline),
    so each other dtype a grid sets (AWQ in float16 for a float32 model, say) gets one."""
    dtype_overrides = [tuple(o for o in grid.overrides if o.lstrip("+~").split("=", 1)[0] == "model.dtype")
                       for grid in spec.methods]
    if not any(dtype_overrides):
        return []
    try:
        dtypes = {_job_and_method(baseline)[0].model.dtype}
    except ConfigError:  # an invalid baseline is reported with the other invalid cells
        return []
    cells = []
    for overrides in filter(None, dtype_overrides):
        cell = dataclasses.replace(baseline, quantize_overrides=(*baseline.quantize_overrides, *overrides))
        try:
            dtype = _job_and_method(cell)[0].model.dtype
        except ConfigError:
            continue
        if dtype not in dtypes:
            dtypes.add(dtype)
            cells.append(cell)
    return cells


def _validate(cells: list[Cell]) -> None:
    problems, eval_problems = [], {}
    for cell in cells:
        try:
            _interpreter_for(_job_and_method(cell)[1])  # valid, and its environments are built
        except ConfigError as error:
            problems.append(f"  {cell.id}: {error}")
        if cell.eval_overrides not in eval_problems:  # usually one set for the whole sweep: said once
            eval_problems[cell.eval_overrides] = _eval_problem(cell.eval_overrides)
    eval_lines = [f"  evaluation {list(overrides)}: {problem}" for overrides, problem in eval_problems.items() if problem]
    if problems or eval_lines:
        header = [f"{len(problems)} invalid cell(s)"] * bool(problems) + ["invalid evaluation settings"] * bool(eval_lines)
        raise ConfigError("; ".join(header) + ":\n" + "\n".join(problems + eval_lines))


def _eval_problem(eval_overrides: tuple[str, ...]) -> Optional[str]:
    from evaluate.harness import check_tasks

    try:
        run = compose("evaluate_run", ["artifact=.", *eval_overrides])
        check_tasks(run.eval)
    except ConfigError as error:
        return str(error)
    return None


# -- status ------------------------------------------------------------------------------
def status_path(cfg: EvalSweepConfig, cell: Cell) -> Path:
    return Path(cfg.sweeps_dir) / cfg.sweep.name / "cells" / f"{cell.id}.json"


def log_path(cfg: EvalSweepConfig, cell: Cell) -> Path:
    return Path(cfg.sweeps_dir) / cfg.sweep.name / "logs" / f"{cell.id}.log"


def cell_status(cfg: EvalSweepConfig, cell: Cell) -> dict:
    """done (and still complete on disk), failed, or pending."""
    try:
        status = json.loads(status_path(cfg, cell).read_text())
    except (OSError, ValueError):
        return {"status": "pending"}
    if status.get("status") == "done" and not _outputs_complete(status):
        return {"status": "pending", "note": "outputs missing or incomplete"}
    return status


def _outputs_complete(status: dict) -> bool:
    folders = [status.get("artifact"), *status.get("records", [])]
    return all(folder and read_manifest(Path(folder)) is not None for folder in folders)


def _write_status(cfg: EvalSweepConfig, cell: Cell, **fields) -> None:
    path = status_path(cfg, cell)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {"cell": dataclasses.asdict(cell), "id": cell.id, **fields})


# -- one cell (runs in a subprocess or a Slurm job) ---------------------------------------
def run_cell(cfg: EvalSweepConfig, cell: Cell) -> dict:
    """Quantize then evaluate one cell; always ends by writing its status file."""
    from evaluate.run import evaluate_artifact

    started = time.time()
    try:
        artifact = _quantize(cell)
        records = evaluate_artifact(compose("evaluate_run", [f"artifact={artifact}", *cell.eval_overrides]))
    except Exception as error:  # noqa: BLE001 - any failure is this cell's, recorded and isolated
        reason = f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
        _write_status(cfg, cell, status="failed", reason=reason, log=str(log_path(cfg, cell)),
                      seconds=round(time.time() - started, 1))
        raise
    status = {"status": "done", "artifact": str(artifact), "records": [str(r) for r in records],
              "seconds": round(time.time() - started, 1), "log": str(log_path(cfg, cell))}
    _write_status(cfg, cell, **status)
    return status


# -- the whole sweep ---------------------------------------------------------------------
def run_sweep(cfg: EvalSweepConfig) -> int:
    """Run every unfinished cell; returns the exit code (0: all done, 1: some failed)."""
    cells = plan_cells(cfg)
    statuses = {cell: cell_status(cfg, cell) for cell in cells}
    if not cfg.dry_run:
        for setting in ("output_dir", "results_dir", "sweeps_dir"):
            ensure_writable_dir(setting, getattr(cfg, setting))
    if cfg.dry_run:
        _print_plan(cfg, cells, statuses)
        return 0
    todo = [c for c in cells if statuses[c]["status"] == "pending" or (cfg.retry_failed and statuses[c]["status"] == "failed")]
    reused = [c for c in cells if statuses[c]["status"] == "done"]
    log.info("sweep %s: %d cells, %d already done, %d to run", cfg.sweep.name, len(cells), len(reused), len(todo))
    if todo:
        from evaluate import store
        from evaluate.launchers import launch

        for phase in ([c for c in todo if c.is_baseline], [c for c in todo if not c.is_baseline]):
            if phase:
                launch(cfg, phase)
        # Cells rebuild the table as they finish; in parallel, one that read the records
        # before another published its own can write last, so rebuild once from all.
        store.write_table(Path(cfg.results_dir))
    final = {cell: cell_status(cfg, cell) for cell in cells}
    _print_summary(cfg, cells, final, ran=set(todo))
    if cfg.report and any(s["status"] == "done" for s in final.values()) and (todo or not _report_is_current(cfg)):
        _build_report(cfg)
    return 1 if any(s["status"] != "done" for s in final.values()) else 0


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
        _write_status(cfg, cell, status="failed", reason=_exit_reason(process.returncode), log=str(log_file))


def cell_pythons(cfg: EvalSweepConfig, cells: list[Cell]) -> dict[Cell, str]:
    """The interpreter of each cell; a cell whose environment is gone since planning is
    recorded failed (and left out) instead of stopping the sweep."""
    pythons = {}
    for cell in cells:
        try:
            pythons[cell] = cell_python(cell)
        except ConfigError as error:
            _write_status(cfg, cell, status="failed", reason=f"ConfigError: {error}", log=str(log_path(cfg, cell)))
    return pythons


def cell_python(cell: Cell) -> str:
    return _interpreter_for(_job_and_method(cell)[1])


def _interpreter_for(method) -> str:
    """The interpreter a cell runs with: that of the environment its artifact loads in
    (where it is evaluated), which is where its method runs except for AutoAWQ's."""
    from quantize.backends import interpreter, needs_dispatch

    if method.load_environment not in (None, method.environment) and needs_dispatch(method.environment):
        interpreter(method.environment, method.runs_in())  # its quantize step needs this one: missing says so now
    environment = method.load_environment or method.environment
    return str(interpreter(environment, method.runs_in())) if needs_dispatch(environment) else sys.executable


def _job_and_method(cell: Cell):
    """The cell's validated quantize config and its method (no weights loaded)."""
    from quantize.methods.base import build_method

    job = compose("quantize", list(cell.quantize_overrides))
    return job, build_method(job.method, job.quant, job.model.dtype)


def _quantize(cell: Cell) -> Path:
    """The cell's artifact, made in this process, or by `python -m quantize` with the
    interpreter of the method's environment when the cell runs elsewhere (AutoAWQ: made
    in legacy, evaluated in gptqmodel, where its checkpoint loads)."""
    from quantize.backends import DISPATCHED, interpreter, needs_dispatch
    from quantize.pipeline import quantize_job

    job, method = _job_and_method(cell)
    if not needs_dispatch(method.environment):
        return quantize_job(job)
    python = interpreter(method.environment, method.runs_in())
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
    from omegaconf import OmegaConf

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


def _print_plan(cfg: EvalSweepConfig, cells: list[Cell], statuses: dict) -> None:
    print(f"sweep {cfg.sweep.name}: {len(cells)} cells (launcher={cfg.launcher.name})")
    for cell in cells:
        status = statuses[cell]["status"]
        print(f"  {status:<8} {_memory_estimate(cell):>9}  {cell.id}")


def _memory_estimate(cell: Cell) -> str:
    """Peak memory to quantize: the model in its load dtype plus ~20% working space."""
    model = _model_config(tuple(o for o in cell.quantize_overrides if o.startswith("model")))
    if model.params_b:
        bytes_per_param = 4 if model.dtype == "float32" else 2
        return f"~{model.params_b * bytes_per_param * 1.2:.1f} GB"
    return "< 1 GB" if model.tiny_size else "unknown"


@functools.lru_cache(maxsize=None)
def _model_config(model_overrides: tuple[str, ...]):
    from configs.compose import compose_dict

    return compose_dict("quantize", list(model_overrides)).model


def _print_summary(cfg: EvalSweepConfig, cells: list[Cell], statuses: dict, ran: set) -> None:
    done = [c for c in cells if statuses[c]["status"] == "done" and c in ran]
    reused = [c for c in cells if statuses[c]["status"] == "done" and c not in ran]
    failed = [c for c in cells if statuses[c]["status"] == "failed"]
    pending = [c for c in cells if statuses[c]["status"] == "pending"]
    print(f"sweep {cfg.sweep.name}: {len(done)} done, {len(reused)} reused, {len(failed)} failed, {len(pending)} pending")
    for cell in failed:
        print(f"  failed {cell.id}: {statuses[cell].get('reason')} (log: {statuses[cell].get('log')})")
    if failed and not cfg.retry_failed:
        print("  rerun with --retry-failed to retry the failed cells")


def _report_stamp(cfg: EvalSweepConfig) -> Path:
    return Path(cfg.results_dir) / "report" / ".built-by-sweep.json"


def _report_is_current(cfg: EvalSweepConfig) -> bool:
    """The sweep's last report build completed from the results table as it is now, and
    nothing rewrote the report since (a stamp written after the whole report)."""
    stamp, table = _report_stamp(cfg), Path(cfg.results_dir) / "table.parquet"
    report = Path(cfg.results_dir) / "report" / "report.html"
    try:
        built_from = json.loads(stamp.read_text())["table_mtime_ns"]
        return built_from == table.stat().st_mtime_ns and stamp.stat().st_mtime_ns >= report.stat().st_mtime_ns
    except (OSError, ValueError, KeyError):
        return False


def _build_report(cfg: EvalSweepConfig) -> Optional[int]:
    try:
        from evaluate.report import main as report_main
    except ImportError:
        return None
    table = Path(cfg.results_dir) / "table.parquet"
    table_mtime = table.stat().st_mtime_ns if table.exists() else None
    code = report_main([f"results_dir={cfg.results_dir}"])
    if code == 0 and table_mtime is not None:
        write_json_atomic(_report_stamp(cfg), {"table_mtime_ns": table_mtime})
    return code
