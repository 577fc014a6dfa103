"""Paired statistics of two evaluations of the same samples (a variant against a reference).

Every comparison here is paired by sample: the same questions were asked of both models,
so their per-sample correctness is compared, which is far more sensitive than comparing
two accuracies as if they came from different samples.

- Delta: mean(variant) - mean(reference), in percentage points.
- Its confidence interval, at 1 - alpha: for 0/1 scores the score interval of Tango
  (1998) for a paired difference of proportions, the inversion of the score test below;
  for other scores the paired t interval. Both are exact duals of their tests, so "the
  interval lies above -3 pp" and "the test of delta <= -3 pp rejects" are the same
  statement. (The percentile bootstrap used before collapsed to [0, 0] when no answer
  changed: 0 flips out of 40 "proved" a loss under 3 pp. The score interval of 0 flips
  out of 40 is [-8.8, +8.8] pp.)
- The score test behind it (delta = b): statistic (gained - lost - n b) /
  sqrt(n (2 q + b (1 - b))), q the maximum-likelihood rate of "reference right, variant
  wrong" under delta = b (a quadratic's root). At b = 0 it is McNemar's asymptotic test
  without continuity correction; the interval's lower bound above -3 pp is its one-sided
  test of delta <= -3 pp rejecting at alpha / 2 (non-inferiority). scipy and statsmodels
  have no paired-proportion test of a non-zero bound (statsmodels' are for independent
  samples), hence the few lines here.
- Significance of a change: McNemar's test on the discordant pairs (gained: reference
  wrong, variant right; lost: the reverse), via statsmodels: the exact binomial test below
  `exact_below` discordant pairs, else the chi-square test with continuity correction.
- Continuous paired values (per-prompt KL of two methods): Wilcoxon's signed-rank test
  (scipy) and the Hodges-Lehmann shift (`signed_rank_test`). The test rejects on any
  asymmetry of the differences around 0; the shift's sign says which way.
- Multiple comparisons: `adjust` wraps statsmodels' `multipletests` (Holm by default).
- Minimum detectable effect and pairs needed: Connor's (1987) normal approximation for a
  paired test at `alpha` with probability `power`, sqrt(n) |d - b| = z_{1-alpha/2}
  sqrt(psi - b^2) + z_power sqrt(psi - d^2), psi the discordant rate (the observed one, and
  at least |d| and |b|), generalised from b = 0 (McNemar) to any bound b.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

EDGE = 1e-9  # the score statistic is evaluated strictly inside (-1, 1)


@dataclass(frozen=True)
class PairedComparison:
    n: int  # paired samples
    reference_mean: float
    variant_mean: float
    delta_pp: float  # (variant - reference) x 100
    ci_low_pp: float  # interval at 1 - alpha: score (0/1 scores) or t
    ci_high_pp: float
    gained: int  # reference wrong, variant right (binary scores only)
    lost: int  # reference right, variant wrong
    p_value: float  # McNemar, uncorrected; nan when the scores are not binary
    test: str  # "exact", "chi2" or "" (no test)
    mde_pp: float  # minimum detectable effect at this n, in points
    binary: bool = True
    sd_pp: float = math.nan  # standard deviation of the per-sample differences (non-binary scores)

    @property
    def discordant_rate(self) -> float:
        return (self.gained + self.lost) / self.n if self.n else math.nan


def compare(reference, variant, *, alpha: float = 0.05, power: float = 0.80,
            exact_below: int = 25) -> PairedComparison:
    """Compare per-sample scores of the same samples, in the same order."""
    reference, variant = np.asarray(reference, dtype=float), np.asarray(variant, dtype=float)
    if reference.shape != variant.shape:
        raise ValueError(f"paired scores need equal lengths, got {reference.shape} and {variant.shape}")
    n = len(reference)
    if n == 0:
        nan = math.nan
        return PairedComparison(0, nan, nan, nan, nan, nan, 0, 0, nan, "", nan)
    differences = variant - reference
    means = dict(n=n, reference_mean=float(reference.mean()), variant_mean=float(variant.mean()),
                 delta_pp=100 * float(differences.sum()) / n)
    if np.isin(reference, (0, 1)).all() and np.isin(variant, (0, 1)).all():
        gained, lost = int((differences == 1).sum()), int((differences == -1).sum())
        low, high = score_interval(gained, lost, n, confidence=1 - alpha)
        p_value, test = mcnemar_test(gained, lost, exact_below=exact_below)
        mde = mde_paired(n, (gained + lost) / n, alpha=alpha, power=power)
        return PairedComparison(**means, ci_low_pp=100 * low, ci_high_pp=100 * high, gained=gained, lost=lost,
                                p_value=p_value, test=test, mde_pp=100 * mde)
    sd = float(differences.std(ddof=1)) if n > 1 else math.nan
    (low, high), p_value = paired_t_test(differences, confidence=1 - alpha)
    return PairedComparison(**means, ci_low_pp=100 * low, ci_high_pp=100 * high, gained=0, lost=0,
                            p_value=p_value, test="t", mde_pp=math.nan, binary=False, sd_pp=100 * sd)


# -- the score test and interval of a paired difference of proportions ------------------------
def score_statistic(gained: int, lost: int, n: int, bound: float) -> float:
    """Tango's score statistic for delta = bound (proportions); > 0 when the data say delta > bound."""
    bound = min(max(bound, -1 + EDGE), 1 - EDGE)
    b, c = lost, gained
    # maximum-likelihood P(reference right, variant wrong) when delta = bound: the positive
    # root of 2n q^2 + B q + C = 0 (the derivative of the multinomial likelihood)
    B = -(b + c) + (2 * n + b - c) * bound
    C = -b * bound * (1 - bound)
    q = (-B + math.sqrt(max(B * B - 8 * n * C, 0.0))) / (4 * n)
    variance = 2 * q + bound * (1 - bound)  # of one per-sample difference under delta = bound
    surplus = c - b - n * bound
    if variance <= 0:
        return 0.0 if surplus == 0 else math.copysign(math.inf, surplus)
    return surplus / math.sqrt(n * variance)


def score_interval(gained: int, lost: int, n: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """The bounds b at which the two-sided score test at 1 - confidence just rejects."""
    if n <= 0:
        return math.nan, math.nan
    z = stats.norm.ppf((1 + confidence) / 2)
    estimate = (gained - lost) / n

    def excess(bound: float, target: float) -> float:
        return score_statistic(gained, lost, n, bound) - target

    low_end, high_end = -1 + EDGE, 1 - EDGE
    low = -1.0 if excess(low_end, z) <= 0 else optimize.brentq(
        excess, low_end, min(max(estimate, low_end), high_end), args=(z,), xtol=1e-12)
    high = 1.0 if excess(high_end, -z) >= 0 else optimize.brentq(
        excess, max(min(estimate, high_end), low_end), high_end, args=(-z,), xtol=1e-12)
    return float(low), float(high)


def paired_t_test(differences: np.ndarray, *, confidence: float = 0.95) -> tuple[tuple[float, float], float]:
    """scipy's one-sample t-test of paired differences against zero: the interval and the
    two-sided p-value (no interval with fewer than 2 pairs; no spread: the interval is
    the mean itself and p is 1 or 0)."""
    if len(differences) < 2:
        return (math.nan, math.nan), math.nan
    mean = float(differences.mean())
    if not differences.std():
        return (mean, mean), 1.0 if mean == 0 else 0.0
    result = stats.ttest_1samp(differences, 0.0)
    interval = result.confidence_interval(confidence)
    return (float(interval.low), float(interval.high)), float(result.pvalue)


# -- significance of a change ----------------------------------------------------------------
def mcnemar_test(gained: int, lost: int, *, exact_below: int = 25) -> tuple[float, str]:
    """Two-sided McNemar p-value from the discordant counts, and which test gave it."""
    exact = gained + lost < exact_below
    table = [[0, lost], [gained, 0]]  # concordant cells do not enter the statistic
    result = mcnemar(table, exact=exact, correction=True)
    return float(result.pvalue), "exact" if exact else "chi2"


def signed_rank_test(reference, variant) -> tuple[float, float]:
    """Wilcoxon's signed-rank test of paired continuous values (per-prompt KL), via scipy,
    and its shift estimate (Hodges-Lehmann: the median of the pairwise means of the
    differences, variant - reference), whose sign is the direction the test sees. A value
    that is not a number (a broken variant's logits) counts as the largest; p is nan with
    no pairs, 1 when no pair differs."""
    differences = _paired_differences(reference, variant)
    if differences.size == 0:
        return math.nan, math.nan
    if not differences.any():
        return 1.0, 0.0
    with np.errstate(invalid="ignore"):  # inf + -inf: an undefined shift (NaN), named no direction
        walsh = np.add.outer(differences, differences)[np.triu_indices(differences.size)] / 2
        shift = float(np.median(walsh))
    return float(stats.wilcoxon(differences, zero_method="wilcox").pvalue), shift


def _paired_differences(reference, variant) -> np.ndarray:
    a, b = (np.nan_to_num(np.asarray(x, dtype=float), nan=np.inf) for x in (reference, variant))
    with np.errstate(invalid="ignore"):
        differences = b - a
    differences[np.isinf(a) & np.isinf(b)] = 0.0  # both undefined: no difference seen
    return differences


def adjust(p_values, method: str = "holm") -> np.ndarray:
    """Multiple-comparison adjusted p-values; nan entries are left out of the family."""
    p = np.asarray(p_values, dtype=float)
    adjusted = p.copy()
    present = ~np.isnan(p)
    if method != "none" and present.any():
        adjusted[present] = multipletests(p[present], method=method)[1]
    return adjusted


# -- power ------------------------------------------------------------------------------------
def mde_paired(n: int, discordant_rate: float, *, alpha: float = 0.05, power: float = 0.80) -> float:
    """Minimum detectable paired difference (a proportion); inf when n is too small."""
    if n <= 0:
        return math.nan
    z_alpha, z_power = stats.norm.ppf(1 - alpha / 2), stats.norm.ppf(power)

    def shortfall(d: float) -> float:
        psi = max(discordant_rate, d)
        return math.sqrt(n) * d - z_alpha * math.sqrt(psi) - z_power * math.sqrt(max(psi - d * d, 0.0))

    if shortfall(1.0) <= 0:
        return math.inf
    return float(optimize.brentq(shortfall, 1e-12, 1.0, xtol=1e-12))


def connor_sample_size(d: float, discordant_rate: float, *, bound: float = 0.0, alpha: float = 0.05,
                       power: float = 0.80) -> float:
    """Pairs needed to show a paired difference `d` is on its side of `bound` (proportions);
    with bound 0, the inverse of `mde_paired`. inf when d sits on the bound."""
    if d == bound:
        return math.inf
    z_alpha, z_power = stats.norm.ppf(1 - alpha / 2), stats.norm.ppf(power)
    psi = max(discordant_rate, abs(d), abs(bound))
    return (z_alpha * math.sqrt(psi - bound * bound) + z_power * math.sqrt(psi - d * d)) ** 2 / (d - bound) ** 2


def pairs_to_decide(comparison: PairedComparison, bound_pp: float, *, alpha: float, power: float) -> float:
    """Pairs with which a difference like the observed one would be shown on its side of
    `bound_pp` with probability `power` (two-sided level alpha)."""
    d, bound = comparison.delta_pp / 100, bound_pp / 100
    if comparison.binary:
        return connor_sample_size(d, comparison.discordant_rate, bound=bound, alpha=alpha, power=power)
    if d == bound:
        return math.inf
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    return (z * comparison.sd_pp / 100 / (d - bound)) ** 2
