"""`python -m evaluate sweep`: a models x methods x bits matrix of independent cells.

A cell is one (model, method, bits) variant (`sweep.cells`): quantize (reusing an artifact
with the same fingerprint) then evaluate (reusing existing records). Cells pass paths,
never models, and each writes a status file when it ends. Every model's baseline cell runs
first, in its own phase, so variants share it (`sweep.plan`).

A rerun skips cells whose status says done and whose artifact and records are still
complete (no model is loaded), retries nothing that failed unless asked
(`sweep.retry_failed=true` / `--retry-failed`), and runs everything else. Because
artifacts and records are published by atomic renames, a sweep killed at any moment
(even SIGKILL mid-write) loses only the unfinished cells' work, and concurrent cells on
a shared filesystem never corrupt each other. Two sweeps started at once on the same
folders share the work: each cell is claimed by one of them (`sweep.cells.Claim`).

Ctrl-C (SIGINT) or SIGTERM stops the sweep and its running cells: each cell unwinds
(removing its staging and temporary folders) and stays pending, and the sweep says one
line and exits 130 / 143. The sweep's own bookkeeping (status files, logs, the results
table, the report) never stops it: a write that fails is said in one line, and the
summary is printed from what it knows.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Callable, Optional

from common.storage import ensure_writable_dir, is_disk_full, write_json_atomic
from configs.compose import compose
from configs.errors import ConfigError
from configs.sweep_schema import EvalSweepConfig
from evaluate import store
from report.cli import main as report_main
from models.sources import resolve_model_dir
from sweep.cells import Cell, cell_status, run_id
from sweep.launchers import check_launcher, open_launcher
from quantize.estimate import UnknownArchitecture, estimate
from sweep.plan import job_and_method, plan_cells

log = logging.getLogger("sweep")
INTERRUPTED = "interrupted; nothing half-written was kept; rerun to resume"


class Interrupted(BaseException):
    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def run_sweep(cfg: EvalSweepConfig) -> int:
    """Run every unfinished cell; returns the exit code (0: all done, 1: some failed or
    pending, 130 / 143: interrupted by SIGINT / SIGTERM)."""
    on_stop: list[Callable[[int], None]] = []
    try:
        with _interrupts(on_stop):
            return _run(cfg, on_stop)
    except (Interrupted, KeyboardInterrupt) as stop:
        signum = stop.signum if isinstance(stop, Interrupted) else signal.SIGINT
        print(INTERRUPTED, file=sys.stderr, flush=True)
        return 128 + signum


def check_sweep(cfg: EvalSweepConfig) -> None:
    """What `--cfg` checks: the launcher is usable here and every cell not done is valid."""
    check_launcher(cfg)
    plan_cells(cfg)


def _run(cfg: EvalSweepConfig, on_stop: list) -> int:
    check_launcher(cfg)
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
    run = run_id()
    log.info("sweep %s: %d cells, %d already done, %d to run (run %s)", cfg.sweep.name, len(cells), len(reused),
             len(todo), run)
    outcomes: dict[Cell, dict] = {}
    if todo:
        with open_launcher(cfg, run) as launcher:
            on_stop.append(launcher.stop)
            for phase in ([c for c in todo if c.is_baseline], [c for c in todo if not c.is_baseline]):
                if phase:
                    outcomes.update(launcher.run(phase))
        # Cells rebuild the table as they finish; in parallel, one that read the records
        # before another published its own can write last, so rebuild once from all.
        _bookkeeping("rebuild the results table", cfg.results_dir, lambda: store.write_table(Path(cfg.results_dir)))
    else:  # nothing ran: a damaged or stale table is rebuilt before the report is judged current
        _bookkeeping("check the results table", cfg.results_dir, lambda: store.ensure_table(Path(cfg.results_dir)))
    final = {cell: _final(cfg, cell, outcomes.get(cell)) for cell in cells}
    _print_summary(cfg, cells, final, ran=set(todo))
    if cfg.report and any(s["status"] == "done" for s in final.values()) and (todo or not _report_is_current(cfg)):
        _bookkeeping("build the report", cfg.results_dir, lambda: _build_report(cfg))
    return 1 if any(s["status"] != "done" for s in final.values()) else 0


def _final(cfg: EvalSweepConfig, cell: Cell, outcome: Optional[dict]) -> dict:
    """This run's outcome for a cell it ran (kept in memory when its status file could not
    be written), else its status on disk."""
    if outcome is not None and outcome["status"] in ("done", "failed"):
        return outcome
    return cell_status(cfg, cell)


def _bookkeeping(what: str, folder: str, write: Callable[[], object]) -> None:
    """A write of the sweep's own that must not stop it: a full disk is one line."""
    try:
        write()
    except Exception as error:  # noqa: BLE001 - only a full disk is expected; anything else is re-raised
        if not is_disk_full(error):
            raise
        print(f"warning: could not {what}: the disk of {Path(folder).expanduser().resolve()} is full; "
              "free space and rerun to finish it", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _interrupts(on_stop: list):
    """SIGINT and SIGTERM: stop the launcher (its workers unwind their cells), then raise
    Interrupted here, in the main thread; a second signal while stopping is ignored."""
    stopping: list[int] = []

    def interrupt(signum, frame):
        if stopping:
            return
        stopping.append(signum)
        for stop in on_stop:
            stop(signum)
        raise Interrupted(signum)

    if threading.current_thread() is not threading.main_thread():  # (called from a thread: signals are not ours)
        yield
        return
    previous = {signum: signal.signal(signum, interrupt) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _print_plan(cfg: EvalSweepConfig, cells: list[Cell], statuses: dict) -> None:
    """Each cell's status and what it needs (quantize.estimate: from config.json or the
    registry, nothing downloaded); memory is the model's and its work's (a GPU's), plus
    the libraries' on a CPU."""
    print(f"sweep {cfg.sweep.name}: {len(cells)} cells (launcher={cfg.launcher.name})")
    for cell in cells:
        status = statuses[cell]["status"]
        print(f"  {status:<8} {cell.id}\n           {_estimate_line(cell)}")
        for note in _plan_notes(cell):
            print(f"           {note}")
    print("  (memory is the model's and its work's, on a GPU; on a CPU each process also holds its libraries: "
          "the +quantize/evaluate sizes)")


def _estimate_line(cell: Cell) -> str:
    eval_job = _eval_settings(cell.eval_overrides)
    job, method = job_and_method(cell)
    try:
        found = estimate(job, method, eval_batch_size=eval_job.eval.batch_size,
                         perplexity=bool(eval_job.eval.perplexity_task))
    except UnknownArchitecture as error:
        return str(error)
    return found.line()


def _plan_notes(cell: Cell) -> list[str]:
    """The method's notes on the cell's model (GGUF: tensors that fall back), from config.json."""
    try:
        method = job_and_method(cell)[1]
        return method.plan_notes(_hf_config(tuple(o for o in cell.quantize_overrides if o.startswith("model"))))
    except (ConfigError, OSError, ValueError):  # an invalid cell is reported by planning; a missing model by its run
        return []


@functools.lru_cache(maxsize=None)
def _hf_config(model_overrides: tuple[str, ...]):
    from transformers import AutoConfig

    job = compose("quantize", list(model_overrides))
    return AutoConfig.from_pretrained(resolve_model_dir(job.model, config_only=True))


@functools.lru_cache(maxsize=None)
def _eval_settings(eval_overrides: tuple[str, ...]):
    return compose("evaluate_run", ["artifact=.", *eval_overrides])


def _print_summary(cfg: EvalSweepConfig, cells: list[Cell], statuses: dict, ran: set) -> None:
    done = [c for c in cells if statuses[c]["status"] == "done" and c in ran and not statuses[c].get("by_another_run")]
    reused = [c for c in cells if statuses[c]["status"] == "done" and c not in done]
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
    table = Path(cfg.results_dir) / "table.parquet"
    table_mtime = table.stat().st_mtime_ns if table.exists() else None
    code = report_main([f"results_dir={cfg.results_dir}"])
    if code == 0 and table_mtime is not None:
        write_json_atomic(_report_stamp(cfg), {"table_mtime_ns": table_mtime})
    return code
