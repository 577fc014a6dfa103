"""The quantize and evaluate runs the interrupt and disk-full tests repeat, and what of their
results must be the same after a rerun."""

from __future__ import annotations

from pathlib import Path

from evaluate import store
from tests.conftest import TINY_QUICK

QUANTIZE = ["method=rtn", "model=tiny-s", "quant.bits=4", "quant.group_size=32", *TINY_QUICK]
EVAL = ["eval=tiny", "eval.tasks=[tiny_arc,tiny_openmath]", "eval.limit=4", "eval.batch_size=4", "eval.max_gen_toks=16",
        "eval.perplexity_task=null", "speed.enabled=false", "baseline=null"]


def records(results: Path) -> dict[str, dict]:
    """Each record's task -> its metrics, sample count and settings."""
    return {r["task"]: {"metrics": r["metrics"], "n": r["n"], "settings": r["settings_fingerprint"]}
            for _, r in store.iter_records(results)}


def leftovers(folder: Path) -> list[Path]:
    """Temporary files and folders (hidden names) anywhere under `folder`."""
    return [p for p in Path(folder).rglob(".*")] if Path(folder).exists() else []
