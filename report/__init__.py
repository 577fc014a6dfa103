"""The method comparison report: `python -m evaluate report` (or `python -m report`).

For a model of a given size, which method and bit width still works, how sure are we,
and what does it cost? Built from the results store alone (never a model); the rules
that turn numbers into verdicts are in docs/verdicts.md:

    collect.py     records -> variants, paired samples (one record per variant x task)
    stats.py       paired score interval and bound tests, McNemar, multiple-comparison correction, MDE
    floors.py      the floor check per model and task; the pipeline shapes only the store shows
    quality.py     the quality tables (per task and pooled) and output behaviour
    tiers.py       tiers with their intervals (judge: tier and verdict), cliffs, viability thresholds
    methods.py     method against method at the same bits and group; the best method there
    decisions.py   cost, Pareto fronts, decision matrix per memory budget and scenario (ties inside the CI)
    gate.py        the CI gate (gate.min_recovery, gate.fail_on_suspect)
    provenance.py  versions, hardware, git, calibration, sample counts; warnings and suspects
    findings.py    the opening bullets
    plots.py, tables.py, render.py, templates/   figures, formatted tables, HTML/Markdown/CSV
    build.py       build_report(cfg) -> ReportPaths;  cli.py: main(argv) -> exit code
"""
