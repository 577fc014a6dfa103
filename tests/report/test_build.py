"""The report end to end on fixture stores: files, numbers in the CSVs, filters, notes."""

from __future__ import annotations

import itertools
import math
import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.multitest import multipletests

from configs.errors import ConfigError
from configs.report_schema import ReportConfig
from report.build import analyse
from report import plots
from report.findings import findings
from report.tables import variants_table
from tests.report.builder import SETTINGS, SUSPECT, Spec, write_task

PLOTS = {"viability_map", "delta_curves", "behaviour", "pareto_memory", "pareto_throughput"}
SMALL_W3, SMALL_W4, LARGE_GPTQ = ("small", "rtn-w3a16-g32"), ("small", "rtn-w4a16-g32"), ("large", "gptq-w4a16-g32")


def test_every_output_is_written(sweep_report):
    assert sweep_report.html.is_file() and sweep_report.markdown.is_file()
    assert {p.stem for p in sweep_report.plots} == PLOTS
    assert all(p.is_file() and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in sweep_report.plots)
    assert {"variants", "quality_by_task", "floors", "best_methods", "method_pairs", "cliffs", "viability",
            "behaviour", "deployment", "decisions_budget", "decisions_scenario", "warnings",
            "provenance_versions"} <= set(sweep_report.tables)
    assert sweep_report.gate.enabled is False


def test_html_is_self_contained(sweep_report):
    html = sweep_report.html.read_text()
    assert html.count('src="data:image/png;base64,') == len(PLOTS)
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "<script" not in html and "<link" not in html


def test_markdown_points_at_the_pngs_beside_it(sweep_report):
    markdown = sweep_report.markdown.read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", markdown)
    assert len(images) == len(PLOTS)
    assert all((sweep_report.markdown.parent / image).is_file() for image in images)
    assert "| small | 500M | rtn | rtn-w3a16-g32 | 3 | 32 | math | unacceptable | 400 | 40.5% |" in markdown


def test_variant_numbers_match_the_hand_computed_sweep(sweep_report):
    variants = pd.read_csv(sweep_report.tables["variants"]).set_index(["model", "label"])
    w3 = variants.loc[SMALL_W3]  # small pools math only: arc is at the floor
    assert (w3.n, w3.accuracy, w3.delta_pp, w3.recovery, w3.gained, w3.lost) == pytest.approx(
        (400, 0.405, -19.5, 162 / 240, 2, 80))
    assert w3.p_baseline == pytest.approx(scipy_stats.chi2.sf((78 - 1) ** 2 / 82, 1))  # 82 discordant: chi-square
    assert (w3.higher, w3.delta_higher_pp) == ("rtn-w4a16-g32", pytest.approx(-17.5))
    assert w3.p_higher == pytest.approx(scipy_stats.chi2.sf((70 - 1) ** 2 / 70, 1))  # w4 right, w3 wrong: docs 10-79
    assert (w3.ci_low_pp, w3.ci_high_pp) == pytest.approx((-23.76, -15.74), abs=0.01)
    assert (w3.tier, w3.tier_metric) == ("unacceptable", "accuracy")
    assert w3.verdict == "unacceptable: a significant accuracy loss of more than 10 pp [-23.8, -15.7]"
    w4 = variants.loc[SMALL_W4]  # -2.0 [-4.1, -0.4]: straddles -3
    assert (w4.delta_pp, w4.tier) == (pytest.approx(-2.0), "inconclusive")
    assert w4.verdict.startswith("inconclusive: accuracy [-4.1, -0.4] spans negligible to acceptable; about ")
    gptq = variants.loc[LARGE_GPTQ]  # accuracy unchanged, 75 of 500 answers lost their box: format decides
    assert (gptq.delta_pp, gptq.delta_format_pp, gptq.format_lost) == (0.0, pytest.approx(-15.0), 75)
    assert (gptq.tier, gptq.tier_metric, gptq.tier_delta_pp) == ("unacceptable", "format", pytest.approx(-15.0))
    assert gptq.verdict == "unacceptable: a significant format loss of more than 10 pp [-18.4, -12.1]"
    assert variants.loc[("large", "rtn-w3a16-g32")].tier == "inconclusive"
    assert variants.loc[("large", "rtn-w4a16-g32")].tier == "negligible"
    assert variants.loc[("small", "none-bf16")].tier == "negligible"


def test_p_values_are_holm_corrected_over_one_task_family_format_included(sweep_report):
    rows = pd.read_csv(sweep_report.tables["quality_by_task"])
    rows = rows[rows.scope == "math"]
    columns = ["p_baseline", "p_format", "p_higher"]
    raw = np.concatenate([rows[c].dropna() for c in columns])
    assert len(raw) == 8 + 8 + 4  # accuracy and format of every variant vs its baseline, 4 steps to a higher width
    adjusted = np.concatenate([rows[f"{c}_adj"].dropna() for c in columns])
    assert adjusted == pytest.approx(multipletests(raw, method="holm")[1])


# -- no tier contradicts its interval, in any format -------------------------------------------------
BANDS = {"negligible": (-3.0, math.inf), "acceptable": (-5.0, -3.0), "concerning": (-10.0, -5.0),
         "unacceptable": (-math.inf, -10.0)}
LOSS_TIERS = ("acceptable", "concerning", "unacceptable")


def assert_tier_agrees(tier: str, intervals: list[tuple[float, float]], verdict: str, slack: float = 0.0) -> None:
    """A stated tier: one interval inside its band, none reaching below it. Inconclusive:
    some interval crosses a band edge, or the verdict says what else keeps it open.
    `slack`: the rounding of a printed interval (0.05 at one decimal)."""
    if tier in BANDS:
        low, high = BANDS[tier]
        assert verdict.startswith(tier), verdict
        assert all(lo >= low - slack for lo, _ in intervals), (tier, intervals)
        assert any(lo >= low - slack and hi < high + slack for lo, hi in intervals), (tier, intervals)
    elif tier == "inconclusive":
        assert verdict.startswith("inconclusive"), verdict
        crossing = any(lo < edge < hi for lo, hi in intervals for edge in (-3.0, -5.0, -10.0))
        assert crossing or "not significant" in verdict or "tier boundary" in verdict, (intervals, verdict)
    else:
        assert tier in ("at floor", "nan", "–", "None") or verdict.startswith("baseline"), (tier, verdict)


def test_no_row_tier_contradicts_its_interval_in_the_csv(sweep_report):
    checked = 0
    for name in ("variants", "quality_by_task"):
        for row in pd.read_csv(sweep_report.tables[name]).itertuples():
            if row.is_baseline:
                continue
            intervals = [(row.ci_low_pp, row.ci_high_pp)]
            if not math.isnan(row.format_ci_low_pp):
                intervals.append((row.format_ci_low_pp, row.format_ci_high_pp))
            assert_tier_agrees(str(row.tier), intervals, str(row.verdict))
            if row.tier in LOSS_TIERS:  # a stated loss is a significant one, on the metric that set the tier
                assert (row.p_format_adj if row.tier_metric == "format" else row.p_baseline_adj) < 0.05, row
            checked += row.tier in BANDS or row.tier == "inconclusive"
    assert checked >= 20


def view_rows(table_html_or_md: list[dict]) -> int:
    checked = 0
    for cells in table_html_or_md:
        ci = next(k for k in cells if k.startswith("Δ pp ["))
        fmt = next(k for k in cells if k.startswith("Δ format pp ["))
        intervals = [tuple(float(x.replace("−", "-")) for x in found)
                     for found in (INTERVAL.findall(cells[ci]) + INTERVAL.findall(cells[fmt]))]
        if cells["Verdict"] == "baseline":
            continue
        assert_tier_agrees(cells["Tier"], intervals, cells["Verdict"], slack=0.05)
        checked += 1
    return checked


INTERVAL = re.compile(r"\[([+\-−]?[\d.]+), ([+\-−]?[\d.]+)\]")


def test_no_row_tier_contradicts_its_interval_in_the_markdown(sweep_report):
    markdown = sweep_report.markdown.read_text()
    checked = 0
    for title in ("### Every variant", "### Per task"):
        after = markdown[markdown.index(title):].splitlines()
        start = next(i for i, line in enumerate(after) if line.startswith("|"))
        lines = list(itertools.takewhile(lambda line: line.startswith("|"), after[start:]))
        header = [c.strip() for c in lines[0].strip("|").split(" | ")]
        rows = [dict(zip(header, (c.strip() for c in line.strip("|").split(" | ")), strict=True)) for line in lines[2:]]
        checked += view_rows(rows)
    assert checked >= 20


class Tables(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tables, self.cell, self.row = {}, None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self.current = self.tables.setdefault(attrs.get("id"), [])
        elif tag == "tr":
            self.row = []
        elif tag in ("td", "th"):
            self.cell = ""

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.row.append(self.cell)
            self.cell = None
        elif tag == "tr":
            self.current.append(self.row)


def test_no_row_tier_contradicts_its_interval_in_the_html(sweep_report):
    parser = Tables()
    parser.feed(sweep_report.html.read_text())
    checked = 0
    for table in ("table-variants", "table-quality_by_task"):
        header, *rows = parser.tables[table]
        checked += view_rows([dict(zip(header, row, strict=True)) for row in rows])
    assert checked >= 20


def test_cliffs_viability_floors_and_behaviour_tables(sweep_report):
    cliffs = pd.read_csv(sweep_report.tables["cliffs"]).set_index(["model", "method"])
    small = cliffs.loc[("small", "rtn")]  # negligible w8, inconclusive w4, unacceptable w3
    assert (small.cliff_bits, small.last_ok_bits) == (3, 8)
    assert small.reason == ("drops 3 tiers (negligible -> unacceptable); accuracy interval below -10 pp (upper bound "
                            "-15.7); undetermined in between: w4 inconclusive")
    assert cliffs.loc[("large", "gptq"), "cliff_metric"] == "format"  # the format drop is the cliff
    assert cliffs.loc[("large", "rtn"), "reason"] == "no cliff shown down to 3 bits; undetermined: w3 inconclusive"
    viability = pd.read_csv(sweep_report.tables["viability"]).set_index(["method", "bits"])
    assert viability.loc[("rtn", 8), "viable_at_all_sizes"]
    assert (viability.loc[("rtn", 4), "smallest_viable_model"], viability.loc[("rtn", 4), "undetermined"]) == (
        "large", "small (inconclusive)")
    assert viability.loc[("rtn", 3), "largest_undetermined"]
    assert viability.loc[("gptq", 4), "not_viable"] == "large (unacceptable)"
    floors = pd.read_csv(sweep_report.tables["floors"]).set_index(["model", "task"])
    small_arc = floors.loc[("small", "arc")]
    assert (small_arc.chance, small_arc.correct, small_arc.needed, small_arc.passes) == (0.25, 27, 0.35, False)
    assert small_arc.p_value == pytest.approx(scipy_stats.binom.sf(26, 100, 0.35))
    assert floors.loc[("large", "arc"), "passes"] and floors.loc[("small", "math"), "passes"]
    tasks = pd.read_csv(sweep_report.tables["quality_by_task"]).set_index(["model", "label", "scope"])
    arc = tasks.loc[("small", "rtn-w3a16-g32", "arc")]
    assert arc.tier == "at floor"
    assert arc.verdict.endswith("what speaks here: changed generations 62% of 100, flips +12/-12, KL 0.145, "
                                "top-1 agreement 0.82 on 20 prompts of math")  # KL is measured on the first task
    behaviour = pd.read_csv(sweep_report.tables["behaviour"]).set_index(["model", "label"])
    assert behaviour.loc[LARGE_GPTQ, "no_box"] == pytest.approx(75 / 500)
    warnings = pd.read_csv(sweep_report.tables["warnings"])
    assert list(warnings.message[:3]) == [f"small rtn-w8a16-g32 arc: {SUSPECT}", f"small rtn-w8a16-g32 math: {SUSPECT}",
                                          "small baseline arc: at its floor (27.0%, not significantly above 25.0% "
                                          "+ 1 pp) while 100% of its answers are well-formed: all wrong but "
                                          "well-formed points at the answer key, the scoring or the prompt, not at "
                                          "quantization"]


def test_key_findings_leave_the_suspect_records_out_and_say_so(sweep_store):
    """Suspect: small rtn w8's two records (their own gate) and small's arc records (a
    baseline at its floor with well-formed answers): 2 + 5 - 1 shared = 6 records."""
    a = analyse(ReportConfig(results_dir=str(sweep_store)))
    assert a.left_out == 6
    assert "rtn-w8a16-g32" in set(a.summary.label[a.summary.model == "small"])
    assert "rtn-w8a16-g32" not in set(a.trusted.summary.label[a.trusted.summary.model == "small"])
    lines = findings(a, ReportConfig(results_dir=str(sweep_store)))
    assert lines[1].startswith("Left out of these findings: 6 suspect records (see the warnings: small rtn-w8a16-g32")
    assert lines[2] == ("Tiers: 3 negligible, 0 acceptable, 0 concerning, 2 unacceptable, 2 inconclusive, "
                        "0 at floor.")  # small rtn w8 (negligible) is not counted
    assert "rtn (group 32): w8 viable at every size tested; w4 viable from 3B (undetermined: small (inconclusive))" \
           "; w3 undetermined at the largest size tested (undetermined: large (inconclusive))." in lines
    inconclusive = next(line for line in lines if "inconclusive: the interval does not fit" in line)
    assert "small rtn-w4a16-g32: accuracy -2.0 pp [-4.1, -0.4], n=400" in inconclusive


def test_filters_keep_the_baselines_and_name_unknown_values(sweep_store):
    small = analyse(ReportConfig(results_dir=str(sweep_store), models=["small"]))
    assert set(small.summary.model) == {"small"}
    gptq = analyse(ReportConfig(results_dir=str(sweep_store), methods=["gptq"]))
    assert set(gptq.summary.method) == {"none", "gptq"}
    with pytest.raises(ConfigError, match=r"methods=\['awq'\] matches no record .* available: gptq, none, rtn"):
        analyse(ReportConfig(results_dir=str(sweep_store), methods=["awq"]))


def test_tasks_pool_into_one_paired_comparison(tmp_path):
    base, variant = Spec(model="m"), Spec(model="m", method="rtn", bits=4, group=32, lost=3, format_lost=2)
    for spec in (base, variant):
        write_task(tmp_path, spec, "boxed", 100, 50, baseline=base)
        write_task(tmp_path, spec, "stock", 50, 40, boxed=False, baseline=base)
    a = analyse(ReportConfig(results_dir=str(tmp_path)))
    rows = a.by_task[~a.by_task.is_baseline].set_index("scope")
    assert rows.loc["boxed", "delta_pp"] == pytest.approx(-3.0)
    assert rows.loc["stock", "delta_pp"] == pytest.approx(-6.0)
    assert rows.loc["all", "delta_pp"] == pytest.approx(-100 * 6 / 150)  # 6 lost of 150 pooled pairs
    assert rows.loc["all", "lost"] == 6 and rows.loc["all", "n"] == 150
    assert rows.loc["all", "delta_format_pp"] == pytest.approx(-2.0)  # format: boxed samples only
    # 3 lost of 50 and 6 of 150: the intervals are wide; worst_task takes the inconclusive task
    assert rows.loc["stock", "verdict"].startswith("inconclusive: accuracy [-16.2, +1.6] spans negligible to "
                                                   "unacceptable")
    assert a.summary.set_index("label").loc["rtn-w4a16-g32", "tier"] == "inconclusive"
    worst = ReportConfig(results_dir=str(tmp_path))
    worst.tiers.scope = "worst_task"
    row = analyse(worst).summary.set_index("label").loc["rtn-w4a16-g32"]
    assert row.verdict.startswith("worst task boxed: inconclusive")
    assert "Tier and verdict are the worst task's" in variants_table(analyse(worst).summary, worst).note
    assert "worst task" not in variants_table(a.summary, ReportConfig(results_dir=str(tmp_path))).note


def test_problems_become_notes_not_silent_drops(tmp_path):
    base = Spec(model="m")
    write_task(tmp_path, base, "math", 20, 10)
    write_task(tmp_path, Spec(model="m", method="rtn", bits=4, group=32, lost=1), "math", 20, 10, baseline=base)
    orphan = Spec(model="orphan", method="rtn", bits=4, group=32)
    write_task(tmp_path, orphan, "math", 20, 10)
    # the same task again with other settings: set aside, the baseline-matching one is used
    import evaluate.store as store

    other = store.record_folder(tmp_path, base.fingerprint, "math", "other-settings")
    record = store.find_record(next((tmp_path / "records" / base.fingerprint[:16]).glob(f"math--{SETTINGS[:12]}")))
    store.write_record(other, {**record, "n": 5, "settings_fingerprint": "other-settings"},
                       store.read_samples(next((tmp_path / "records" / base.fingerprint[:16]).glob("math--*")))[:5])
    a = analyse(ReportConfig(results_dir=str(tmp_path)))
    from report.provenance import warnings_table

    notes = warnings_table(a.collection, a.suspects)
    assert any("no baseline" in m for m in notes.message)
    assert any("other record(s) of this task set aside" in m for m in notes.message)
    orphan_row = a.summary.set_index("model").loc["orphan"]
    assert orphan_row.tier is None or pd.isna(orphan_row.tier)
    assert a.summary.set_index(["model", "label"]).loc[("m", "rtn-w4a16-g32")].n_paired == 20


def test_perplexity_and_kl_records_join_the_variant_row(tmp_path):
    import evaluate.store as store

    base, variant = Spec(model="m"), Spec(model="m", method="rtn", bits=4, group=32)
    for spec, ppl in ((base, 10.0), (variant, 12.5)):
        write_task(tmp_path, spec, "math", 10, 5, baseline=base)
        record = {"task": "wikitext", "n": 3, "metrics": {"word_perplexity": ppl, "bits_per_byte": 1.0},
                  "settings_fingerprint": SETTINGS, "artifact": spec.artifact()}
        store.write_record(store.record_folder(tmp_path, spec.fingerprint, "wikitext", SETTINGS), record, [])
    kl = {"task": "kl_divergence", "n": 4, "metrics": {"kl_divergence": 0.02, "top1_agreement": 0.97},
          "settings_fingerprint": "kl", "artifact": variant.artifact()}
    store.write_record(store.record_folder(tmp_path, variant.fingerprint, "kl_divergence", "kl"), kl, [])
    row = analyse(ReportConfig(results_dir=str(tmp_path))).summary.set_index("label").loc["rtn-w4a16-g32"]
    assert row["word_perplexity[wikitext]"] == 12.5
    assert row["perplexity_ratio[wikitext]"] == pytest.approx(1.25)
    assert (row.kl_divergence, row.top1_agreement) == (0.02, 0.97)


def test_the_hydra_config_composes_to_the_schema_defaults():
    from report.cli import compose_report

    cfg = compose_report(["tiers.acceptable=-4", "models=[a,b]", "gate.min_recovery=0.95", "+floor.chance.mc=0.2"])
    assert isinstance(cfg, ReportConfig)
    assert (cfg.tiers.acceptable, cfg.models, cfg.gate.min_recovery) == (-4.0, ["a", "b"], 0.95)
    assert (cfg.floor.chance, cfg.stats.confidence) == ({"mc": 0.2}, 0.95)
    assert cfg.decisions.memory_budgets_gb == [4.0, 8.0, 16.0, 24.0, 80.0]
    assert cfg.stats.correction == "holm"


def test_primary_metric_rescored_accuracy_changes_the_verdict(tmp_path):
    base = Spec(model="m")
    variant = Spec(model="m", method="rtn", bits=4, group=32, lost=80, rescued=80)  # strict -8, lenient 0
    for spec in (base, variant):
        write_task(tmp_path, spec, "math", 1000, 500, baseline=base)
    strict = analyse(ReportConfig(results_dir=str(tmp_path))).summary.set_index("label").loc["rtn-w4a16-g32"]
    assert (strict.delta_pp, strict.tier) == (-8.0, "concerning")  # [-9.8, -6.5]
    lenient = analyse(ReportConfig(results_dir=str(tmp_path), primary_metric="rescored_accuracy"))
    row = lenient.summary.set_index("label").loc["rtn-w4a16-g32"]
    assert (row.delta_pp, row.tier, row.rescored_accuracy) == (0.0, "negligible", 0.5)


def test_provenance_reads_calibration_from_the_artifact_manifest_and_notes_missing_tasks(tmp_path):
    import json

    base, variant = Spec(model="m"), Spec(model="m", method="gptq", bits=4, group=128)
    artifact = tmp_path / "artifact"
    artifact.mkdir()
    (artifact / "manifest.json").write_text(json.dumps({"calibration": {"fingerprint": "c" * 64}, "created": "today"}))
    write_task(tmp_path, base, "math", 10, 5)
    for task in ("math", "extra"):  # the baseline never ran "extra"
        folder = write_task(tmp_path, variant, task, 10, 5, baseline=base)
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest["artifact"]["path"] = str(artifact)  # where the artifact really is
        (folder / "manifest.json").write_text(json.dumps(manifest))
    from report.provenance import provenance, warnings_table

    cfg = ReportConfig(results_dir=str(tmp_path))
    a = analyse(cfg)
    artifacts = provenance(a.collection, cfg)["artifacts"].set_index("variant")
    assert artifacts.loc["gptq-w4a16-g128", "calibration"] == "c" * 16
    assert artifacts.loc["none-bf16", "calibration"] == "artifact not found"
    notes = warnings_table(a.collection, a.suspects)
    assert any("baseline has no record of this task" in m for m in notes.message)


def test_the_map_stars_the_delta_it_shows(sweep_store):
    """A cell shows the delta that set the tier (accuracy's or format's) and a star when
    that delta is a significant loss: large gptq lost only format (-15.0, significant)."""
    summary = analyse(ReportConfig(results_dir=str(sweep_store))).summary.set_index(["model", "label"])
    assert plots._cell_text(summary.loc[LARGE_GPTQ]).startswith("-15.0*")
    assert plots._cell_text(summary.loc[SMALL_W3]).startswith("-19.5*")
    assert "*" not in plots._cell_text(summary.loc[SMALL_W4])  # -2.0, not significant
