"""Quality tiers, cliffs and the viability map: the rules that turn deltas into verdicts.

- Tier of a variant: from the worse of its accuracy and format-compliance deltas against
  its baseline, in points. Thresholds are inclusive (with the defaults, exactly -3.0 is
  negligible and -3.01 acceptable); deltas are rounded to 1e-9 first so that a count
  difference such as 47/100 - 50/100 lands exactly on -3.0.
- Cliff: walking one series (model x method x group) from the baseline down the bit
  widths, the first bit width that drops `cliff.tier_drop` tiers from the bit width above
  it, or whose delta falls below `cliff.below_pp` (default: the concerning threshold).
- Viability: tier no worse than `tiers.viable`. Per scheme (method x group) and bit width,
  the smallest model size from which every larger tested model is viable.
"""

from __future__ import annotations

import math
from itertools import pairwise
from typing import Optional

import pandas as pd

from configs.report_schema import TIERS, ReportConfig, TierConfig

BASELINE = "baseline"


def tier_of(delta_pp: Optional[float], tiers: TierConfig) -> Optional[str]:
    """The tier of a delta in points (<= 0 is a loss); None when there is no delta."""
    if delta_pp is None or math.isnan(delta_pp):
        return None
    delta = round(delta_pp, 9)
    if delta >= tiers.negligible:
        return "negligible"
    if delta >= tiers.acceptable:
        return "acceptable"
    if delta >= tiers.concerning:
        return "concerning"
    return "unacceptable"


def worse(*deltas_pp: Optional[float]) -> Optional[float]:
    """The worse (lower) of the deltas that exist."""
    present = [d for d in deltas_pp if d is not None and not math.isnan(d)]
    return min(present) if present else None


def tier_rank(tier: Optional[str]) -> int:
    return TIERS.index(tier) if tier in TIERS else len(TIERS)


def is_viable(tier: Optional[str], viable: str) -> bool:
    return tier is not None and tier_rank(tier) <= tier_rank(viable)


def worst_tier(tiers: list[Optional[str]]) -> Optional[str]:
    known = [t for t in tiers if t in TIERS]
    return max(known, key=tier_rank) if known else None


def cliffs(variants: pd.DataFrame, cfg: ReportConfig) -> pd.DataFrame:
    """One row per series (model x method x group): where its cliff is, if anywhere.

    `variants`: one row per variant with model, size_b, method, bits, group, label,
    is_baseline, delta_pp and tier (the variant-level verdict).
    """
    below = cfg.cliff.below_pp if cfg.cliff.below_pp is not None else cfg.tiers.concerning
    rows = []
    quantized = variants[~variants.is_baseline & variants.tier.notna()]
    for (model, method, group), series in quantized.groupby(["model", "method", "group"], dropna=False, sort=True):
        base = variants[(variants.model == model) & variants.is_baseline]
        chain = [(BASELINE, 0.0, "negligible", int(base.bits.iloc[0]) if len(base) else None)]
        steps = series.sort_values("bits", ascending=False).itertuples()
        chain += [(r.label, r.delta_pp, r.tier, int(r.bits)) for r in steps]
        row = {"model": model, "size_b": series.size_b.iloc[0], "method": method, "group": group,
               "last_ok": None, "last_ok_bits": None, "last_ok_delta_pp": None, "cliff": None, "cliff_bits": None,
               "cliff_delta_pp": None, "cliff_size_pp": None, "reason": f"no cliff down to {chain[-1][3]} bits"}
        for above, here in pairwise(chain):
            drop = tier_rank(here[2]) - tier_rank(above[2])
            reasons = []
            if drop >= cfg.cliff.tier_drop:
                reasons.append(f"drops {drop} tiers ({above[2]} -> {here[2]})")
            if round(here[1], 9) < below:
                reasons.append(f"delta {here[1]:+.1f} pp < {below:g} pp")
            if reasons:
                row.update(last_ok=above[0], last_ok_bits=above[3], last_ok_delta_pp=above[1], cliff=here[0],
                           cliff_bits=here[3], cliff_delta_pp=here[1], cliff_size_pp=above[1] - here[1],
                           reason="; ".join(reasons))
                break
        rows.append(row)
    return pd.DataFrame(rows)


def viability_thresholds(variants: pd.DataFrame, viable: str) -> pd.DataFrame:
    """Per scheme (method x group) and bit width: the smallest model size from which it is
    viable at every larger tested size ("all" when viable at every size tested)."""
    rows = []
    quantized = variants[~variants.is_baseline & variants.tier.notna() & variants.size_b.notna()]
    for (method, group, bits), cells in quantized.groupby(["method", "group", "bits"], dropna=False, sort=True):
        cells = cells.assign(ok=[is_viable(t, viable) for t in cells.tier])
        # One verdict per model: viable only if every variant of it is (float32 and bfloat16, say).
        models = cells.groupby(["size_b", "model"], sort=True).ok.all().reset_index()
        ok = list(models.ok)
        threshold = None
        for i in range(len(ok)):
            if all(ok[i:]):
                threshold = i
                break
        failing = [f"{m} ({t})" for m, t, good in zip(cells.model, cells.tier, cells.ok, strict=True) if not good]
        rows.append({
            "method": method, "group": group, "bits": int(bits), "sizes_tested": len(models),
            "smallest_viable_model": models.model.iloc[threshold] if threshold is not None else None,
            "smallest_viable_size_b": models.size_b.iloc[threshold] if threshold is not None else None,
            "viable_at_all_sizes": threshold == 0,
            "not_viable": ", ".join(failing),
        })
    columns = ["method", "group", "bits", "sizes_tested", "smallest_viable_model", "smallest_viable_size_b",
               "viable_at_all_sizes", "not_viable"]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values(["method", "group", "bits"], ascending=[True, True, False], na_position="first")
