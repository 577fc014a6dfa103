"""A full disk while python -m quantize or python -m evaluate run writes: one line naming the
folder and the write that failed, exit code 1, nothing half-written kept; after space is
freed, the rerun completes with the result of a run that had space.

The disk is a small tmpfs (mounted here, so the tests need root and skip elsewhere), filled
up to a few kilobytes before the run with a filler file; freeing space is deleting it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from common.storage import read_manifest
from evaluate import store
from tests.conftest import run_cli
from tests.robustness.runs import EVAL, QUANTIZE, leftovers, records

pytestmark = pytest.mark.slow


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs at tmp_path/disk, unmounted afterwards."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.strip()}")
    yield disk
    subprocess.run(["umount", str(disk)], check=False)


def fill(disk: Path, leave: int) -> Path:
    """Fill `disk` so that about `leave` bytes stay free; the filler file to delete later."""
    filler = disk / "filler"
    stat = os.statvfs(disk)
    filler.write_bytes(b"\0" * max(0, stat.f_bavail * stat.f_frsize - leave))
    return filler


def one_disk_full_line(result: subprocess.CompletedProcess, folder: Path) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 1, result.stderr[-3000:]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    line = lines[0]
    assert line.startswith("error: no space left on device: writing ") and f"into {folder}" in line, line
    assert "free some space and rerun" in line
    assert not [line for line in result.stdout.splitlines() if line.startswith(str(folder))]  # no folder printed as done
    return line


def test_quantize_on_a_full_disk_is_one_line_and_reruns_to_the_same_artifact(reference, small_disk):
    output = small_disk / "artifacts"
    filler = fill(small_disk, leave=64 * 1024)  # the 4-bit tiny-s weights need more
    result = run_cli("quantize", *QUANTIZE, f"output_dir={output}")
    line = one_disk_full_line(result, output)
    assert "the artifact's files" in line and "safetensors" in line
    assert not output.exists(), list(output.rglob("*"))  # not even the folders it had made
    filler.unlink()
    rerun = run_cli("quantize", *QUANTIZE, f"output_dir={output}")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    artifact = Path(rerun.stdout.split()[-1])
    assert artifact.name == reference["artifact"].name and read_manifest(artifact) is not None
    assert (artifact / "model.safetensors").read_bytes() == (reference["artifact"] / "model.safetensors").read_bytes()
    assert leftovers(output) == []


@pytest.mark.parametrize("leave", [0, 8 * 1024, 24 * 1024])  # out of space at the task files, a record, the table
def test_evaluate_on_a_full_disk_is_one_line_and_reruns_to_the_same_records(reference, small_disk, leave):
    results = small_disk / "results"
    filler = fill(small_disk, leave=leave)
    args = ["run", f"artifact={reference['artifact']}", *EVAL, f"results_dir={results}"]
    result = run_cli("evaluate", *args)
    one_disk_full_line(result, results)
    assert leftovers(results) == []
    for folder in (results / "records").glob("*/*") if results.exists() else []:
        assert store.find_record(folder) is not None  # published whole, or not at all
    filler.unlink()
    rerun = run_cli("evaluate", *args)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert records(results) == reference["records"]
    assert leftovers(results) == []
