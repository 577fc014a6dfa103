"""The report end to end on fixture stores: files, numbers in the CSVs, filters, notes."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.multitest import multipletests

from configs.errors import ConfigError
from configs.report_schema import ReportConfig
from report.build import analyse
from tests.report.builder import SETTINGS, SUSPECT, Spec, write_task

PLOTS = {"viability_map", "delta_curves", "behaviour", "pareto_memory", "pareto_throughput"}


def test_every_output_is_written(sweep_report):
    assert sweep_report.html.is_file() and sweep_report.markdown.is_file()
    assert {p.stem for p in sweep_report.plots} == PLOTS
    assert all(p.is_file() and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in sweep_report.plots)
    assert {"variants", "quality_by_task", "cliffs", "viability", "behaviour", "deployment", "decisions_budget",
            "decisions_scenario", "warnings", "provenance_versions"} <= set(sweep_report.tables)
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
    assert "| small | 500M | rtn | 3 | 32 | 100 | 45.0% |" in markdown


def test_variant_numbers_match_the_hand_computed_sweep(sweep_report):
    variants = pd.read_csv(sweep_report.tables["variants"]).set_index(["model", "label"])
    w3 = variants.loc[("small", "rtn-w3a16-g32")]
    assert (w3.accuracy, w3.delta_pp, w3.recovery, w3.gained, w3.lost) == pytest.approx((0.45, -15.0, 0.75, 2, 17))
    assert w3.p_baseline == pytest.approx(scipy_stats.binomtest(2, 19, 0.5).pvalue)
    assert w3.higher == "rtn-w4a16-g32"
    assert w3.delta_higher_pp == pytest.approx(-11.0)  # 12 lost, 1 gained against w4
    assert w3.p_higher == pytest.approx(28 / 8192)  # 2 * P(X <= 1 | 13)
    assert (w3.tier, w3.verdict) == ("unacceptable", "significant loss")
    assert w3.ci_low_pp < -15.0 < w3.ci_high_pp < 0
    gptq = variants.loc[("small", "gptq-w4a16-g128")]  # accuracy -2, format -4: the worse decides
    assert (gptq.delta_pp, gptq.delta_format_pp, gptq.tier_delta_pp, gptq.tier) == (-2.0, -4.0, -4.0, "acceptable")
    assert variants.loc[("large", "rtn-w3a16-g32")].tier == "concerning"
    assert variants.loc[("small", "none-bf16")].tier == "negligible"


def test_p_values_are_holm_corrected_over_one_task_family(sweep_report):
    rows = pd.read_csv(sweep_report.tables["quality_by_task"])
    rows = rows[rows.scope == "math"]
    raw = np.concatenate([rows.p_baseline.dropna(), rows.p_higher.dropna()])
    assert len(raw) == 8 + 4  # every variant vs its baseline, 4 vs their next higher bit width
    adjusted = np.concatenate([rows.p_baseline_adj.dropna(), rows.p_higher_adj.dropna()])
    assert adjusted == pytest.approx(multipletests(raw, method="holm")[1])


def test_cliffs_viability_and_behaviour_tables(sweep_report):
    cliffs = pd.read_csv(sweep_report.tables["cliffs"]).set_index(["model", "method"])
    assert cliffs.loc[("small", "rtn"), "cliff_bits"] == 3
    assert cliffs.loc[("large", "rtn"), "cliff_bits"] == 3  # negligible (w4) -> concerning (w3): two tiers
    assert cliffs.loc[("small", "gptq")].isna().cliff
    viability = pd.read_csv(sweep_report.tables["viability"]).set_index(["method", "bits"])
    assert viability.loc[("rtn", 4), "viable_at_all_sizes"]
    assert pd.isna(viability.loc[("rtn", 3), "smallest_viable_model"])
    behaviour = pd.read_csv(sweep_report.tables["behaviour"]).set_index(["model", "label"])
    assert behaviour.loc[("small", "gptq-w4a16-g128"), "no_box"] == pytest.approx(0.04)
    warnings = pd.read_csv(sweep_report.tables["warnings"])
    assert list(warnings.message) == [f"small rtn-w8a16-g32 math: {SUSPECT}"]


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
    assert rows.loc["stock", "tier"] == "concerning"
    assert a.summary.set_index("label").loc["rtn-w4a16-g32", "tier"] == "acceptable"  # pooled -4.0
    worst = ReportConfig(results_dir=str(tmp_path))
    worst.tiers.scope = "worst_task"
    assert analyse(worst).summary.set_index("label").loc["rtn-w4a16-g32", "tier"] == "concerning"


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

    cfg = compose_report(["tiers.acceptable=-4", "models=[a,b]", "gate.min_recovery=0.95"])
    assert isinstance(cfg, ReportConfig)
    assert (cfg.tiers.acceptable, cfg.models, cfg.gate.min_recovery) == (-4.0, ["a", "b"], 0.95)
    assert cfg.decisions.memory_budgets_gb == [4.0, 8.0, 16.0, 24.0, 80.0]
    assert cfg.stats.correction == "holm"


def test_primary_metric_rescored_accuracy_changes_the_verdict(tmp_path):
    base = Spec(model="m")
    variant = Spec(model="m", method="rtn", bits=4, group=32, lost=6, rescued=6)  # strict -6, lenient 0
    for spec in (base, variant):
        write_task(tmp_path, spec, "math", 100, 50, baseline=base)
    strict = analyse(ReportConfig(results_dir=str(tmp_path))).summary.set_index("label").loc["rtn-w4a16-g32"]
    assert (strict.delta_pp, strict.tier) == (-6.0, "concerning")
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
