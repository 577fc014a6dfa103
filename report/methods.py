"""Method against method: at the same model, bits and group, which method keeps more?

Every pair of variants of different methods is compared on the same samples, paired:
- accuracy and format compliance over the tasks above the model's floor (McNemar, and
  the score interval of the difference, second method minus first);
- changed generations over every task: per sample, whether the variant wrote exactly the
  baseline's text; a distribution metric that separates methods where accuracy cannot
  (and speaks on tasks at the floor);
- KL from the baseline per prompt (the first prompts of the first task, each continued
  with the baseline's generation: the same text for every variant), lower is closer: Wilcoxon's signed-rank test of the
  paired per-prompt values and its Hodges-Lehmann shift, when both KL records keep them
  and measure against the same baseline with the same settings; top-1 agreement is shown.
All p-values of the table are one family, corrected with `stats.correction`. The best
method at a bit width, per metric, is the one significantly better than every other
method there; otherwise "no difference detected" (or which pairs do differ).
"""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pandas as pd

from configs.report_schema import ReportConfig
from report import stats
from report.collect import Collection
from report.floors import tiered_tasks

METRICS = {"accuracy": "accuracy", "format": "format", "changed": "changed generations", "kl": "KL"}
LOWER_IS_BETTER = ("changed", "kl")
NO_DIFFERENCE = "no difference detected"


def method_pairs(collection: Collection, floors: dict, cfg: ReportConfig) -> pd.DataFrame:
    rows = []
    quantized = [v for v in collection.variants.values() if not v.is_baseline]
    cells = {}
    for v in quantized:  # at the same nominal bits (GGUF levels all pair with the other methods' 4 bits)
        cells.setdefault((v.model, v.weight_bits, v.group), []).append(v)
    for (model, bits, group), variants in sorted(cells.items(), key=lambda item: str(item[0])):
        for a, b in combinations(sorted(variants, key=lambda v: (v.method, v.label)), 2):
            if a.method != b.method:
                rows.append(_pair(collection, floors, cfg, a, b))
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    columns = [f"p_{m}" for m in METRICS]
    adjusted = stats.adjust(np.concatenate([frame[c].to_numpy(float) for c in columns]), cfg.stats.correction)
    for column, values in zip(columns, adjusted.reshape(len(columns), len(frame)), strict=True):
        frame[f"{column}_adj"] = values
    frame["verdict"] = [_verdict(row, cfg.stats.alpha) for _, row in frame.iterrows()]
    return frame


def best_methods(pairs: pd.DataFrame, cfg: ReportConfig) -> pd.DataFrame:
    """Per model, bits and group: the method significantly better than all others, per metric."""
    if pairs.empty:
        return pd.DataFrame(columns=["model", "size_b", "bits", "group", "methods", *METRICS])
    rows = []
    for (model, bits, group), part in pairs.groupby(["model", "bits", "group"], dropna=False, sort=False):
        labels = sorted(set(part.label_a) | set(part.label_b))
        row = {"model": model, "size_b": part.size_b.iloc[0], "bits": bits, "group": group,
               "methods": ", ".join(labels)}
        for metric in METRICS:
            row[metric] = _best(part, metric, labels, cfg.stats.alpha)
        rows.append(row)
    return pd.DataFrame(rows)


def _pair(collection: Collection, floors: dict, cfg: ReportConfig, a, b) -> dict:
    above = tiered_tasks(floors, a.model, collection.tasks())
    row = {"model": a.model, "size_b": a.size_b, "bits": a.weight_bits, "group": a.group, "label_a": a.label,
           "label_b": b.label, "method_a": a.method, "method_b": b.method,
           "tasks": ", ".join(above) or "none above the floor: accuracy not compared"}
    # at the floor accuracy cannot show a difference; format compliance has no floor
    for metric, score, tasks in (("accuracy", cfg.primary_metric, above),
                                 ("format", "format_compliance", above or collection.tasks())):
        c = _compare(cfg, *collection.paired(a.key, b.key, tasks, score))
        row.update({f"{metric}_a": c.reference_mean, f"{metric}_b": c.variant_mean, **_columns(metric, c)})
    kept_a, kept_b = _kept(collection, a), _kept(collection, b)
    common = sorted(kept_a.keys() & kept_b.keys(), key=str)
    # changed = 1 - kept, so the change in "changed" is minus the change in "kept"
    c = _compare(cfg, [1 - kept_a[k] for k in common], [1 - kept_b[k] for k in common])
    row.update({"changed_a": c.reference_mean, "changed_b": c.variant_mean, **_columns("changed", c)})
    for side, v in (("a", a), ("b", b)):
        kl = collection.kl.get(v.key)
        metrics = (kl.record.get("metrics") or {}) if kl else {}
        row[f"kl_{side}"], row[f"top1_{side}"] = metrics.get("kl_divergence"), metrics.get("top1_agreement")
    return {**row, **_kl_test(collection, a, b)}


def _kl_test(collection: Collection, a, b) -> dict:
    """The paired test of per-prompt KL (lower is closer to the baseline)."""
    kl_a, kl_b = collection.kl_by_prompt(a.key), collection.kl_by_prompt(b.key)
    prompts = sorted(kl_a.keys() & kl_b.keys(), key=str) if _same_measurement(collection, a, b) else []
    p_value, shift = stats.signed_rank_test([kl_a[k] for k in prompts], [kl_b[k] for k in prompts])
    return {"kl_n": len(prompts), "kl_delta": shift, "p_kl": p_value}


def _same_measurement(collection: Collection, a, b) -> bool:
    """Both KL records measure against the same baseline with the same settings (prompts,
    top-k, tokens): only then are their per-prompt values paired."""
    def identity(v):
        record = collection.kl[v.key].record
        return (record.get("baseline") or {}).get("baseline_fingerprint"), record.get("settings_fingerprint")

    return (a.key in collection.kl and b.key in collection.kl and None not in identity(a)
            and identity(a) == identity(b))


def _kept(collection: Collection, variant) -> dict:
    if not variant.baseline_key:
        return {}
    return {(t, doc): same for t in collection.tasks() for doc, same in
            collection.kept(variant.baseline_key, variant.key, t).items()}


def _compare(cfg: ReportConfig, reference, variant) -> stats.PairedComparison:
    s = cfg.stats
    return stats.compare(reference, variant, alpha=s.alpha, power=s.power, exact_below=s.exact_below)


def _columns(metric: str, c: stats.PairedComparison) -> dict:
    return {f"{metric}_n": c.n, f"{metric}_delta_pp": c.delta_pp, f"{metric}_ci_low_pp": c.ci_low_pp,
            f"{metric}_ci_high_pp": c.ci_high_pp, f"p_{metric}": c.p_value}


def _winner(row, metric: str, alpha: float):
    """The label that is significantly better on `metric` in this pair, or None."""
    if not row[f"p_{metric}_adj"] < alpha:
        return None
    delta = row["kl_delta" if metric == "kl" else f"{metric}_delta_pp"]
    if not delta or math.isnan(delta):  # no direction to name (no shift, or one undefined: NaN on both sides)
        return None
    return row.label_a if (delta > 0) == (metric in LOWER_IS_BETTER) else row.label_b


def _verdict(row, alpha: float) -> str:
    parts = []
    for metric, name in METRICS.items():
        winner = _winner(row, metric, alpha)
        if winner is None:
            continue
        if metric == "kl":
            parts.append(f"KL: {winner} closer (shift B − A {row.kl_delta:+.3g} over {row.kl_n} prompts, "
                         "signed-rank)")
        else:
            parts.append(f"{name}: {winner} better ({row[f'{metric}_delta_pp']:+.1f} pp "
                         f"[{row[f'{metric}_ci_low_pp']:+.1f}, {row[f'{metric}_ci_high_pp']:+.1f}])")
    return "; ".join(parts) or NO_DIFFERENCE


def _best(part: pd.DataFrame, metric: str, labels: list[str], alpha: float) -> str:
    wins = {label: set() for label in labels}
    for _, row in part.iterrows():
        winner = _winner(row, metric, alpha)
        if winner is not None:
            loser = row.label_a if winner == row.label_b else row.label_b
            wins[winner].add(loser)
    for label in labels:
        if len(wins[label]) == len(labels) - 1:
            return label
    found = [f"{w} > {', '.join(sorted(losers))}" for w, losers in wins.items() if losers]
    return f"no single best ({'; '.join(found)})" if found else NO_DIFFERENCE
