"""A small tiny-family sweep through the `slurm` launcher on the local Slurm cluster gives
the same results store as the same sweep run locally."""

from __future__ import annotations

import pytest

from evaluate import store
from tests.sweep.test_slurm_cluster import slurm_cluster  # noqa: F401 (fixture)
from tests.sweep.test_sweep_e2e import sweep

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

SLURM = ["launcher=slurm", "launcher.partition=debug", "launcher.gpus_per_node=0", "launcher.cpus_per_task=1",
         "launcher.mem_gb=4", "launcher.timeout_min=20", "launcher.max_num_timeout=0"]


def comparable(results) -> dict:
    """(model, variant, task) -> the numbers that must not depend on where a cell ran."""
    rows = {}
    for _, record in store.iter_records(results):
        if record["task"] == "speed":
            continue
        key = (record["artifact"]["model"], record["artifact"]["label"], record["task"])
        metrics = {k: v for k, v in record["metrics"].items() if k != "eval_seconds"}
        rows[key] = (record["n"], metrics, (record.get("baseline") or {}).get("flips"))
    return rows


def test_slurm_sweep_matches_the_local_sweep(slurm_cluster, tmp_path, tiny_family):  # noqa: F811
    on_slurm = sweep(tmp_path / "slurm", *SLURM)
    assert on_slurm.returncode == 0, on_slurm.stdout[-3000:] + on_slurm.stderr[-3000:]
    assert "4 done, 0 reused, 0 failed" in on_slurm.stdout
    assert list((tmp_path / "slurm" / "sweeps" / "small" / "submitit").glob("*_log.out"))  # really went through Slurm
    local = sweep(tmp_path / "local")
    assert local.returncode == 0
    slurm_rows, local_rows = comparable(tmp_path / "slurm" / "results"), comparable(tmp_path / "local" / "results")
    assert len(slurm_rows) == 4 * 4 + 3  # 4 cells x 4 tasks, plus KL for the 3 variants
    assert slurm_rows == local_rows
