"""The report recipe: results store -> tables -> plots -> HTML, Markdown, CSV (+ the gate).

Fixed phases, top-down: collect the records, check every task's floor, compare every
variant with its baseline, its next higher bit width and the other methods at its bit
width, turn the evidence into tiers, cliffs and the viability map, price the variants,
then write. The pipeline's suspects (a record's own gate, a baseline at its floor with
well-formed answers, a model all at the floor) go to the warnings and the gate, and the
key findings are computed again without their records. No model is loaded at any point.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pandas as pd

from configs.errors import ConfigError
from configs.report_schema import ReportConfig
from report import decisions, floors, gate, methods, plots, provenance, quality, tables, tiers
from report.collect import Collection, collect
from report.findings import findings
from report.render import Content, Section, write_csv, write_html, write_markdown


@dataclass
class ReportPaths:
    output_dir: Path
    html: Optional[Path] = None
    markdown: Optional[Path] = None
    plots: list[Path] = field(default_factory=list)
    tables: dict[str, Path] = field(default_factory=dict)
    gate: gate.GateResult = field(default_factory=lambda: gate.GateResult(enabled=False))


@dataclass
class Analysis:
    """Every table of the report, before formatting (see the modules for each)."""

    collection: Collection
    floors: dict  # (model, task) -> floors.FloorCheck
    by_task: pd.DataFrame  # quality per variant and scope (tasks and "all")
    summary: pd.DataFrame  # one row per variant, its verdict
    behaviour: pd.DataFrame
    cliffs: pd.DataFrame
    thresholds: pd.DataFrame  # viability: smallest size per method x group x bits
    deploy: pd.DataFrame
    budgets: pd.DataFrame
    scenarios: pd.DataFrame
    method_pairs: pd.DataFrame
    best_methods: pd.DataFrame
    suspects: list[provenance.Suspect] = field(default_factory=list)
    gate: gate.GateResult = field(default_factory=lambda: gate.GateResult(enabled=False))
    trusted: Optional["Analysis"] = None  # the same without the suspect records: what the key findings state
    left_out: int = 0  # suspect records the trusted analysis leaves out


def analyse(cfg: ReportConfig) -> Analysis:
    cfg.validate()
    collection = collect(cfg)
    a = _tables(collection, cfg)
    if a.by_task.empty:
        raise ConfigError(f"no accuracy records with samples in {cfg.results_dir} (after filters); "
                          "evaluate some tasks with python -m evaluate run first")
    a.suspects = provenance.record_suspects(collection) + floors.suspects(collection, a.floors, cfg)
    a.gate = gate.check(a.by_task, [s.line for s in a.suspects], cfg.gate)
    doubtful = set().union(*(s.records for s in a.suspects))
    a.left_out = len(doubtful & set(collection.quality))
    trusted = collection.without(doubtful) if doubtful else collection
    a.trusted = a if not doubtful else (_tables(trusted, cfg) if trusted.quality else None)
    return a


def _tables(collection: Collection, cfg: ReportConfig) -> Analysis:
    checks = floors.floor_checks(collection, cfg)
    by_task = quality.quality_rows(collection, cfg, checks)
    if by_task.empty:
        return Analysis(collection, checks, *[pd.DataFrame()] * 10)
    summary = quality.variant_summary(by_task, collection, cfg)
    book = {key: collection.scores_by_sample(key, cfg.primary_metric) for key in collection.variants}
    deploy = decisions.deployment_rows(summary, {k: e.record.get("speed") for k, e in collection.speed.items()},
                                       cfg, book)
    pairs = methods.method_pairs(collection, checks, cfg)
    return Analysis(
        collection=collection, floors=checks, by_task=by_task, summary=summary,
        behaviour=quality.behaviour_rows(collection), cliffs=tiers.cliffs(summary, cfg),
        thresholds=tiers.viability_thresholds(summary, cfg.tiers.viable), deploy=deploy,
        budgets=decisions.budget_matrix(deploy, cfg, book), scenarios=decisions.scenarios(deploy, cfg, book),
        method_pairs=pairs, best_methods=methods.best_methods(pairs, cfg),
    )


def build_report(cfg: ReportConfig) -> ReportPaths:
    a = analyse(cfg)
    content = Content(
        title=cfg.title,
        findings=findings(a, cfg),
        warnings=tables.plain_table(provenance.warnings_table(a.collection, a.suspects), "warnings", "Warnings"),
        gate=a.gate.message(),
        gate_passed=a.gate.passed,
        sections=_sections(cfg, a, draw="html" in cfg.formats or "markdown" in cfg.formats),
    )
    out = Path(cfg.output_dir) if cfg.output_dir else Path(cfg.results_dir) / "report"
    paths = ReportPaths(output_dir=out, gate=a.gate)
    if "html" in cfg.formats:
        paths.html = write_html(content, out / "report.html")
    if "markdown" in cfg.formats:
        paths.markdown = write_markdown(content, out / "report.md", out / "plots")
        paths.plots = [out / "plots" / f"{p.name}.png" for s in content.sections for p in s.plots]
    if "csv" in cfg.formats:
        paths.tables = write_csv(content, out / "tables")
    return paths


def _sections(cfg: ReportConfig, a: Analysis, *, draw: bool) -> list[Section]:
    def drawn(*figures) -> list:  # plots take seconds: drawn only when a format shows them
        return [f for f in (figure() for figure in figures) if f is not None] if draw else []

    budget_note = ", ".join(f"{b:g}" for b in sorted(cfg.decisions.memory_budgets_gb))
    prov = provenance.provenance(a.collection, cfg)
    return [
        Section("viability", "Viability map", "Which method and bit width still works at which model size.",
                drawn(lambda: plots.viability_map(a.summary, cfg)),
                [tables.viability_table(a.thresholds, cfg), tables.cliffs_table(a.cliffs)]),
        Section("quality", "Quality against the baseline", "", drawn(lambda: plots.delta_curves(a.by_task, cfg)),
                [tables.variants_table(a.summary, cfg), tables.tasks_table(a.by_task, cfg),
                 tables.floors_table(a.floors, cfg)]),
        Section("methods", "Methods against each other", "At the same model, bits and group: does one method keep "
                "more than another?", [], [tables.best_methods_table(a.best_methods),
                                           tables.method_pairs_table(a.method_pairs, cfg)]),
        Section("behaviour", "Output behaviour", "How answers fail: wrong, unboxed, malformed, runaway or repetitive.",
                drawn(lambda: plots.behaviour_bars(a.behaviour)), [tables.behaviour_table(a.behaviour)]),
        Section("cost", "Cost and deployment", "",
                drawn(lambda: plots.pareto(a.deploy, "memory_gb", "pareto_memory", "memory (GB)", "pareto_memory",
                                           "Accuracy vs memory"),
                      lambda: plots.pareto(a.deploy, "decode_tokens_per_s", "pareto_throughput", "decode tokens/s",
                                           "pareto_throughput", "Accuracy vs throughput")),
                [tables.deployment_table(a.deploy, cfg),
                 tables.decision_table(a.budgets, "decisions_budget", f"Best variant per memory budget "
                                       f"({budget_note} GB), tier {cfg.decisions.quality_floor} or better"),
                 tables.decision_table(a.scenarios, "decisions_scenario", "Best variant per scenario")]),
        Section("provenance", "Provenance", "What produced these numbers.", [],
                [tables.plain_table(frame, f"provenance_{name}", name.capitalize()) for name, frame in prov.items()]),
    ]
