"""Cost and deployment: what each variant costs to run, and which one to pick.

- Deployment table: size on disk, peak memory, decode tokens/s, time to first token and
  latency per prompt at `cost.batch_size`, and cost per 1M generated tokens:
  usd_per_gpu_hour / (decode tokens/s x 3600) x 1e6.
- Memory that counts against a budget (`cost.memory_basis`): the CUDA peak when the
  speed record was measured on CUDA; otherwise (CPU runs report process RSS, which says
  nothing about a GPU) the size on disk x `cost.disk_memory_factor`. The basis is shown.
- Pareto fronts: accuracy vs memory, accuracy vs throughput.
- Decision matrix: per memory budget, the most accurate variant that fits with a tier no
  worse than `decisions.quality_floor` (ties: less memory, then more tokens/s); per
  scenario: maximum quality (no floor; a gain over the baseline that is not significant
  counts as a tie with the baseline; ties: more bits, then less memory), best quality per
  GB, maximum throughput with the quality floor (and `decisions.min_accuracy`), smallest
  memory with the floor.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from configs.report_schema import ReportConfig
from report import tiers

GIB = 2**30


def deployment_rows(summary: pd.DataFrame, speed: dict, cfg: ReportConfig) -> pd.DataFrame:
    """`summary`: one row per variant (quality_summary); `speed`: variant key -> speed dict."""
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
        rows.append({
            "variant": row.variant, "model": row.model, "size_b": row.size_b, "method": row.method, "bits": row.bits,
            "group": row.group, "label": row.label, "is_baseline": row.is_baseline,
            "primary": row.primary, "delta_pp": row.delta_pp, "tier": row.tier, "viable": row.viable,
            "significant": bool(getattr(row, "significant", False)),
            "size_on_disk_gb": disk / GIB if disk else math.nan,
            "peak_memory_gb": peak / GIB if peak else math.nan, "peak_memory_kind": kind,
            "memory_gb": memory, "memory_basis": basis, "device": measured.get("device"),
            "batch_size": int(batch) if batch else None, "decode_tokens_per_s": decode,
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


def budget_matrix(deploy: pd.DataFrame, cfg: ReportConfig) -> pd.DataFrame:
    """Per memory budget: the best variant that fits, with the quality floor."""
    rows = []
    floor = cfg.decisions.quality_floor
    ok = _candidates(deploy, floor)
    for budget in sorted(cfg.decisions.memory_budgets_gb):
        fits = ok[ok.memory_gb <= budget]
        fitting_any = int((deploy.memory_gb <= budget).sum()) if not deploy.empty else 0
        best = _best(fits, by=[("primary", False), ("memory_gb", True), ("decode_tokens_per_s", False)])
        rows.append(_decision(f"<= {budget:g} GB", best, f"{len(fits)} of {fitting_any} fitting variants meet the "
                              f"floor ({floor})" if best is not None else f"nothing fits with tier <= {floor}"))
    return pd.DataFrame(rows)


def scenarios(deploy: pd.DataFrame, cfg: ReportConfig) -> pd.DataFrame:
    floor = cfg.decisions.quality_floor
    ok = _candidates(deploy, floor)
    scored = deploy[deploy.primary.notna()] if not deploy.empty else deploy
    per_gb = ok.assign(per_gb=ok.primary / ok.memory_gb)
    fast = ok if cfg.decisions.min_accuracy is None else ok[ok.primary >= cfg.decisions.min_accuracy]
    floor_text = f"tier <= {floor}"
    if cfg.decisions.min_accuracy is not None:
        floor_text += f", accuracy >= {cfg.decisions.min_accuracy:.0%}"
    picks = [
        ("maximum quality", _best(scored.assign(credited=credited_accuracy(scored)),
                                  by=[("credited", False), ("bits", False), ("memory_gb", True)]),
         "highest accuracy, any tier; a gain over the baseline that is not significant counts as a tie with it "
         "(ties: more bits, then less memory)"),
        ("best quality per GB", _best(per_gb, by=[("per_gb", False), ("primary", False)]),
         f"accuracy / memory, {floor_text}"),
        ("maximum throughput", _best(fast, by=[("decode_tokens_per_s", False), ("primary", False)]),
         f"decode tokens/s, {floor_text}"),
        ("smallest memory", _best(ok, by=[("memory_gb", True), ("primary", False)]), f"memory, {floor_text}"),
    ]
    return pd.DataFrame([_decision(name, best, rule) for name, best, rule in picks])


def credited_accuracy(frame: pd.DataFrame) -> pd.Series:
    """Accuracy, with a variant's gain over its baseline credited only when significant:
    a quantized model that beats its baseline by noise is not the most accurate choice."""
    if frame.empty:
        return frame.primary
    noise_gain = ~frame.is_baseline.astype(bool) & (frame.delta_pp > 0) & ~frame.significant.astype(bool)
    # rounded: 23/50 credited down by 4 pp must tie 21/50 exactly, not exceed it by a float's last bit
    return frame.primary.where(~noise_gain, frame.primary - frame.delta_pp / 100).round(9)


def _candidates(deploy: pd.DataFrame, floor: str) -> pd.DataFrame:
    if deploy.empty:
        return deploy
    keep = [tiers.is_viable(t, floor) for t in deploy.tier]
    return deploy[np.array(keep, dtype=bool) & deploy.primary.notna() & deploy.memory_gb.notna()]


def _best(frame: pd.DataFrame, by: list[tuple[str, bool]]):
    frame = frame.dropna(subset=[by[0][0]])
    if frame.empty:
        return None
    columns = [c for c, _ in by] + ["label"]
    ordered = frame.sort_values(columns, ascending=[a for _, a in by] + [True], na_position="last")
    return ordered.iloc[0]


def _decision(name: str, best, rule: str) -> dict:
    if best is None:
        return {"decision": name, "variant": None, "model": None, "label": None, "rule": rule}
    keys = ("variant", "model", "size_b", "label", "method", "bits", "group", "primary", "delta_pp", "tier",
            "memory_gb", "memory_basis", "decode_tokens_per_s", "usd_per_1m_tokens")
    return {"decision": name, **{k: best.get(k) for k in keys}, "rule": rule}


def _memory(disk, peak, kind, cfg: ReportConfig) -> tuple[float, str]:
    basis = cfg.cost.memory_basis
    if basis == "peak" or (basis == "auto" and kind == "cuda_max_allocated" and peak):
        label = "CUDA peak" if kind == "cuda_max_allocated" else f"peak {kind or ''}".strip()
        return (peak / GIB if peak else math.nan), label
    return (disk * cfg.cost.disk_memory_factor / GIB if disk else math.nan), f"disk x {cfg.cost.disk_memory_factor:g}"
