"""A cell worker: `python -m evaluate worker`, a long-lived process that runs sweep cells one
after another in one environment (`sweep.pool` starts one per parallel slot and per
environment). It pays its imports (torch, transformers, llm-compressor, lm-eval and the
lab) once, on the first cell, instead of once per cell.

Protocol: requests are JSON lines on stdin ({"op": "cell"|"quantize", "config", "cell",
"run", "tmp", "artifact"}); everything the worker and its cells print goes to its stdout and
stderr, one pipe that the parent copies into the running cell's log; the reply to a request
is one line on stdout that starts with REPLY, written after the cell's own output, so the
parent knows where a cell's log ends. The worker ends when stdin closes.

Between cells the worker puts back what a cell may have changed that a fresh process would
not see (environment variables, the working directory, sys.path, the temporary folder,
torch's thread count, default dtype, grad mode and random state), drops every reference
to the cell's models and frees the memory (garbage collection, glibc's malloc_trim, CUDA's
cache), and resets the kernel's peak-RSS counter, so that each cell's records are what a
fresh process would write and its peak memory is its own.

Signals: SIGINT and SIGTERM interrupt the running cell (its staging folders are removed on
the way out; it stays pending), then the worker dies by that signal. SIGUSR2, Slurm's
warning before a time limit, is for the job process that started the worker: ignored. A
worker whose parent dies interrupts itself the same way.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Optional

from common.memory import current_rss_bytes, peak_rss_bytes, reset_peak_rss
from quantize.pipeline import quantize_job
from sweep.cells import Cell, config_from_dict, log_path, record_status
from sweep.plan import job_and_method
from sweep.reasons import failure_reason

log = logging.getLogger("sweep")

REPLY = b"\x1e\x1eqlab-worker-reply "


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived: unwind the running cell (cleaning up) and die by it."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def serve(argv: list[str]) -> int:
    """The worker's loop; `--cold` skips the warm-up imports (a worker that runs one cell)."""
    requests = os.fdopen(os.dup(0), "rb")  # stdin is the parent's; cells and their subprocesses read nothing
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    _install_signals()
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True, name="parent-watch").start()
    try:
        baseline = None if "--cold" in argv else _warm_up()
        for line in requests:
            request = json.loads(line)
            reply = _handle(request, baseline)
            _reply(reply)
    except Interrupted as stop:
        _die_by(stop.signum)
    return 0


def _handle(request: dict, baseline: Optional[dict]) -> dict:
    cfg, cell = config_from_dict(request["config"]), Cell.from_dict(request["cell"])
    started = time.time()
    with _cell_scope(request.get("tmp"), baseline):
        if request["op"] == "quantize":
            status = quantize_cell(cfg, cell, run=request.get("run"))
        else:
            # lm-eval and scipy are not in every environment (a legacy worker only quantizes)
            from sweep.execute import execute_cell

            status = execute_cell(cfg, cell, run=request.get("run"), artifact=request.get("artifact"))
        peak = peak_rss_bytes()
    return {"status": status, "seconds": round(time.time() - started, 3), "pid": os.getpid(),
            "memory": {"cell_peak_rss_bytes": peak, "rss_after_bytes": current_rss_bytes(),
                       "process_max_rss_bytes": _max_rss()}}


def quantize_cell(cfg, cell: Cell, *, run: Optional[str] = None) -> dict:
    """The quantize step alone, in the environment the method runs in (AutoAWQ: legacy, which
    has no lm-eval): {"status": "quantized", "artifact": folder}, or the failed status."""
    started = time.time()
    try:
        job, method = job_and_method(cell)
        log.info("%s: quantizing in the '%s' environment with %s", cell.id, method.environment, sys.executable)
        return {"status": "quantized", "artifact": str(quantize_job(job))}
    except Exception as error:  # noqa: BLE001 - any failure is this cell's, recorded and isolated
        traceback.print_exc()
        return record_status(cfg, cell, status="failed", reason=failure_reason(error, cfg, "quantize"),
                             seconds=round(time.time() - started, 1), log=str(log_path(cfg, cell)),
                             **({"run": run} if run else {}))


# -- what a fresh process would see ------------------------------------------------------------
def _warm_up() -> dict:
    """Import what every cell needs, and note the state a fresh process starts with."""
    import torch

    with contextlib.suppress(ImportError):  # environments without lm-eval only quantize
        import sweep.execute  # noqa: F401 - the lab's evaluation stage, imported once for every cell
    return {"threads": torch.get_num_threads(), "dtype": torch.get_default_dtype(), "grad": torch.is_grad_enabled(),
            "rng": torch.random.get_rng_state(), "matmul": torch.get_float32_matmul_precision(),
            "deterministic": torch.are_deterministic_algorithms_enabled()}


@contextlib.contextmanager
def _cell_scope(tmp: Optional[str], baseline: Optional[dict]):
    environ, cwd, path = dict(os.environ), os.getcwd(), list(sys.path)
    try:  # the cell's temporary files go under the lab's folder, removed by the pool even if the cell is killed
        if tmp:
            Path(tmp).mkdir(parents=True, exist_ok=True)
            tempfile.tempdir, os.environ["TMPDIR"] = tmp, tmp
    except OSError:
        tmp = None  # (a full disk) the system's temporary folder, as a fresh process would use
    if baseline:
        _restore_torch(baseline)
    reset_peak_rss()
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(environ)
        os.chdir(cwd)
        sys.path[:] = path
        tempfile.tempdir = None
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
        _release_memory()


def _restore_torch(state: dict) -> None:
    import torch

    torch.set_num_threads(state["threads"])
    torch.set_default_dtype(state["dtype"])
    torch.set_grad_enabled(state["grad"])
    torch.random.set_rng_state(state["rng"])
    torch.set_float32_matmul_precision(state["matmul"])
    torch.use_deterministic_algorithms(state["deterministic"])


def _release_memory() -> None:
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # glibc keeps freed heap pages otherwise


def _max_rss() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# -- protocol and signals -----------------------------------------------------------------------
def _reply(data: dict) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).fflush(None)  # C libraries' buffered output belongs to this cell's log
    payload = b"\n" + REPLY + json.dumps(data, default=str).encode() + b"\n"
    while payload:
        payload = payload[os.write(1, payload):]


_interrupted: list[int] = []


def _install_signals() -> None:
    def interrupt(signum, frame):
        if not _interrupted:  # the first one unwinds; the rest would interrupt the cleanup
            _interrupted.append(signum)
            raise Interrupted(signum)

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1)
    os.kill(os.getpid(), signal.SIGTERM)  # orphaned: the sweep is gone, stop like an interrupt


def _die_by(signum: int) -> None:
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    time.sleep(5)
    os._exit(128 + signum)
