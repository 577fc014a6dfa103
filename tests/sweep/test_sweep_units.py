"""Fast checks of sweep plumbing that the end-to-end tests cannot reach cheaply."""

from __future__ import annotations

import errno
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from configs.compose import compose
from configs.errors import ConfigError
from configs.sweep_schema import EvalSweepConfig
from common import environments, storage
from sweep import launchers, plan, reasons, run
from sweep.cells import Cell, cell_status, status_path, write_status
from tests.conftest import TINY_QUICK, run_cli


def test_configs_compose_from_several_threads_at_once():
    """The local launcher runs cells in threads; Hydra's global state must not race."""
    overrides = [["method=rtn", "model=tiny-s", f"quant.bits={bits}", *TINY_QUICK] for bits in (8, 4, 3, 2) * 4]
    with ThreadPoolExecutor(max_workers=4) as pool:
        jobs = list(pool.map(lambda o: compose("quantize", o), overrides))
    assert [job.quant.bits for job in jobs] == [8, 4, 3, 2] * 4


def _touch(path, mtime_ns):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x")
    os.utime(path, ns=(mtime_ns, mtime_ns))


def test_the_report_is_current_only_after_a_complete_build_from_todays_table(tmp_path):
    cfg = EvalSweepConfig(results_dir=str(tmp_path))
    table, report, stamp = tmp_path / "table.parquet", tmp_path / "report" / "report.html", run._report_stamp(cfg)
    _touch(table, 1_000_000_000)
    _touch(report, 2_000_000_000)
    assert not run._report_is_current(cfg)  # no stamp: a build that did not finish, or never ran

    stamp.write_text(json.dumps({"table_mtime_ns": 1_000_000_000}))
    os.utime(stamp, ns=(3_000_000_000, 3_000_000_000))
    assert run._report_is_current(cfg)

    _touch(report, 4_000_000_000)  # rewritten since (e.g. a filtered `evaluate report`)
    assert not run._report_is_current(cfg)
    _touch(report, 2_000_000_000)
    _touch(table, 5_000_000_000)  # new results
    assert not run._report_is_current(cfg)


def test_only_known_backend_venvs_count_as_other_environments(monkeypatch):
    monkeypatch.setattr(sys, "prefix", str(environments.REPO_ROOT / ".venv-cuda"))  # scripts/gpu_check.sh's venv
    assert environments.running_environment() == "main"
    monkeypatch.setattr(sys, "prefix", str(environments.REPO_ROOT / ".venv-gptqmodel"))
    assert environments.running_environment() == "gptqmodel"


def _planned(tmp_path, methods: str, *extra: str) -> list:
    cfg = compose("evaluate_sweep", ["sweep.models=[tiny-s]", f"sweep.methods={methods}",
                                     f"output_dir={tmp_path / 'a'}", f"results_dir={tmp_path / 'r'}",
                                     f"sweeps_dir={tmp_path / 's'}", *extra])
    return plan.plan_cells(cfg)


def _dtype(cell) -> str:
    return compose("quantize", list(cell.quantize_overrides)).model.dtype


def test_a_grid_in_another_dtype_gets_a_baseline_in_that_dtype(tmp_path):
    """Variants are compared with the baseline of their own dtype, so a float16 grid on a
    float32 model needs a float16 baseline, planned in the baselines' phase."""
    cells = _planned(tmp_path, "[{method: rtn, bits: [4]}, {method: rtn, bits: [8], overrides: ['model.dtype=float16']},"
                               " {method: hqq, bits: [4], overrides: ['model.dtype=float16']}]",
                     "sweep.quantize_overrides=['model.dtype=float32']")
    baselines = [c for c in cells if c.is_baseline]
    assert [_dtype(c) for c in baselines] == ["float32", "float16"]
    assert cells[:2] == baselines
    assert sorted(_dtype(c) for c in cells if not c.is_baseline) == ["float16", "float16", "float32"]


def test_no_extra_baseline_when_the_grid_dtype_is_the_models_own(tmp_path):
    cells = _planned(tmp_path, "[{method: rtn, bits: [4], overrides: ['model.dtype=float32']}]",
                     "sweep.quantize_overrides=['model.dtype=float32']")
    assert [c.method for c in cells] == ["none", "rtn"]


def test_dtype_baselines_follow_what_hydra_composes_not_the_override_text(tmp_path):
    cfg = compose("evaluate_sweep", ["sweep.models=[tiny-s]", "sweep.methods=[{method: rtn, bits: [4]}, "
                                     "{method: rtn, bits: [8]}, {method: hqq, bits: [4]}]",
                                     "sweep.quantize_overrides=['model.dtype=float32']", f"output_dir={tmp_path / 'a'}",
                                     f"results_dir={tmp_path / 'r'}", f"sweeps_dir={tmp_path / 's'}"])
    cfg.sweep.methods[0].overrides = ["model.dtype='float16'"]  # quoted: still float16
    cfg.sweep.methods[1].overrides = ["++model.dtype=float16"]  # the same dtype: one baseline
    cfg.sweep.methods[2].overrides = ["model.dtype='float32'"]  # the model's own: none added
    baselines = [c for c in plan.plan_cells(cfg) if c.is_baseline]
    assert [_dtype(c) for c in baselines] == ["float32", "float16"]


# -- failure reasons, batches, the Slurm check ------------------------------------------------
def _cfg(tmp_path, **launcher) -> EvalSweepConfig:
    cfg = EvalSweepConfig(output_dir=str(tmp_path / "artifacts"), results_dir=str(tmp_path / "results"),
                          sweeps_dir=str(tmp_path / "sweeps"))
    for key, value in launcher.items():
        setattr(cfg.launcher, key, value)
    return cfg


def _raised(error: BaseException, cause: BaseException | None = None) -> BaseException:
    try:
        try:
            raise cause or error
        except BaseException:
            if cause is None:
                raise
            raise error
    except BaseException as caught:  # noqa: BLE001 - the test builds exception chains
        return caught


def test_a_full_disk_names_the_folder_that_is_full(tmp_path, monkeypatch):
    cfg = _cfg(tmp_path)
    results = tmp_path / "results"
    enospc = OSError(errno.ENOSPC, "No space left on device", str(results / "records" / "x" / "samples.jsonl"))
    assert reasons.failure_reason(enospc, cfg, "evaluate") == (
        f"disk full: no space left in the results folder {results} (results_dir); free space, then rerun with --retry-failed")
    # torch's zip writer says nothing of space: a short write counts when the step's folder is
    # (nearly) full, and the step says where it was writing
    torch_error = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 1234 vs 1180")
    assert reasons.failure_reason(torch_error, cfg, "quantize").startswith("RuntimeError: [enforce fail")
    monkeypatch.setattr(storage, "_free_bytes", lambda folder: 0)
    assert reasons.failure_reason(torch_error, cfg, "quantize").startswith(
        f"disk full: no space left in the artifacts folder {tmp_path / 'artifacts'} (output_dir)")
    wrapped = _raised(RuntimeError("saving failed"), OSError(errno.ENOSPC, "No space left on device"))
    assert "in the results folder" in reasons.failure_reason(wrapped, cfg, "evaluate")
    elsewhere = OSError(errno.ENOSPC, "No space left on device", "/var/cache/x")
    assert reasons.failure_reason(elsewhere, cfg, "evaluate").startswith("disk full: no space left writing /var/cache/x")
    assert "\n" not in reasons.failure_reason(torch_error, cfg, "quantize")


def test_other_failures_are_their_type_and_first_line(tmp_path):
    cfg = _cfg(tmp_path)
    assert reasons.failure_reason(ValueError("bad\nmore"), cfg, "quantize") == "ValueError: bad"
    assert reasons.failure_reason(ConfigError("quant.bits=5 is not supported"), cfg, "quantize") == (
        "ConfigError: quant.bits=5 is not supported")
    assert reasons.exit_reason(-9) == "killed by SIGKILL (out of memory?)"
    assert reasons.exit_reason(-11) == "killed by SIGSEGV" and reasons.exit_reason(3) == "exited with code 3"


def _cells(n: int) -> list:
    return [Cell("tiny-s", "rtn", ("method=rtn", "model=tiny-s", f"quant.bits={b}"), ()) for b in (8, 4, 3, 2, 8, 4, 3)[:n]]


def test_jobs_run_batches_chosen_from_the_grid(tmp_path):
    cells = _cells(7)
    assert [len(b) for b in launchers.make_batches(_cfg(tmp_path, max_parallel=3), cells)] == [3, 3, 1]
    assert [len(b) for b in launchers.make_batches(_cfg(tmp_path, max_parallel=16), cells)] == [1] * 7
    assert [len(b) for b in launchers.make_batches(_cfg(tmp_path, max_parallel=1), cells)] == [7]
    assert [len(b) for b in launchers.make_batches(_cfg(tmp_path, max_parallel=3, cells_per_job=2), cells)] == [2, 2, 2, 1]
    assert sum(launchers.make_batches(_cfg(tmp_path, max_parallel=2), cells), []) == cells  # plan order kept


def test_launcher_counts_must_be_positive():
    for key in ("max_parallel", "cells_per_worker", "cells_per_job"):
        with pytest.raises(ConfigError, match=f"launcher.{key}=0 must be >= 1"):
            compose("evaluate_sweep", [f"launcher.{key}=0"])


def _fake_commands(folder: Path, scontrol_ping: str, names=launchers.SLURM_COMMANDS) -> str:
    folder.mkdir()
    for name in names:
        script = folder / name
        script.write_text(f"#!/bin/sh\n{scontrol_ping if name == 'scontrol' else 'exit 0'}\n")
        script.chmod(0o755)
    return str(folder)


def test_slurm_without_its_commands_or_controller_is_one_line_at_plan_time(tmp_path, monkeypatch):
    cfg = _cfg(tmp_path, name="slurm")
    monkeypatch.setenv("PATH", _fake_commands(tmp_path / "none", "", names=()))
    with pytest.raises(ConfigError) as error:
        launchers.check_launcher(cfg)
    assert "launcher=slurm: sbatch, srun, scancel, scontrol not found on PATH" in str(error.value)
    monkeypatch.setenv("PATH", _fake_commands(tmp_path / "down", "echo 'Slurmctld(primary) at vm is DOWN'; exit 1"))
    with pytest.raises(ConfigError, match=r"controller does not answer \(`scontrol ping`: Slurmctld\(primary\) at vm is DOWN\)"):
        launchers.check_launcher(cfg)
    monkeypatch.setenv("PATH", _fake_commands(tmp_path / "up", "echo 'Slurmctld(primary) at vm is UP'"))
    launchers.check_launcher(cfg)
    launchers.check_launcher(_cfg(tmp_path, name="local"))  # nothing to check


def test_the_slurm_check_runs_in_a_dry_run_before_planning(tmp_path):
    """One line, exit 2, no traceback, nothing created (the issue's 'dry run lists the cells
    as pending with no hint')."""
    env = {"PATH": _fake_commands(tmp_path / "bin", "", names=())}
    result = run_cli("evaluate", "sweep", "launcher=slurm", "--dry-run", f"sweeps_dir={tmp_path / 'sweeps'}",
                     f"output_dir={tmp_path / 'artifacts'}", f"results_dir={tmp_path / 'results'}", env=env)
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "launcher=slurm:" in errors[0] and "Traceback" not in result.stderr
    assert "pending" not in result.stdout and not (tmp_path / "sweeps").exists()


# -- a cell's status file ------------------------------------------------------------------------
DAMAGED_STATUSES = {
    "empty": b"", "truncated": b'{"status": "done", "artif', "random": bytes(range(7, 250, 3)),
    "UTF-16": json.dumps({"status": "failed"}).encode("utf-16"), "an array": b"[]", "null": b"null", "a number": b"3",
    "an unknown status": b'{"status": "finished"}', "done without outputs": b'{"status": "done"}',
}


@pytest.mark.parametrize("damaged", DAMAGED_STATUSES)
def test_a_damaged_status_file_is_named_once_and_its_cell_runs_again(tmp_path, caplog, damaged):
    cfg, cell = _cfg(tmp_path), _cells(1)[0]
    path = status_path(cfg, cell)
    path.parent.mkdir(parents=True)
    path.write_bytes(DAMAGED_STATUSES[damaged])
    assert cell_status(cfg, cell)["status"] == "pending"
    assert cell_status(cfg, cell)["status"] == "pending"
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1, warnings
    assert f"sweep cell status file {path} " in warnings[0] and "treated as not started and runs again" in warnings[0]


def test_a_whole_status_file_is_read_without_a_warning(tmp_path, caplog):
    cfg, cell = _cfg(tmp_path), _cells(1)[0]
    assert cell_status(cfg, cell) == {"status": "pending"}  # none yet
    write_status(cfg, cell, status="failed", reason="ValueError: x")
    assert cell_status(cfg, cell)["reason"] == "ValueError: x"
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def test_the_dry_run_lists_a_cell_with_a_damaged_status_file_as_pending_and_names_the_file(tmp_path, capfd):
    from evaluate.__main__ import main

    args = ["sweep", "--dry-run", "sweep.models=[tiny-s]", "sweep.methods=[{method: rtn, bits: [8]}]",
            *(f"{setting}={tmp_path / setting}" for setting in ("output_dir", "results_dir", "sweeps_dir"))]
    assert main(args) == 0
    cell = next(line.split()[1] for line in capfd.readouterr().out.splitlines() if "__rtn-8__" in line)
    path = tmp_path / "sweeps_dir" / "demo" / "cells" / f"{cell}.json"
    path.parent.mkdir(parents=True)
    path.write_text("[]")
    assert main(args) == 0
    out, err = capfd.readouterr()
    assert f"pending  {cell}" in out and "Traceback" not in err
    assert f"sweep cell status file {path} holds a JSON list, not a JSON object" in err
