"""Tiers, cliffs and viability exactly at their boundaries."""

from __future__ import annotations

import pandas as pd
import pytest

from configs.errors import ConfigError
from configs.report_schema import ReportConfig, TierConfig
from report import tiers

DEFAULT = TierConfig()


@pytest.mark.parametrize("delta, expected", [
    (2.0, "negligible"), (0.0, "negligible"), (-3.0, "negligible"), (-3.01, "acceptable"),
    (-5.0, "acceptable"), (-5.01, "concerning"), (-10.0, "concerning"), (-10.01, "unacceptable"),
    (-40.0, "unacceptable"),
])
def test_tier_thresholds_are_inclusive(delta, expected):
    assert tiers.tier_of(delta, DEFAULT) == expected


def test_a_delta_from_counts_lands_exactly_on_the_boundary():
    delta = (0.47 - 0.50) * 100  # -3.0000000000000027 in floating point: still negligible
    assert delta < -3.0
    assert tiers.tier_of(delta, DEFAULT) == "negligible"
    assert tiers.tier_of((0.45 - 0.50) * 100, DEFAULT) == "acceptable"


def test_tier_thresholds_are_configurable_and_missing_deltas_have_no_tier():
    strict = TierConfig(negligible=-1.0, acceptable=-2.0, concerning=-4.0)
    got = [tiers.tier_of(d, strict) for d in (-1.0, -1.5, -4.0, -4.5)]
    assert got == ["negligible", "acceptable", "concerning", "unacceptable"]
    assert tiers.tier_of(None, DEFAULT) is None
    assert tiers.tier_of(float("nan"), DEFAULT) is None


def test_the_tier_uses_the_worse_of_accuracy_and_format_deltas():
    assert tiers.worse(-2.0, -4.0) == -4.0
    assert tiers.tier_of(tiers.worse(-2.0, -4.0), DEFAULT) == "acceptable"
    assert tiers.worse(-2.0, None) == -2.0
    assert tiers.worse(-2.0, float("nan")) == -2.0
    assert tiers.worse(None) is None


def test_bad_tier_settings_are_one_clear_line():
    with pytest.raises(ConfigError, match="0 >= negligible >= acceptable >= concerning"):
        TierConfig(negligible=-5.0, acceptable=-3.0).validate()
    with pytest.raises(ConfigError, match="tiers.viable='great'.*negligible"):
        TierConfig(viable="great").validate()


# -- cliffs ---------------------------------------------------------------------------------------
def series(*steps, model="m", size_b=1.0, method="rtn", group=32) -> pd.DataFrame:
    """A baseline plus one variant per (bits, delta) step; tiers from the default thresholds."""
    rows = [dict(model=model, size_b=size_b, method="none", group=None, bits=16, label="none-bf16",
                 is_baseline=True, delta_pp=0.0, tier="negligible")]
    for bits, delta in steps:
        rows.append(dict(model=model, size_b=size_b, method=method, group=group, bits=bits, label=f"{method}-w{bits}",
                         is_baseline=False, delta_pp=delta, tier=tiers.tier_of(delta, DEFAULT)))
    return pd.DataFrame(rows)


def cliff(frame: pd.DataFrame, **settings) -> dict:
    cfg = ReportConfig()
    for key, value in settings.items():
        setattr(cfg.cliff, key, value)
    result = tiers.cliffs(frame, cfg)
    assert len(result) == 1
    return result.iloc[0].to_dict()


def test_one_tier_per_step_is_no_cliff():
    # negligible -> acceptable -> concerning (-10.0 exactly is still concerning, not below -10)
    row = cliff(series((8, -3.0), (4, -5.0), (3, -10.0)))
    assert pd.isna(row["cliff"])
    assert row["reason"] == "no cliff down to 3 bits"


def test_two_tiers_in_one_step_is_a_cliff():
    row = cliff(series((8, -1.0), (4, -3.0), (3, -5.01)))  # negligible -> concerning at 3 bits
    assert row["cliff_bits"] == 3
    assert row["last_ok_bits"] == 4
    assert row["cliff_size_pp"] == pytest.approx(2.01)
    assert "drops 2 tiers (negligible -> concerning)" in row["reason"]


def test_falling_below_the_threshold_is_a_cliff_even_one_tier_down():
    row = cliff(series((8, -3.5), (4, -6.0), (3, -10.01)))  # concerning -> unacceptable: one tier, but < -10
    assert row["cliff_bits"] == 3
    assert row["reason"] == "delta -10.0 pp < -10 pp"


def test_the_first_quantized_step_is_measured_from_the_baseline():
    row = cliff(series((8, -6.0), (4, -7.0)))  # baseline (negligible) -> concerning
    assert row["cliff_bits"] == 8
    assert row["last_ok"] == "baseline"


def test_cliff_settings_change_the_rule():
    steps = series((8, -1.0), (4, -5.01))
    assert cliff(steps)["cliff_bits"] == 4
    assert pd.isna(cliff(steps, tier_drop=3)["cliff"])
    assert cliff(series((8, -1.0), (4, -4.0)), below_pp=-3.5)["cliff_bits"] == 4


def test_series_are_separated_by_model_method_and_group():
    frame = pd.concat([series((4, -1.0), (3, -12.0)), series((4, -1.0), group=128).iloc[1:],
                       series((4, -20.0), model="n", size_b=3.0)])
    result = tiers.cliffs(frame, ReportConfig()).set_index(["model", "group"])
    assert result.loc[("m", 32), "cliff_bits"] == 3
    assert pd.isna(result.loc[("m", 128), "cliff"])
    assert result.loc[("n", 32), "cliff_bits"] == 4


# -- viability thresholds ---------------------------------------------------------------------------
def sizes(*cells) -> pd.DataFrame:
    """One rtn w4 variant per (size_b, delta)."""
    return pd.concat([series((4, delta), model=f"m{size}", size_b=size) for size, delta in cells])


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


def test_a_model_is_viable_only_if_every_variant_of_it_is():
    row = threshold((0.5, -6.0), (0.5, -1.0), (3.0, -1.0))  # m0.5: one concerning variant, one negligible
    assert row["smallest_viable_model"] == "m3.0"
    assert row["not_viable"] == "m0.5 (concerning)"
