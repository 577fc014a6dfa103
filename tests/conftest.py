"""Shared fixtures: an isolated lab folder, offline Hub, and the quick tiny family."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
TINY_QUICK = ["model.tiny_profile=quick"]  # overrides that select the fast test build

# The tests send SIGINT to the commands they start, as Ctrl-C does. A pytest started as a
# background job of a non-interactive shell (`bash -c 'pytest &'`, some CI runners) has SIGINT
# ignored, and its children would inherit that (the lab, rightly, leaves an ignored SIGINT
# ignored). A Python handler here is reset to the default in every child at exec.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def offline_hub(monkeypatch):
    """No test may reach the Hugging Face Hub."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_family():
    """The quick tiny family, built once per machine into the shared cache."""
    from models import tiny

    return tiny.ensure_built(profile="quick")


def run_cli(module: str, *args: str, cwd: Path | None = None, env: dict | None = None, timeout: int = 600):
    """Run `python -m <module> args...` in a fresh process, as a user would."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd or REPO_ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
