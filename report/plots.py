"""The report's figures, drawn with matplotlib's object API (no pyplot state, no display).

Each function takes a report table and returns a `Plot` (PNG bytes plus its caption), or
None when the table has nothing to draw. The same PNG is written beside the Markdown and
embedded (base64) in the HTML.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from configs.report_schema import AT_FLOOR, INCONCLUSIVE, TIERS, ReportConfig
from report.collect import bits_text, nominal_level, size_label
from report.tables import group as group_text

TIER_COLOURS = {"negligible": "#1a9850", "acceptable": "#a6d96a", "concerning": "#fdae61",
                "unacceptable": "#d73027", INCONCLUSIVE: "#c2a5cf", AT_FLOOR: "#92c5de", None: "#e6e6e6"}
BEHAVIOUR_COLOURS = {"correct": "#1a9850", "wrong_answer": "#fdae61", "no_box": "#9e9e9e", "malformed_box": "#7b3294",
                     "max_tokens": "#2166ac", "repetition": "#d73027", "empty": "#000000"}
BEHAVIOUR_NAMES = {"correct": "correct", "wrong_answer": "wrong", "no_box": "no box", "malformed_box": "malformed",
                   "max_tokens": "runaway (max tokens)", "repetition": "repetition", "empty": "empty"}
MARKERS = "osD^vP*Xh<>p"


@dataclass
class Plot:
    name: str  # file stem
    title: str
    caption: str
    png: bytes


def viability_map(summary: pd.DataFrame, cfg: ReportConfig) -> Optional[Plot]:
    """Model size (rows) x scheme (columns: method and bit width, or GGUF level, ordered by
    bits per weight), coloured by tier, annotated with the delta."""
    if summary.empty:
        return None
    models = summary.drop_duplicates("model").sort_values(["size_b", "model"], na_position="last")
    columns = ["baseline"] + [scheme for scheme, _ in map_columns(summary)]
    names = ["baseline"] + [name for _, name in map_columns(summary)]
    fig = Figure(figsize=(max(6.0, 1.0 * len(columns) + 2.5), max(2.5, 0.55 * len(models) + 1.8)))
    ax = fig.add_subplot()
    for i, model in enumerate(models.model):
        for j, column in enumerate(columns):
            which = summary.is_baseline if column == "baseline" else summary.scheme == column
            cell = summary[(summary.model == model) & which]
            tier = cell.tier.iloc[0] if len(cell) else None
            ax.add_patch(_rect(j, i, TIER_COLOURS.get(tier, TIER_COLOURS[None]), hatch=tier == INCONCLUSIVE))
            if len(cell):
                ax.text(j, i, _cell_text(cell.iloc[0]), ha="center", va="center", fontsize=7)
    ax.set_xlim(-0.5, len(columns) - 0.5)
    ax.set_ylim(len(models) - 0.5, -0.5)
    ax.set_xticks(range(len(columns)), names, rotation=35, ha="right", fontsize=8)
    names = [f"{m} ({size_label(s)})" for m, s in zip(models.model, models.size_b, strict=True)]
    ax.set_yticks(range(len(models)), names, fontsize=8)
    ax.set_title("Viability map: the delta that sets the tier (pp) and its interval; * significant loss", fontsize=9)
    handles = [Patch(facecolor=TIER_COLOURS[t], edgecolor="white", hatch="//" if t == INCONCLUSIVE else None, label=t)
               for t in (*TIERS, INCONCLUSIVE, AT_FLOOR, None)]
    handles[-1].set_label("not run")
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)
    return Plot("viability_map", "Viability map", "Rows: models by size; columns: method and bit width (a GGUF "
                "level with its effective bits per weight; \"fallback\": tensors llama.cpp gave another type); colour: "
                "tier stated from the interval; hatched: inconclusive (never viable); blue: every task at the floor "
                "(baseline column: its accuracy).", _png(fig))


def map_columns(summary: pd.DataFrame) -> list[tuple[str, str]]:
    """The viability map's quantized columns, (scheme, its tick text): by method, then
    bits per weight (high first; a GGUF level by its mean over the models), then group."""
    quantized = summary[~summary.is_baseline]
    if quantized.empty:
        return []
    columns = quantized.groupby("scheme", sort=False).agg(
        method=("method", "first"), bits=("bits", "mean"), low=("bits", "min"), high=("bits", "max"),
        g=("group", lambda g: -1 if g.isna().all() else g.iloc[0]), level=("level", "first"),
        nominal=("weight_bits", "first")).reset_index()
    columns = columns.sort_values(["method", "bits", "g", "scheme"], ascending=[True, False, True, True])
    out = []
    for c in columns.itertuples():
        name = c.scheme
        if c.level != nominal_level(c.nominal):  # a level that is not a bit width: say its effective bits
            spread = bits_text(c.low) if c.low == c.high else f"{bits_text(c.low)}–{bits_text(c.high)}"
            name = f"{c.scheme} ({spread} bpw)"
        out.append((c.scheme, name))
    return out


def _cell_text(row) -> str:
    if row.is_baseline:
        return f"{100 * row.primary:.1f}%" + ("\nfloor" if row.tier == AT_FLOOR else "")
    if row.tier == AT_FLOOR:
        return "floor"
    if row.tier_delta_pp is None or math.isnan(row.tier_delta_pp):
        return ""
    mark = "*" if _significant_loss(row) else ""
    text = f"{row.tier_delta_pp:+.1f}{mark}"
    if row.tier == INCONCLUSIVE:
        text += f"\n[{row.tier_ci_low_pp:+.0f},{row.tier_ci_high_pp:+.0f}] ?"
    fallback = row.get("fallback") if hasattr(row, "get") else None
    if isinstance(fallback, str) and fallback:
        text += "\nfallback " + fallback.split(" tensors")[0].replace(" of ", "/")
    return text


def _significant_loss(row) -> bool:
    """The star beside the number the cell shows: that delta (accuracy's or format's,
    whichever set the tier) is a significant loss."""
    if row.tier_metric == "format":
        return bool(row.significant_format) and row.delta_format_pp < 0
    return bool(row.significant) and row.delta_pp < 0


def delta_curves(quality: pd.DataFrame, cfg: ReportConfig) -> Optional[Plot]:
    """Per method: delta vs bits with its paired CI, one line per model and group. The x
    axis is bits per weight, effective where the method records them (GGUF levels, each
    point named by its level), high bits on the left; the baseline is the zero line."""
    if quality.empty:
        return None
    rows = quality[(quality.scope == "all") & ~quality.is_baseline & quality.delta_pp.notna()]
    if rows.empty:
        return None
    methods = sorted(rows.method.unique())
    ncols = min(3, len(methods))
    nrows = math.ceil(len(methods) / ncols)
    fig = Figure(figsize=(4.2 * ncols + 1.5, 3.2 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
    for ax, method in zip(axes.flat, methods, strict=False):
        _tier_bands(ax, cfg)
        named = False
        for line in curve_lines(rows[rows.method == method]):
            err = np.array([line["y"] - line["low"], line["high"] - line["y"]])
            ax.errorbar(line["x"], line["y"], yerr=err, marker="o", capsize=3, label=line["name"])
            for x, y, level in zip(line["x"], line["y"], line["levels"], strict=True):
                if level:
                    named = True
                    ax.annotate(level, (x, y), fontsize=6, xytext=(2, 3), textcoords="offset points", rotation=30)
        ax.axhline(0, color="black", linewidth=0.8)
        low = min(rows.ci_low_pp.min(), rows.delta_pp.min(), cfg.tiers.concerning)
        high = max(rows.ci_high_pp.max(), rows.delta_pp.max(), 0)
        ax.set_ylim(low - 2, high + 2)
        widths = sorted(set(rows[rows.method == method].bits), reverse=True)
        if not named:  # nominal bit widths: one tick each
            ax.set_xticks(widths, [nominal_level(b) for b in widths])
        ax.set_xlim(max(widths) + 0.5, min(widths) - 0.5)
        ax.set_xlabel("bits per weight (effective)" if named else "bits")
        ax.set_title(method, fontsize=10)
        ax.legend(fontsize=7)
    for ax in axes.flat[len(methods):]:
        ax.set_visible(False)
    axes[0][0].set_ylabel(f"delta {cfg.primary_metric} (pp)")
    fig.tight_layout()
    return Plot("delta_curves", "Degradation by bit width", f"{cfg.primary_metric} delta vs baseline (the zero line) "
                f"with {cfg.stats.confidence:.0%} paired score intervals, by bits per weight (effective for GGUF "
                "levels, each named); bands: tiers.", _png(fig))


def curve_lines(rows: pd.DataFrame) -> list[dict]:
    """The lines `delta_curves` draws for one method: per model and group, its variants
    ordered by bits per weight (high first): x (bits), y (delta pp), the interval, and the
    level named beside a point where it is not a bit width (GGUF)."""
    lines = []
    for (model, group), line in rows.groupby(["model", "group"], dropna=False, sort=True):
        line = line.sort_values(["bits", "label"], ascending=[False, True])
        levels = [lvl if lvl != nominal_level(nominal) else "" for lvl, nominal in
                  zip(line.get("level", [""] * len(line)), line.get("weight_bits", line.bits), strict=True)]
        lines.append({"name": f"{model}" + ("" if pd.isna(group) else f" group {group_text(group)}"),
                      "model": model, "labels": list(line.label), "levels": levels,
                      "x": line.bits.to_numpy(float), "y": line.delta_pp.to_numpy(float),
                      "low": line.ci_low_pp.to_numpy(float), "high": line.ci_high_pp.to_numpy(float)})
    return lines


def behaviour_bars(behaviour: pd.DataFrame) -> Optional[Plot]:
    """Stacked bars: the share of each output behaviour per variant (boxed tasks)."""
    if behaviour.empty:
        return None
    labels = [f"{model} {label}" for model, label in zip(behaviour.model, behaviour.label, strict=True)]
    fig = Figure(figsize=(8.5, 0.32 * len(labels) + 1.6))
    ax = fig.add_subplot()
    left = np.zeros(len(labels))
    for name, colour in BEHAVIOUR_COLOURS.items():
        values = behaviour[name].to_numpy(float) * 100
        ax.barh(range(len(labels)), values, left=left, color=colour, label=BEHAVIOUR_NAMES[name])
        left += values
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of samples")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)
    caption = "What each variant's answers were, over its boxed-answer samples."
    return Plot("behaviour", "Output behaviour", caption, _png(fig))


def pareto(deploy: pd.DataFrame, x: str, front: str, xlabel: str, name: str, title: str) -> Optional[Plot]:
    """Accuracy vs a cost axis; the Pareto front is joined by a line and labelled."""
    if deploy.empty:
        return None
    points = deploy.dropna(subset=[x, "primary"])
    if points.empty:
        return None
    fig = Figure(figsize=(7.5, 4.8))
    ax = fig.add_subplot()
    methods = sorted(points.method.unique())
    for model, part in points.groupby("model", sort=False):
        colour = None
        for method, dots in part.groupby("method"):
            drawn = ax.scatter(dots[x], 100 * dots.primary, marker=MARKERS[methods.index(method) % len(MARKERS)],
                               color=colour, label=f"{model} / {method}", s=36)
            colour = drawn.get_facecolor()[0]
    best = points[points[front]].sort_values(x)
    ax.plot(best[x], 100 * best.primary, color="black", linewidth=0.8, linestyle="--", label="Pareto front")
    for row in best.itertuples():
        ax.annotate(f"{row.model} {row.label}", (getattr(row, x), 100 * row.primary), fontsize=7,
                    xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy (%)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=7, frameon=False)
    return Plot(name, title, f"Every variant; dashed: the Pareto front ({title.lower()}).", _png(fig))


def _tier_bands(ax, cfg: ReportConfig) -> None:
    t = cfg.tiers
    bounds = [(t.negligible, 100, "negligible"), (t.acceptable, t.negligible, "acceptable"),
              (t.concerning, t.acceptable, "concerning"), (-100, t.concerning, "unacceptable")]
    for low, high, tier in bounds:
        ax.axhspan(low, high, color=TIER_COLOURS[tier], alpha=0.12, linewidth=0)


def _rect(x: float, y: float, colour: str, *, hatch: bool = False):
    from matplotlib.patches import Rectangle

    return Rectangle((x - 0.5, y - 0.5), 1, 1, facecolor=colour, edgecolor="white", linewidth=1.5,
                     hatch="//" if hatch else None)


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()
