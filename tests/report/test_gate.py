"""The CI gate's exit codes: 0 pass, 1 variants under the threshold (named), 2 bad input."""

from __future__ import annotations

import pytest

from report.cli import main
from tests.conftest import run_cli
from tests.report.builder import Spec, write_task


def gate(store, tmp_path, *overrides):
    # CSV only: the gate does not depend on the formats, and plots take seconds
    return main([f"results_dir={store}", f"output_dir={tmp_path / 'out'}", "formats=[csv]", *overrides])


def test_no_gate_exits_zero(sweep_store, tmp_path, capsys):
    assert gate(sweep_store, tmp_path) == 0
    assert "gate" not in capsys.readouterr().err


def test_gate_names_every_variant_under_the_threshold(sweep_store, tmp_path, capsys):
    assert gate(sweep_store, tmp_path, "gate.min_recovery=0.95") == 1
    err = capsys.readouterr().err
    # recoveries: small rtn w4 56/60 = 93.3%, small rtn w3 75%, large rtn w3 74/80 = 92.5%
    assert "small rtn-w4a16-g32: recovery 93.3% < 95.0%" in err
    assert "small rtn-w3a16-g32: recovery 75.0%" in err
    assert "large rtn-w3a16-g32: recovery 92.5%" in err
    assert "gptq" not in err and "large rtn-w4a16" not in err  # 96.7% and 98.8% pass
    assert len([line for line in err.splitlines() if "recovery" in line]) == 3


def test_gate_threshold_boundaries(sweep_store, tmp_path, capsys):
    assert gate(sweep_store, tmp_path, "gate.min_recovery=0.925") == 1  # only small rtn w3 (75%) is below
    err = capsys.readouterr().err
    assert "small rtn-w3a16-g32" in err and "large rtn-w3a16-g32" not in err  # 92.5% is not < 92.5%
    assert gate(sweep_store, tmp_path, "gate.min_recovery=0.75") == 0  # 75.0% is not < 75%


def test_gate_per_task_and_suspect_pipeline(tmp_path, capsys):
    base, variant = Spec(model="m"), Spec(model="m", method="rtn", bits=8, group=32, lost=1,
                                          suspect=["baseline format compliance 40% < 80%"])
    for task in ("easy", "hard"):
        write_task(tmp_path, base, task, 10, 10)
    write_task(tmp_path, variant, "easy", 10, 10, baseline=base)  # 9/10: 90%
    write_task(tmp_path, Spec(model="m", method="rtn", bits=8, group=32), "hard", 10, 10, baseline=base)
    # pooled: 19/20 = 95% passes 0.95; per task, easy (90%) fails
    assert gate(tmp_path, tmp_path, "gate.min_recovery=0.95") == 0
    assert gate(tmp_path, tmp_path, "gate.min_recovery=0.95", "gate.per_task=true") == 1
    assert "m rtn-w8a16-g32 on easy: recovery 90.0%" in capsys.readouterr().err
    assert gate(tmp_path, tmp_path, "gate.fail_on_suspect=true") == 1
    assert "suspect pipeline: m rtn-w8a16-g32 easy: baseline format compliance 40% < 80%" in capsys.readouterr().err


def test_gate_with_nothing_to_judge_fails(tmp_path, capsys):
    write_task(tmp_path, Spec(model="m"), "math", 10, 5)  # a baseline only
    assert gate(tmp_path, tmp_path, "gate.min_recovery=0.95") == 1
    assert "no variant with a baseline to check" in capsys.readouterr().err


@pytest.mark.parametrize("overrides, message", [
    (["tiers.viable=great"], "tiers.viable='great' is not valid; choices: negligible"),
    (["gate.min_recovery=95"], "gate.min_recovery=95.0 must be a ratio like 0.95"),
    (["tierz.negligible=-2"], "unknown setting 'tierz'"),
    (["models=[nosuch]"], "models=['nosuch'] matches no record"),
    (["stats.correction=magic"], "stats.correction='magic' is not valid"),
])
def test_bad_settings_exit_two_with_one_line(sweep_store, tmp_path, capsys, overrides, message):
    assert gate(sweep_store, tmp_path, *overrides) == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    assert len(err.splitlines()) == 1


def test_empty_store_exits_two(tmp_path, capsys):
    assert gate(tmp_path, tmp_path, "gate.min_recovery=0.95") == 2
    assert "holds no complete records" in capsys.readouterr().err


def test_the_command_line_process_exit_code(sweep_store, tmp_path):
    result = run_cli("report", f"results_dir={sweep_store}", f"output_dir={tmp_path}", "formats=[csv]",
                     "gate.min_recovery=0.95", timeout=120)
    assert result.returncode == 1, result.stderr
    assert "gate: FAILED" in result.stderr and "small rtn-w3a16-g32" in result.stderr
