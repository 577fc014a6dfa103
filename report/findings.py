"""The report's opening bullets, written from the tables (never by hand): what was
compared, how the tiers fall, where each method stops being viable, where the cliffs are,
which "no difference" is only a too-small sample, and what to deploy."""

from __future__ import annotations

import pandas as pd

from configs.report_schema import TIERS, ReportConfig
from report.collect import size_label
from report.tables import gb
from report.tables import group as group_text

MAX_ITEMS = 8


def findings(summary: pd.DataFrame, quality: pd.DataFrame, cliffs: pd.DataFrame, thresholds: pd.DataFrame,
             scenarios: pd.DataFrame, cfg: ReportConfig) -> list[str]:
    quantized = summary[~summary.is_baseline]
    models = summary.drop_duplicates("model").sort_values("size_b", na_position="last")
    sizes = ", ".join(f"{m} {size_label(s)}" for m, s in zip(models.model, models.size_b, strict=True))
    tasks = sorted(set(quality.scope) - {"all"})
    lines = [
        f"{_count(len(quantized), 'quantized variant')} of {_count(len(models), 'model')} ({sizes}) on "
        f"{_count(len(tasks), 'task')} ({', '.join(tasks)}); primary metric {cfg.primary_metric}, tiers on the "
        f"worse of accuracy and format-compliance deltas ({cfg.tiers.scope}).",
    ]
    if len(quantized):
        counts = quantized.tier.value_counts()
        missing = int(quantized.tier.isna().sum())
        lines.append("Tiers: " + ", ".join(f"{int(counts.get(t, 0))} {t}" for t in TIERS)
                     + (f", {missing} without baseline" if missing else "") + ".")
    lines += _viability(thresholds)
    lines += _cliffs(cliffs)
    lines += _resolution(quantized, cfg)
    for row in scenarios.itertuples():
        if row.label is None or pd.isna(row.label):
            lines.append(f"Decision, {row.decision}: no variant qualifies ({row.rule}).")
        else:
            lines.append(f"Decision, {row.decision}: {row.model} {row.label} ({100 * row.primary:.1f}%, "
                         f"{gb(row.memory_gb)} GB, tier {row.tier}).")
    return lines


def _resolution(quantized: pd.DataFrame, cfg: ReportConfig) -> list[str]:
    """Which "no difference" is a too-small sample, and which losses are real."""
    if quantized.empty:
        return []
    lines = []
    unresolved = quantized[quantized.verdict.astype(str).str.startswith("below MDE")]
    if len(unresolved):
        first = unresolved.iloc[0]
        lines.append(f"{_count(len(unresolved), 'variant')} {_verb(len(unresolved), 'differs', 'differ')} from the "
                     f"baseline by less than the minimum detectable effect at their n (e.g. {_name(first)}: "
                     f"{first.delta_pp:+.1f} pp, MDE {first.mde_pp:.1f} pp): 'no significant difference' there means "
                     "too few samples.")
    significant = quantized[quantized.significant.astype(bool) & (quantized.delta_pp < 0)]
    if len(significant):
        worst = significant.sort_values("delta_pp").iloc[0]
        lines.append(f"{_count(len(significant), 'variant')} {_verb(len(significant), 'loses', 'lose')} significantly "
                     f"against the baseline after {cfg.stats.correction} correction; the largest loss: {_name(worst)} "
                     f"{worst.delta_pp:+.1f} pp [{worst.ci_low_pp:+.1f}, {worst.ci_high_pp:+.1f}].")
    return lines


def _viability(thresholds: pd.DataFrame) -> list[str]:
    lines = []
    for (method, group), part in thresholds.groupby(["method", "group"], dropna=False, sort=True):
        parts = []
        for row in part.sort_values("bits", ascending=False).itertuples():
            if row.smallest_viable_model is None or pd.isna(row.smallest_viable_model):
                parts.append(f"w{row.bits} not viable at the largest size tested")
            elif row.viable_at_all_sizes:
                parts.append(f"w{row.bits} viable at every size tested")
            else:
                parts.append(f"w{row.bits} viable from {size_label(row.smallest_viable_size_b)}")
        suffix = "" if pd.isna(group) else f" (group {group_text(group)})"
        lines.append(f"{method}{suffix}: " + "; ".join(parts) + ".")
    return lines[:MAX_ITEMS]


def _cliffs(cliffs: pd.DataFrame) -> list[str]:
    found = cliffs[cliffs.cliff.notna()] if not cliffs.empty else cliffs
    if found.empty:
        return [] if cliffs.empty else ["No cliff: no series drops two tiers in one step or below the threshold."]
    items = [f"{r.model} {r.method} at {int(r.cliff_bits)} bits ({r.cliff_delta_pp:+.1f} pp after "
             f"{r.last_ok_delta_pp:+.1f} pp)" for r in found.head(MAX_ITEMS).itertuples()]
    more = f", and {len(found) - MAX_ITEMS} more" if len(found) > MAX_ITEMS else ""
    return [f"Cliffs ({len(found)} of {len(cliffs)} series): " + "; ".join(items) + more + "."]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _verb(n: int, singular: str, plural: str) -> str:
    return singular if n == 1 else plural


def _name(row) -> str:
    return f"{row.model} {row.label}"
