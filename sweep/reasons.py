"""Why a cell failed, in one line: the error's type and first line, or, for a full disk,
which folder is full; and what a worker's exit code means."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Optional

from common.cli import error_chain
from common.storage import is_disk_full
from configs.errors import ConfigError
from configs.sweep_schema import EvalSweepConfig

FOLDERS = (("output_dir", "artifacts"), ("results_dir", "results"), ("sweeps_dir", "sweeps"))
STEP_FOLDER = {"quantize": "output_dir", "evaluate": "results_dir"}


def failure_reason(error: BaseException, cfg: EvalSweepConfig, step: str) -> str:
    """One line: the error's type and first line; a full disk says so and names the folder
    (from the failed write's file name, else the folder the failing step writes to)."""
    if isinstance(error, ConfigError):
        return f"ConfigError: {_first_line(error)}"
    step_folder = Path(getattr(cfg, STEP_FOLDER[step])).expanduser() if step in STEP_FOLDER else None
    if is_disk_full(error, step_folder):
        filename = _filename(error)
        setting = _setting_of(cfg, filename) if filename else STEP_FOLDER.get(step)
        if setting is None:
            where = f"writing {filename}"
        else:
            label = dict(FOLDERS)[setting]
            where = f"in the {label} folder {Path(getattr(cfg, setting)).expanduser().resolve()} ({setting})"
        return f"disk full: no space left {where}; free space, then rerun with --retry-failed"
    text = _first_line(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def exit_reason(returncode: int) -> str:
    if returncode < 0:
        name = signal.Signals(-returncode).name
        hint = " (out of memory?)" if -returncode == signal.SIGKILL else ""
        return f"killed by {name}{hint}"
    return f"exited with code {returncode}"


def _filename(error: BaseException) -> Optional[str]:
    for link in error_chain(error):
        if isinstance(link, OSError) and link.filename:
            return str(link.filename)
    return None


def _setting_of(cfg: EvalSweepConfig, filename: str) -> Optional[str]:
    path = Path(filename).expanduser().resolve()
    for setting, _ in FOLDERS:
        if path.is_relative_to(Path(getattr(cfg, setting)).expanduser().resolve()):
            return setting
    return None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else ""
