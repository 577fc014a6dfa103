"""The worked example of docs/verdicts.md, recomputed: the document and the code agree."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from scipy import stats as scipy_stats

from configs.report_schema import INCONCLUSIVE, ReportConfig
from report import stats, tiers
from tests.report.test_stats import paired

DOC = (Path(__file__).resolve().parents[2] / "docs" / "verdicts.md").read_text()
N, GAINED, LOST = 400, 2, 10


@pytest.fixture(scope="module")
def example() -> stats.PairedComparison:
    return stats.compare(*paired(N, 200, gained=GAINED, lost=LOST))


def test_steps_1_and_2_delta_and_exact_mcnemar(example):
    assert example.delta_pp == pytest.approx(-2.0)
    assert example.p_value == pytest.approx(158 / 4096) == pytest.approx(0.0386, abs=5e-5)
    assert "**-2.0 pp**" in DOC and "158 / 4096 = **0.0386**" in DOC


def test_step_3_the_score_statistic_at_minus_three_by_hand():
    b = -0.03
    B = -(GAINED + LOST) + (2 * N + LOST - GAINED) * b
    C = -LOST * b * (1 - b)
    q = (-B + math.sqrt(B * B - 8 * N * C)) / (4 * N)
    z = (GAINED - LOST - N * b) / math.sqrt(N * (2 * q + b * (1 - b)))
    assert (B, C) == pytest.approx((-36.24, 0.309))
    assert q == pytest.approx(0.03391, abs=5e-6)
    assert z == pytest.approx(1.041, abs=5e-4)
    assert stats.score_statistic(GAINED, LOST, N, b) == pytest.approx(z)
    assert "**0.03391**" in DOC and "**1.041**" in DOC


def test_step_3_and_4_the_interval_and_the_tier(example):
    assert (round(example.ci_low_pp, 1), round(example.ci_high_pp, 1)) == (-4.1, -0.4)
    judged = tiers.judge([tiers.Evidence("accuracy", example, example.p_value)], ReportConfig(), family_size=1)
    assert judged.tier == INCONCLUSIVE
    assert tiers.tier_of(example.delta_pp, ReportConfig().tiers) == "negligible"  # TR125's point rule
    assert "**[-4.1, -0.4]**" in DOC and "**inconclusive**" in DOC


def test_step_5_pairs_that_would_decide_it(example):
    by_hand = (1.95996 * math.sqrt(0.0291) + 0.84162 * math.sqrt(0.0296)) ** 2 / 0.01**2
    judged = tiers.judge([tiers.Evidence("accuracy", example, example.p_value)], ReportConfig(), family_size=1)
    assert math.ceil(by_hand) == judged.pairs_to_decide == 2296
    assert "**2,296** pairs" in DOC
    assert "about 2,296 pairs would decide (now 400)" in judged.verdict


def test_step_6_the_floor_check():
    assert scipy_stats.binom.sf(26, 100, 0.35) == pytest.approx(0.965, abs=5e-4)
    assert scipy_stats.binomtest(47, 100, 0.35, alternative="greater").pvalue == pytest.approx(0.0088, abs=5e-5)
    assert "**0.965**" in DOC and "**0.0088**" in DOC


def test_step_7_one_more_answer_is_a_tie():
    assert stats.score_statistic(1, 0, 400, 0.0) == pytest.approx(1.0)
    c = stats.compare(*paired(400, 200, gained=1, lost=0))
    assert c.ci_low_pp < 0 < c.ci_high_pp
