"""The quality tables: every variant against its baseline and its next higher bit width.

One row per variant and scope, where a scope is one task or "all" (the samples of every
task that passed the model's floor check, pooled: the scope the headline verdicts use by
default). Each row carries the absolute metrics, the paired accuracy and format deltas
with their intervals, recovery, flips, McNemar p-values against the baseline and against
the next higher bit width of the same series (model x method x group), the share of
changed generations (the McNemar p-values of accuracy, format and the step to the higher
bit width corrected together: one family per scope), the minimum detectable effect, the
tier and its verdict (tiers.judge). Rows of a task at the floor carry no tier ("at floor")
and say why.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from configs.report_schema import AT_FLOOR, ReportConfig
from report import stats, tiers
from report.collect import Collection, Variant
from report.floors import FloorCheck, tiered_tasks

POOLED = "all"
BEHAVIOURS = ("correct", "wrong_answer", "no_box", "malformed_box", "max_tokens", "repetition", "empty")
FAMILY = ("p_baseline", "p_format", "p_higher")  # corrected together, per scope


def quality_rows(collection: Collection, cfg: ReportConfig, floors: dict[tuple[str, str], FloorCheck]) -> pd.DataFrame:
    tasks = collection.tasks()
    rows, evidence = [], []
    for variant in _ordered(collection):
        for scope in [*tasks, POOLED]:
            scope_tasks = tasks if scope == POOLED else [scope]
            if not any((variant.key, t) in collection.quality for t in scope_tasks):
                continue
            row, compared = _row(collection, cfg, variant, scope, scope_tasks, floors)
            rows.append(row)
            evidence.append(compared)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    for column in FAMILY:
        frame[column] = frame[column].astype(float) if column in frame else math.nan
    for _, part in frame.groupby("scope"):
        family = np.concatenate([part[c].to_numpy(float) for c in FAMILY])
        adjusted = stats.adjust(family, cfg.stats.correction).reshape(len(FAMILY), len(part))
        for column, values in zip(FAMILY, adjusted, strict=True):
            frame.loc[part.index, f"{column}_adj"] = values
        size = int((~np.isnan(family)).sum())
        for index in part.index:
            _judge(frame, index, evidence[index], cfg, size)
    frame["significant"] = frame.p_baseline_adj < cfg.stats.alpha
    frame["significant_format"] = frame.p_format_adj < cfg.stats.alpha
    return frame


def variant_summary(quality: pd.DataFrame, collection: Collection, cfg: ReportConfig) -> pd.DataFrame:
    """One row per variant: its pooled numbers and its verdict (tier per `tiers.scope`)."""
    pooled = quality[quality.scope == POOLED].set_index("variant")
    rows = []
    for variant in _ordered(collection):
        if variant.key not in pooled.index:
            continue
        row = pooled.loc[variant.key].to_dict()
        if cfg.tiers.scope == "worst_task" and not variant.is_baseline and row["tier"] != AT_FLOOR:
            per_task = quality[(quality.variant == variant.key) & (quality.scope != POOLED)]
            decided = tiers.worst([(r.tier, r) for r in per_task.itertuples()])
            if decided is not None:
                task_row = decided[1]
                row.update({k: getattr(task_row, k) for k in ("tier", "tier_metric", "tier_delta_pp", "tier_ci_low_pp",
                                                               "tier_ci_high_pp", "pairs_to_decide")})
                row["verdict"] = f"worst task {task_row.scope}: {task_row.verdict}"
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


def _row(collection: Collection, cfg: ReportConfig, variant: Variant, scope: str, tasks: list[str],
         floors: dict) -> tuple[dict, dict]:
    """The row of one variant and scope, and the comparisons its tier will be judged on."""
    judged = variant.is_baseline or variant.baseline_key is not None  # a floor check needs a baseline
    above = tiered_tasks(floors, variant.model, tasks)
    at_floor = judged and not above and any((variant.model, t) in floors for t in tasks)
    used = above or tasks
    own = {m: _mean(collection, variant.key, used, m) for m in ("accuracy", "rescored_accuracy", "format_compliance")}
    row = {**_identity(variant), "scope": scope, "n": own["accuracy"][1],
           **{m: value for m, (value, _) in own.items()}, "primary": own[cfg.primary_metric][0],
           "tasks_tiered": ", ".join(above), "at_floor": at_floor,
           "floor_reason": _floor_reason(floors, variant.model, tasks) if judged else None,
           **dict.fromkeys(FAMILY, math.nan), "tier": None, "verdict": None, "tier_metric": None,
           "tier_delta_pp": math.nan, "tier_ci_low_pp": math.nan, "tier_ci_high_pp": math.nan,
           "pairs_to_decide": math.nan}
    if variant.is_baseline:
        row.update(delta_pp=0.0, delta_format_pp=0.0 if not math.isnan(own["format_compliance"][0]) else math.nan,
                   recovery=1.0, tier=AT_FLOOR if at_floor else "negligible", tier_delta_pp=0.0,
                   verdict=f"baseline at the floor: {row['floor_reason']}" if at_floor else "baseline")
        return row, {}
    if not judged:
        row.update(delta_pp=math.nan, delta_format_pp=math.nan, recovery=math.nan, verdict="no baseline")
        return row, {}
    compared = _against_baseline(row, collection, cfg, variant, used)
    if at_floor:
        row.update(tier=AT_FLOOR, tier_delta_pp=row["delta_pp"], verdict=_floor_verdict(row, collection, variant))
        return row, {}
    return row, compared


def _against_baseline(row: dict, collection: Collection, cfg: ReportConfig, variant: Variant,
                      tasks: list[str]) -> dict:
    """Fill the row's paired columns: accuracy and format against the baseline, the step to
    the next higher bit width, changed generations. Returns the two tier-setting comparisons."""
    compare, base, metric = _comparer(cfg), variant.baseline_key, cfg.primary_metric
    versus = compare(*collection.paired(base, variant.key, tasks, metric))
    fmt = compare(*collection.paired(base, variant.key, tasks, "format_compliance"))
    row.update(_paired_columns(versus, ""), **_paired_columns(fmt, "format_"))
    row["delta_format_pp"] = row.pop("format_delta_pp")
    row["recovery"] = versus.variant_mean / versus.reference_mean if versus.n and versus.reference_mean else math.nan
    row["p_baseline"], row["p_format"] = versus.p_value, fmt.p_value
    row["changed"], row["changed_n"] = _changed(collection, base, variant.key, tasks)
    higher = _next_higher(collection, variant)
    row["higher"], row["delta_higher_pp"] = (higher.label if higher else None), math.nan
    if higher is not None:
        step = compare(*collection.paired(higher.key, variant.key, tasks, metric))
        if step.n:
            row["p_higher"], row["delta_higher_pp"] = step.p_value, step.delta_pp
    return {"accuracy": versus, "format": fmt}


def _judge(frame: pd.DataFrame, index, compared: dict, cfg: ReportConfig, family_size: int) -> None:
    if not compared:  # baselines, variants without one, rows at the floor: decided in _row
        return
    row = frame.loc[index]
    metric = cfg.primary_metric.replace("_", " ")
    evidence = [tiers.Evidence(metric, compared["accuracy"], row.p_baseline_adj),
                tiers.Evidence("format", compared["format"], row.p_format_adj)]
    judged = tiers.judge(evidence, cfg, family_size)
    frame.loc[index, ["tier", "verdict", "tier_metric", "tier_delta_pp", "tier_ci_low_pp", "tier_ci_high_pp",
                      "pairs_to_decide"]] = [judged.tier, judged.verdict, judged.metric, judged.delta_pp,
                                             judged.ci_low_pp, judged.ci_high_pp, judged.pairs_to_decide]


def _paired_columns(c: stats.PairedComparison, prefix: str) -> dict:
    if not c.n:
        return {f"{prefix}delta_pp": math.nan}
    columns = {"delta_pp": c.delta_pp, "ci_low_pp": c.ci_low_pp, "ci_high_pp": c.ci_high_pp, "gained": c.gained,
               "lost": c.lost, "n_paired": c.n}
    if not prefix:
        columns.update(test_baseline=c.test, mde_pp=c.mde_pp)
    return {f"{prefix}{k}": v for k, v in columns.items()}


def _floor_reason(floors: dict, model: str, tasks: list[str]) -> str:
    failed = [floors[(model, t)] for t in tasks if (model, t) in floors and not floors[(model, t)].passes]
    if len(tasks) == 1:
        return failed[0].reason if failed else ""
    return ", ".join(f"{c.task} ({c.baseline_accuracy:.1%} vs needed {c.needed:.1%})" for c in failed)


def _floor_verdict(row: dict, collection: Collection, variant: Variant) -> str:
    """Where accuracy cannot show a drop, the distribution metrics speak."""
    signs = [] if _nan(row.get("changed")) else [f"changed generations {row['changed']:.0%} of {row['changed_n']}"]
    if not _nan(row.get("gained")):
        signs.append(f"flips +{row['gained']}/-{row['lost']}")
    kl = collection.kl.get(variant.key)
    if kl is not None:
        metrics = kl.record.get("metrics") or {}
        measured_on = sorted({str(task) for task, _ in collection.kl_by_prompt(variant.key)})
        on = f" on {metrics.get('n_prompts', '?')} prompts of {', '.join(measured_on) or 'the first task'}"
        signs.append(f"KL {metrics.get('kl_divergence', math.nan):.3g}, top-1 agreement "
                     f"{metrics.get('top1_agreement', math.nan):.2f}{on}")
    where = "every task at the floor" if row["scope"] == POOLED else "baseline at the floor"
    return (f"left out of tiers ({where}: {row['floor_reason']}); what speaks here: "
            f"{', '.join(signs) or 'nothing paired'}")


def _nan(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _changed(collection: Collection, base: str, key: str, tasks: list[str]) -> tuple[float, int]:
    kept = [same for t in tasks for same in collection.kept(base, key, t).values()]
    return (1 - float(np.mean(kept)) if kept else math.nan), len(kept)


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


def _identity(variant: Variant) -> dict:
    return {"variant": variant.key, "model": variant.model, "size_b": variant.size_b, "method": variant.method,
            "bits": variant.bits, "group": variant.group, "label": variant.label, "is_baseline": variant.is_baseline,
            "level": variant.level, "weight_bits": variant.weight_bits, "scheme": variant.scheme,
            "fallback": variant.fallback}


def _ordered(collection: Collection) -> list[Variant]:
    """Smallest model first; within a model the baseline, then methods, high bits first
    (effective bits per weight where recorded: GGUF levels in their real order)."""
    return sorted(collection.variants.values(), key=lambda v: (
        v.size_b if v.size_b is not None else math.inf, v.model, not v.is_baseline, v.method, -v.bits,
        v.group if v.group is not None else -1, v.label))
