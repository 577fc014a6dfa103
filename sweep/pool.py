"""Cells on long-lived worker processes (`sweep.worker`): one per parallel slot and per
environment, started when a slot first needs that environment and kept for the whole
sweep (both phases), so imports are paid once per worker, not once per cell. The local
launcher runs a sweep's cells on a pool of `launcher.max_parallel` slots; a Slurm or
submitit job runs its batch on a pool of one slot.

Guarantees, cell by cell:
- A cell that raises is recorded failed by its worker (reason in its status, traceback in
  its log) and the worker goes on with the next cell.
- A cell that crashes or is killed (segfault, the OOM killer, SIGKILL) takes down only its
  worker: that cell alone is recorded failed ("killed by SIGKILL (out of memory?)"), its
  temporary folder is removed, and the slot starts a new worker for its next cell.
- A worker killed by SIGINT or SIGTERM was interrupted, not broken: its cell stays pending
  (a rerun resumes it) and the pool starts no more cells.
- Before a cell runs it is claimed (`sweep.cells.Claim`); a cell claimed by another sweep is
  put off until the end of the phase, then waited for, then skipped if that sweep finished
  it. Every attempt starts with its own header line in the cell's log.
- The worker's output reaches the cell's log through this process; a log that cannot be
  written (a full disk) is said once and the cell goes on.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Optional

from tqdm import tqdm

from common.environments import REPO_ROOT
from common.storage import pid_alive
from configs.errors import ConfigError
from configs.sweep_schema import EvalSweepConfig
from sweep.cells import Cell, Claim, bookkeeping_failed, cell_status, log_path, record_status
from sweep.plan import cell_steps
from sweep.reasons import exit_reason
from sweep.worker import REPLY

log = logging.getLogger("sweep")
INTERRUPTS = (signal.SIGINT, signal.SIGTERM)
STOP_WAIT_S = 30  # how long stopped workers get to clean up before they are killed


class WorkerProcess:
    """One worker: its process, the request pipe (stdin) and the output pipe (stdout+stderr)."""

    def __init__(self, python: str, *, cold: bool, command: Optional[list[str]] = None):
        self.python = python
        self.command = command or [python, "-m", "evaluate", "worker", *(["--cold"] if cold else [])]
        self.process = subprocess.Popen(self.command, cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.cells = 0

    @property
    def pid(self) -> int:
        return self.process.pid

    def ask(self, request: dict, sink: "LogSink") -> Optional[dict]:
        """Send one request; copy the worker's output to `sink` until its reply (returned),
        or until the worker dies (None)."""
        try:
            self.process.stdin.write(json.dumps(request).encode() + b"\n")
            self.process.stdin.flush()
        except OSError:
            pass  # it died; its last output is still read below
        try:
            for line in iter(self.process.stdout.readline, b""):
                if line.startswith(REPLY):
                    return json.loads(line[len(REPLY):])
                sink.write(line)
        except (OSError, ValueError):  # the pipe was closed under us: the pool is shutting down
            pass
        return None

    def exit_code(self) -> int:
        return self.process.wait()

    def alive(self) -> bool:
        return self.process.poll() is None

    def signal(self, signum: int) -> None:
        if self.alive():
            try:
                self.process.send_signal(signum)
            except ProcessLookupError:
                pass

    def close(self) -> None:
        """Let it end (stdin closed: it exits after its current request)."""
        try:
            self.process.stdin.close()
        except OSError:
            pass

    def reap(self, timeout: float) -> None:
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for pipe in (self.process.stdout, self.process.stdin):
            try:
                pipe.close()
            except OSError:
                pass


class LogSink:
    """A cell's log file, appended to; a write that fails is said once, never raised."""

    def __init__(self, cfg: EvalSweepConfig, cell: Cell):
        self.cfg, self.path, self.handle = cfg, log_path(cfg, cell), None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.handle = open(self.path, "ab")
        except OSError as error:
            bookkeeping_failed(cfg, "log", error)

    def write(self, data: bytes | str) -> None:
        if self.handle is None:
            return
        try:
            self.handle.write(data.encode() if isinstance(data, str) else data)
            self.handle.flush()
        except OSError as error:
            bookkeeping_failed(self.cfg, "log", error)
            self.close()

    def close(self) -> None:
        if self.handle is not None:
            try:
                self.handle.close()
            except OSError:
                pass
            self.handle = None


class Pool:
    """`slots` parallel slots, each with at most one worker per environment. Use it as a
    context manager; `run(cells)` may be called once per phase."""

    def __init__(self, cfg: EvalSweepConfig, run: str, slots: int, *, cells_per_worker: Optional[int] = None,
                 progress: bool = True, worker_command: Optional[list[str]] = None,
                 steps: Callable[[Cell], list[tuple[str, str]]] = cell_steps):
        """`worker_command` and `steps` replace the real worker and routing in tests."""
        self.cfg, self.run_id, self.slots = cfg, run, slots
        self.cells_per_worker, self.worker_command, self.progress = cells_per_worker, worker_command, progress
        self.steps = steps
        self.started = time.time()
        self.stopping: Optional[int] = None  # the signal that stopped the pool
        self._workers: list[dict[str, WorkerProcess]] = [{} for _ in range(slots)]
        self._threads: list[threading.Thread] = []
        self._lock = threading.RLock()  # reentrant: a signal handler in the main thread may call stop()
        self._tmp_root = Path(cfg.results_dir).expanduser() / ".tmp"
        remove_dead_tmp(self._tmp_root)

    # -- lifetime ------------------------------------------------------------------------------
    def __enter__(self) -> "Pool":
        return self

    def __exit__(self, kind, error, tb) -> None:
        if kind is not None and self.stopping is None:  # interrupted (or the job is being requeued)
            self.stop(signal.SIGINT if issubclass(kind, KeyboardInterrupt) else signal.SIGTERM)
        self.close()

    def stop(self, signum: int) -> None:
        """Stop: no more cells; running workers get `signum` and unwind their cell."""
        if self.stopping is None:
            self.stopping = signum
        for worker in self._all_workers():
            worker.signal(signum)

    def close(self) -> None:
        """End every worker (politely unless stopping), and remove their temporary folders."""
        workers = self._all_workers()
        for worker in workers:
            worker.close()
        deadline = time.monotonic() + STOP_WAIT_S
        for thread in self._threads:  # they return once their worker replied or died
            thread.join(max(0.1, deadline - time.monotonic()))
        for worker in workers:
            worker.reap(max(0.1, deadline - time.monotonic()))
        self._workers = [{} for _ in range(self.slots)]
        remove_dead_tmp(self._tmp_root)

    def _all_workers(self) -> list[WorkerProcess]:
        with self._lock:
            return [worker for slot in self._workers for worker in slot.values()]

    # -- running cells -------------------------------------------------------------------------
    def run(self, cells: list[Cell]) -> dict[Cell, dict]:
        """Run `cells`; returns each one's status from this run: done or failed (as recorded),
        a status another sweep recorded meanwhile, or {"status": "pending"} if stopped."""
        outcomes: dict[Cell, dict] = {}
        routes = {}
        for cell in cells:  # here, not in the slots' threads: composing configs is not thread-safe
            try:
                routes[cell] = self.steps(cell)
            except ConfigError as error:  # its environment is gone since planning: this cell fails, not the sweep
                outcomes[cell] = record_status(self.cfg, cell, status="failed", reason=f"ConfigError: {error}",
                                               log=str(log_path(self.cfg, cell)), run=self.run_id)
        main_first = sorted(routes, key=lambda c: routes[c][0][0] != sys.executable)  # stable: plan order otherwise
        queue, deferred = collections.deque(main_first), collections.deque()
        bar = tqdm(total=len(cells), desc="cells", unit="cell", disable=not self.progress)
        bar.update(len(outcomes))
        threads = [threading.Thread(target=self._slot, args=(slot, queue, deferred, routes, outcomes, bar),
                                    name=f"sweep-slot-{slot}", daemon=True) for slot in range(min(self.slots, len(queue)))]
        self._threads = threads
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                while thread.is_alive():
                    thread.join(0.5)  # a timed join: signals reach this (main) thread
        finally:
            bar.close()
        for cell in cells:
            outcomes.setdefault(cell, {"status": "pending"})
        return outcomes

    def _next(self, queue: collections.deque, deferred: collections.deque) -> tuple[Optional[Cell], bool]:
        with self._lock:
            if queue:
                return queue.popleft(), False
            if deferred:
                return deferred.popleft(), True
            return None, False

    def _slot(self, slot: int, queue, deferred, routes: dict, outcomes: dict, bar) -> None:
        while self.stopping is None:
            cell, last_chance = self._next(queue, deferred)
            if cell is None:
                return
            claim = Claim(self.cfg, cell, self.run_id)
            if not claim.try_acquire():
                if not last_chance:  # claimed by another sweep: come back to it at the end of the phase
                    with self._lock:
                        deferred.append(cell)
                    continue
                log.info("%s: claimed by %s; waiting for it", cell.id, claim.holder())
                while not claim.try_acquire():
                    if self.stopping is not None:
                        return
                    time.sleep(1)
            try:
                outcomes[cell] = self._run_claimed(slot, cell, routes[cell])
            finally:
                claim.release()
            bar.update()

    def _run_claimed(self, slot: int, cell: Cell, steps: list[tuple[str, str]]) -> dict:
        status = cell_status(self.cfg, cell)
        if status["status"] == "done":  # another sweep finished it since this one planned
            return {**status, "by_another_run": True}
        if status["status"] == "failed" and status.get("run") != self.run_id and status.get("finished", 0) >= self.started:
            return {**status, "by_another_run": True}  # another sweep, running now, tried it
        sink = LogSink(self.cfg, cell)
        sink.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} cell {cell.id}: sweep run {self.run_id} "
                   f"(pid {os.getpid()} on {socket.gethostname()}) =====\n")
        try:
            return self._steps(slot, cell, steps, sink)
        finally:
            sink.close()

    def _steps(self, slot: int, cell: Cell, steps: list[tuple[str, str]], sink: LogSink) -> dict:
        artifact = None
        for python, op in steps:
            try:
                with self._lock:  # stop() signals the workers it finds: none may start a cell after it
                    if self.stopping is not None:
                        return {"status": "pending", "interrupted": True}
                    worker = self._worker(slot, python)
            except OSError as error:
                return record_status(self.cfg, cell, status="failed", reason=f"cannot start a worker with {python}: "
                                     f"{error.strerror or error}", log=str(sink.path), run=self.run_id)
            sink.write(f"----- {op} in worker {worker.pid} ({python}), its cell #{worker.cells + 1}\n")
            tmp = self._tmp_root / f"{socket.gethostname()}-{worker.pid}-{os.urandom(4).hex()}"
            request = {"op": op, "config": _config_dict(self.cfg), "cell": dataclasses.asdict(cell), "run": self.run_id,
                       "tmp": str(tmp), "artifact": artifact}
            reply = worker.ask(request, sink)
            shutil.rmtree(tmp, ignore_errors=True)
            if reply is None:
                return self._worker_died(slot, python, worker, cell, sink)
            worker.cells += 1
            if self.cells_per_worker and worker.cells >= self.cells_per_worker:
                self._retire(slot, python, worker)
            status = reply["status"]
            memory = reply.get("memory") or {}
            sink.write(f"----- worker {worker.pid}: {op} {status['status']} in {reply.get('seconds')} s; peak RSS "
                       f"{_mb(memory.get('cell_peak_rss_bytes'))}, RSS after {_mb(memory.get('rss_after_bytes'))}\n")
            if status.pop("unsaved", False):  # the worker could not write it: say so here, keep it in memory
                status = record_status(self.cfg, cell, **{k: v for k, v in status.items() if k not in ("cell", "id")})
            if status["status"] == "quantized":
                artifact = status["artifact"]
                continue
            return {**status, "worker": {"pid": reply.get("pid"), "seconds": reply.get("seconds"), **memory}}
        raise AssertionError(f"{cell.id}: no step evaluated it ({steps})")

    def _worker_died(self, slot: int, python: str, worker: WorkerProcess, cell: Cell, sink: LogSink) -> dict:
        code = worker.exit_code()
        self._retire(slot, python, worker)
        if self.stopping is not None or -code in INTERRUPTS:
            if self.stopping is None:
                self.stop(-code)  # signalled from outside (a terminal, scancel): the run is being stopped
            sink.write(f"----- worker {worker.pid} interrupted ({exit_reason(code)}); the cell stays pending\n")
            return {"status": "pending", "interrupted": True}
        reason = f"worker {exit_reason(code)}"
        sink.write(f"----- worker {worker.pid} {exit_reason(code)}; this cell is failed, a new worker takes the next\n")
        return record_status(self.cfg, cell, status="failed", reason=reason, log=str(sink.path), run=self.run_id)

    def _worker(self, slot: int, python: str) -> WorkerProcess:
        with self._lock:
            worker = self._workers[slot].get(python)
        if worker is not None and worker.alive():
            return worker
        worker = WorkerProcess(python, cold=self.cells_per_worker == 1, command=self.worker_command)
        with self._lock:
            self._workers[slot][python] = worker
        return worker

    def _retire(self, slot: int, python: str, worker: WorkerProcess) -> None:
        with self._lock:
            if self._workers[slot].get(python) is worker:
                del self._workers[slot][python]
        worker.close()
        worker.reap(STOP_WAIT_S)


def remove_dead_tmp(root: Path) -> None:
    """Remove the temporary folders of workers of this host that are gone (killed)."""
    host = socket.gethostname()
    try:
        folders = list(root.glob(f"{host}-*"))
    except OSError:
        return
    for folder in folders:
        pid = folder.name[len(host) + 1:].split("-", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
    try:
        root.rmdir()  # only if empty
    except OSError:
        pass



def _config_dict(cfg: EvalSweepConfig) -> dict:
    return dataclasses.asdict(cfg)


def _mb(value: Optional[int]) -> str:
    return f"{value / 2**20:.0f} MB" if value else "?"
