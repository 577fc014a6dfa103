"""Method against method at the same model, bits and group (builder.sweep_specs, by hand)."""

from __future__ import annotations

import math
from dataclasses import replace

import pandas as pd
import pytest
from scipy import stats as scipy_stats

from configs.report_schema import ReportConfig
from report import methods, stats
from report.build import analyse
from tests.report import builder


@pytest.fixture(scope="module")
def pairs(sweep_store) -> pd.DataFrame:
    return analyse(ReportConfig(results_dir=str(sweep_store))).method_pairs.set_index("model")


def test_one_pair_per_model_bits_and_group(pairs):
    assert sorted(pairs.index) == ["large", "small"]
    assert set(pairs.label_a) == {"gptq-w4a16-g32"} and set(pairs.label_b) == {"rtn-w4a16-g32"}


def test_accuracy_is_paired_over_the_tasks_above_the_floor(pairs):
    """small, math only: gptq loses docs 0-2 and gains 399, rtn loses 0-9 and gains 398-399.
    rtn - gptq: 1 gained (398), 7 lost (3-9) of 400: -1.5 pp, exact p = 2 x 9 / 256."""
    small = pairs.loc["small"]
    assert (small.tasks, small.accuracy_n, small.accuracy_delta_pp) == ("math", 400, pytest.approx(-1.5))
    assert small.p_accuracy == pytest.approx(2 * 9 / 256)
    # one family of 7 (small's KL test included): four p-values are tiny, so this one is multiplied by 3 (Holm)
    assert small.p_accuracy_adj == pytest.approx(3 * 2 * 9 / 256)


def test_changed_generations_separate_methods_where_accuracy_cannot(pairs):
    """Over every task: rtn rewrote 98 of 500 generations, gptq 8, all of gptq's among
    rtn's (90 discordant, all one way): +18.0 pp more changed with rtn, chi-square 89^2 / 90."""
    small = pairs.loc["small"]
    assert (small.changed_a, small.changed_b) == pytest.approx((8 / 500, 98 / 500))
    assert small.changed_delta_pp == pytest.approx(18.0)
    assert small.p_changed == pytest.approx(scipy_stats.chi2.sf(89**2 / 90, 1))
    assert small.verdict.startswith("changed generations: gptq-w4a16-g32 better (+18.0 pp [")
    assert (small.kl_a, small.kl_b) == (0.005, 0.02)


def test_per_prompt_kl_is_tested_paired(pairs):
    """small: gptq's per-prompt KL is a quarter of rtn's on each of 20 prompts (0.005 vs
    0.02 mean): all 20 differences one way, exact signed-rank p = 2 / 2^20."""
    small = pairs.loc["small"]
    assert (small.kl_n, small.kl_delta) == (20, pytest.approx(0.015))  # differences 0.0075-0.0225: shift 0.015
    assert small.p_kl == pytest.approx(2 / 2**20)
    assert "KL: gptq-w4a16-g32 closer (shift B − A +0.015 over 20 prompts" in small.verdict
    large = pairs.loc["large"]  # no KL records: shown blank, not tested, not in the family
    assert large.kl_n == 0 and pd.isna(large.p_kl) and pd.isna(large.p_kl_adj)


def test_kl_without_per_prompt_rows_or_against_another_baseline_is_not_tested(tmp_path):
    specs = [s for s in builder.sweep_specs() if s.model == "small"]
    base, rtn, gptq = specs[0], specs[2], specs[3]
    without_gptq_kl = [replace(s, kl=None) if s is gptq else s for s in specs]
    builder.write_store(tmp_path / "old", without_gptq_kl, builder.SWEEP_TASKS)
    builder.write_kl(tmp_path / "old", gptq, base, per_prompt=False)  # a record from before rows were kept
    row = analyse(ReportConfig(results_dir=str(tmp_path / "old"))).method_pairs.iloc[0]
    assert (row.kl_a, row.kl_b) == (0.005, 0.02)  # the aggregates are still shown
    assert row.kl_n == 0 and pd.isna(row.p_kl) and "KL" not in row.verdict
    builder.write_store(tmp_path / "other", without_gptq_kl, builder.SWEEP_TASKS)
    builder.write_kl(tmp_path / "other", gptq, rtn)  # measured against another reference
    row = analyse(ReportConfig(results_dir=str(tmp_path / "other"))).method_pairs.iloc[0]
    assert row.kl_n == 0 and pd.isna(row.p_kl)


def test_signed_rank_edge_cases():
    assert all(math.isnan(x) for x in stats.signed_rank_test([], []))
    assert stats.signed_rank_test([0.1, 0.2], [0.1, 0.2]) == (1.0, 0.0)  # identical: no evidence of a difference
    p, shift = stats.signed_rank_test([0.1] * 6, [0.2] * 6)
    assert (p, shift) == (pytest.approx(2 / 2**6), pytest.approx(0.1))
    # skewed: B lower on 19 prompts by 0.01, higher on one by 1.0; the mean says B is worse,
    # the ranks (and the shift that goes with them) say B is closer
    p, shift = stats.signed_rank_test([0.05] * 20, [0.04] * 19 + [1.05])
    assert p < 0.01 and shift == pytest.approx(-0.01)
    # a broken variant's NaN counts as the farthest; NaN on both sides as no difference
    p, shift = stats.signed_rank_test([0.1] * 8, [float("nan")] * 8)
    assert p == pytest.approx(2 / 2**8) and shift == math.inf
    assert stats.signed_rank_test([float("nan")] * 3, [float("nan")] * 3) == (1.0, 0.0)


def test_kl_is_paired_only_between_records_of_the_same_settings(tmp_path):
    specs = [s for s in builder.sweep_specs() if s.model == "small"]
    gptq = specs[3]
    builder.write_store(tmp_path, [replace(s, kl=None) if s is gptq else s for s in specs], builder.SWEEP_TASKS)
    builder.write_kl(tmp_path, gptq, specs[0], settings="other-kl-settings")  # e.g. another kl_max_tokens
    row = analyse(ReportConfig(results_dir=str(tmp_path))).method_pairs.iloc[0]
    assert row.kl_n == 0 and pd.isna(row.p_kl)


def test_best_method_says_no_difference_where_that_is_the_honest_answer(sweep_store):
    best = analyse(ReportConfig(results_dir=str(sweep_store))).best_methods.set_index("model")
    assert best.loc["small", ["accuracy", "format", "changed"]].tolist() == [
        methods.NO_DIFFERENCE, methods.NO_DIFFERENCE, "gptq-w4a16-g32"]
    # large: gptq lost 75 boxes of 500 (format -15 pp): rtn keeps the format and the text
    assert best.loc["large", ["accuracy", "format", "changed"]].tolist() == [
        methods.NO_DIFFERENCE, "rtn-w4a16-g32", "rtn-w4a16-g32"]


def test_best_needs_a_win_against_every_other_method():
    def pair(a, b, delta, p):
        row = {"model": "m", "size_b": 1.0, "bits": 4, "group": 32, "label_a": a, "label_b": b}
        for metric in methods.METRICS:
            row.update({f"{metric}_delta_pp": delta, f"p_{metric}_adj": p})
        row["kl_delta"] = delta / 100
        return row

    frame = pd.DataFrame([pair("awq", "gptq", +2.0, 0.01), pair("awq", "rtn", +3.0, 0.01),
                          pair("gptq", "rtn", +1.0, 0.30)])
    best = methods.best_methods(frame, ReportConfig()).iloc[0]
    assert best.accuracy == "no single best (gptq > awq; rtn > awq)"
    frame.loc[2, "p_accuracy_adj"] = 0.01  # rtn beats gptq too
    assert methods.best_methods(frame, ReportConfig()).iloc[0].accuracy == "rtn"
    assert methods.best_methods(frame, ReportConfig()).iloc[0].changed == "awq"  # fewer changed is better


def test_at_the_floor_methods_are_not_compared_on_accuracy(tmp_path):
    """Every task at the floor (0 of 100 right): accuracy says nothing, so it is not
    compared (no p, no winner); format, which has no floor, still is: gptq lost 20 boxes."""
    base = builder.Spec(model="m")
    variants = [builder.Spec(model="m", method="rtn", bits=4, group=32, gained=3),
                builder.Spec(model="m", method="gptq", bits=4, group=32, format_lost=20)]
    for spec in (base, *variants):
        builder.write_task(tmp_path, spec, "math", 100, 0, baseline=base)
    row = analyse(ReportConfig(results_dir=str(tmp_path))).method_pairs.iloc[0]
    assert row.tasks == "none above the floor: accuracy not compared"
    assert row.accuracy_n == 0 and pd.isna(row.p_accuracy) and "accuracy" not in row.verdict
    assert (row.label_a, row.label_b) == ("gptq-w4a16-g32", "rtn-w4a16-g32")
    assert row.format_n == 100 and row.format_delta_pp == pytest.approx(20.0) and "format: rtn" in row.verdict


def test_an_undefined_kl_shift_names_no_winner():
    """NaN on A's side for some prompts and on B's for others: the shift is undefined
    (inf - inf), so no side is named closer, whatever the p-value."""
    p, shift = stats.signed_rank_test([float("nan")] * 5 + [0.1] * 5, [0.1] * 5 + [float("nan")] * 5)
    assert math.isnan(shift)
    row = pd.Series({"label_a": "a", "label_b": "b", "p_kl_adj": 0.001, "kl_delta": shift})
    assert methods._winner(row, "kl", 0.05) is None
