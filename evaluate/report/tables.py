"""Report tables: the raw frame (written as CSV) and its formatted view (HTML, Markdown).

Each builder picks and names the columns a reader needs and formats numbers the same way
everywhere: accuracies in %, deltas in signed points with their interval, p-values after
correction, sizes in GB (2^30 bytes). Missing values print as an en dash.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import pandas as pd

from configs.report_schema import ReportConfig
from evaluate.report.collect import size_label

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


IDENTITY = [
    ("Model", lambda r: text(r.model)), ("Size", lambda r: size_label(r.size_b)), ("Method", lambda r: text(r.method)),
    ("Bits", lambda r: text(r.bits)), ("Group", lambda r: group(r.group)),
]


def _quality_spec(cfg: ReportConfig) -> list:
    conf = f"{cfg.stats.confidence:.0%} CI"
    return [
        ("n", lambda r: text(int(r.n))), ("Accuracy", lambda r: pct(r.accuracy)), ("Rescored", lambda r: pct(r.rescored_accuracy)),
        ("Format", lambda r: pct(r.format_compliance)), ("Δ pp", lambda r: pp(r.delta_pp)),
        (conf, lambda r: DASH if _missing(r.get("ci_low_pp")) else f"[{r.ci_low_pp:+.1f}, {r.ci_high_pp:+.1f}]"),
        ("Recovery", lambda r: pct(r.recovery)),
        ("Flips +/−", lambda r: DASH if _missing(r.get("gained")) else f"+{int(r.gained)}/−{int(r.lost)}"),
        ("p vs base", lambda r: pval(r.get("p_baseline_adj"))), ("p vs higher", lambda r: pval(r.get("p_higher_adj"))),
        ("MDE pp", lambda r: num(r.get("mde_pp"), 1)), ("Δ format pp", lambda r: pp(r.get("delta_format_pp"))),
        ("Tier", lambda r: text(r.tier)), ("Verdict", lambda r: text(r.verdict)),
    ]


def variants_table(summary: pd.DataFrame, cfg: ReportConfig) -> Table:
    extra = [c for c in summary.columns if c.startswith(("word_perplexity[", "kl_divergence", "top1_agreement"))]
    spec = IDENTITY + _quality_spec(cfg) + [(c.replace("word_perplexity", "PPL"), (lambda col: lambda r: num(r.get(col), 3))(c))
                                            for c in extra]
    return Table("variants", "Every variant, all tasks pooled", summary, _view(summary, spec), tier_column="Tier",
                 note=f"Primary metric: {cfg.primary_metric}. p-values: McNemar (exact below {cfg.stats.exact_below} "
                      f"discordant pairs), {cfg.stats.correction}-corrected per task scope; 'p vs higher' compares "
                      f"with the next higher bit width of the same method and group. MDE: smallest paired "
                      f"difference detectable with {cfg.stats.power:.0%} power at alpha {cfg.stats.alpha:g}.")


def tasks_table(quality: pd.DataFrame, cfg: ReportConfig) -> Table:
    rows = quality[quality.scope != "all"] if not quality.empty else quality
    spec = IDENTITY + [("Task", lambda r: text(r.scope))] + _quality_spec(cfg)
    return Table("quality_by_task", "Per task", quality, _view(rows, spec), tier_column="Tier",
                 note="The CSV also holds the pooled rows (scope = all).")


def cliffs_table(cliffs: pd.DataFrame) -> Table:
    spec = [("Model", lambda r: text(r.model)), ("Size", lambda r: size_label(r.size_b)),
            ("Method", lambda r: text(r.method)), ("Group", lambda r: group(r.group)),
            ("Last good", lambda r: text(r.last_ok) if _missing(r.last_ok_bits) else f"{r.last_ok} ({pp(r.last_ok_delta_pp)})"),
            ("Cliff at", lambda r: DASH if _missing(r.cliff) else f"{r.cliff} ({pp(r.cliff_delta_pp)})"),
            ("Cliff size pp", lambda r: num(r.cliff_size_pp, 1)), ("Why", lambda r: text(r.reason))]
    return Table("cliffs", "Cliffs", cliffs, _view(cliffs, spec))


def viability_table(thresholds: pd.DataFrame, cfg: ReportConfig) -> Table:
    def smallest(r):
        if _missing(r.smallest_viable_model):
            return "not viable at the largest size tested"
        prefix = "≤ " if r.viable_at_all_sizes else "from "
        return f"{prefix}{size_label(r.smallest_viable_size_b)} ({r.smallest_viable_model})"

    spec = [("Method", lambda r: text(r.method)), ("Group", lambda r: group(r.group)), ("Bits", lambda r: text(r.bits)),
            ("Sizes tested", lambda r: text(r.sizes_tested)), ("Viable", smallest), ("Not viable at", lambda r: r.not_viable or DASH)]
    return Table("viability", "Smallest model size at which each method and bit width is viable", thresholds,
                 _view(thresholds, spec), note=f"Viable: tier {cfg.tiers.viable} or better, at that size and every larger "
                 "size tested ('≤': viable at every size tested).")


def behaviour_table(behaviour: pd.DataFrame) -> Table:
    columns = ["correct", "wrong_answer", "no_box", "malformed_box", "max_tokens", "repetition", "empty"]
    spec = IDENTITY + [("n", lambda r: text(r.n))] + [(c.replace("_", " "), (lambda c: lambda r: pct(r[c]))(c)) for c in columns]
    return Table("behaviour", "Output behaviour (boxed tasks)", behaviour, _view(behaviour, spec))


def deployment_table(deploy: pd.DataFrame, cfg: ReportConfig) -> Table:
    spec = IDENTITY + [
        ("Accuracy", lambda r: pct(r.primary)), ("Tier", lambda r: text(r.tier)),
        ("Disk GB", lambda r: num(r.size_on_disk_gb)), ("Peak GB", lambda r: num(r.peak_memory_gb)),
        ("Budget GB", lambda r: f"{num(r.memory_gb)} ({r.memory_basis})"), ("Device", lambda r: text(r.device)),
        ("Decode tok/s", lambda r: num(r.decode_tokens_per_s, 1)), ("TTFT s", lambda r: num(r.time_to_first_token_s, 3)),
        ("Latency/prompt s", lambda r: num(r.latency_per_prompt_s, 3)), ("$/1M tok", lambda r: num(r.usd_per_1m_tokens, 4)),
        ("Pareto", lambda r: ", ".join(n for n, f in (("memory", r.get("pareto_memory")), ("speed", r.get("pareto_throughput"))) if f is True) or DASH),
    ]
    return Table("deployment", "Cost and deployment", deploy, _view(deploy, spec), tier_column="Tier",
                 note=f"Speed at batch size {cfg.cost.batch_size}; $/1M generated tokens at ${cfg.cost.usd_per_gpu_hour:g} "
                      "per device hour. GB = 2^30 bytes.")


def decision_table(decisions: pd.DataFrame, name: str, title: str) -> Table:
    spec = [("Decision", lambda r: text(r.decision)), ("Model", lambda r: text(r.get("model"))),
            ("Variant", lambda r: text(r.get("label"))), ("Accuracy", lambda r: pct(r.get("primary"))),
            ("Δ pp", lambda r: pp(r.get("delta_pp"))), ("Tier", lambda r: text(r.get("tier"))),
            ("Memory GB", lambda r: num(r.get("memory_gb"))), ("Decode tok/s", lambda r: num(r.get("decode_tokens_per_s"), 1)),
            ("$/1M tok", lambda r: num(r.get("usd_per_1m_tokens"), 4)), ("Rule", lambda r: text(r.rule))]
    return Table(name, title, decisions, _view(decisions, spec), tier_column="Tier")


def plain_table(frame: pd.DataFrame, name: str, title: str) -> Table:
    return Table(name, title, frame, frame.astype(str))
