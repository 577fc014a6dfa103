"""Ctrl-C (SIGINT) and SIGTERM at several moments of python -m quantize and python -m evaluate
run: one line, exit code 130 / 143, no staging or scratch folder left, nothing half-written;
the rerun completes with the result of a run that was never interrupted.

Each run is held at an exact moment by tests/robustness/pause_at (a sitecustomize that
pauses inside the lab's own write helpers), then signalled from outside, as a user's Ctrl-C
or a scheduler's SIGTERM would come. Ctrl-C goes to the whole process group, as a terminal
sends it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from common.cli import INTERRUPTED
from common.storage import read_manifest
from evaluate import store
from tests.conftest import REPO_ROOT, run_cli
from tests.robustness.runs import EVAL, QUANTIZE, leftovers, records

pytestmark = pytest.mark.slow

PAUSE_HOOK = Path(__file__).parent / "pause_at"


def interrupted_run(module: str, args: list[str], point: str, signum: int, tmp_path: Path) -> subprocess.CompletedProcess:
    """Run `python -m module args`, held at `point`, then signalled; its result."""
    marker = tmp_path / f"paused-{point}"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "QLAB_PAUSE_AT": point,
           "QLAB_PAUSE_MARKER": str(marker), "PYTHONPATH": os.pathsep.join([str(PAUSE_HOOK), str(REPO_ROOT)])}
    process = subprocess.Popen([sys.executable, "-m", module, *args], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 600
    while not marker.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            out, err = process.communicate(timeout=60) if process.poll() is not None else ("", "")
            process.kill()
            pytest.fail(f"the run ended before reaching {point}: {err[-3000:]}")
        time.sleep(0.1)
    if signum == signal.SIGINT:
        os.killpg(process.pid, signum)  # a terminal's Ctrl-C reaches the whole foreground group
    else:
        process.send_signal(signum)
    out, err = process.communicate(timeout=300)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def assert_interrupted(result: subprocess.CompletedProcess, signum: int, folder: Path) -> None:
    assert result.returncode == 128 + signum, result.stderr[-3000:]
    assert result.stderr.rstrip().splitlines()[-1] == INTERRUPTED, result.stderr[-3000:]
    assert result.stderr.count(INTERRUPTED) == 1 and "Traceback" not in result.stderr
    assert not [line for line in result.stdout.splitlines() if line.startswith(str(folder))]  # no folder printed as done


@pytest.mark.parametrize("point, signum", [
    ("loaded", signal.SIGINT), ("loaded", signal.SIGTERM), ("artifact-staged", signal.SIGTERM),
    ("artifact-publish", signal.SIGINT), ("artifact-publish", signal.SIGTERM),
])
def test_an_interrupted_quantize_leaves_nothing_and_a_rerun_makes_the_same_artifact(reference, tmp_path, point, signum):
    output = tmp_path / "artifacts"
    result = interrupted_run("quantize", [*QUANTIZE, f"output_dir={output}"], point, signum, tmp_path)
    assert_interrupted(result, signum, output)
    assert not output.exists() or not [p for p in output.rglob("*") if p.is_file()], list(output.rglob("*"))
    rerun = run_cli("quantize", *QUANTIZE, f"output_dir={output}")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    artifact = Path(rerun.stdout.split()[-1])
    assert artifact.name == reference["artifact"].name and read_manifest(artifact) is not None
    assert (artifact / "model.safetensors").read_bytes() == (reference["artifact"] / "model.safetensors").read_bytes()
    assert leftovers(output) == []


@pytest.mark.parametrize("point, signum", [
    ("lm-eval", signal.SIGINT), ("lm-eval", signal.SIGTERM), ("record-publish", signal.SIGTERM),
    ("table-write", signal.SIGINT),
])
def test_an_interrupted_evaluation_keeps_only_whole_records_and_a_rerun_completes_them(reference, tmp_path, point, signum):
    results = tmp_path / "results"
    args = ["run", f"artifact={reference['artifact']}", *EVAL, f"results_dir={results}"]
    result = interrupted_run("evaluate", args, point, signum, tmp_path)
    assert_interrupted(result, signum, results)
    assert leftovers(results) == []
    for folder in (results / "records").glob("*/*") if results.exists() else []:
        assert store.find_record(folder) is not None  # published whole, or not at all
    rerun = run_cli("evaluate", *args)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert records(results) == reference["records"]
    assert leftovers(results) == []
