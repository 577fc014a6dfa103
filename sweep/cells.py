"""A sweep cell: one (model, method, bits) variant, and its status file
`<sweeps_dir>/<name>/cells/<cell id>.json` and log, the sweep's record of what is done. A
cell writes its status atomically when it ends; "done" counts only while the cell's
artifact and records are still complete on disk.

A cell is claimed before it runs (`Claim`: an flock on `cells/<cell id>.lock`), so that two
sweeps started at once on the same folders never compute it twice; the kernel drops the
lock when its holder dies, so a killed sweep's claim blocks nobody. The sweep's own
bookkeeping (status files, logs) never fails a cell or the sweep: a write that fails (a
full disk) is said once and the status kept in memory (`record_status`).
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import json
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Optional

from omegaconf import OmegaConf

from common.files import read_json
from common.storage import DiskFull, fingerprint, read_manifest, write_json_atomic
from configs.errors import BadFile
from configs.sweep_schema import EvalSweepConfig

log = logging.getLogger("sweep")


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
        settings = [o.split("=", 1)[1] for o in self.quantize_overrides if o.startswith(("quant.bits=", "quant.type=", "quant.group_size="))]
        model = Path(self.model).name if "/" in self.model else self.model  # a local folder
        return "__".join([model, "-".join([self.method, *settings]), self.key])

    @property
    def is_baseline(self) -> bool:
        return self.method == "none"

    @classmethod
    def from_dict(cls, data: dict) -> "Cell":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def config_from_dict(data: dict) -> EvalSweepConfig:
    """A sweep config sent to a worker or job as plain data, back as the dataclass."""
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(EvalSweepConfig), data))


def sweep_folder(cfg: EvalSweepConfig) -> Path:
    return Path(cfg.sweeps_dir) / cfg.sweep.name


def status_path(cfg: EvalSweepConfig, cell: Cell) -> Path:
    return sweep_folder(cfg) / "cells" / f"{cell.id}.json"


def log_path(cfg: EvalSweepConfig, cell: Cell) -> Path:
    return sweep_folder(cfg) / "logs" / f"{cell.id}.log"


def cell_status(cfg: EvalSweepConfig, cell: Cell) -> dict:
    """done (and still complete on disk), failed, or pending. A damaged status file is
    said (once) and counts as pending: the cell runs again, reusing what is complete."""
    path = status_path(cfg, cell)
    if not path.exists():
        return {"status": "pending"}
    try:
        status = read_json(path)
    except BadFile as error:
        return _damaged_status(path, error.problem)
    problem = _status_problem(status)
    if problem:
        return _damaged_status(path, problem)
    if status["status"] == "done" and not _outputs_complete(status):
        return {"status": "pending", "note": "outputs missing or incomplete"}
    return status


def _status_problem(status: dict) -> Optional[str]:
    if status.get("status") not in ("done", "failed", "pending"):
        return f"holds no cell status (done, failed or pending): {str(status.get('status'))[:40]!r}"
    if status["status"] == "done" and not (isinstance(status.get("artifact"), str)
                                           and isinstance(status.get("records", []), list)):
        return "says done but does not list the cell's artifact and records"
    return None


_damaged_said: set = set()


def _damaged_status(path: Path, problem: str) -> dict:
    with _said_lock:  # the status is read at planning, by the launcher and at the summary
        first = str(path) not in _damaged_said
        _damaged_said.add(str(path))
    if first:
        log.warning("sweep cell status file %s %s; the cell is treated as not started and runs again "
                    "(a complete artifact and records are reused)", path, problem)
    return {"status": "pending", "note": "status file damaged"}


def _outputs_complete(status: dict) -> bool:
    folders = [status.get("artifact"), *status.get("records", [])]
    return all(folder and read_manifest(Path(folder)) is not None for folder in folders)


def write_status(cfg: EvalSweepConfig, cell: Cell, **fields) -> dict:
    """Write the cell's status file (raises OSError if it cannot); returns the status."""
    status = {"cell": dataclasses.asdict(cell), "id": cell.id, "finished": round(time.time(), 3), **fields}
    path = status_path(cfg, cell)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, status)
    return status


def record_status(cfg: EvalSweepConfig, cell: Cell, **fields) -> dict:
    """`write_status`, but a write that fails is said (once per sweep) instead of raised:
    the sweep's bookkeeping must not fail the cell or stop the sweep. Returns the status
    (with "unsaved": true when it is only in memory)."""
    try:
        return write_status(cfg, cell, **fields)
    except (OSError, DiskFull) as error:  # DiskFull: write_json_atomic's one line for ENOSPC
        bookkeeping_failed(cfg, "status file", error)
        return {"cell": dataclasses.asdict(cell), "id": cell.id, "finished": round(time.time(), 3), **fields,
                "unsaved": True}


_said: set = set()
_said_lock = threading.Lock()


def bookkeeping_failed(cfg: EvalSweepConfig, what: str, error: Exception) -> None:
    """Say once per (folder, kind of write) that the sweeps folder cannot be written."""
    full = isinstance(error, DiskFull) or getattr(error, "errno", None) in (errno.ENOSPC, errno.EDQUOT)
    key = (str(sweep_folder(cfg)), what, errno.ENOSPC if full else getattr(error, "errno", None))
    with _said_lock:
        if key in _said:
            return
        _said.add(key)
    problem = "the disk is full" if full else (getattr(error, "strerror", None) or str(error))
    log.warning("sweeps folder %s: cannot write a cell's %s (%s); the sweep goes on and keeps the status in memory; "
                "a rerun after fixing it finds the finished work", sweep_folder(cfg), what, problem)


# -- claims ----------------------------------------------------------------------------------
def run_id() -> str:
    """This sweep process's identity in claims, statuses and log lines."""
    return f"{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"


class Claim:
    """An exclusive claim on a cell across processes and hosts sharing the sweeps folder:
    an flock on `cells/<id>.lock` (the file stays; the lock dies with its holder), whose
    content names the holder for the other sweep's message."""

    def __init__(self, cfg: EvalSweepConfig, cell: Cell, run: str):
        self.path = status_path(cfg, cell).with_suffix(".lock")
        self.cfg, self.run = cfg, run
        self._fd: Optional[int] = None

    def try_acquire(self) -> bool:
        """True if this process now holds the claim (or the lock file cannot be made at all:
        a full or read-only sweeps folder must not stop the cell); False if another does."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            bookkeeping_failed(self.cfg, "claim file", error)
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        try:
            holder = json.dumps({"run": self.run, "pid": os.getpid(), "host": socket.gethostname(), "since": time.time()})
            os.ftruncate(fd, 0)
            os.pwrite(fd, holder.encode(), 0)
        except OSError:
            pass  # who holds it is only informative
        return True

    def holder(self) -> str:
        try:
            holder = json.loads(self.path.read_text())
            return f"run {holder['run']}"
        except (OSError, ValueError, KeyError):
            return "another sweep"

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None
