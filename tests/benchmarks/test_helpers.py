"""Unit tests for the benchmarks' helper logic: medians, ratios, interleaving, parsers."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from benchmarks import common
from benchmarks.eval_overhead import compare_scores
from benchmarks.quantize_overhead import importtime_profile
from benchmarks.summarize import BEGIN, END, render, update_docs
from benchmarks.sweep_rerun import parse_dry_run, parse_summary, sweep_overrides
from benchmarks.sweep_workers import SLICES


def test_median_ratio_and_summary():
    assert common.median([3.0, 1.0, 2.0]) == 2.0
    assert common.median([1.0, 2.0, 3.0, 4.0]) == 2.5
    with pytest.raises(ValueError):
        common.median([])
    assert common.ratio(3.0, 2.0) == 1.5
    assert common.ratio(1.0, 0.0) is None
    summary = common.summarize([2.0, 1.0, 4.0])
    assert summary["median"] == 2.0 and summary["min"] == 1.0 and summary["max"] == 4.0 and summary["n"] == 3


def test_compare_gives_ratio_of_medians_and_median_of_paired_ratios():
    lab, ref = [10.0, 30.0, 12.0], [10.0, 10.0, 12.0]  # one noisy round in the lab arm
    result = common.compare(lab, ref)
    assert result["ratio_of_medians"] == pytest.approx(12.0 / 10.0)
    assert result["median_paired_ratio"] == pytest.approx(1.0)  # paired rounds cancel the outlier
    with pytest.raises(ValueError):
        common.compare([1.0], [1.0, 2.0])


def test_meets_target():
    assert common.meets(1.04, 1.05) is True
    assert common.meets(1.06, 1.05) is False
    assert common.meets(None, 1.05) is None


def test_interleave_alternates_arms_and_discards_warmups():
    calls = []

    def arm(name):
        def run(r):
            calls.append((name, r))
            return common.Measurement(wall_s=1.0 if name == "a" else 2.0)
        return run

    runs = common.interleave({"a": arm("a"), "b": arm("b")}, repeats=3, warmup=1, log=lambda _: None)
    assert calls == [("a", -1), ("b", -1), ("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2), ("b", 2)]
    assert len(runs["a"]) == len(runs["b"]) == 3
    assert common.compare_runs(runs["a"], runs["b"])["wall"]["ratio_of_medians"] == 0.5


def test_run_timed_measures_a_subprocess(tmp_path):
    result = common.run_timed(["python3", "-c", "print('hi')"])
    assert result.returncode == 0 and result.stdout.strip() == "hi" and result.wall_s > 0 and result.cpu_s >= 0
    with pytest.raises(RuntimeError):
        common.run_timed(["python3", "-c", "raise SystemExit(3)"])


def test_machine_info_and_write_result(tmp_path):
    path = common.write_result("x", {"value": 1}, tmp_path / "x.json")
    data = json.loads(path.read_text())
    assert data["benchmark"] == "x" and data["value"] == 1
    machine = data["machine"]
    for key in ("cpu_count", "torch_threads", "versions", "git", "load_average", "load_average_end"):
        assert key in machine
    assert "torch" in machine["versions"] and "commit" in machine["git"]


def test_importtime_profile_counts_top_level_imports_only():
    stderr = "\n".join([
        "import time: self [us] | cumulative | imported package",
        "import time:       100 |        100 |   torch._C",
        "import time:      2000 |    3000000 | torch",
        "import time:        50 |     500000 | hydra",
        "import time:        10 |         10 |     hydra.core",
        "other noise",
    ])
    profile = importtime_profile(stderr)
    assert profile["top"] == {"torch": 3.0, "hydra": 0.5}
    assert profile["total_s"] == 3.5


def test_compare_scores_is_exact_and_ignores_non_numbers():
    same = compare_scores({"acc,none": 0.5, "alias": "t", "x": float("nan")}, {"acc,none": 0.5, "x": float("nan")})
    assert same["identical"] is True
    different = compare_scores({"acc,none": 0.5}, {"acc,none": 0.5000001, "acc_norm,none": 0.1})
    assert different["identical"] is False and set(different["differing"]) == {"acc,none", "acc_norm,none"}


def test_sweep_output_parsers():
    dry = "sweep demo: 3 cells (launcher=local)\n  done        < 1 GB  a\n  pending     < 1 GB  b\n  done        < 1 GB  c\n"
    assert parse_dry_run(dry) == {"cells": 3, "done": 2, "pending": 1}
    out = "log\nsweep demo: 0 done, 51 reused, 0 failed, 0 pending\n"
    assert parse_summary(out) == {"name": "demo", "done": 0, "reused": 51, "failed": 0, "pending": 0}
    with pytest.raises(RuntimeError):
        parse_summary("nothing")
    assert sweep_overrides(None, ["sweep.name=x"]) == ["sweep.name=x"]
    paths = sweep_overrides("/tmp/r", [])
    assert paths[0].startswith("output_dir=") and paths[0].endswith("/tmp/r/artifacts") and len(paths) == 3


def test_summarize_renders_between_markers(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "batched_generation.json").write_text(json.dumps({
        "created": "now", "task": "tiny_openmath", "limit": 8, "batch_size": 4, "repeats": 1,
        "model": {"name": "tiny-s", "tiny_profile": "quick"},
        "throughput_batched_over_sequential": {"ratio_of_medians": 2.5, "median_paired_ratio": 2.4},
        "batched": {"tokens_per_s": {"median": 100.0}}, "sequential": {"tokens_per_s": {"median": 40.0}},
        "identical_responses": {"same": 8, "of": 8},
        "machine": {"cpu_count": 2, "torch_threads": 1, "load_average": [1.0], "versions": {"torch": "x"},
                    "git": {"commit": "abcdef123456", "dirty": False}},
    }))
    table = render(results)
    assert "batched_generation" in table and "2.500" in table and "not run yet" in table
    docs = tmp_path / "benchmarks.md"
    docs.write_text(f"# B\n\nprose\n\n{BEGIN}\nold\n{END}\n\nmore prose\n")
    update_docs(docs, results)
    text = docs.read_text()
    assert "old" not in text and "2.500" in text and text.startswith("# B\n\nprose") and text.endswith("more prose\n")


def test_audit_run_records_weight_opens_subprocesses_and_loading_modules(tmp_path):
    import subprocess
    import sys

    from benchmarks.common import REPO_ROOT

    (tmp_path / "probe.py").write_text(
        "import subprocess, sys\n"
        "open('model.safetensors', 'wb').close()\n"
        "subprocess.run([sys.executable, '-c', 'pass', 'cell'])\n"
        "import safetensors.torch\n"
        "sys.exit(3)\n"
    )
    (tmp_path / "quiet.py").write_text("print('nothing loaded')\n")
    audit = REPO_ROOT / "benchmarks" / "audit_run.py"
    loud = subprocess.run([sys.executable, str(audit), "--log", "loud.json", "-m", "probe"], cwd=tmp_path)
    assert loud.returncode == 3  # the module's exit code is passed through
    evidence = json.loads((tmp_path / "loud.json").read_text())
    assert evidence["weight_files_opened"] == ["model.safetensors"]
    assert any("cell" in cmd for cmd in evidence["subprocesses"])
    assert "safetensors" in evidence["loading_modules_imported"]
    quiet = subprocess.run([sys.executable, str(audit), "--log", "quiet.json", "-m", "quiet"], cwd=tmp_path)
    assert quiet.returncode == 0
    assert json.loads((tmp_path / "quiet.json").read_text()) == {
        "weight_files_opened": [], "subprocesses": [], "loading_modules_imported": []}


def test_the_sweep_workers_demo_slice_is_the_demos_sweep():
    """benchmarks.sweep_workers --slice demo times what `bash scripts/demo.sh` runs."""
    demo = (Path(__file__).resolve().parents[2] / "scripts" / "demo.sh").read_text()
    [command] = [shlex.split(line, comments=True) for line in demo.replace("\\\n", " ").splitlines()
                 if "-m evaluate sweep" in line and not line.lstrip().startswith("#")]
    assert sorted(a for a in command if a.startswith("sweep.")) == sorted(SLICES["demo"])
