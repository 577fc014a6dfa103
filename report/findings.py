"""The report's opening bullets, written from the tables (never by hand): what was
compared, how the tiers fall (inconclusive and at-floor included), where each method
stops being viable, where the cliffs are, which verdicts wait for more samples, which
method wins at a bit width, and what to deploy. They are computed without the records a
suspect pipeline put in doubt, and say how many those are."""

from __future__ import annotations

import math

import pandas as pd

from configs.report_schema import AT_FLOOR, INCONCLUSIVE, TIERS, ReportConfig
from report.collect import size_label, step_text
from report.methods import NO_DIFFERENCE
from report.tables import gb
from report.tables import group as group_text

MAX_ITEMS = 8


def findings(analysis, cfg: ReportConfig) -> list[str]:
    """`analysis`: build.Analysis; its `trusted` part (suspect records left out) speaks."""
    lines = _left_out(analysis)
    a = analysis.trusted
    if a is None or a.summary.empty:
        return lines + ["Nothing is left to state once the suspect records are left out."]
    summary, quality = a.summary, a.by_task
    quantized = summary[~summary.is_baseline]
    models = summary.drop_duplicates("model").sort_values("size_b", na_position="last")
    sizes = ", ".join(f"{m} {size_label(s)}" for m, s in zip(models.model, models.size_b, strict=True))
    tasks = sorted(set(quality.scope) - {"all"})
    lines.insert(0, f"{_count(len(quantized), 'quantized variant')} of {_count(len(models), 'model')} ({sizes}) on "
                 f"{_count(len(tasks), 'task')} ({', '.join(tasks)}); primary metric {cfg.primary_metric}; a tier is "
                 f"stated only where the {cfg.stats.confidence:.0%} interval of the worse of the accuracy and format "
                 f"deltas lies in its band ({cfg.tiers.scope}, {cfg.stats.correction}-corrected).")
    if len(quantized):
        counts = quantized.tier.value_counts()
        missing = int(quantized.tier.isna().sum())
        lines.append("Tiers: " + ", ".join(f"{int(counts.get(t, 0))} {t}" for t in (*TIERS, INCONCLUSIVE, AT_FLOOR))
                     + (f", {missing} without baseline" if missing else "") + ".")
    lines += _floors(a.floors)
    lines += _viability(a.thresholds)
    lines += _cliffs(a.cliffs)
    lines += _resolution(quantized, cfg)
    lines += _methods(a.best_methods)
    lines += _decisions(a.scenarios)
    return lines


def _left_out(a) -> list[str]:
    if not a.left_out:
        return []
    examples = "; ".join(s.line for s in a.suspects[:3]) + ("; ..." if len(a.suspects) > 3 else "")
    return [f"Left out of these findings: {_count(a.left_out, 'suspect record')} (see the warnings: {examples}). "
            "The tables below still show them."]


def _floors(checks: dict) -> list[str]:
    failed = [c for c in checks.values() if not c.passes]
    if not failed:
        return []
    items = [f"{c.model} on {c.task} ({c.baseline_accuracy:.1%}, needs > {c.needed:.1%})" for c in failed[:MAX_ITEMS]]
    return [f"At the floor, left out of the tiers ({len(failed)} of {len(checks)} model-task pairs): "
            + "; ".join(items) + ". Changed generations, flips and KL speak there."]


def _resolution(quantized: pd.DataFrame, cfg: ReportConfig) -> list[str]:
    """Which verdicts wait for more samples, and which losses are real."""
    if quantized.empty:
        return []
    lines = []
    open_ = quantized[quantized.tier == INCONCLUSIVE]
    if len(open_):
        first = open_.sort_values("pairs_to_decide").iloc[0]
        decide = (f"about {first.pairs_to_decide:,.0f} pairs would decide it" if math.isfinite(first.pairs_to_decide)
                  else "it sits on a tier boundary")
        lines.append(f"{_count(len(open_), 'variant')} {_verb(len(open_), 'is', 'are')} inconclusive: the interval "
                     f"does not fit one tier (e.g. {_name(first)}: {first.tier_metric} {first.tier_delta_pp:+.1f} pp "
                     f"[{first.tier_ci_low_pp:+.1f}, {first.tier_ci_high_pp:+.1f}], n={first.n_paired:.0f}; {decide}).")
    significant = quantized[quantized.significant.astype(bool) & (quantized.delta_pp < 0)]
    if len(significant):
        worst = significant.sort_values("delta_pp").iloc[0]
        lines.append(f"{_count(len(significant), 'variant')} {_verb(len(significant), 'loses', 'lose')} accuracy "
                     f"significantly against the baseline after {cfg.stats.correction} correction; the largest loss: "
                     f"{_name(worst)} {worst.delta_pp:+.1f} pp [{worst.ci_low_pp:+.1f}, {worst.ci_high_pp:+.1f}].")
    return lines


def _viability(thresholds: pd.DataFrame) -> list[str]:
    lines = []
    for (method, group), part in thresholds.groupby(["method", "group"], dropna=False, sort=True):
        parts = []
        for row in part.sort_values("bits", ascending=False).itertuples():
            if row.smallest_viable_model is None or pd.isna(row.smallest_viable_model):
                state = "undetermined" if row.largest_undetermined else "not viable"
                parts.append(f"{row.level} {state} at the largest size tested")
            elif row.viable_at_all_sizes:
                parts.append(f"{row.level} viable at every size tested")
            else:
                parts.append(f"{row.level} viable from {size_label(row.smallest_viable_size_b)}")
            if row.undetermined:
                parts[-1] += f" (undetermined: {row.undetermined})"
        suffix = "" if pd.isna(group) else f" (group {group_text(group)})"
        lines.append(f"{method}{suffix}: " + "; ".join(parts) + ".")
    return lines[:MAX_ITEMS]


def _cliffs(cliffs: pd.DataFrame) -> list[str]:
    found = cliffs[cliffs.cliff.notna()] if not cliffs.empty else cliffs
    if found.empty:
        return [] if cliffs.empty else ["No cliff shown: no series drops two stated tiers in one step or lies below "
                                        "the threshold."]
    items = [f"{r.model} {r.method} at {step_text(r.cliff_level, r.cliff_bits)} ({r.cliff_metric} {r.cliff_delta_pp:+.1f} pp, "
             f"interval up to {r.cliff_ci_high_pp:+.1f}, after {r.last_ok_delta_pp:+.1f} pp)"
             for r in found.head(MAX_ITEMS).itertuples()]
    more = f", and {len(found) - MAX_ITEMS} more" if len(found) > MAX_ITEMS else ""
    return [f"Cliffs ({len(found)} of {len(cliffs)} series): " + "; ".join(items) + more + "."]


def _methods(best: pd.DataFrame) -> list[str]:
    if best.empty:
        return []
    decided = []
    for row in best.itertuples():
        wins = [f"{name} {getattr(row, column)}" for column, name in
                (("accuracy", "accuracy:"), ("format", "format:"), ("changed", "closest to the baseline:"),
                 ("kl", "lowest KL:"))
                if getattr(row, column) != NO_DIFFERENCE]
        if wins:
            decided.append(f"{row.model} w{row.bits} ({'; '.join(wins)})")
    line = f"Method against method at the same bits and group: {len(best)} compared"
    if not decided:
        return [line + f", {NO_DIFFERENCE} in any."]
    return [line + f", {len(best) - len(decided)} with {NO_DIFFERENCE}; " + "; ".join(decided[:MAX_ITEMS]) + "."]


def _decisions(scenarios: pd.DataFrame) -> list[str]:
    lines = []
    for row in scenarios.itertuples():
        if row.label is None or pd.isna(row.label):
            lines.append(f"Decision, {row.decision}: no variant qualifies ({row.rule}).")
            continue
        tied = f"; tied with {row.tied_with}" if isinstance(row.tied_with, str) else ""
        note = f"; {row.note}" if isinstance(row.note, str) else ""
        lines.append(f"Decision, {row.decision}: {row.model} {row.label} ({100 * row.primary:.1f}%, "
                     f"{gb(row.memory_gb)} GB, tier {row.tier}{tied}{note}).")
    return lines


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _verb(n: int, singular: str, plural: str) -> str:
    return singular if n == 1 else plural


def _name(row) -> str:
    return f"{row.model} {row.label}"
