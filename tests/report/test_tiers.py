"""Tiers from intervals, cliffs and viability, exactly at their boundaries."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from configs.errors import ConfigError
from configs.report_schema import INCONCLUSIVE, ReportConfig, TierConfig
from report import stats, tiers
from tests.report.test_stats import paired

DEFAULT = TierConfig()
CFG = ReportConfig()


@pytest.mark.parametrize("delta, expected", [
    (2.0, "negligible"), (0.0, "negligible"), (-3.0, "negligible"), (-3.01, "acceptable"),
    (-5.0, "acceptable"), (-5.01, "concerning"), (-10.0, "concerning"), (-10.01, "unacceptable"),
    (-40.0, "unacceptable"),
])
def test_band_thresholds_are_inclusive(delta, expected):
    assert tiers.tier_of(delta, DEFAULT) == expected


def test_a_delta_from_counts_lands_exactly_on_the_boundary():
    delta = (0.47 - 0.50) * 100  # -3.0000000000000027 in floating point: still negligible
    assert delta < -3.0
    assert tiers.tier_of(delta, DEFAULT) == "negligible"
    assert tiers.tier_of((0.45 - 0.50) * 100, DEFAULT) == "acceptable"


def test_band_thresholds_are_configurable_and_missing_deltas_have_no_band():
    strict = TierConfig(negligible=-1.0, acceptable=-2.0, concerning=-4.0)
    got = [tiers.tier_of(d, strict) for d in (-1.0, -1.5, -4.0, -4.5)]
    assert got == ["negligible", "acceptable", "concerning", "unacceptable"]
    assert tiers.tier_of(None, DEFAULT) is None
    assert tiers.tier_of(float("nan"), DEFAULT) is None


# -- a tier needs its interval inside the band ------------------------------------------------------
def comparison(delta: float, low: float, high: float, *, n: int = 400, gained: int = 0, lost: int = 0):
    """A paired comparison with the interval given (points); the flips feed the pairs to decide."""
    return stats.PairedComparison(n=n, reference_mean=0.5, variant_mean=0.5 + delta / 100, delta_pp=delta,
                                  ci_low_pp=low, ci_high_pp=high, gained=gained, lost=lost, p_value=math.nan,
                                  test="exact", mde_pp=math.nan)


def judge(*intervals, p_change: float = 0.001, metrics=("accuracy", "format")) -> tiers.Judgement:
    """`intervals`: (delta, low, high) per delta; every loss tested significant unless p_change says no."""
    evidence = [tiers.Evidence(metric, comparison(*i), p_change) for metric, i in zip(metrics, intervals)]
    return tiers.judge(evidence, CFG, family_size=10)


@pytest.mark.parametrize("interval, tier", [
    ((+1.0, -3.0, +5.0), "negligible"),  # the lower bound exactly on -3: inside (inclusive)
    ((-4.0, -4.9, -3.1), "acceptable"),
    ((-7.0, -9.9, -5.1), "concerning"),
    ((-15.0, -20.0, -10.01), "unacceptable"),
    ((+1.0, -3.01, +5.0), INCONCLUSIVE),  # straddles -3 by a hair
    ((-4.0, -5.2, -3.1), INCONCLUSIVE),  # acceptable needs both bounds in [-5, -3)
    ((-12.0, -14.0, -10.0), INCONCLUSIVE),  # -10 itself is concerning: not all below -10
    ((+1.0, -5.2, +7.3), INCONCLUSIVE),  # the example, once tiered "negligible" and "viable"
])
def test_a_tier_is_stated_only_where_the_interval_fits_its_band(interval, tier):
    assert judge(interval).tier == tier


def test_a_wide_interval_is_inconclusive_with_the_pairs_that_would_decide_it():
    """+1 pp from 8 gained / 7 lost of 100: the interval runs into "concerning". Placing a
    +1 pp difference above -3 pp with 80% power takes Connor's n with bound -3 pp."""
    c = stats.compare(*paired(100, 50, gained=8, lost=7))
    judged = tiers.judge([tiers.Evidence("accuracy", c, c.p_value)], CFG, family_size=3)
    assert (c.ci_low_pp, c.ci_high_pp) == pytest.approx((-7.1, 9.2), abs=0.05)
    assert judged.verdict.startswith("inconclusive: accuracy [-7.1, +9.2] spans negligible to concerning; about ")
    assert judged.pairs_to_decide == math.ceil(stats.connor_sample_size(0.01, 0.15, bound=-0.03)) == 733


def test_a_loss_tier_needs_the_loss_itself_to_be_significant():
    """The interval lies in "acceptable", but the corrected McNemar test does not confirm a
    loss: stating "acceptable" would claim a loss the tested verdict denies."""
    judged = judge((-4.0, -4.9, -3.1), p_change=0.2)
    assert judged.tier == INCONCLUSIVE
    assert "lies in acceptable, but the loss is not significant after holm correction (p 0.200)" in judged.verdict
    assert judge((-1.0, -2.5, +0.5), p_change=0.2).tier == "negligible"  # negligible claims no loss


def test_the_worse_delta_sets_the_tier_and_the_verdict_names_it():
    judged = judge((-0.5, -1.5, +0.5), (-15.0, -18.0, -12.0))  # accuracy negligible, format unacceptable
    assert (judged.tier, judged.metric, judged.delta_pp) == ("unacceptable", "format", -15.0)
    assert judged.verdict == "unacceptable: a significant format loss of more than 10 pp [-18.0, -12.0]"
    both = judge((-0.5, -1.5, +0.5), (-0.2, -0.9, +0.9))
    assert both.tier == "negligible"
    assert both.verdict.startswith("negligible: no loss of 3 pp or more (accuracy [-1.5, +0.5]; format [-0.9, +0.9])")


def test_an_open_delta_leaves_the_variant_open_only_if_it_may_be_the_worse_one():
    assert judge((-0.5, -1.5, +0.5), (-4.0, -5.5, -2.5)).tier == INCONCLUSIVE  # format may be concerning
    assert judge((-12.0, -15.0, -10.5), (-4.0, -5.5, -2.5)).tier == "unacceptable"  # nothing is worse
    surely = judge((-7.0, -9.0, -5.5), (-4.0, -5.5, -2.5))  # format reaches concerning at worst: no further
    assert (surely.tier, surely.metric) == ("concerning", "accuracy")
    assert judge((-7.0, -9.0, -5.5), (-8.0, -10.5, -5.5)).tier == INCONCLUSIVE  # format may be unacceptable


def test_a_significant_format_drop_gives_a_tier_and_verdict_that_agree():
    """The issue's cliff: format -5.2 pp, 0 gained / 10 lost of 192, exact p = 0.002. Its
    verdict once read "too few samples to tell" beside a tier set by that very drop."""
    accuracy = stats.compare(*paired(192, 100, gained=1, lost=0))
    fmt = stats.compare(*paired(192, 182, gained=0, lost=10))
    judged = tiers.judge([tiers.Evidence("accuracy", accuracy, 1.0),
                          tiers.Evidence("format", fmt, fmt.p_value)], CFG, family_size=2)
    assert judged.tier == INCONCLUSIVE and judged.metric == "format"
    assert judged.verdict.startswith("inconclusive: format [-9.3, -2.9] spans negligible to concerning; "
                                     "a significant format loss; about ")
    assert "too few samples" not in judged.verdict


def test_pairs_to_decide_by_hand():
    """-2.0 pp with 4% discordant pairs, band acceptable? no: negligible [-3, inf), so the
    lower edge -3 decides it at alpha 0.05: Connor with bound -3 pp."""
    c = stats.compare(*paired(400, 200, gained=4, lost=12))  # [-4.0, -0.0]: straddles -3
    judged = tiers.judge([tiers.Evidence("accuracy", c, 1.0)], CFG, family_size=4)
    assert judged.tier == INCONCLUSIVE
    assert judged.pairs_to_decide == math.ceil(stats.connor_sample_size(-0.02, 0.04, bound=-0.03))


def test_no_sample_size_decides_an_estimate_on_a_boundary():
    c = stats.compare(*paired(400, 200, gained=0, lost=12))  # exactly -3.0 pp
    judged = tiers.judge([tiers.Evidence("accuracy", c, c.p_value)], CFG, family_size=1)
    assert judged.tier == INCONCLUSIVE and judged.pairs_to_decide == math.inf
    assert "no sample size decides it" in judged.verdict


def test_a_delta_without_an_interval_decides_nothing():
    single = stats.compare([0.2], [0.7])  # one non-binary pair: no t interval
    judged = tiers.judge([tiers.Evidence("accuracy", single, single.p_value)], CFG, family_size=1)
    assert judged.tier == INCONCLUSIVE and judged.verdict.startswith("inconclusive: accuracy has no interval (n=1)")


def test_worst_of_prefers_unacceptable_then_inconclusive():
    assert tiers.worst([("negligible", 1), ("concerning", 2)]) == ("concerning", 2)
    assert tiers.worst([("concerning", 1), (INCONCLUSIVE, 2)]) == (INCONCLUSIVE, 2)
    assert tiers.worst([(INCONCLUSIVE, 1), ("unacceptable", 2)]) == ("unacceptable", 2)
    assert tiers.worst([("at floor", 1), (None, 2)]) is None


def test_only_stated_tiers_are_viable():
    assert tiers.is_viable("acceptable", "acceptable") and not tiers.is_viable("concerning", "acceptable")
    assert not tiers.is_viable(INCONCLUSIVE, "unacceptable") and not tiers.is_viable("at floor", "unacceptable")


def test_bad_tier_settings_are_one_clear_line():
    with pytest.raises(ConfigError, match="0 >= negligible >= acceptable >= concerning"):
        TierConfig(negligible=-5.0, acceptable=-3.0).validate()
    with pytest.raises(ConfigError, match="tiers.viable='great'.*negligible"):
        TierConfig(viable="great").validate()


# -- cliffs ---------------------------------------------------------------------------------------
def series(*steps, model="m", size_b=1.0, method="rtn", group=32) -> pd.DataFrame:
    """A baseline plus one variant per (bits, delta[, tier]) step: a +-0.5 pp interval and
    the delta's band as its tier unless one is given."""
    rows = [dict(model=model, size_b=size_b, method="none", group=None, bits=16, label="none-bf16",
                 is_baseline=True, delta_pp=0.0, tier="negligible", tier_metric=None, tier_delta_pp=0.0,
                 tier_ci_high_pp=0.0)]
    for bits, delta, *tier in steps:
        rows.append(dict(model=model, size_b=size_b, method=method, group=group, bits=bits, label=f"{method}-w{bits}",
                         is_baseline=False, delta_pp=delta, tier=tier[0] if tier else tiers.tier_of(delta, DEFAULT),
                         tier_metric="accuracy", tier_delta_pp=delta, tier_ci_high_pp=delta + 0.5))
    return pd.DataFrame(rows)


def cliff(frame: pd.DataFrame, **settings) -> dict:
    cfg = ReportConfig()
    for key, value in settings.items():
        setattr(cfg.cliff, key, value)
    result = tiers.cliffs(frame, cfg)
    assert len(result) == 1
    return result.iloc[0].to_dict()


def test_one_tier_per_step_is_no_cliff():
    # negligible -> acceptable -> concerning (its interval reaches -9.5: not below -10)
    row = cliff(series((8, -3.0), (4, -5.0), (3, -10.0)))
    assert pd.isna(row["cliff"])
    assert row["reason"] == "no cliff shown down to 3 bits"


def test_two_tiers_in_one_step_is_a_cliff():
    row = cliff(series((8, -1.0), (4, -3.0), (3, -5.01)))  # negligible -> concerning at 3 bits
    assert row["cliff_bits"] == 3
    assert row["last_ok_bits"] == 4
    assert row["cliff_size_pp"] == pytest.approx(2.01)
    assert "drops 2 tiers (negligible -> concerning)" in row["reason"]


def test_falling_below_the_threshold_is_a_cliff_even_one_tier_down():
    row = cliff(series((8, -3.5), (4, -6.0), (3, -10.51)))  # concerning -> unacceptable: one tier, interval < -10
    assert row["cliff_bits"] == 3
    assert row["reason"] == "accuracy interval below -10 pp (upper bound -10.0)"


def test_inconclusive_steps_are_named_and_never_count_as_good():
    # w4 inconclusive between a negligible w8 and an unacceptable w3: the cliff is shown at w3,
    # measured from the last stated tier (w8), and the reason says w4 is undetermined
    row = cliff(series((8, -1.0), (4, -6.0, INCONCLUSIVE), (3, -20.0)))
    assert (row["cliff_bits"], row["last_ok_bits"]) == (3, 8)
    assert "drops 3 tiers (negligible -> unacceptable)" in row["reason"]
    assert "undetermined in between: w4 inconclusive" in row["reason"]
    row = cliff(series((8, -1.0), (4, -6.0, INCONCLUSIVE)))
    assert pd.isna(row["cliff"])
    assert row["reason"] == "no cliff shown down to 4 bits; undetermined: w4 inconclusive"


def test_the_first_quantized_step_is_measured_from_the_baseline():
    row = cliff(series((8, -6.0), (4, -7.0)))  # baseline (negligible) -> concerning
    assert row["cliff_bits"] == 8
    assert row["last_ok"] == "baseline"


def test_cliff_settings_change_the_rule():
    steps = series((8, -1.0), (4, -5.01))
    assert cliff(steps)["cliff_bits"] == 4
    assert pd.isna(cliff(steps, tier_drop=3)["cliff"])
    assert cliff(series((8, -1.0), (4, -4.5)), below_pp=-3.5)["cliff_bits"] == 4  # interval up to -4.0


def test_series_are_separated_by_model_method_and_group():
    frame = pd.concat([series((4, -1.0), (3, -12.0)), series((4, -1.0), group=128).iloc[1:],
                       series((4, -20.0), model="n", size_b=3.0)])
    result = tiers.cliffs(frame, ReportConfig()).set_index(["model", "group"])
    assert result.loc[("m", 32), "cliff_bits"] == 3
    assert pd.isna(result.loc[("m", 128), "cliff"])
    assert result.loc[("n", 32), "cliff_bits"] == 4


# -- viability thresholds ---------------------------------------------------------------------------
def sizes(*cells) -> pd.DataFrame:
    """One rtn w4 variant per (size_b, delta[, tier])."""
    return pd.concat([series((4, *step), model=f"m{size}", size_b=size) for size, *step in cells])


def threshold(*cells, viable="acceptable") -> dict:
    result = tiers.viability_thresholds(sizes(*cells), viable)
    assert len(result) == 1
    return result.iloc[0].to_dict()


def test_smallest_viable_size_is_where_every_larger_size_is_viable():
    row = threshold((0.5, -6.0), (1.0, -5.0), (3.0, -1.0))  # concerning, acceptable (boundary), negligible
    assert row["smallest_viable_model"] == "m1.0"
    assert row["smallest_viable_size_b"] == 1.0
    assert not row["viable_at_all_sizes"]
    assert row["not_viable"] == "m0.5 (concerning)"


def test_a_non_viable_larger_model_moves_the_threshold_up():
    row = threshold((0.5, -1.0), (1.0, -6.0), (3.0, -1.0))
    assert row["smallest_viable_model"] == "m3.0"


def test_viable_everywhere_nowhere_and_with_a_stricter_rule():
    assert threshold((0.5, -3.0), (3.0, 0.0))["viable_at_all_sizes"]
    assert threshold((0.5, -1.0), (3.0, -12.0))["smallest_viable_model"] is None
    assert threshold((0.5, -4.0), (3.0, -1.0), viable="negligible")["smallest_viable_model"] == "m3.0"


def test_sizes_tested_counts_models_not_variants():
    """Two variants of one model (the same scheme in float32 and bfloat16, say) are one size."""
    assert threshold((0.5, -1.0), (0.5, -2.0), (3.0, -1.0))["sizes_tested"] == 2


def test_inconclusive_is_undetermined_never_viable():
    row = threshold((0.5, -1.0, INCONCLUSIVE), (3.0, -1.0))
    assert row["smallest_viable_model"] == "m3.0" and not row["viable_at_all_sizes"]
    assert (row["undetermined"], row["not_viable"]) == ("m0.5 (inconclusive)", "")
    top = threshold((0.5, -1.0), (3.0, -1.0, INCONCLUSIVE))
    assert top["smallest_viable_model"] is None and top["largest_undetermined"]
    assert threshold((0.5, -1.0), (3.0, -1.0, "at floor"))["undetermined"] == "m3.0 (at floor)"


def test_a_model_is_viable_only_if_every_variant_of_it_is():
    row = threshold((0.5, -6.0), (0.5, -1.0), (3.0, -1.0))  # m0.5: one concerning variant, one negligible
    assert row["smallest_viable_model"] == "m3.0"
    assert row["not_viable"] == "m0.5 (concerning)"
