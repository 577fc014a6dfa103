"""Report tables: the raw frame (written as CSV) and its formatted view (HTML, Markdown).

Each builder picks and names the columns a reader needs and formats numbers the same way
everywhere: accuracies in %, deltas in signed points with their interval, p-values after
correction, sizes in GB (2^30 bytes). Missing values print as an en dash.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

import pandas as pd

from configs.report_schema import ReportConfig
from report.collect import bits_text, size_label

DASH = "–"


@dataclass
class Table:
    name: str  # CSV file stem
    title: str
    raw: pd.DataFrame  # numbers, for CSV
    view: pd.DataFrame  # strings, for HTML and Markdown
    note: str = ""
    tier_column: Optional[str] = None  # the view column whose cells are coloured by tier


def _missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x)) or x is pd.NA


def pct(x) -> str:
    return DASH if _missing(x) else f"{100 * x:.1f}%"


def pp(x) -> str:
    return DASH if _missing(x) else f"{x:+.1f}"


def num(x, digits: int = 2) -> str:
    return DASH if _missing(x) else f"{x:,.{digits}f}"


def gb(x) -> str:
    """Sizes in GB: two decimals, or two significant digits below 0.1 (tiny models)."""
    return DASH if _missing(x) else (f"{x:,.2f}" if abs(x) >= 0.1 or x == 0 else f"{x:.2g}")


def pval(x) -> str:
    return DASH if _missing(x) else ("<0.001" if x < 0.001 else f"{x:.3f}")


def text(x) -> str:
    return DASH if _missing(x) else str(x)


def group(x) -> str:
    return DASH if _missing(x) else ("channel" if int(x) == -1 else str(int(x)))


def _view(frame: pd.DataFrame, spec: list[tuple[str, Callable[[pd.Series], str]]]) -> pd.DataFrame:
    if frame.empty:
        return pd.DataFrame(columns=[name for name, _ in spec])
    return pd.DataFrame({name: [fn(row) for _, row in frame.iterrows()] for name, fn in spec})


def col(key: str, fmt: Callable = text, *args) -> Callable[[pd.Series], str]:
    """A view column: `fmt` applied to the row's `key` (missing keys print as a dash)."""
    return lambda row: fmt(row.get(key), *args)


IDENTITY = [("Model", col("model")), ("Size", col("size_b", size_label)), ("Method", col("method")),
            ("Variant", col("label")), ("Bits", col("bits", bits_text)), ("Group", col("group", group))]


def with_interval(delta: str, low: str, high: str) -> Callable[[pd.Series], str]:
    """A delta in points with its interval: "-15.0 [-23.6, -7.3]"."""
    def cell(row) -> str:
        if _missing(row.get(delta)):
            return DASH
        if _missing(row.get(low)):
            return pp(row.get(delta))
        return f"{pp(row.get(delta))} [{pp(row.get(low))}, {pp(row.get(high))}]"

    return cell


def _quality_spec(cfg: ReportConfig) -> list:
    def flips(r):
        return DASH if _missing(r.get("gained")) else f"+{int(r.gained)}/−{int(r.lost)}"

    ci = f"{cfg.stats.confidence:.0%} CI"
    return [
        ("Tier", col("tier")),
        ("n", col("n", num, 0)), ("Accuracy", col("accuracy", pct)), ("Rescored", col("rescored_accuracy", pct)),
        ("Format", col("format_compliance", pct)),
        (f"Δ pp [{ci}]", with_interval("delta_pp", "ci_low_pp", "ci_high_pp")),
        ("Recovery", col("recovery", pct)), ("Flips +/−", flips),
        ("p vs base", col("p_baseline_adj", pval)), ("p vs higher", col("p_higher_adj", pval)),
        ("MDE pp", col("mde_pp", num, 1)),
        (f"Δ format pp [{ci}]", with_interval("delta_format_pp", "format_ci_low_pp", "format_ci_high_pp")),
        ("p format", col("p_format_adj", pval)), ("Changed", col("changed", pct)), ("Verdict", col("verdict")),
    ]


def variants_table(summary: pd.DataFrame, cfg: ReportConfig) -> Table:
    extra = [c for c in summary.columns
             if c.startswith(("word_perplexity[", "perplexity_ratio[", "kl_divergence", "top1_agreement"))]
    names = {"word_perplexity": "PPL", "perplexity_ratio": "PPL ratio", "kl_divergence": "KL",
             "top1_agreement": "top-1 agree"}
    spec = IDENTITY + [("Tasks in tiers", col("tasks_tiered"))] + _quality_spec(cfg) + [
        (_rename(c, names), col(c, num, 3)) for c in extra]
    s = cfg.stats
    scope = (" Tier and verdict are the worst task's (tiers.scope=worst_task; the verdict names it and quotes its "
             "interval); the Δ, intervals and p-values beside them are pooled." if cfg.tiers.scope == "worst_task" else "")
    return Table("variants", "Every variant, the tasks above the model's floor pooled", summary, _view(summary, spec),
                 tier_column="Tier", note=_tier_note(cfg) + scope + f" Primary metric: {cfg.primary_metric}. p-values: McNemar "
                 f"(exact below {s.exact_below} discordant pairs), accuracy and format {s.correction}-corrected "
                 "together per scope; 'p vs higher' compares with the next higher bit width of the same method and "
                 "group (same family). "
                 f"MDE: smallest paired difference detectable with {s.power:.0%} power at alpha {s.alpha:g}. Changed: "
                 "share of samples whose generation differs from the baseline's.")


def _tier_note(cfg: ReportConfig) -> str:
    t, s = cfg.tiers, cfg.stats
    return (f"Tiers (negligible ≥ {t.negligible:g} pp, acceptable ≥ {t.acceptable:g}, "
            f"concerning ≥ {t.concerning:g}, "
            f"else unacceptable) on the worse of the accuracy and format deltas, each stated only where its "
            f"{s.confidence:.0%} interval (paired score interval, not adjusted) lies in the tier's band, a loss tier "
            f"also needing the loss significant after {s.correction} correction; otherwise inconclusive, with the "
            "pairs that would decide it (docs/verdicts.md).")


def _rename(column: str, names: dict) -> str:
    for old, new in names.items():
        column = column.replace(old, new)
    return column


def tasks_table(quality: pd.DataFrame, cfg: ReportConfig) -> Table:
    rows = quality[quality.scope != "all"] if not quality.empty else quality
    spec = IDENTITY + [("Task", col("scope"))] + _quality_spec(cfg)
    return Table("quality_by_task", "Per task", quality, _view(rows, spec), tier_column="Tier",
                 note="Each task's own intervals and tier claims (corrected within the task). The CSV also holds the "
                      "pooled rows (scope = all).")


def floors_table(floors: dict, cfg: ReportConfig) -> Table:
    frame = pd.DataFrame([{"model": c.model, "task": c.task, "chance": c.chance, "chance_from": c.chance_from,
                           "baseline_accuracy": c.baseline_accuracy, "correct": c.correct, "n": c.n,
                           "needed": c.needed, "p_value": c.p_value, "passes": c.passes, "at_floor": c.at_floor,
                           "format_compliance": c.format_compliance} for c in floors.values()],
                         columns=["model", "task", "chance", "chance_from", "baseline_accuracy", "correct", "n",
                                  "needed", "p_value", "passes", "at_floor", "format_compliance"])
    spec = [("Model", col("model")), ("Task", col("task")), ("Floor", lambda r: f"{pct(r.chance)} ({r.chance_from})"),
            ("Baseline", lambda r: f"{pct(r.baseline_accuracy)} ({r.correct}/{r.n})"), ("Needed >", col("needed", pct)),
            ("p", col("p_value", pval)), ("Format", col("format_compliance", pct)),
            ("In tiers", lambda r: "yes" if r.passes else "no: at floor")]
    return Table("floors", "Floor check: can the baseline show a drop on this task?", frame, _view(frame, spec),
                 note=f"A task enters a model's tiers only when the baseline is significantly above its floor (chance, "
                      f"or 0 for generation) + {-cfg.tiers.concerning:g} pp (exact binomial test, alpha "
                      f"{cfg.stats.alpha:g}); otherwise a drop into unacceptable could not show. Its rows are "
                      "'at floor': changed generations, flips, KL and top-1 agreement speak there.")


def method_pairs_table(pairs: pd.DataFrame, cfg: ReportConfig) -> Table:
    def side(metric: str, fmt=pct):
        return lambda r: f"{fmt(r.get(f'{metric}_a'))} / {fmt(r.get(f'{metric}_b'))}"

    ci = f"{cfg.stats.confidence:.0%} CI"
    spec = [("Model", col("model")), ("Size", col("size_b", size_label)), ("Bits", col("bits")),
            ("Group", col("group", group)), ("A", col("label_a")), ("B", col("label_b")),
            ("Accuracy A / B", side("accuracy")),
            (f"Δ acc pp [{ci}]", with_interval("accuracy_delta_pp", "accuracy_ci_low_pp", "accuracy_ci_high_pp")),
            ("p acc", col("p_accuracy_adj", pval)), ("Format A / B", side("format")),
            (f"Δ format pp [{ci}]", with_interval("format_delta_pp", "format_ci_low_pp", "format_ci_high_pp")),
            ("p format", col("p_format_adj", pval)), ("Changed A / B", side("changed")),
            (f"Δ changed pp [{ci}]", with_interval("changed_delta_pp", "changed_ci_low_pp", "changed_ci_high_pp")),
            ("p changed", col("p_changed_adj", pval)), ("KL A / B", side("kl", lambda x: num(x, 4))),
            ("p KL", col("p_kl_adj", pval)), ("Verdict", col("verdict"))]
    return Table("method_pairs", "Method against method (B − A, paired)", pairs, _view(pairs, spec),
                 note=f"Same model, bits and group; accuracy and format over the tasks above the floor (none above: "
                      f"accuracy not compared, format over every task), changed "
                      f"generations (differs from the baseline's text) over every task. McNemar p-values, "
                      f"{cfg.stats.correction}-corrected over the whole table; the verdict follows them (the intervals "
                      "are not adjusted, and with few discordant pairs one can exclude 0 where the exact test does "
                      "not reject). KL: the mean over each variant's prompts, tested with Wilcoxon's signed-rank test "
                      "on the per-prompt values both records keep (blank p where they keep none, or measure against "
                      "another baseline or with other KL settings).")


def best_methods_table(best: pd.DataFrame) -> Table:
    spec = [("Model", col("model")), ("Size", col("size_b", size_label)), ("Bits", col("bits")),
            ("Group", col("group", group)), ("Methods", col("methods")), ("Best on accuracy", col("accuracy")),
            ("Best on format", col("format")), ("Closest to the baseline", col("changed")),
            ("Lowest KL", col("kl"))]
    return Table("best_methods", "Best method at this bit width", best, _view(best, spec),
                 note="The method significantly better than every other method at the same model, bits and group; "
                      "'no difference detected' where no pair differs after correction.")


def cliffs_table(cliffs: pd.DataFrame) -> Table:
    def last_good(r):
        return text(r.last_ok) if _missing(r.last_ok_bits) else f"{r.last_ok} ({pp(r.last_ok_delta_pp)})"

    def cliff(r):
        return DASH if _missing(r.cliff) else f"{r.cliff} ({r.cliff_metric} {pp(r.cliff_delta_pp)})"

    spec = [("Model", col("model")), ("Size", col("size_b", size_label)), ("Method", col("method")),
            ("Group", col("group", group)), ("Last good", last_good), ("Cliff at", cliff),
            ("Cliff size pp", col("cliff_size_pp", num, 1)), ("Why", col("reason"))]
    return Table("cliffs", "Cliffs", cliffs, _view(cliffs, spec),
                 note="Only stated tiers make a cliff; inconclusive bit widths are named as undetermined.")


def viability_table(thresholds: pd.DataFrame, cfg: ReportConfig) -> Table:
    def smallest(r):
        if _missing(r.smallest_viable_model):
            if r.largest_undetermined:
                return "undetermined at the largest size tested"
            return "not viable at the largest size tested"
        prefix = "≤ " if r.viable_at_all_sizes else "from "
        return f"{prefix}{size_label(r.smallest_viable_size_b)} ({r.smallest_viable_model})"

    spec = [("Method", col("method")), ("Group", col("group", group)), ("Level", col("level")),
            ("Bits", col("bits", bits_text)), ("Sizes tested", col("sizes_tested")), ("Viable", smallest),
            ("Not viable at", lambda r: r.not_viable or DASH), ("Undetermined at", lambda r: r.undetermined or DASH)]
    return Table("viability", "Smallest model size at which each method and bit width is viable", thresholds,
                 _view(thresholds, spec), note=f"Viable: tier {cfg.tiers.viable} or better, stated (its interval "
                                               "inside the band), at that size and every larger size tested ('≤': "
                                               "viable at every size tested). Inconclusive and at-floor models are "
                                               "undetermined, never viable. Bits: effective bits per weight where the "
                                               "method records them (GGUF levels; the mean over the models), else "
                                               "the nominal width.")


def behaviour_table(behaviour: pd.DataFrame) -> Table:
    columns = ["correct", "wrong_answer", "no_box", "malformed_box", "max_tokens", "repetition", "empty"]
    spec = IDENTITY + [("n", col("n"))] + [(c.replace("_", " "), col(c, pct)) for c in columns]
    return Table("behaviour", "Output behaviour (boxed tasks)", behaviour, _view(behaviour, spec))


def deployment_table(deploy: pd.DataFrame, cfg: ReportConfig) -> Table:
    def pareto(r):
        fronts = (("memory", r.get("pareto_memory")), ("speed", r.get("pareto_throughput")))
        return ", ".join(name for name, on in fronts if on is True) or DASH

    spec = IDENTITY + [
        ("Accuracy (all tasks)", col("primary", pct)), ("Tier", col("tier")), ("Disk GB", col("size_on_disk_gb", gb)),
        ("Peak GB", col("peak_memory_gb", gb)), ("Budget GB", lambda r: f"{gb(r.memory_gb)} ({r.memory_basis})"),
        ("Device", col("device")), ("Decode tok/s", col("decode_tokens_per_s", num, 1)),
        ("TTFT s", col("time_to_first_token_s", num, 3)), ("Latency/prompt s", col("latency_per_prompt_s", num, 3)),
        ("$/1M tok", col("usd_per_1m_tokens", num, 4)), ("Pareto", pareto),
    ]
    return Table("deployment", "Cost and deployment", deploy, _view(deploy, spec), tier_column="Tier",
                 note=f"Speed at batch size {cfg.cost.batch_size}; $/1M generated tokens at "
                      f"${cfg.cost.usd_per_gpu_hour:g} per device hour. GB = 2^30 bytes.")


def decision_table(decisions: pd.DataFrame, name: str, title: str) -> Table:
    spec = [("Decision", col("decision")), ("Model", col("model")), ("Variant", col("label")),
            ("Accuracy", col("primary", pct)), ("Δ pp", col("delta_pp", pp)), ("Tier", col("tier")),
            ("Memory GB", col("memory_gb", gb)), ("Decode tok/s", col("decode_tokens_per_s", num, 1)),
            ("$/1M tok", col("usd_per_1m_tokens", num, 4)), ("Tied with", col("tied_with")), ("Note", col("note")),
            ("Rule", col("rule"))]
    return Table(name, title, decisions, _view(decisions, spec), tier_column="Tier",
                 note="Accuracy over every task the variant ran. Ties: differences inside their paired interval "
                      "(tokens/s and memory: equal values only), broken by more bits, then less memory. Only a stated "
                      "tier meets a quality floor; a pick resting on an inconclusive tier says so.")


def plain_table(frame: pd.DataFrame, name: str, title: str) -> Table:
    return Table(name, title, frame, frame.astype(str))
