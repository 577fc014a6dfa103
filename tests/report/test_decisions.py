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
    """Accuracy over every task (500 samples per variant); candidates need a stated tier <=
    acceptable, so small rtn w4 (inconclusive) and w3, large gptq (unacceptable) never are."""
    budgets = analyse(config(sweep_store)).budgets.set_index("decision")
    assert picked(budgets.reset_index()) == {
        "<= 0.2 GB": None,  # nothing is that small
        "<= 1 GB": "small none-bf16",  # ties rtn w8 (same answers) and gptq w4 (-0.4 pp, inside its interval): bits
        "<= 2 GB": "large rtn-w4a16-g32",  # 77.6% in 1.8 GiB
        "<= 4 GB": "large rtn-w8a16-g32",  # 78.0%; rtn w4 (2 answers fewer) ties it: more bits wins
        "<= 8 GB": "large none-bf16",  # the baseline ties w8 and w4 and has the most bits
    }
    assert budgets.loc["<= 1 GB", "tied_with"] == "small rtn-w8a16-g32, small gptq-w4a16-g32"
    assert budgets.loc["<= 0.2 GB", "rule"].endswith("nothing fits with a tier shown <= acceptable")


def test_scenarios_respect_the_quality_floor(sweep_store):
    a = analyse(config(sweep_store))
    assert picked(a.scenarios) == {
        "maximum quality": "large none-bf16",  # rtn w8, rtn w4 and gptq w4 (any tier) tie it: more bits
        "best quality per GB": "small gptq-w4a16-g32",  # 0.530 / 0.4 GiB; rtn w4 is inconclusive
        "maximum throughput": "small gptq-w4a16-g32",  # 210 tok/s; rtn w3 (220) unacceptable, rtn w4 (200) open
        "smallest memory": "small gptq-w4a16-g32",  # 0.4 GiB; rtn w4 has as little but is inconclusive
    }
    floor = picked(analyse(config(sweep_store, min_accuracy=0.7)).scenarios)
    assert floor["maximum throughput"] == "large rtn-w4a16-g32"  # 70 tok/s, 77.6% (Wilson lower bound 73.7%)
    strict = picked(analyse(config(sweep_store, quality_floor="negligible")).scenarios)
    assert strict["maximum throughput"] == "small gptq-w4a16-g32"


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


@pytest.mark.parametrize("gained, expected", [(2, "m none-bf16"), (40, "m rtn-w3a16-g32")])
def test_maximum_quality_counts_a_gain_inside_its_interval_as_a_tie(tmp_path, gained, expected):
    """+2 of 200 lies inside its interval: a tie with the baseline, which wins it on bits (a
    3-bit model measured 1 point above its baseline is not the most accurate choice).
    +40 of 200 is outside and wins outright."""
    specs = [Spec(model="m", disk_gib=1.0, memory_gib=1.0, decode_tps=100),
             Spec(model="m", method="rtn", bits=3, group=32, gained=gained, disk_gib=0.4, memory_gib=0.4,
                  decode_tps=150)]
    write_store(tmp_path, specs, {"math": (200, {"m": 100}, True)})
    assert picked(analyse(ReportConfig(results_dir=str(tmp_path))).scenarios)["maximum quality"] == expected


def one_answer_store(tmp_path):
    """A 4-bit variant identical to its baseline and a 2-bit one with one more right answer
    of 400 (both negligible: 0 or 1 flips); only the quantized ones fit 0.6 GB."""
    specs = [Spec(model="m", memory_gib=2.0, decode_tps=100),
             Spec(model="m", method="rtn", bits=4, group=32, memory_gib=0.5, decode_tps=150),
             Spec(model="m", method="rtn", bits=2, group=32, gained=1, memory_gib=0.3, decode_tps=150)]
    return write_store(tmp_path, specs, {"math": (400, {"m": 200}, True)})


def test_a_one_answer_gain_does_not_win_a_budget(tmp_path):
    """The issue's failure: 2-bit picked for every budget for one more correct answer. A
    difference of +1 of 400 lies inside its interval: a tie, and ties go to more bits."""
    cfg = config(one_answer_store(tmp_path))
    cfg.decisions.memory_budgets_gb = [0.6]
    a = analyse(cfg)
    assert set(a.summary.tier) == {"negligible"}
    row = a.budgets.iloc[0]
    assert (row.label, row.tied_with) == ("rtn-w4a16-g32", "m rtn-w2a16-g32")
    scenarios = a.scenarios.set_index("decision")
    assert scenarios.loc["maximum throughput", "label"] == "rtn-w4a16-g32"  # equal tok/s, equal accuracy: bits
    assert scenarios.loc["smallest memory", "label"] == "rtn-w2a16-g32"  # 0.3 GiB is a real difference
    assert scenarios.loc["best quality per GB", "label"] == "rtn-w2a16-g32"  # 0.50 / 0.3 vs 0.50 / 0.5


def test_a_decision_resting_on_an_inconclusive_tier_says_so(tmp_path):
    """+20 pp accuracy but 8 of 200 answers lose their box: the format interval [-7.7, -2.0]
    leaves the tier open. Maximum quality (any tier) still picks it, and says so; the
    scenarios with a quality floor name it among those an inconclusive tier keeps out."""
    specs = [Spec(model="m", memory_gib=1.0, decode_tps=100),
             Spec(model="m", method="rtn", bits=3, group=32, gained=40, format_lost=8, memory_gib=0.4,
                  decode_tps=150)]
    cfg = config(write_store(tmp_path, specs, {"math": (200, {"m": 100}, True)}))
    cfg.decisions.memory_budgets_gb = [0.5]
    a = analyse(cfg)
    best = a.scenarios.set_index("decision").loc["maximum quality"]
    assert (best.label, best.tier) == ("rtn-w3a16-g32", "inconclusive")
    assert best.note.startswith("rests on an inconclusive tier (about ")
    budget = a.budgets.iloc[0]
    assert budget.label is None or pd.isna(budget.label)
    assert budget.rule.endswith("nothing fits with a tier shown <= acceptable; 1 inconclusive: m rtn-w3a16-g32 (about "
                                f"{a.summary.set_index('label').loc['rtn-w3a16-g32', 'pairs_to_decide']:,.0f} pairs "
                                "would decide)")
    cfg.decisions.memory_budgets_gb = [2.0]  # the baseline fits too: picked, saying what was left out
    a = analyse(cfg)
    budget = a.budgets.iloc[0]
    assert budget.label == "none-bf16" and "left out as 1 inconclusive: m rtn-w3a16-g32 (about " in budget.rule
    smallest = a.scenarios.set_index("decision").loc["smallest memory"]
    assert smallest.label == "none-bf16" and "left out as 1 inconclusive: m rtn-w3a16-g32" in smallest.rule


def _speed_row(label: str, bits: int, decode: float, repeats):
    return {"variant": label, "model": "m", "label": label, "bits": bits, "memory_gb": 1.0, "primary": 0.5,
            "decode_tokens_per_s": decode, "decode_repeats": repeats}


def test_throughput_inside_its_timing_noise_is_a_tie():
    """100 vs 101 tok/s with repeats that overlap: a tie, so more bits wins; 100 vs 150
    with tight repeats: the faster one; no repeats (older records): only equal values tie."""
    chooser = decisions.Chooser({}, ReportConfig())
    noisy = pd.DataFrame([_speed_row("w4", 4, 100.0, [98.0, 100.0, 102.0]), _speed_row("w2", 2, 101.0, [99.0, 101.0, 103.0])])
    best, tied = chooser.by_throughput(noisy)
    assert (best.label, tied) == ("w4", ["m w2"])
    clear = pd.DataFrame([_speed_row("w4", 4, 100.0, [99.5, 100.0, 100.5]), _speed_row("w2", 2, 150.0, [149.0, 150.0, 151.0])])
    assert chooser.by_throughput(clear)[0].label == "w2"
    old = pd.DataFrame([_speed_row("w4", 4, 100.0, None), _speed_row("w2", 2, 101.0, None)])
    assert chooser.by_throughput(old)[0].label == "w2"
