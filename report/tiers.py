"""Quality tiers, cliffs and the viability map: the rules that turn deltas into verdicts.

- Bands: with the defaults, negligible is delta >= -3 pp, acceptable [-5, -3), concerning
  [-10, -5), unacceptable below -10 (the TR125 scheme; inclusive lower thresholds; deltas
  are rounded to 1e-9 first so that 47/100 - 50/100 lands exactly on -3.0).
- Tier of one delta (accuracy, or format compliance): the band that holds its whole
  1 - alpha interval (not adjusted for multiplicity: each bound is a one-sided score test
  at alpha / 2, so "negligible" is a non-inferiority test at -3 pp). A loss tier (below
  negligible) asserts a loss, so the loss itself must also be significant after the
  scope's correction (McNemar; accuracy and format deltas and the steps to the next
  higher bit width are one family). Otherwise "inconclusive", with the pairs that would
  decide it.
- Tier of a variant: the worse of its deltas' tiers, stated when their intervals leave
  only one (a delta stated unacceptable decides alone; so does a stated concerning one
  beside a format interval that cannot reach below concerning). `judge` decides tier and
  verdict text together, so they cannot contradict.
- Cliff: walking one series (model x method x group) from the baseline down the bit
  widths (effective bits per weight where recorded: GGUF levels), the first bit width with a stated tier that drops `cliff.tier_drop` tiers from
  the last stated tier above it, or whose interval lies below `cliff.below_pp` (default:
  the concerning threshold). Inconclusive steps are named, never counted as good.
- Viability: a stated tier no worse than `tiers.viable`. Per scheme (method x group) and
  bit width (a GGUF level: its effective bits differ a little between models), the smallest model size from which every larger tested model is viable;
  inconclusive and at-floor models are undetermined, never viable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import pandas as pd

from configs.report_schema import AT_FLOOR, INCONCLUSIVE, TIERS, ReportConfig, TierConfig
from report import stats
from report.collect import nominal_level, step_text

BASELINE = "baseline"


@dataclass(frozen=True)
class Band:
    tier: str
    low: float  # inclusive, points; -inf for unacceptable
    high: float  # exclusive; +inf for negligible

    def holds(self, low_pp: float, high_pp: float) -> bool:
        return round(low_pp, 9) >= self.low and round(high_pp, 9) < self.high


def bands(t: TierConfig) -> list[Band]:
    edges = [math.inf, t.negligible, t.acceptable, t.concerning, -math.inf]
    return [Band(tier, low, high) for tier, high, low in zip(TIERS, edges[:-1], edges[1:], strict=True)]


def tier_of(delta_pp: Optional[float], tiers: TierConfig) -> Optional[str]:
    """The band a point delta falls in (<= 0 is a loss); None when there is no delta."""
    if delta_pp is None or math.isnan(delta_pp):
        return None
    return band_of(delta_pp, tiers).tier


def band_of(delta_pp: float, tiers: TierConfig) -> Band:
    delta = round(delta_pp, 9)
    return next(b for b in bands(tiers) if b.low <= delta < b.high)


def bands_spanned(low_pp: float, high_pp: float, tiers: TierConfig) -> list[str]:
    """The tiers an interval touches, best first."""
    return [b.tier for b in bands(tiers) if round(high_pp, 9) >= b.low and round(low_pp, 9) < b.high]


@dataclass(frozen=True)
class Evidence:
    """One delta that sets the tier: its paired comparison and its corrected test of change."""

    metric: str  # "accuracy", "format", ...
    comparison: stats.PairedComparison
    p_change: float  # McNemar (any change), after the scope's correction

    @property
    def delta_pp(self) -> float:
        return self.comparison.delta_pp

    def interval(self) -> str:
        return f"[{self.comparison.ci_low_pp:+.1f}, {self.comparison.ci_high_pp:+.1f}]"


@dataclass(frozen=True)
class Judgement:
    tier: Optional[str]
    verdict: str
    metric: Optional[str] = None  # the delta that set the tier
    delta_pp: float = math.nan
    ci_low_pp: float = math.nan
    ci_high_pp: float = math.nan
    pairs_to_decide: float = math.nan  # inconclusive: pairs with which it would be decided (80% power)


def judge(evidence: list[Evidence], cfg: ReportConfig, family_size: int) -> Judgement:
    """The tier of a variant and the verdict that explains it, from its deltas' evidence.

    Each delta allows a range of tiers (one when stated); the variant's tier is the worse
    of its deltas', so it is stated when the worst tier one delta is sure of is the worst
    any other may reach (an accuracy surely concerning and a format between negligible and
    concerning make a concerning variant)."""
    present = [e for e in evidence if e.comparison.n]
    if not present:
        return Judgement(None, "no paired test")
    ranges = [_possible(e, cfg.tiers, cfg.stats.alpha) for e in present]
    surely, at_worst = max(low for low, _ in ranges), max(high for _, high in ranges)
    if surely == at_worst:
        tier = TIERS[surely]
        decided = min((e for e, r in zip(present, ranges, strict=True) if r == (surely, surely)),
                      key=lambda e: e.comparison.ci_low_pp)
    else:
        tier = INCONCLUSIVE
        decided = min((e for e, r in zip(present, ranges, strict=True) if r[1] == at_worst and r[0] != r[1]),
                      key=lambda e: e.comparison.ci_low_pp)
    pairs = _pairs_to_decide(decided, cfg, family_size) if tier == INCONCLUSIVE else math.nan
    verdict = _verdict(tier, decided, present, cfg, pairs)
    c = decided.comparison
    return Judgement(tier, verdict, decided.metric, c.delta_pp, c.ci_low_pp, c.ci_high_pp, pairs)


def _possible(e: Evidence, t: TierConfig, alpha: float) -> tuple[int, int]:
    """The best and worst tier (ranks) the evidence of one delta allows."""
    spanned = bands_spanned(e.comparison.ci_low_pp, e.comparison.ci_high_pp, t)
    if not spanned:  # no interval (a single non-binary pair): any tier is possible
        return 0, len(TIERS) - 1
    best, worst = tier_rank(spanned[0]), tier_rank(spanned[-1])
    if best > 0 and not e.p_change < alpha:
        best = 0  # a loss tier asserts a loss: without a significant loss, no loss is shown either
    return best, worst


def _pairs_to_decide(e: Evidence, cfg: ReportConfig, family_size: int) -> float:
    """Pairs with which a difference like this one would be placed in its band with the
    configured power: each edge of the band at alpha (the interval's level), and for a loss
    band zero at alpha / family size (Bonferroni: enough for any stepwise correction)."""
    band = band_of(e.delta_pp, cfg.tiers)
    s = cfg.stats
    checks = [(b, s.alpha) for b in (band.low, band.high) if math.isfinite(b)]
    if band.tier != "negligible":
        checks.append((0.0, s.alpha / max(family_size, 1) if s.correction != "none" else s.alpha))
    needed = [stats.pairs_to_decide(e.comparison, b, alpha=level, power=s.power) for b, level in checks]
    return float(math.ceil(max(needed))) if all(math.isfinite(n) for n in needed) else math.inf


def _verdict(tier: str, decided: Evidence, evidence: list[Evidence], cfg: ReportConfig, pairs: float) -> str:
    t = cfg.tiers
    changes = [text for e in evidence if (text := _change(e, cfg.stats.alpha))]
    if tier == "negligible":
        intervals = "; ".join(f"{e.metric} {e.interval()}" for e in evidence)
        return "; ".join([f"negligible: no loss of {-t.negligible:g} pp or more ({intervals})", *changes])
    if tier in ("acceptable", "concerning", "unacceptable"):
        band = next(b for b in bands(t) if b.tier == tier)
        size = (f"more than {-band.high:g} pp" if tier == "unacceptable"
                else f"{-band.high:g} to {-band.low:g} pp")
        return f"{tier}: a significant {decided.metric} loss of {size} {decided.interval()}"
    spanned = bands_spanned(decided.comparison.ci_low_pp, decided.comparison.ci_high_pp, t)
    if not spanned:
        why = f"{decided.metric} has no interval (n={decided.comparison.n})"
    elif len(spanned) > 1:
        why = f"{decided.metric} {decided.interval()} spans {spanned[0]} to {spanned[-1]}"
    else:
        why = (f"{decided.metric} {decided.interval()} lies in {spanned[0]}, but the loss is not significant after "
               f"{cfg.stats.correction} correction (p {decided.p_change:.3f})")
    decide = (f"about {pairs:,.0f} pairs would decide (now {decided.comparison.n:,})" if math.isfinite(pairs)
              else "no sample size decides it: the estimate sits on a tier boundary")
    return "; ".join([f"inconclusive: {why}", *changes, decide])


def _change(e: Evidence, alpha: float) -> str:
    if not e.p_change < alpha:
        return ""
    return f"a significant {e.metric} {'loss' if e.delta_pp < 0 else 'gain'}"


def worst(judged: list[tuple[Optional[str], object]]) -> Optional[tuple[Optional[str], object]]:
    """The (tier, payload) that decides a worst-of: unacceptable beats everything (nothing is
    worse), then an inconclusive one (it may be worse), then the worst stated tier."""
    known = [j for j in judged if j[0] in (*TIERS, INCONCLUSIVE)]
    if not known:
        return None
    for tier in ("unacceptable", INCONCLUSIVE):
        hit = [j for j in known if j[0] == tier]
        if hit:
            return hit[0]
    return max(known, key=lambda j: tier_rank(j[0]))


def tier_rank(tier: Optional[str]) -> int:
    return TIERS.index(tier) if tier in TIERS else len(TIERS)


def is_viable(tier: Optional[str], viable: str) -> bool:
    """Only a stated tier can be viable: inconclusive and at-floor never are."""
    return tier in TIERS and tier_rank(tier) <= tier_rank(viable)


def is_undetermined(tier: Optional[str]) -> bool:
    return tier in (INCONCLUSIVE, AT_FLOOR)


def cliffs(variants: pd.DataFrame, cfg: ReportConfig) -> pd.DataFrame:
    """One row per series (model x method x group): where its cliff is, if anywhere.

    `variants`: one row per variant with model, size_b, method, bits, level, group, label,
    is_baseline, tier, tier_metric, tier_delta_pp and tier_ci_high_pp (its verdict).
    """
    variants = _with_levels(variants)
    below = cfg.cliff.below_pp if cfg.cliff.below_pp is not None else cfg.tiers.concerning
    rows = []
    quantized = variants[~variants.is_baseline & variants.tier.notna()]
    for (model, method, group), series in quantized.groupby(["model", "method", "group"], dropna=False, sort=True):
        base = variants[(variants.model == model) & variants.is_baseline]
        above = _Step(BASELINE, base.bits.iloc[0] if len(base) else None, "negligible", "", 0.0, 0.0, BASELINE)
        row = {"model": model, "size_b": series.size_b.iloc[0], "method": method, "group": group,
               "last_ok": None, "last_ok_bits": None, "last_ok_delta_pp": None, "cliff": None, "cliff_bits": None,
               "cliff_level": None, "cliff_metric": None, "cliff_delta_pp": None, "cliff_ci_high_pp": None,
               "cliff_size_pp": None}
        undetermined = []
        for r in series.sort_values(["bits", "label"], ascending=[False, True]).itertuples():
            here = _Step(r.label, r.bits, r.tier, r.tier_metric, r.tier_delta_pp, r.tier_ci_high_pp, r.level)
            if here.tier not in TIERS:
                undetermined.append(f"{here.level} {here.tier}")
                continue
            reasons = _cliff_reasons(above, here, below, cfg.cliff.tier_drop)
            if reasons:
                if undetermined:
                    reasons.append(f"undetermined in between: {', '.join(undetermined)}")
                row.update(last_ok=above.label, last_ok_bits=above.bits, last_ok_delta_pp=above.delta_pp,
                           cliff=here.label, cliff_bits=here.bits, cliff_level=here.level, cliff_metric=here.metric,
                           cliff_delta_pp=here.delta_pp, cliff_ci_high_pp=here.ci_high_pp,
                           cliff_size_pp=above.delta_pp - here.delta_pp, reason="; ".join(reasons))
                break
            above = here
        else:
            lowest = series.loc[series.bits.idxmin()]
            row["reason"] = f"no cliff shown down to {step_text(lowest.level, lowest.bits)}" + (
                f"; undetermined: {', '.join(undetermined)}" if undetermined else "")
        rows.append(row)
    return pd.DataFrame(rows)


def _with_levels(variants: pd.DataFrame) -> pd.DataFrame:
    """`variants` with a level per row (frames built without one: each bit width's own)."""
    if "level" in variants:
        return variants
    return variants.assign(level=[nominal_level(b) for b in variants.bits])


@dataclass(frozen=True)
class _Step:
    label: str
    bits: Optional[float]
    tier: str
    metric: str
    delta_pp: float
    ci_high_pp: float
    level: str


def _cliff_reasons(above: _Step, here: _Step, below: float, tier_drop: int) -> list[str]:
    reasons = []
    drop = tier_rank(here.tier) - tier_rank(above.tier)
    if drop >= tier_drop:
        reasons.append(f"drops {drop} tiers ({above.tier} -> {here.tier})")
    if round(here.ci_high_pp, 9) < below:
        reasons.append(f"{here.metric} interval below {below:g} pp (upper bound {here.ci_high_pp:+.1f})")
    return reasons


def viability_thresholds(variants: pd.DataFrame, viable: str) -> pd.DataFrame:
    """Per scheme (method x group) and step (bit width, or GGUF level: its `bits` is the
    mean effective bits per weight over the models): the smallest model size from which it
    is viable at every larger tested size ("all" when viable at every size tested)."""
    rows = []
    variants = _with_levels(variants)
    quantized = variants[~variants.is_baseline & variants.tier.notna() & variants.size_b.notna()]
    for (method, group, level), cells in quantized.groupby(["method", "group", "level"], dropna=False, sort=True):
        cells = cells.assign(ok=[is_viable(t, viable) for t in cells.tier],
                             open=[is_undetermined(t) for t in cells.tier])
        # One verdict per model: viable only if every variant of it is (float32 and bfloat16, say).
        models = cells.groupby(["size_b", "model"], sort=True).agg(ok=("ok", "all"), open=("open", "any")).reset_index()
        ok = list(models.ok)
        threshold = next((i for i in range(len(ok)) if all(ok[i:])), None)
        named = zip(cells.model, cells.tier, cells.ok, cells.open, strict=True)
        failing = [f"{m} ({t})" for m, t, good, undecided in named if not good and not undecided]
        undetermined = [f"{m} ({t})" for m, t, o in zip(cells.model, cells.tier, cells.open, strict=True) if o]
        largest_open = bool(models.open.iloc[-1]) and not bool(models.ok.iloc[-1])
        bits = float(cells.bits.mean())
        rows.append({
            "method": method, "group": group, "level": level, "bits": int(bits) if bits.is_integer() else round(bits, 4),
            "sizes_tested": len(models),
            "smallest_viable_model": models.model.iloc[threshold] if threshold is not None else None,
            "smallest_viable_size_b": models.size_b.iloc[threshold] if threshold is not None else None,
            "viable_at_all_sizes": threshold == 0,
            "largest_undetermined": threshold is None and largest_open,
            "not_viable": ", ".join(failing), "undetermined": ", ".join(undetermined),
        })
    columns = ["method", "group", "level", "bits", "sizes_tested", "smallest_viable_model", "smallest_viable_size_b",
               "viable_at_all_sizes", "largest_undetermined", "not_viable", "undetermined"]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values(["method", "group", "bits", "level"], ascending=[True, True, False, True],
                             na_position="first")
