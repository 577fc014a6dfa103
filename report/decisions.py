"""Cost and deployment: what each variant costs to run, and which one to pick.

- Deployment table: size on disk, peak memory, decode tokens/s, time to first token and
  latency per prompt at `cost.batch_size`, and cost per 1M generated tokens:
  usd_per_gpu_hour / (decode tokens/s x 3600) x 1e6. Accuracy here is over every task the
  variant ran (so that models compare on the same samples), its tier the pooled one.
- Memory that counts against a budget (`cost.memory_basis`): the CUDA peak when the
  speed record was measured on CUDA; otherwise (CPU runs report process RSS, which says
  nothing about a GPU) the size on disk x `cost.disk_memory_factor`. The basis is shown.
- Pareto fronts: accuracy vs memory, accuracy vs throughput.
- Decisions. Candidates: a stated tier no worse than `decisions.quality_floor`
  (inconclusive ones never qualify; "maximum quality" takes any tier and says when its
  pick is inconclusive). Each scenario has an objective: accuracy (per memory budget,
  maximum quality), accuracy per GB, decode tokens/s, memory. Every candidate whose
  difference from the leader on the objective lies inside its 95% paired interval ties
  with it; decode tokens/s ties with the fastest unless Welch's t-test on the timing
  repeats of the two says it is slower (records without repeats: equal values only);
  memory is a single measurement (equal values tie). Accuracy then decides among the tied
  the same way; ties go to more bits, then less memory.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats
from statsmodels.stats.proportion import proportion_confint

from configs.report_schema import INCONCLUSIVE, ReportConfig
from report import stats, tiers

GIB = 2**30
TIE_BREAK = "ties: more bits, then less memory"


def deployment_rows(summary: pd.DataFrame, speed: dict, cfg: ReportConfig, book: dict) -> pd.DataFrame:
    """`summary`: one row per variant (quality_summary); `speed`: variant key -> speed dict;
    `book`: variant key -> {(task, doc): primary score} over every task."""
    rows = []
    for row in summary.itertuples():
        measured = speed.get(row.variant) or {}
        by_batch = measured.get("by_batch") or {}
        batch = str(cfg.cost.batch_size)
        batch = batch if batch in by_batch else min(by_batch, key=int, default=None)  # else the smallest measured
        at = by_batch.get(batch, {}) if batch else {}
        disk = row.size_on_disk_bytes
        peak, kind = measured.get("peak_memory_bytes"), measured.get("peak_memory_kind")
        memory, basis = _memory(disk, peak, kind, cfg)
        decode = at.get("decode_tokens_per_s")
        scores = list(book.get(row.variant, {}).values())
        rows.append({
            "variant": row.variant, "model": row.model, "size_b": row.size_b, "method": row.method, "bits": row.bits,
            "group": row.group, "label": row.label, "is_baseline": row.is_baseline,
            "primary": float(np.mean(scores)) if scores else math.nan, "n": len(scores),
            "delta_pp": row.delta_pp, "tier": row.tier, "viable": row.viable,
            "pairs_to_decide": getattr(row, "pairs_to_decide", math.nan),
            "size_on_disk_gb": disk / GIB if disk else math.nan,
            "peak_memory_gb": peak / GIB if peak else math.nan, "peak_memory_kind": kind,
            "memory_gb": memory, "memory_basis": basis, "device": measured.get("device"),
            "batch_size": int(batch) if batch else None, "decode_tokens_per_s": decode,
            "decode_repeats": at.get("decode_tokens_per_s_repeats"),
            "prefill_tokens_per_s": at.get("prefill_tokens_per_s"),
            "time_to_first_token_s": at.get("time_to_first_token_s"),
            "latency_per_prompt_s": at.get("latency_per_prompt_s"),
            "usd_per_1m_tokens": cost_per_million(decode, cfg.cost.usd_per_gpu_hour),
        })
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame["pareto_memory"] = pareto_front(frame, "memory_gb", "primary", x_lower_is_better=True)
        frame["pareto_throughput"] = pareto_front(frame, "decode_tokens_per_s", "primary", x_lower_is_better=False)
    return frame


def cost_per_million(tokens_per_s, usd_per_hour: float) -> float:
    if not tokens_per_s or tokens_per_s <= 0:
        return math.nan
    return usd_per_hour / (tokens_per_s * 3600) * 1e6


def pareto_front(frame: pd.DataFrame, x: str, y: str, *, x_lower_is_better: bool) -> pd.Series:
    """True for rows no other row beats on both x and y (higher y is better)."""
    xs = frame[x].to_numpy(float) * (1 if x_lower_is_better else -1)  # lower is better after this
    ys = frame[y].to_numpy(float)
    front = []
    for i in range(len(frame)):
        if np.isnan(xs[i]) or np.isnan(ys[i]):
            front.append(False)
            continue
        dominated = (xs <= xs[i]) & (ys >= ys[i]) & ((xs < xs[i]) | (ys > ys[i]))
        front.append(not bool(np.nan_to_num(dominated, nan=False).any()))
    return pd.Series(front, index=frame.index)


class Chooser:
    """Picks the best variant of a set on one objective, with differences inside their
    paired interval as ties, broken by more bits, then less memory."""

    def __init__(self, book: dict, cfg: ReportConfig):
        self.book, self.alpha = book, cfg.stats.alpha

    def by_accuracy(self, frame: pd.DataFrame):
        return self._pick(self._accuracy_ties(frame))

    def by_accuracy_per_gb(self, frame: pd.DataFrame):
        if frame.empty:
            return None, []
        per_gb = frame.primary / frame.memory_gb
        leader = frame.loc[per_gb.idxmax()]
        tied = [i for i, row in frame.iterrows() if self._per_gb_tie(leader, row)]
        return self._pick(frame.loc[tied])

    def by_throughput(self, frame: pd.DataFrame):
        """Decode tokens/s: a variant ties with the fastest unless Welch's t-test on their
        timing repeats says it is slower (records without repeats: only equal values tie);
        accuracy then decides among the tied."""
        frame = frame.dropna(subset=["decode_tokens_per_s"])
        if frame.empty:
            return None, []
        leader = frame.loc[frame.decode_tokens_per_s.idxmax()]
        tied = [i for i, row in frame.iterrows() if self._speed_tie(leader, row)]
        return self._pick(self._accuracy_ties(frame.loc[tied]))

    def _speed_tie(self, leader, row) -> bool:
        if leader.variant == row.variant or row.decode_tokens_per_s == leader.decode_tokens_per_s:
            return True
        fast, slow = (_repeats(r) for r in (leader, row))
        if len(fast) < 2 or len(slow) < 2:
            return False
        p_value = scipy_stats.ttest_ind(fast, slow, equal_var=False).pvalue
        return not math.isnan(p_value) and p_value >= self.alpha  # nan: no spread and unequal means

    def by_measure(self, frame: pd.DataFrame, column: str, *, lower_is_better: bool):
        """A single measurement (memory): only equal values tie; accuracy then decides."""
        frame = frame.dropna(subset=[column])
        if frame.empty:
            return None, []
        best = frame[column].min() if lower_is_better else frame[column].max()
        return self._pick(self._accuracy_ties(frame[np.isclose(frame[column], best, rtol=0, atol=1e-12)]))

    def _accuracy_ties(self, frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.dropna(subset=["primary"])
        if frame.empty:
            return frame
        leader = frame.loc[frame.primary.idxmax()]
        return frame[[self._accuracy_tie(leader, row) for _, row in frame.iterrows()]]

    def _accuracy_tie(self, leader, row) -> bool:
        if leader.variant == row.variant:
            return True
        return self._inside(self._paired(leader.variant, row.variant), row.primary == leader.primary)

    def _per_gb_tie(self, leader, row) -> bool:
        if leader.variant == row.variant:
            return True
        reference, variant = self._paired(leader.variant, row.variant)
        return self._inside((reference / leader.memory_gb, variant / row.memory_gb),
                            math.isclose(leader.primary / leader.memory_gb, row.primary / row.memory_gb))

    def _inside(self, pairs, equal_without_pairs: bool) -> bool:
        reference, variant = pairs
        if not len(reference):
            return equal_without_pairs
        c = stats.compare(reference, variant, alpha=self.alpha)
        if math.isnan(c.ci_low_pp):  # identical per-sample values (no spread): equal only if no difference
            return c.delta_pp == 0
        return c.ci_low_pp <= 0 <= c.ci_high_pp

    def _paired(self, a: str, b: str) -> tuple[np.ndarray, np.ndarray]:
        first, second = self.book.get(a, {}), self.book.get(b, {})
        common = sorted(first.keys() & second.keys(), key=str)
        return np.array([first[k] for k in common]), np.array([second[k] for k in common])

    @staticmethod
    def _pick(tied: pd.DataFrame):
        if tied.empty:
            return None, []
        ordered = tied.assign(_memory=tied.memory_gb.fillna(math.inf)).sort_values(
            ["bits", "_memory", "label"], ascending=[False, True, True])
        best = ordered.iloc[0]
        return best, [f"{r.model} {r.label}" for r in ordered.iloc[1:].itertuples()]


def _repeats(row) -> list:
    repeats = row.get("decode_repeats")
    return [float(x) for x in repeats] if isinstance(repeats, (list, tuple, np.ndarray)) else []


def budget_matrix(deploy: pd.DataFrame, cfg: ReportConfig, book: dict) -> pd.DataFrame:
    """Per memory budget: the best variant that fits, with the quality floor."""
    rows = []
    floor = cfg.decisions.quality_floor
    chooser = Chooser(book, cfg)
    ok = _candidates(deploy, floor)
    for budget in sorted(cfg.decisions.memory_budgets_gb):
        fitting = deploy[deploy.memory_gb <= budget] if not deploy.empty else deploy
        fits = ok[ok.memory_gb <= budget]
        best, tied = chooser.by_accuracy(fits)
        if best is not None:
            rule = "; ".join(filter(None, [f"{len(fits)} of {len(fitting)} fitting variants have a tier shown <= "
                                           f"{floor}", _left_out(fitting)]))
        else:
            rule = "; ".join(filter(None, [f"nothing fits with a tier shown <= {floor}", _undecided(fitting)]))
        rows.append(_decision(f"<= {budget:g} GB", best, tied, f"most accurate; {TIE_BREAK}. {rule}"))
    return pd.DataFrame(rows)


def scenarios(deploy: pd.DataFrame, cfg: ReportConfig, book: dict) -> pd.DataFrame:
    floor = cfg.decisions.quality_floor
    chooser = Chooser(book, cfg)
    ok = _candidates(deploy, floor)
    scored = deploy[deploy.primary.notna()] if not deploy.empty else deploy
    fast = ok if cfg.decisions.min_accuracy is None else ok[_shown_at_least(ok, cfg)]
    floor_text = f"tier shown <= {floor}"
    if cfg.decisions.min_accuracy is not None:
        floor_text += f", accuracy shown >= {cfg.decisions.min_accuracy:.0%}"
    picks = [
        ("maximum quality", chooser.by_accuracy(scored), "highest accuracy, any tier"),
        ("best quality per GB", chooser.by_accuracy_per_gb(ok), f"accuracy / memory, {floor_text}"),
        ("maximum throughput", chooser.by_throughput(fast),
         f"decode tokens/s (slower only where the timing repeats show it), {floor_text}"),
        ("smallest memory", chooser.by_measure(ok, "memory_gb", lower_is_better=True), f"memory, {floor_text}"),
    ]
    rows = []
    for name, (best, tied), rule in picks:
        rule = f"{rule}; {TIE_BREAK}"
        if name != "maximum quality" and _undecided(deploy):
            rule += f"; {_undecided(deploy) if best is None else _left_out(deploy)}"
        rows.append(_decision(name, best, tied, rule))
    return pd.DataFrame(rows)


def _candidates(deploy: pd.DataFrame, floor: str) -> pd.DataFrame:
    if deploy.empty:
        return deploy
    keep = [tiers.is_viable(t, floor) for t in deploy.tier]
    return deploy[np.array(keep, dtype=bool) & deploy.primary.notna() & deploy.memory_gb.notna()]


def _shown_at_least(frame: pd.DataFrame, cfg: ReportConfig) -> np.ndarray:
    """Accuracy whose Wilson interval lies at or above decisions.min_accuracy."""
    if frame.empty:
        return np.array([], dtype=bool)
    correct = np.round(frame.primary * frame.n)
    low, _ = proportion_confint(correct, frame.n, alpha=cfg.stats.alpha, method="wilson")
    return np.asarray(low >= cfg.decisions.min_accuracy, dtype=bool)


def _undecided(frame: pd.DataFrame) -> str:
    """The variants whose inconclusive tier keeps them out, and what would decide them."""
    if frame.empty:
        return ""
    open_ = frame[frame.tier == INCONCLUSIVE]
    if open_.empty:
        return ""
    names = [f"{r.model} {r.label}" + (f" (about {r.pairs_to_decide:,.0f} pairs would decide)"
                                       if isinstance(r.pairs_to_decide, float) and math.isfinite(r.pairs_to_decide)
                                       else "") for r in open_.head(3).itertuples()]
    more = f" and {len(open_) - 3} more" if len(open_) > 3 else ""
    return f"{len(open_)} inconclusive: {', '.join(names)}{more}"


def _left_out(frame: pd.DataFrame) -> str:
    """Beside a pick: the variants that were not considered because their tier is open."""
    undecided = _undecided(frame)
    return f"left out as {undecided}" if undecided else ""


def _decision(name: str, best, tied: list[str], rule: str) -> dict:
    if best is None:
        return {"decision": name, "variant": None, "model": None, "label": None, "tied_with": None, "note": None,
                "rule": rule}
    keys = ("variant", "model", "size_b", "label", "method", "bits", "group", "primary", "delta_pp", "tier",
            "memory_gb", "memory_basis", "decode_tokens_per_s", "usd_per_1m_tokens")
    note = None
    if best.get("tier") == INCONCLUSIVE:
        note = "rests on an inconclusive tier" + (
            f" (about {best.pairs_to_decide:,.0f} pairs would decide)" if math.isfinite(best.pairs_to_decide) else "")
    return {"decision": name, **{k: best.get(k) for k in keys}, "tied_with": ", ".join(tied) or None, "note": note,
            "rule": rule}


def _memory(disk, peak, kind, cfg: ReportConfig) -> tuple[float, str]:
    basis = cfg.cost.memory_basis
    if basis == "peak" or (basis == "auto" and kind == "cuda_max_allocated" and peak):
        label = "CUDA peak" if kind == "cuda_max_allocated" else f"peak {kind or ''}".strip()
        return (peak / GIB if peak else math.nan), label
    return (disk * cfg.cost.disk_memory_factor / GIB if disk else math.nan), f"disk x {cfg.cost.disk_memory_factor:g}"
