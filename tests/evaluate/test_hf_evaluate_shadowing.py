"""Our top-level `evaluate` package must not break lm-eval's use of Hugging Face's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import evaluate

METRIC_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "hf_metrics" / "lab_exact_match"


def test_our_package_is_the_one_imported():
    assert Path(evaluate.__file__).parent == Path(__file__).resolve().parents[2] / "evaluate"
    from evaluate.records import boxed_metrics  # one of ours

    assert callable(boxed_metrics)


def test_hugging_face_api_is_reachable_through_our_package():
    assert evaluate.Metric.__module__ == "evaluate.module"
    assert callable(evaluate.load)


def test_lm_eval_metric_that_needs_hf_evaluate_still_works():
    """lm-eval's registry loads `hf_evaluate: true` metrics with `import evaluate`."""
    script = f"""
import evaluate, lm_eval.api.registry as registry
assert evaluate.__file__.endswith("evaluate/__init__.py") and "site-packages" not in evaluate.__file__
metric = registry.get_metric({str(METRIC_DIR)!r}, hf_evaluate_metric=True)
result = metric(predictions=["4", "B", "x"], references=["4", "C", "x"])
print(round(result["lab_exact_match"], 4))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "0.6667"


def test_importing_our_modules_does_not_load_hugging_face_evaluate():
    """`from evaluate import records` must not pay for HF's import (transformers pipelines)."""
    script = "import sys; from evaluate import records, store; print('evaluate.loading' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "False"
