"""The report's statistics against values computed by hand (and by scipy, independently)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from report import stats

Z_975, Z_80 = 1.959963984540054, 0.8416212335729143


def paired(n: int, base_correct: int, gained: int, lost: int):
    """Reference right on the first `base_correct`; the variant loses the first `lost`
    and gains the last `gained`."""
    reference = np.array([i < base_correct for i in range(n)], dtype=float)
    variant = reference.copy()
    variant[:lost] = 0
    if gained:
        variant[n - gained:] = 1
    return reference, variant


# -- McNemar -------------------------------------------------------------------------------
def test_mcnemar_exact_is_the_two_sided_binomial_test_by_hand():
    # b=1 lost, c=9 gained, n=10 discordant: p = 2 * P(X <= 1 | 10, 1/2) = 2 * (1 + 10) / 1024
    p, test = stats.mcnemar_test(9, 1)
    assert test == "exact"
    assert p == pytest.approx(22 / 1024, abs=1e-15)


@pytest.mark.parametrize("gained, lost", [(0, 1), (1, 1), (2, 7), (12, 1), (0, 6), (11, 13)])
def test_mcnemar_exact_matches_scipy_binomtest(gained, lost):
    p, test = stats.mcnemar_test(gained, lost, exact_below=25)
    assert test == "exact"
    assert p == pytest.approx(scipy_stats.binomtest(lost, gained + lost, 0.5).pvalue, rel=1e-12)


def test_mcnemar_chi_square_with_continuity_correction_from_the_threshold_on():
    # 40 discordant pairs >= 25: chi2 = (|10 - 30| - 1)^2 / 40 = 9.025 on 1 df
    p, test = stats.mcnemar_test(30, 10, exact_below=25)
    assert test == "chi2"
    assert p == pytest.approx(scipy_stats.chi2.sf(361 / 40, 1), rel=1e-12)
    assert stats.mcnemar_test(13, 12, exact_below=25)[1] == "chi2"  # 25 discordant: not below 25
    assert stats.mcnemar_test(12, 12, exact_below=25)[1] == "exact"  # 24 < 25


def test_mcnemar_without_discordant_pairs_is_p_one():
    assert stats.mcnemar_test(0, 0) == (1.0, "exact")


# -- bootstrap ------------------------------------------------------------------------------
def test_paired_bootstrap_ci_brackets_the_true_delta_and_is_reproducible():
    reference, variant = paired(100, 60, gained=2, lost=17)  # delta -15 points
    low, high = stats.paired_bootstrap_ci(variant - reference, resamples=10000, seed=0)
    assert low < -0.15 < high
    assert high < 0  # 15 of 19 discordant pairs one way: the interval excludes 0
    assert (low, high) == stats.paired_bootstrap_ci(variant - reference, resamples=10000, seed=0)
    # the normal approximation of the same interval: sd of d = sqrt(0.19 - 0.15^2)
    half = Z_975 * math.sqrt((0.19 - 0.15**2) / 100)
    assert low == pytest.approx(-0.15 - half, abs=0.015)
    assert high == pytest.approx(-0.15 + half, abs=0.015)


def test_paired_bootstrap_agrees_with_scipy_bootstrap():
    reference, variant = paired(200, 120, gained=9, lost=21)
    d = variant - reference
    ours = stats.paired_bootstrap_ci(d, resamples=20000, seed=1)
    theirs = scipy_stats.bootstrap((d,), np.mean, n_resamples=20000, method="percentile",
                                   rng=np.random.default_rng(2)).confidence_interval
    assert ours[0] == pytest.approx(theirs.low, abs=0.006)
    assert ours[1] == pytest.approx(theirs.high, abs=0.006)


def test_bootstrap_of_identical_answers_is_a_point_and_non_binary_scores_work():
    assert stats.paired_bootstrap_ci(np.zeros(50)) == (0.0, 0.0)
    rng = np.random.default_rng(0)
    d = rng.normal(0.3, 1.0, 400)
    low, high = stats.paired_bootstrap_ci(d, resamples=2000, seed=0)
    assert low < d.mean() < high
    assert low < 0.3 < high


def test_compare_reports_delta_flips_and_test_of_the_pairs():
    reference, variant = paired(100, 60, gained=1, lost=5)
    result = stats.compare(reference, variant, resamples=2000)
    assert result.n == 100
    assert result.delta_pp == pytest.approx(-4.0)
    assert (result.gained, result.lost) == (1, 5)
    assert result.p_value == pytest.approx(2 * (1 + 6) / 64)  # exact: 2 * P(X <= 1 | 6)
    assert result.ci_low_pp <= -4.0 <= result.ci_high_pp


def test_compare_rejects_unpaired_lengths():
    with pytest.raises(ValueError, match="equal lengths"):
        stats.compare([1, 0], [1])


# -- minimum detectable effect -------------------------------------------------------------------
def test_mde_solves_connors_equation_by_hand():
    # n=100, discordant rate 0.2: 10 d = 1.95996 * sqrt(0.2) + 0.84162 * sqrt(0.2 - d^2)
    d = stats.mde_paired(100, 0.2)
    assert d == pytest.approx(0.1238, abs=5e-4)
    assert math.sqrt(100) * d == pytest.approx(Z_975 * math.sqrt(0.2) + Z_80 * math.sqrt(0.2 - d * d), abs=1e-9)
    assert stats.connor_sample_size(d, 0.2) == pytest.approx(100, rel=1e-6)


def test_mde_shrinks_with_sqrt_n_and_never_drops_below_all_discordance_one_way():
    assert stats.mde_paired(400, 0.2) < stats.mde_paired(100, 0.2)
    assert stats.mde_paired(400, 0.2) == pytest.approx(stats.mde_paired(100, 0.2) / 2, rel=0.1)
    d = stats.mde_paired(485, 0.0)  # no discordant pair seen: psi is d itself
    assert math.sqrt(485) * d == pytest.approx(Z_975 * math.sqrt(d) + Z_80 * math.sqrt(d - d * d), abs=1e-9)
    assert stats.mde_paired(3, 0.5) == math.inf  # nothing is detectable with 3 pairs
    assert math.isnan(stats.mde_paired(0, 0.1))


# -- multiple comparisons -------------------------------------------------------------------------
def test_holm_by_hand_and_nan_left_out_of_the_family():
    # sorted 0.01, 0.03, 0.04 -> 3 x 0.01 = 0.03, 2 x 0.03 = 0.06, max(0.06, 1 x 0.04) = 0.06
    adjusted = stats.adjust([0.01, 0.04, 0.03, np.nan], "holm")
    assert adjusted[:3] == pytest.approx([0.03, 0.06, 0.06])
    assert math.isnan(adjusted[3])
    assert stats.adjust([0.01, 0.04], "bonferroni") == pytest.approx([0.02, 0.08])
    assert stats.adjust([0.01, 0.04], "none") == pytest.approx([0.01, 0.04])
