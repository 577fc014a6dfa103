"""Cost, Pareto fronts and the decision matrix on the hand-built sweep (builder.sweep_specs)."""

from __future__ import annotations

import pandas as pd
import pytest

from configs.report_schema import ReportConfig
from report import decisions
from report.build import analyse
from tests.report.builder import Spec, write_speed, write_store, write_task


def config(store, **decision_settings) -> ReportConfig:
    cfg = ReportConfig(results_dir=str(store))
    cfg.cost.usd_per_gpu_hour = 3.6  # $/1M tokens = 1000 / (tokens/s)
    cfg.decisions.memory_budgets_gb = [0.2, 1.0, 2.0, 4.0, 8.0]
    for key, value in decision_settings.items():
        setattr(cfg.decisions, key, value)
    return cfg


def picked(frame: pd.DataFrame) -> dict:
    return {row.decision: (None if pd.isna(row.label) else f"{row.model} {row.label}") for row in frame.itertuples()}


def test_best_variant_per_memory_budget(sweep_store):
    budgets = picked(analyse(config(sweep_store)).budgets)
    assert budgets == {
        "<= 0.2 GB": None,  # nothing is that small
        "<= 1 GB": "small rtn-w8a16-g32",  # ties the 1.0 GiB baseline at 60% with less memory
        "<= 2 GB": "large gptq-w4a16-g128",  # 80% in 1.8 GiB; large rtn w4 (79%) loses
        "<= 4 GB": "large gptq-w4a16-g128",  # large rtn w8 is also 80% but needs 3.2 GiB
        "<= 8 GB": "large gptq-w4a16-g128",
    }


def test_scenarios_respect_the_quality_floor(sweep_store):
    a = analyse(config(sweep_store))
    assert picked(a.scenarios) == {
        "maximum quality": "large none-bf16",  # gptq w4 ties it at 80%; ties go to more bits
        "best quality per GB": "small gptq-w4a16-g128",  # 0.58 / 0.4 beats rtn w4 0.56 / 0.4
        "maximum throughput": "small gptq-w4a16-g128",  # 210 tok/s; rtn w3 (220) is unacceptable
        "smallest memory": "small gptq-w4a16-g128",  # ties rtn w4 at 0.4 GiB, more accurate
    }
    floor = picked(analyse(config(sweep_store, min_accuracy=0.7)).scenarios)
    assert floor["maximum throughput"] == "large gptq-w4a16-g128"  # 75 tok/s; large rtn w3 (80) is concerning
    strict = picked(analyse(config(sweep_store, quality_floor="negligible")).scenarios)
    assert strict["maximum throughput"] == "small rtn-w8a16-g32"


def test_cost_per_million_tokens_and_memory_basis(sweep_store):
    deploy = analyse(config(sweep_store)).deploy.set_index("label")
    small = deploy[deploy.model == "small"]
    assert small.loc["none-bf16", "usd_per_1m_tokens"] == pytest.approx(10.0)  # $3.6/h at 100 tok/s
    assert small.loc["rtn-w4a16-g32", "usd_per_1m_tokens"] == pytest.approx(5.0)
    assert small.loc["rtn-w4a16-g32", "memory_gb"] == pytest.approx(0.4)
    assert small.loc["rtn-w4a16-g32", "memory_basis"] == "CUDA peak"
    assert decisions.cost_per_million(0, 2.0) != decisions.cost_per_million(0, 2.0)  # nan: no throughput


def test_cpu_speed_records_fall_back_to_size_on_disk(tmp_path):
    base = Spec(model="cpu", disk_gib=2.0, decode_tps=10, memory_gib=5.0)
    write_task(tmp_path, base, "math", 10, 5)
    write_speed(tmp_path, base, device="cpu")
    cfg = ReportConfig(results_dir=str(tmp_path))
    row = analyse(cfg).deploy.iloc[0]
    assert row.memory_gb == pytest.approx(2.0 * 1.2)
    assert row.memory_basis == "disk x 1.2"
    cfg.cost.memory_basis = "peak"
    assert analyse(cfg).deploy.iloc[0].memory_gb == pytest.approx(5.0)


def test_pareto_front_by_hand():
    frame = pd.DataFrame({"memory_gb": [1.0, 2.0, 2.0, 3.0, 0.5], "primary": [0.5, 0.7, 0.6, 0.7, 0.5]})
    # (0.5 GiB, 50%) beats (1 GiB, 50%); (2, 70%) beats (2, 60%) and (3, 70%)
    front = decisions.pareto_front(frame, "memory_gb", "primary", x_lower_is_better=True)
    assert list(front) == [False, True, False, False, True]
    speed = pd.DataFrame({"tps": [100.0, 200.0, 150.0], "primary": [0.8, 0.6, 0.6]})
    assert list(decisions.pareto_front(speed, "tps", "primary", x_lower_is_better=False)) == [True, True, False]


def test_a_credited_gain_ties_the_baseline_exactly():
    """23/50 credited down by its +4 pp is 21/50 to the last bit (0.46 - 0.04 is not 0.42 in floats)."""
    frame = pd.DataFrame({"primary": [21 / 50, 23 / 50], "delta_pp": [0.0, 4.0],  # (2 gained) / 50, in points
                          "is_baseline": [True, False], "significant": [False, False]})
    credited = decisions.credited_accuracy(frame)
    assert credited[1] == credited[0]


@pytest.mark.parametrize("gained, expected", [(2, "m none-bf16"), (40, "m rtn-w3a16-g32")])
def test_maximum_quality_credits_only_a_significant_gain_over_the_baseline(tmp_path, gained, expected):
    """+2 of 200 is not significant: a tie with the baseline, which wins it on bits (a
    3-bit model measured 1 point above its baseline is not the most accurate choice).
    +40 of 200 is significant and wins outright."""
    specs = [Spec(model="m", disk_gib=1.0, memory_gib=1.0, decode_tps=100),
             Spec(model="m", method="rtn", bits=3, group=32, gained=gained, disk_gib=0.4, memory_gib=0.4, decode_tps=150)]
    write_store(tmp_path, specs, {"math": (200, {"m": 100}, True)})
    assert picked(analyse(ReportConfig(results_dir=str(tmp_path))).scenarios)["maximum quality"] == expected
