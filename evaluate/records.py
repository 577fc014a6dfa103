"""Turn lm-eval's logged samples into the lab's per-sample rows and record metrics."""

from __future__ import annotations

import math
from dataclasses import asdict

import numpy as np
from scipy import stats

from tasks import scoring

SCORING_VERSION = 1  # bump when scoring rules change: results are then re-derived


def boxed_rows(run, tokenizer, generations: list[str] | None = None) -> list[dict]:
    """One row per sample of a boxed-answer task, scored by `tasks.scoring` (`generations`:
    another runtime's answers to the same samples, scored instead of lm-eval's)."""
    metadata = run.config.get("metadata") or {}
    kind = metadata["answer_kind"]
    rows = []
    for i, sample in enumerate(run.samples):
        prompt, generation_kwargs = sample["arguments"][0]
        generation = sample["filtered_resps"][0] if generations is None else generations[i]
        max_tokens = generation_kwargs.get("max_gen_toks", 256)
        hit_max = len(tokenizer(generation, add_special_tokens=False).input_ids) >= max_tokens
        golds = _golds(sample, metadata)
        verdict = scoring.score(generation, golds, kind, hit_max_tokens=hit_max, letters=_letters(sample))
        rows.append(
            {"doc_id": sample["doc_id"], "prompt": prompt, "generation": generation, "golds": golds,
             "hit_max_tokens": hit_max, **asdict(verdict)}
        )
    return rows


def stock_rows(run) -> list[dict]:
    """One row per sample of a stock lm-eval task: its per-sample metric values."""
    rows = []
    for sample in run.samples:
        values = {m: _plain(sample[m]) for m in sample.get("metrics", []) if m in sample}
        correct = values.get("acc", values.get("exact_match"))
        rows.append({"doc_id": sample["doc_id"], "target": _plain(sample.get("target")), "correct": correct, **values})
    return rows


def boxed_metrics(rows: list[dict]) -> dict:
    """Accuracy, rescored accuracy and format compliance with standard errors, plus the
    count of every output behaviour."""
    metrics = {}
    for name, key in (("accuracy", "correct"), ("rescored_accuracy", "rescored_correct"), ("format_compliance", "format_ok")):
        mean, stderr = mean_and_stderr([float(row[key]) for row in rows])
        metrics[name], metrics[f"{name}_stderr"] = mean, stderr
    metrics["behaviour"] = {b: sum(row["behaviour"] == b for row in rows) for b in scoring.BEHAVIOURS}
    return metrics


def stock_metrics(run) -> dict:
    """lm-eval's own aggregated numbers, keys without the filter suffix (`acc,none` -> acc)."""
    metrics = {}
    for key, value in run.metrics.items():
        if "," not in key or not isinstance(value, (int, float)):
            continue
        name, _, filter_name = key.partition(",")
        suffix = "" if filter_name == "none" else f"[{filter_name}]"
        metrics[f"{name}{suffix}"] = _plain(value)
    main = next((m for m in ("acc", "exact_match", "word_perplexity") if m in metrics), None)
    if main in ("acc", "exact_match"):
        metrics["accuracy"] = metrics[main]
        metrics["accuracy_stderr"] = metrics.get(f"{main}_stderr")
    return metrics


def mean_and_stderr(values: list[float]) -> tuple[float, float]:
    """Sample mean and its standard error (ddof=1), as lm-eval reports them."""
    if not values:
        return math.nan, math.nan
    stderr = float(stats.sem(values)) if len(values) > 1 else math.nan
    return float(np.mean(values)), stderr


def _golds(sample: dict, metadata: dict) -> list[str]:
    field = metadata.get("golds")
    if not field:
        return [str(sample["target"])]
    value = sample["doc"]
    for part in field.split("."):
        value = value[part]
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _letters(sample: dict) -> tuple[str, ...]:
    choices = sample["doc"].get("choices") if isinstance(sample.get("doc"), dict) else None
    if isinstance(choices, dict) and choices.get("label"):
        return tuple(choices["label"])
    return scoring.DEFAULT_LETTERS


def _plain(value):
    """numpy scalars -> Python scalars, so records are plain JSON."""
    return value.item() if hasattr(value, "item") else value
