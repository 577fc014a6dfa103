"""The floor check and the pipeline shapes it reveals, on hand-built stores."""

from __future__ import annotations

import json

import pytest
from scipy import stats as scipy_stats

from configs.report_schema import AT_FLOOR, ReportConfig
from report import floors
from report.build import analyse
from report.collect import collect
from tests.report.builder import Spec, write_store, write_task

BASE, W4 = Spec(model="m"), Spec(model="m", method="rtn", bits=4, group=32, lost=2)


def checks(store, **settings) -> dict:
    cfg = ReportConfig(results_dir=str(store))
    for key, value in settings.items():
        setattr(cfg.floor, key, value)
    return floors.floor_checks(collect(cfg), cfg)


def test_chance_comes_from_the_options_in_the_prompt_or_is_zero_for_generation(tmp_path):
    write_store(tmp_path, [BASE, W4], {"mc": (100, {"m": 60}, True, 4), "mc5": (100, {"m": 60}, True, 5),
                                       "gen": (100, {"m": 60}, True)})
    found = checks(tmp_path)
    assert (found[("m", "mc")].chance, found[("m", "mc")].chance_from) == (0.25, "prompt options")
    assert found[("m", "mc5")].chance == pytest.approx(0.2)
    assert (found[("m", "gen")].chance, found[("m", "gen")].chance_from) == (0.0, "generation")
    assert checks(tmp_path, chance={"gen": 0.1})[("m", "gen")].chance_from == "setting"


def test_a_stock_multiple_choice_record_without_choices_assumes_the_cautious_count(tmp_path):
    for spec in (BASE, W4):
        folder = write_task(tmp_path, spec, "stock_mc", 50, 40, boxed=False, baseline=BASE)
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest["task_type"] = "multiple_choice"
        (folder / "manifest.json").write_text(json.dumps(manifest))
    found = checks(tmp_path)[("m", "stock_mc")]
    assert (found.chance, found.chance_from) == (0.5, "assumed 2 choices")
    assert checks(tmp_path, unknown_choices=4)[("m", "stock_mc")].chance == 0.25


@pytest.mark.parametrize("correct, passes", [(47, True), (43, False)])
def test_the_baseline_must_be_significantly_above_chance_plus_ten_points(tmp_path, correct, passes):
    """4 choices: the baseline must beat 35% (exact binomial, one-sided, alpha 0.05):
    47/100 does (p = 0.009), 43/100 does not (p = 0.059)."""
    write_store(tmp_path, [BASE, W4], {"mc": (100, {"m": correct}, True, 4)})
    check = checks(tmp_path)[("m", "mc")]
    expected = scipy_stats.binomtest(correct, 100, 0.35, alternative="greater").pvalue
    assert check.p_value == pytest.approx(expected)
    assert check.needed == pytest.approx(0.35)
    assert check.passes == passes == (expected < 0.05)
    assert check.p_value == pytest.approx(0.009 if passes else 0.059, abs=5e-4)


def test_a_generation_baseline_near_zero_is_left_out_with_its_reason(tmp_path):
    """2 of 100 on a generation task: a 10-point drop cannot show. The task is left out of
    the tiers (per task and pooled); a task above the floor still decides the pooled tier."""
    write_store(tmp_path, [BASE, W4], {"hard": (100, {"m": 2}, True), "easy": (400, {"m": 300}, True)})
    a = analyse(ReportConfig(results_dir=str(tmp_path)))
    rows = a.by_task[a.by_task.label == W4.label].set_index("scope")
    assert rows.loc["hard", "tier"] == AT_FLOOR
    assert rows.loc["hard", "verdict"].startswith(
        "left out of tiers (baseline at the floor: baseline 2.0% (2/100) is not significantly above floor 0% "
        "(generation) + 10 pp = 10.0%")
    assert "what speaks here: changed generations 2% of 100, flips +0/-2" in rows.loc["hard", "verdict"]
    assert rows.loc["all", "tasks_tiered"] == "easy"
    assert rows.loc["all", "n"] == 400  # pooled over "easy" only
    assert rows.loc["all", "delta_pp"] == pytest.approx(-0.5)
    assert rows.loc["all", "tier"] != AT_FLOOR


def test_every_task_at_the_floor_leaves_the_variant_without_a_tier(tmp_path):
    write_store(tmp_path, [BASE, W4], {"hard": (100, {"m": 2}, True)})
    a = analyse(ReportConfig(results_dir=str(tmp_path)))
    summary = a.summary.set_index("label")
    assert summary.loc[W4.label, "tier"] == AT_FLOOR and not summary.loc[W4.label, "viable"]
    assert summary.loc[W4.label, "verdict"].startswith("left out of tiers (every task at the floor: baseline 2.0% "
                                                       "(2/100) is not significantly above floor 0%")
    assert summary.loc["none-bf16", "tier"] == AT_FLOOR
    assert a.thresholds.iloc[0].undetermined == "m (at floor)"


def test_all_wrong_but_well_formed_is_suspect(tmp_path):
    """The origin study's shape: a baseline at 0% with 98% well-formed answers, every
    variant at 0% too. Both the baseline (per task) and the model are flagged."""
    specs = [Spec(model="m"), Spec(model="m", method="rtn", bits=8, group=32),
             Spec(model="m", method="rtn", bits=4, group=32)]
    for spec in specs:
        write_task(tmp_path, spec, "math", 100, 0, baseline=specs[0], base_format_ok=98)
    a = analyse(ReportConfig(results_dir=str(tmp_path)))
    lines = [s.line for s in a.suspects]
    assert lines[0].startswith("m baseline math: at its floor (0.0%, not significantly above 0.0% + 1 pp) while 98% "
                               "of its answers are well-formed: all wrong but well-formed")
    assert lines[1].startswith("m: every variant, baseline included (3), is at the floor on every task")
    assert a.left_out == 3 and a.trusted is None


def test_a_weak_but_working_baseline_is_not_suspect(tmp_path):
    """36/100 on 4 choices is above chance (p = 0.017 against 25% + 1 pp) though not enough
    for the tiers (p = 0.45 against 35%): left out of the tiers, but not a suspect pipeline."""
    write_store(tmp_path, [BASE, W4], {"mc": (100, {"m": 36}, True, 4)})
    a = analyse(ReportConfig(results_dir=str(tmp_path)))
    check = a.floors[("m", "mc")]
    assert not check.passes and not check.at_floor
    assert scipy_stats.binomtest(36, 100, 0.26, alternative="greater").pvalue == pytest.approx(0.0174, abs=1e-4)
    assert a.suspects == []
    assert a.by_task.set_index(["label", "scope"]).loc[(W4.label, "mc"), "tier"] == AT_FLOOR
