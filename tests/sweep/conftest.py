"""The finished small sweep that the slow sweep tests compare with, run once per session."""

from __future__ import annotations

import time

import pytest

from tests.sweep.test_sweep_e2e import start_sweep, sweep


@pytest.fixture(scope="session")
def finished(tmp_path_factory, tiny_family):
    """The small sweep, finished on workers, two cells at a time (as the demo runs it)."""
    root = tmp_path_factory.mktemp("sweep")
    result = sweep(root, "launcher.max_parallel=2")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return root, result


@pytest.fixture(scope="session")
def sequential_sweep_seconds(tmp_path_factory, tiny_family) -> float:
    """How long the kill tests' sweep takes uninterrupted on this machine."""
    started = time.monotonic()
    assert start_sweep(tmp_path_factory.mktemp("timed")).wait() == 0
    return time.monotonic() - started
