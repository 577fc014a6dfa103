"""A sweep under interrupts, a full disk and a second sweep on the same folders, end to end
on the quick tiny family: one line each, nothing half-written, and a rerun that ends with
the results of an uninterrupted sweep."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from sweep.run import INTERRUPTED
from tests.sweep.identical import differences
from tests.sweep.test_sweep_e2e import assert_resumes_exactly, kill_hook_env, start_sweep, sweep, sweep_args

pytestmark = pytest.mark.slow

# Half-written things an interrupt must not leave: staging folders, temporary files, the
# cells' temporary folders.
LEFTOVERS = ("artifacts/*/.*", "results/records/*/.*", "results/.table*", "results/.tmp", "sweeps/small/cells/.*.tmp-*")


def leftovers(root: Path) -> list[Path]:
    return [p for pattern in LEFTOVERS for p in root.glob(pattern)]


@pytest.mark.parametrize("signal_name, target, point", [
    ("SIGINT", "group", "record-write:2"),  # Ctrl-C in a terminal while the baseline is being evaluated
    ("SIGTERM", "leader", "artifact-publish:2"),  # `kill <sweep>` while a variant's artifact is staged
    ("SIGINT", "leader", "status-write:2"),  # SIGINT to the sweep alone as a cell writes its status
    ("SIGTERM", "group", "record-publish:8"),  # SIGTERM to everything inside a variant's record publish
])
def test_an_interrupted_sweep_says_one_line_and_a_rerun_finishes_it(tmp_path, finished, signal_name, target, point):
    root, systemp = tmp_path / "lab", tmp_path / "systemp"
    systemp.mkdir()
    env = {**kill_hook_env(tmp_path, point, QLAB_KILL_SIGNAL=signal_name, QLAB_KILL_TARGET=target), "TMPDIR": str(systemp)}
    process = start_sweep(root, env, output=subprocess.PIPE)
    stdout, stderr = process.communicate(timeout=900)
    assert (tmp_path / "kill-counter").stat().st_size == int(point.split(":")[1]), "the signal was not sent there"
    assert process.returncode == 128 + getattr(signal, signal_name), stdout[-2000:] + stderr[-3000:]
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines[-1] == INTERRUPTED and stderr.count(INTERRUPTED) == 1
    assert "Traceback" not in stderr + stdout
    assert leftovers(root) == [] and list(systemp.iterdir()) == []
    assert_resumes_exactly(root)
    assert differences(finished[0], root) == []


@pytest.fixture
def small_disk(tmp_path):
    """mount(folder, mib): a tmpfs of that size at `folder` (needs root); unmounted after."""
    mounted = []

    def mount(folder: Path, mib: int) -> Path:
        folder.mkdir(parents=True)
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mib}m", "tmpfs", str(folder)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"!!! cannot mount a tmpfs here (needs root): the full-disk sweep is NOT tested: {result.stderr}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def fill(folder: Path) -> Path:
    """Fill the disk of `folder` (a ballast file), leaving nothing."""
    ballast = folder / "ballast"
    with open(ballast, "wb") as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        except OSError:
            pass
    return ballast


@pytest.mark.parametrize("full", ["artifacts", "results", "sweeps"])
def test_a_full_disk_is_one_line_per_cell_and_a_rerun_after_freeing_space_finishes(tmp_path, finished, small_disk, full):
    root = tmp_path / "lab"
    ballast = fill(small_disk(root / full, 64))
    result = sweep(root)
    output = result.stdout + result.stderr
    assert "Traceback" not in output and "enforce fail" not in output, output[-6000:]
    summary = re.search(r"sweep small: (\d+) done, (\d+) reused, (\d+) failed, (\d+) pending", result.stdout)
    assert summary, result.stdout[-2000:] + result.stderr[-3000:]  # it ended with its summary
    if full == "sweeps":  # only the sweep's bookkeeping failed: every cell's work is done
        assert result.returncode == 0 and summary.groups() == ("4", "0", "0", "0")
        warnings = [line for line in result.stderr.splitlines() if f"sweeps folder {root / 'sweeps' / 'small'}" in line]
        assert warnings and all("the disk is full" in line for line in warnings)
        assert len(warnings) == len(set(w.split(": ", 1)[1] for w in warnings)) <= 3  # once per kind of write
    else:
        assert result.returncode == 1 and summary.groups() == ("0", "0", "4", "0")  # every cell tried, none aborted the sweep
        failed = [line for line in result.stdout.splitlines() if line.strip().startswith("failed ")]
        assert len(failed) == 4
        label = {"artifacts": "artifacts folder", "results": "results folder"}[full]
        assert all(f"disk full: no space left in the {label} {root / full}" in line for line in failed), failed
    ballast.unlink()
    again = sweep(root, "--retry-failed")
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    assert differences(finished[0], root) == []


def test_two_sweeps_started_at_once_compute_each_cell_once(tmp_path, finished):
    runs = [start_sweep(tmp_path, None, output=subprocess.PIPE) for _ in range(2)]
    outputs = [run.communicate(timeout=900) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err[-3000:] for _, err in outputs]
    counts = [re.search(r"sweep small: (\d+) done, (\d+) reused, 0 failed, 0 pending", out).groups() for out, _ in outputs]
    assert sum(int(done) for done, _ in counts) == 4  # each cell computed by one of them, the other reused it
    for log in (tmp_path / "sweeps" / "small" / "logs").glob("*.log"):
        text = log.read_text()
        assert text.count("===== ") == 1, log  # one attempt: its own header line, no interleaving
        assert text.count("artifact written") + text.count("artifact already complete") == 1
    assert differences(finished[0], tmp_path) == []
