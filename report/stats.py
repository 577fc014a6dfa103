"""Paired statistics of two evaluations of the same samples (a variant against a reference).

Every comparison here is paired by sample: the same questions were asked of both models,
so their per-sample correctness is compared, which is far more sensitive than comparing
two accuracies as if they came from different samples.

- Delta: mean(variant) - mean(reference), in percentage points.
- Its confidence interval: the percentile bootstrap of the mean per-sample difference.
  With binary correctness each difference is -1, 0 or +1, so resampling n pairs is the
  same as drawing the three counts from a multinomial; that is what is done (exact, and
  fast enough for 10,000 resamples of thousands of pairs). Other scores fall back to
  `scipy.stats.bootstrap`.
- Significance: McNemar's test on the discordant pairs (gained: reference wrong, variant
  right; lost: the reverse), via statsmodels: the exact binomial test below
  `exact_below` discordant pairs, else the chi-square test with continuity correction.
- Multiple comparisons: `adjust` wraps statsmodels' `multipletests` (Holm by default).
- Minimum detectable effect: the smallest paired difference a two-sided McNemar test at
  `alpha` detects with probability `power` with this n (Connor 1987 normal approximation:
  sqrt(n) * d = z_{1-alpha/2} * sqrt(psi) + z_power * sqrt(psi - d^2), psi the discordant
  rate: the observed one, and at least d itself). A difference smaller than the MDE that
  is "not significant" says the sample was too small, not that there is no difference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests


@dataclass(frozen=True)
class PairedComparison:
    n: int  # paired samples
    reference_mean: float
    variant_mean: float
    delta_pp: float  # (variant - reference) x 100
    ci_low_pp: float
    ci_high_pp: float
    gained: int  # reference wrong, variant right (binary scores only)
    lost: int  # reference right, variant wrong
    p_value: float  # McNemar, uncorrected; nan when the scores are not binary
    test: str  # "exact", "chi2" or "" (no test)
    mde_pp: float  # minimum detectable effect at this n, in points


def compare(reference, variant, *, confidence: float = 0.95, resamples: int = 10000, seed: int = 0,
            alpha: float = 0.05, power: float = 0.80, exact_below: int = 25) -> PairedComparison:
    """Compare per-sample scores of the same samples, in the same order."""
    reference, variant = np.asarray(reference, dtype=float), np.asarray(variant, dtype=float)
    if reference.shape != variant.shape:
        raise ValueError(f"paired scores need equal lengths, got {reference.shape} and {variant.shape}")
    n = len(reference)
    if n == 0:
        nan = math.nan
        return PairedComparison(0, nan, nan, nan, nan, nan, 0, 0, nan, "", nan)
    low, high = paired_bootstrap_ci(variant - reference, confidence=confidence, resamples=resamples, seed=seed)
    binary = np.isin(reference, (0, 1)).all() and np.isin(variant, (0, 1)).all()
    gained = int(((reference == 0) & (variant == 1)).sum()) if binary else 0
    lost = int(((reference == 1) & (variant == 0)).sum()) if binary else 0
    p_value, test = mcnemar_test(gained, lost, exact_below=exact_below) if binary else (math.nan, "")
    mde = mde_paired(n, (gained + lost) / n, alpha=alpha, power=power) if binary else math.nan
    return PairedComparison(
        n=n, reference_mean=float(reference.mean()), variant_mean=float(variant.mean()),
        delta_pp=100 * float((variant - reference).sum()) / n, ci_low_pp=100 * low, ci_high_pp=100 * high,
        gained=gained, lost=lost, p_value=p_value, test=test, mde_pp=100 * mde,
    )


def paired_bootstrap_ci(differences, *, confidence: float = 0.95, resamples: int = 10000,
                        seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-pair differences."""
    d = np.asarray(differences, dtype=float)
    n = len(d)
    if n == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    tails = [(1 - confidence) / 2, (1 + confidence) / 2]
    if np.isin(d, (-1, 0, 1)).all():
        counts = np.array([(d == 1).sum(), (d == 0).sum(), (d == -1).sum()])
        draws = rng.multinomial(n, counts / n, size=resamples)
        means = (draws[:, 0] - draws[:, 2]) / n
        low, high = np.quantile(means, tails)
        return float(low), float(high)
    if np.all(d == d[0]):
        return float(d[0]), float(d[0])
    result = stats.bootstrap((d,), np.mean, n_resamples=resamples, confidence_level=confidence,
                             method="percentile", rng=rng, vectorized=True)
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def mcnemar_test(gained: int, lost: int, *, exact_below: int = 25) -> tuple[float, str]:
    """Two-sided McNemar p-value from the discordant counts, and which test gave it."""
    exact = gained + lost < exact_below
    table = [[0, lost], [gained, 0]]  # concordant cells do not enter the statistic
    result = mcnemar(table, exact=exact, correction=True)
    return float(result.pvalue), "exact" if exact else "chi2"


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


def connor_sample_size(d: float, discordant_rate: float, *, alpha: float = 0.05, power: float = 0.80) -> float:
    """Pairs needed to detect a paired difference `d` (the inverse of `mde_paired`)."""
    z_alpha, z_power = stats.norm.ppf(1 - alpha / 2), stats.norm.ppf(power)
    psi = max(discordant_rate, d)
    return (z_alpha * math.sqrt(psi) + z_power * math.sqrt(psi - d * d)) ** 2 / d**2


def adjust(p_values, method: str = "holm") -> np.ndarray:
    """Multiple-comparison adjusted p-values; nan entries are left out of the family."""
    p = np.asarray(p_values, dtype=float)
    adjusted = p.copy()
    present = ~np.isnan(p)
    if method != "none" and present.any():
        adjusted[present] = multipletests(p[present], method=method)[1]
    return adjusted
