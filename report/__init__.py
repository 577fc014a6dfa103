"""The method comparison report: `python -m evaluate report` (or `python -m report`).

For a model of a given size, which method and bit width still works, how sure are we,
and what does it cost? Built from the results store alone (never a model):

    collect.py     records -> variants, paired samples (one record per variant x task)
    stats.py       paired bootstrap CI, McNemar, multiple-comparison correction, MDE
    quality.py     the quality tables (per task and pooled) and output behaviour
    tiers.py       tiers, cliffs, viability thresholds
    decisions.py   cost, Pareto fronts, decision matrix per memory budget and scenario
    gate.py        the CI gate (gate.min_recovery)
    provenance.py  versions, hardware, git, calibration, sample counts; warnings
    findings.py    the opening bullets
    plots.py, tables.py, render.py, templates/   figures, formatted tables, HTML/Markdown/CSV
    build.py       build_report(cfg) -> ReportPaths;  cli.py: main(argv) -> exit code
"""
