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
    # pooled over the tasks above the floor (small: math only; large: math and arc):
    # small rtn w3 162/240 = 67.5%, large rtn w3 362/390 = 92.8%; small rtn w4 232/240 = 96.7% passes
    assert "small rtn-w3a16-g32: recovery 67.5% < 95.0% (delta -19.5 pp, n=400)" in err
    assert "large rtn-w3a16-g32: recovery 92.8% < 95.0% (delta -5.6 pp, n=500)" in err
    assert len([line for line in err.splitlines() if "recovery" in line]) == 2


def test_gate_threshold_boundaries(tmp_path, capsys):
    base, variant = Spec(model="m"), Spec(model="m", method="rtn", bits=4, group=32, lost=6)
    for spec in (base, variant):
        write_task(tmp_path, spec, "math", 100, 80, baseline=base)  # 74 / 80 = 92.5%
    assert gate(tmp_path, tmp_path, "gate.min_recovery=0.925") == 0  # 0.74 / 0.80 is 0.92499...: not below
    assert gate(tmp_path, tmp_path, "gate.min_recovery=0.926") == 1
    assert "m rtn-w4a16-g32: recovery 92.5% < 92.6%" in capsys.readouterr().err


def test_gate_per_task_and_suspect_pipeline(tmp_path, capsys):
    base, variant = Spec(model="m"), Spec(model="m", method="rtn", bits=8, group=32, lost=1,
                                          suspect=["baseline format compliance 40% < 80%"])
    for task in ("easy", "hard"):
        write_task(tmp_path, base, task, 10, 10)
    write_task(tmp_path, variant, "easy", 10, 10, baseline=base)  # 9/10: 90%
    write_task(tmp_path, Spec(model="m", method="rtn", bits=8, group=32), "hard", 10, 10, baseline=base)
    # pooled: 19/20 = 95% passes 0.95; per task, easy (90%) fails
    assert gate(tmp_path, tmp_path, "gate.min_recovery=0.95", "gate.fail_on_suspect=false") == 0
    assert "1 suspect-pipeline warnings not gated" in capsys.readouterr().out
    assert gate(tmp_path, tmp_path, "gate.min_recovery=0.95", "gate.per_task=true", "gate.fail_on_suspect=false") == 1
    assert "m rtn-w8a16-g32 on easy: recovery 90.0%" in capsys.readouterr().err
    suspect = "suspect pipeline: m rtn-w8a16-g32 easy: baseline format compliance 40% < 80%"
    assert gate(tmp_path, tmp_path, "gate.min_recovery=0.95") == 1  # a recovery gate fails on a suspect by default
    assert suspect in capsys.readouterr().err
    assert gate(tmp_path, tmp_path, "gate.fail_on_suspect=true") == 1  # without a threshold
    assert suspect in capsys.readouterr().err


def test_a_recovery_gate_fails_on_a_broken_model_beside_a_sound_one(tmp_path, capsys):
    """Model "ok" recovers fully; model "broken" is all wrong but well-formed. Recovery can
    only judge "ok", which passes; the gate still fails, naming the broken model."""
    ok = [Spec(model="ok"), Spec(model="ok", method="rtn", bits=4, group=32)]
    broken = [Spec(model="broken"), Spec(model="broken", method="rtn", bits=4, group=32)]
    for spec in ok:
        write_task(tmp_path, spec, "math", 100, 80, baseline=ok[0])
    for spec in broken:
        write_task(tmp_path, spec, "math", 100, 0, baseline=broken[0], base_format_ok=98)
    assert gate(tmp_path, tmp_path, "gate.min_recovery=0.95") == 1
    err = capsys.readouterr().err
    assert "suspect pipeline: broken baseline math: at its floor" in err and "recovery" not in err


def test_an_all_zero_well_formed_baseline_trips_the_gate(tmp_path, capsys):
    """The origin study's shape: 0% everywhere with 98% well-formed answers. The warnings
    say so in every report; `fail_on_suspect` fails on it; a recovery gate has nothing it
    can judge (every task at the floor) and fails too."""
    specs = [Spec(model="m"), Spec(model="m", method="rtn", bits=8, group=32),
             Spec(model="m", method="rtn", bits=4, group=32)]
    for spec in specs:
        write_task(tmp_path, spec, "math", 100, 0, baseline=specs[0], base_format_ok=98)
    assert gate(tmp_path, tmp_path) == 0  # no gate: the report is built, with the warnings
    warnings = (tmp_path / "out" / "tables" / "warnings.csv").read_text()
    assert "all wrong but well-formed" in warnings and "every variant, baseline included (3)" in warnings
    assert gate(tmp_path, tmp_path, "gate.fail_on_suspect=true") == 1
    err = capsys.readouterr().err
    assert "suspect pipeline: m baseline math: at its floor (0.0%" in err
    assert "suspect pipeline: m: every variant, baseline included (3), is at the floor on every task" in err
    assert gate(tmp_path, tmp_path, "gate.min_recovery=0.95") == 1
    assert "no variant with a baseline to check" in capsys.readouterr().err


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
    assert "gate: FAILED" in result.stderr and "small rtn-w3a16-g32: recovery 67.5%" in result.stderr
