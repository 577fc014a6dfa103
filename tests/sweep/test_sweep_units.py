"""Fast checks of sweep plumbing that the end-to-end tests cannot reach cheaply."""

from __future__ import annotations

import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor

from configs.compose import compose
from configs.sweep_schema import EvalSweepConfig
from common import environments
from sweep import plan, run
from tests.conftest import TINY_QUICK


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
