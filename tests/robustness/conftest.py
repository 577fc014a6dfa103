"""The reference runs (never interrupted, never short of space) that reruns are compared with."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.robustness.runs import EVAL, QUANTIZE, records


@pytest.fixture(scope="session")
def reference(tmp_path_factory, tiny_family):
    root = tmp_path_factory.mktemp("reference")
    result = run_cli("quantize", *QUANTIZE, f"output_dir={root / 'artifacts'}")
    assert result.returncode == 0, result.stderr[-3000:]
    artifact = Path(result.stdout.split()[-1])
    result = run_cli("evaluate", "run", f"artifact={artifact}", *EVAL, f"results_dir={root / 'results'}")
    assert result.returncode == 0, result.stderr[-3000:]
    return {"artifact": artifact, "records": records(root / "results")}
