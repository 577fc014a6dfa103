"""The report's statistics against values computed by hand (and by scipy, independently)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize
from scipy import stats as scipy_stats
from statsmodels.stats.contingency_tables import mcnemar

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


# -- the score interval of a paired difference ---------------------------------------------------
def restricted_rate_by_search(gained: int, lost: int, n: int, bound: float) -> float:
    """The maximum-likelihood P(reference right, variant wrong) under delta = bound, found
    numerically (independently of the closed form in stats.score_statistic)."""
    def minus_log_likelihood(q: float) -> float:
        gain_rate = q + bound
        return -(lost * math.log(q) + (gained * math.log(gain_rate) if gained else 0.0)
                 + (n - gained - lost) * math.log(1 - q - gain_rate))

    low, high = max(0.0, -bound) + 1e-12, (1 - bound) / 2 - 1e-12
    return optimize.minimize_scalar(minus_log_likelihood, bounds=(low, high), method="bounded",
                                    options={"xatol": 1e-13}).x


@pytest.mark.parametrize("gained, lost, n, bound", [(2, 10, 400, -0.03), (0, 10, 192, -0.05), (17, 2, 100, -0.10),
                                                    (9, 3, 50, 0.02), (2, 80, 400, -0.10)])
def test_the_score_statistic_uses_the_maximum_likelihood_under_the_bound(gained, lost, n, bound):
    q = restricted_rate_by_search(gained, lost, n, bound)
    by_hand = (gained - lost - n * bound) / math.sqrt(n * (2 * q + bound * (1 - bound)))
    assert stats.score_statistic(gained, lost, n, bound) == pytest.approx(by_hand, rel=1e-6)


def test_at_zero_the_score_test_is_mcnemar_without_continuity_correction():
    z = stats.score_statistic(9, 4, 50, 0.0)
    assert z**2 == pytest.approx(mcnemar([[0, 4], [9, 0]], exact=False, correction=False).statistic)
    assert z**2 == pytest.approx((9 - 4) ** 2 / 13)


def test_no_flips_is_not_a_point_the_interval_of_zero_discordant_pairs_by_hand():
    """With no answer changed, the bound b solves n |b| / (1 - |b|) = z^2: |b| = z^2 / (n + z^2).
    40 identical answers leave +-8.8 pp open (the old bootstrap said [0, 0])."""
    for n in (40, 100, 400):
        half = Z_975**2 / (n + Z_975**2)
        assert stats.score_interval(0, 0, n) == pytest.approx((-half, half), abs=1e-9)
    assert stats.score_interval(0, 0, 40)[0] == pytest.approx(-0.0876, abs=1e-4)


def test_the_interval_is_the_inversion_of_the_test():
    low, high = stats.score_interval(2, 17, 100)
    assert stats.score_statistic(2, 17, 100, low) == pytest.approx(Z_975, abs=1e-7)
    assert stats.score_statistic(2, 17, 100, high) == pytest.approx(-Z_975, abs=1e-7)
    assert low < -0.15 < high < 0
    assert stats.score_interval(0, 40, 40) == pytest.approx((-1.0, stats.score_interval(0, 40, 40)[1]))


def test_the_issue_format_drop_by_hand():
    """0 gained / 10 lost of 192 (issue 18): -5.2 pp, exact McNemar p = 2 / 2^10, and an
    interval [-9.3, -2.9] that spans three tiers."""
    c = stats.compare(*paired(192, 150, gained=0, lost=10))
    assert c.delta_pp == pytest.approx(-100 * 10 / 192)
    assert (c.p_value, c.test) == (pytest.approx(2 / 1024), "exact")
    assert (c.ci_low_pp, c.ci_high_pp) == pytest.approx((-9.3205, -2.8533), abs=1e-4)


def test_significant_after_mcnemar_means_the_interval_excludes_zero():
    """The verdict's "significant loss" never sits beside an interval that holds 0: where
    McNemar (exact below 25 discordant pairs, else chi-square with continuity correction)
    rejects at alpha, the uncorrected score test (the interval's dual at 0) rejects too."""
    for discordant in range(1, 121):  # from 25 on chi-square with continuity correction, more cautious still
        for lost in range(discordant + 1):
            gained = discordant - lost
            p_mcnemar = stats.mcnemar_test(gained, lost)[0]
            p_score = 2 * scipy_stats.norm.sf(abs(gained - lost) / math.sqrt(discordant))
            assert not p_mcnemar < 0.05 <= p_score, (gained, lost)


def test_non_binary_scores_use_the_paired_t_interval():
    rng = np.random.default_rng(0)
    reference = rng.normal(0, 1, 200)
    variant = reference + rng.normal(0.3, 1.0, 200)
    c = stats.compare(reference, variant)
    expected = scipy_stats.ttest_1samp(variant - reference, 0).confidence_interval(0.95)
    assert (c.ci_low_pp / 100, c.ci_high_pp / 100) == pytest.approx((expected.low, expected.high))
    assert c.p_value == pytest.approx(scipy_stats.ttest_1samp(variant - reference, 0).pvalue)
    assert not c.binary and c.test == "t"


def test_compare_reports_delta_flips_and_test_of_the_pairs():
    reference, variant = paired(100, 60, gained=1, lost=5)
    result = stats.compare(reference, variant)
    assert result.n == 100
    assert result.delta_pp == pytest.approx(-4.0)
    assert (result.gained, result.lost, result.discordant_rate) == (1, 5, 0.06)
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


def test_pairs_to_decide_a_bound_generalise_connor_by_hand():
    # d = -1 pp, bound -3 pp, psi = 4%: n = (1.95996 sqrt(0.04 - 0.0009) + 0.84162 sqrt(0.04 - 0.0001))^2 / 0.02^2
    by_hand = (Z_975 * math.sqrt(0.04 - 0.03**2) + Z_80 * math.sqrt(0.04 - 0.01**2)) ** 2 / 0.02**2
    assert by_hand == pytest.approx(771.93, abs=0.01)  # (0.38756 + 0.16811)^2 / 0.0004
    assert stats.connor_sample_size(-0.01, 0.04, bound=-0.03) == pytest.approx(by_hand)
    assert stats.connor_sample_size(-0.03, 0.04, bound=-0.03) == math.inf  # on the bound: no n decides it
    c = stats.compare(*paired(400, 200, gained=4, lost=12))  # d = -2 pp, psi = 4%
    assert stats.pairs_to_decide(c, -3.0, alpha=0.05, power=0.8) == pytest.approx(
        stats.connor_sample_size(-0.02, 0.04, bound=-0.03))


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
