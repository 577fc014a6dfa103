"""The quality tables: every variant against its baseline and its next higher bit width.

One row per variant and scope, where a scope is one task or "all" (every task's samples
pooled, the scope the headline verdicts use by default). Each row carries the absolute
metrics, the paired delta with its bootstrap interval, recovery, flips, McNemar p-values
against the baseline and against the next higher bit width of the same series (model x
method x group), corrected for multiple comparisons within the scope, the minimum
detectable effect and the tier.
"""

from __future__ import annotations

import math
from dataclasses import asdict

import numpy as np
import pandas as pd

from configs.report_schema import ReportConfig
from report import stats, tiers
from report.collect import Collection, Variant

POOLED = "all"
BEHAVIOURS = ("correct", "wrong_answer", "no_box", "malformed_box", "max_tokens", "repetition", "empty")


def quality_rows(collection: Collection, cfg: ReportConfig) -> pd.DataFrame:
    tasks = collection.tasks()
    rows = []
    for variant in _ordered(collection):
        for scope in [*tasks, POOLED]:
            scope_tasks = tasks if scope == POOLED else [scope]
            if not any((variant.key, t) in collection.quality for t in scope_tasks):
                continue
            rows.append(_row(collection, cfg, variant, scope, scope_tasks))
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    for _, part in frame.groupby("scope"):
        family = np.concatenate([part.p_baseline.to_numpy(float), part.p_higher.to_numpy(float)])
        adjusted = stats.adjust(family, cfg.stats.correction)
        frame.loc[part.index, "p_baseline_adj"] = adjusted[: len(part)]
        frame.loc[part.index, "p_higher_adj"] = adjusted[len(part):]
    frame["significant"] = frame.p_baseline_adj < cfg.stats.alpha
    frame["verdict"] = [_verdict(r, cfg) for r in frame.itertuples()]
    return frame


def variant_summary(quality: pd.DataFrame, collection: Collection, cfg: ReportConfig) -> pd.DataFrame:
    """One row per variant: its pooled numbers and its verdict (tier per `tiers.scope`)."""
    pooled = quality[quality.scope == POOLED].set_index("variant")
    rows = []
    for variant in _ordered(collection):
        if variant.key not in pooled.index:
            continue
        row = pooled.loc[variant.key].to_dict()
        if cfg.tiers.scope == "worst_task" and not variant.is_baseline:
            per_task = quality[(quality.variant == variant.key) & (quality.scope != POOLED)]
            row["tier"] = tiers.worst_tier(list(per_task.tier))
        row["viable"] = tiers.is_viable(row["tier"], cfg.tiers.viable)
        row["size_on_disk_bytes"] = variant.size_on_disk_bytes
        row.update(_perplexity_and_kl(collection, variant))
        rows.append({"variant": variant.key, **row})
    return pd.DataFrame(rows)


def behaviour_rows(collection: Collection) -> pd.DataFrame:
    """Share of each output behaviour per variant, over its boxed tasks' samples."""
    rows = []
    for variant in _ordered(collection):
        counts = dict.fromkeys(BEHAVIOURS, 0)
        for task in collection.tasks():
            if (variant.key, task) in collection.quality and collection.is_boxed(variant.key, task):
                for sample in collection.samples(variant.key, task).values():
                    counts[sample.get("behaviour", "empty")] = counts.get(sample.get("behaviour", "empty"), 0) + 1
        total = sum(counts.values())
        if total:
            rows.append({**_identity(variant), "n": total, **{b: counts[b] / total for b in counts}})
    return pd.DataFrame(rows)


def _row(collection: Collection, cfg: ReportConfig, variant: Variant, scope: str, tasks: list[str]) -> dict:
    metric = cfg.primary_metric
    own = {m: _mean(collection, variant.key, tasks, m) for m in ("accuracy", "rescored_accuracy", "format_compliance")}
    row = {**_identity(variant), "scope": scope, "n": own["accuracy"][1],
           **{m: value for m, (value, _) in own.items()}, "primary": own[metric][0]}
    base = variant.baseline_key
    if variant.is_baseline:
        row.update(delta_pp=0.0, delta_format_pp=0.0 if not math.isnan(own["format_compliance"][0]) else math.nan,
                   recovery=1.0, tier="negligible", p_baseline=math.nan, p_higher=math.nan)
        return row
    compare = _comparer(cfg)
    versus = compare(*collection.paired(base, variant.key, tasks, metric)) if base else None
    if versus is not None and versus.n:
        paired = asdict(versus)
        row.update({k: paired[k] for k in ("delta_pp", "ci_low_pp", "ci_high_pp", "gained", "lost", "mde_pp")})
        row.update(n_paired=versus.n, p_baseline=versus.p_value, test_baseline=versus.test)
        row["recovery"] = versus.variant_mean / versus.reference_mean if versus.reference_mean else math.nan
        fmt = compare(*collection.paired(base, variant.key, tasks, "format_compliance"))
        row["delta_format_pp"] = fmt.delta_pp
    else:
        row.update(delta_pp=math.nan, delta_format_pp=math.nan, recovery=math.nan, p_baseline=math.nan)
    higher = _next_higher(collection, variant)
    row["higher"], row["p_higher"], row["delta_higher_pp"] = (higher.label if higher else None), math.nan, math.nan
    if higher is not None:
        step = compare(*collection.paired(higher.key, variant.key, tasks, metric))
        if step.n:
            row["p_higher"], row["delta_higher_pp"] = step.p_value, step.delta_pp
    row["tier_delta_pp"] = tiers.worse(row["delta_pp"], row.get("delta_format_pp"))
    row["tier"] = tiers.tier_of(row["tier_delta_pp"], cfg.tiers)
    return row


def _comparer(cfg: ReportConfig):
    s = cfg.stats

    def compare(reference, variant):
        return stats.compare(reference, variant, alpha=s.alpha, power=s.power, exact_below=s.exact_below)

    return compare


def _next_higher(collection: Collection, variant: Variant):
    """The variant of the same series with the smallest bit width above this one's."""
    above = [v for v in collection.variants.values() if not v.is_baseline and v.model == variant.model
             and v.method == variant.method and v.group == variant.group and v.bits > variant.bits]
    return min(above, key=lambda v: (v.bits, v.label)) if above else None


def _mean(collection: Collection, key: str, tasks: list[str], metric: str) -> tuple[float, int]:
    values = [s for t in tasks if (key, t) in collection.quality for s in collection.scores(key, t, metric).values()]
    return (float(np.mean(values)) if values else math.nan), len(values)


def _perplexity_and_kl(collection: Collection, variant: Variant) -> dict:
    out = {}
    for (key, task), entry in sorted(collection.perplexity.items()):
        if key != variant.key:
            continue
        value = entry.record["metrics"].get("word_perplexity")
        out[f"word_perplexity[{task}]"] = value
        base = collection.perplexity.get((variant.baseline_key, task)) if variant.baseline_key else None
        base_value = base.record["metrics"].get("word_perplexity") if base else None
        ratio = value / base_value if value and base_value else math.nan
        out[f"perplexity_ratio[{task}]"] = 1.0 if variant.is_baseline else ratio
    kl = collection.kl.get(variant.key)
    if kl is not None:
        out["kl_divergence"] = kl.record["metrics"].get("kl_divergence")
        out["top1_agreement"] = kl.record["metrics"].get("top1_agreement")
    return out


def _verdict(row, cfg: ReportConfig) -> str:
    if row.is_baseline:
        return "baseline"
    if math.isnan(row.p_baseline_adj):
        return "no paired test"
    if row.p_baseline_adj < cfg.stats.alpha:
        return "significant loss" if row.delta_pp < 0 else "significant gain"
    if abs(row.delta_pp) < row.mde_pp:
        return f"below MDE ({row.mde_pp:.1f} pp): too few samples to tell"
    return "no significant difference"


def _identity(variant: Variant) -> dict:
    return {"variant": variant.key, "model": variant.model, "size_b": variant.size_b, "method": variant.method,
            "bits": variant.bits, "group": variant.group, "label": variant.label, "is_baseline": variant.is_baseline}


def _ordered(collection: Collection) -> list[Variant]:
    """Smallest model first; within a model the baseline, then methods, high bits first."""
    return sorted(collection.variants.values(), key=lambda v: (
        v.size_b if v.size_b is not None else math.inf, v.model, not v.is_baseline, v.method, -v.bits,
        v.group if v.group is not None else -1, v.label))
