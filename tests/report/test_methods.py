"""Method against method at the same model, bits and group (builder.sweep_specs, by hand)."""

from __future__ import annotations

import pandas as pd
import pytest
from scipy import stats as scipy_stats

from configs.report_schema import ReportConfig
from report import methods
from report.build import analyse


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
    # one family of 6: three p-values are tiny, so this one is multiplied by 3 (Holm)
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
        return row

    frame = pd.DataFrame([pair("awq", "gptq", +2.0, 0.01), pair("awq", "rtn", +3.0, 0.01),
                          pair("gptq", "rtn", +1.0, 0.30)])
    best = methods.best_methods(frame, ReportConfig()).iloc[0]
    assert best.accuracy == "no single best (gptq > awq; rtn > awq)"
    frame.loc[2, "p_accuracy_adj"] = 0.01  # rtn beats gptq too
    assert methods.best_methods(frame, ReportConfig()).iloc[0].accuracy == "rtn"
    assert methods.best_methods(frame, ReportConfig()).iloc[0].changed == "awq"  # fewer changed is better
