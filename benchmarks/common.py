"""Shared helpers for the benchmarks: interleaved timing, medians and ratios, machine
info, subprocess runs, and writing `benchmarks/results/<name>.json`.

The machine the lab is developed on is small and shared, so no benchmark reports an
absolute time on its own: arms are run side by side in one process tree, interleaved
(A B A B ...), and the result is a ratio of medians (plus the median of the per-round
paired ratios, which cancels slow drift in the machine's load).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

from common.machine import cpu_flags, isa_overrides
from common.storage import replace_atomically

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
DOCS_FILE = REPO_ROOT / "docs" / "benchmarks.md"

# The environment every benchmark subprocess gets: offline, one OpenMP thread unless the
# caller says otherwise (the development machine is shared).
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


# -- statistics ------------------------------------------------------------------------
def median(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("median of no values")
    return float(statistics.median(values))


def ratio(numerator: float, denominator: float) -> Optional[float]:
    """numerator / denominator, or None when the denominator is not positive."""
    return float(numerator) / float(denominator) if denominator and denominator > 0 else None


def summarize(values: Sequence[float]) -> dict:
    """median, min, max, n and every value (rounded), for one arm."""
    return {"median": round(median(values), 6), "min": round(min(values), 6), "max": round(max(values), 6),
            "n": len(values), "values": [round(v, 6) for v in values]}


def compare(a: Sequence[float], b: Sequence[float]) -> dict:
    """How arm `a` compares with arm `b` (same number of interleaved rounds):
    ratio of medians a/b, and the median of the per-round ratios a_i/b_i."""
    if len(a) != len(b):
        raise ValueError(f"arms have different numbers of rounds: {len(a)} vs {len(b)}")
    paired = [x / y for x, y in zip(a, b) if y > 0]
    return {
        "ratio_of_medians": _round(ratio(median(a), median(b))),
        "median_paired_ratio": _round(median(paired)) if paired else None,
    }


def meets(value: Optional[float], target: float) -> Optional[bool]:
    return None if value is None else bool(value <= target)


def _round(value: Optional[float], digits: int = 4) -> Optional[float]:
    return None if value is None else round(value, digits)


# -- interleaved measurement -----------------------------------------------------------
@dataclass
class Measurement:
    """One run of one arm: wall seconds, child CPU seconds (subprocess arms), and
    whatever the arm returned (parsed output, scores, ...)."""

    wall_s: float
    cpu_s: Optional[float] = None
    info: dict = field(default_factory=dict)


def interleave(arms: dict[str, Callable[[int], Measurement]], repeats: int, warmup: int = 0,
               log: Callable[[str], None] = print) -> dict[str, list[Measurement]]:
    """Run every arm `warmup` times (discarded), then `repeats` rounds of A B A B ...

    Each arm is called with the round number (warmups get negative numbers) so it can
    use a fresh output folder per run. Returns the measured runs per arm, in order.
    """
    names = list(arms)
    for w in range(warmup):
        for name in names:
            arms[name](-1 - w)
            log(f"  warmup {w + 1}/{warmup} {name} done")
    runs: dict[str, list[Measurement]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names:
            m = arms[name](r)
            runs[name].append(m)
            cpu = f", cpu {m.cpu_s:.2f}s" if m.cpu_s is not None else ""
            log(f"  round {r + 1}/{repeats} {name}: {m.wall_s:.2f}s{cpu}")
    return runs


def arm_summary(runs: list[Measurement]) -> dict:
    out = {"wall_s": summarize([m.wall_s for m in runs])}
    if all(m.cpu_s is not None for m in runs):
        out["cpu_s"] = summarize([m.cpu_s for m in runs])
    return out


def compare_runs(a: list[Measurement], b: list[Measurement]) -> dict:
    out = {"wall": compare([m.wall_s for m in a], [m.wall_s for m in b])}
    if all(m.cpu_s is not None for m in a + b):
        out["cpu"] = compare([m.cpu_s for m in a], [m.cpu_s for m in b])
    return out


# -- subprocesses ----------------------------------------------------------------------
@dataclass
class ProcessResult:
    returncode: int
    stdout: str
    stderr: str
    wall_s: float
    cpu_s: float  # user + system CPU seconds of the child and its descendants


def run_timed(cmd: Sequence[str], *, env: Optional[dict] = None, cwd: Optional[Path] = None,
              timeout: Optional[float] = None, check: bool = True) -> ProcessResult:
    """Run `cmd` in a fresh process; wall time and the children's CPU time."""
    full_env = {**os.environ, **OFFLINE_ENV, **(env or {})}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(list(cmd), cwd=cwd or REPO_ROOT, env=full_env, capture_output=True, text=True,
                          timeout=timeout)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result = ProcessResult(proc.returncode, proc.stdout, proc.stderr, wall, cpu)
    if check and proc.returncode != 0:
        raise RuntimeError(f"command failed ({proc.returncode}): {' '.join(map(str, cmd))}\n{proc.stderr[-3000:]}")
    return result


# -- machine info and results ----------------------------------------------------------
def machine_info() -> dict:
    """CPU count, threads, load, library versions and git revision, for every JSON."""
    from models.provenance import git_revision, library_versions  # benchmarks' helpers stay importable without the lab's stack

    info = {
        "host": platform.node(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
        "cpus_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "cpu_flags": cpu_flags(),
        "isa_overrides": isa_overrides(),
        "versions": library_versions(),
        "git": git_revision(),
    }
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        info["cuda"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:  # pragma: no cover - the lab needs torch
        pass
    return info


def write_result(name: str, result: dict, path: Optional[Path] = None) -> Path:
    """Write benchmarks/results/<name>.json (or `path`) with machine info and a timestamp."""
    path = Path(path) if path else RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **result}
    payload.setdefault("machine", machine_info())
    payload["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    replace_atomically(path, lambda tmp: tmp.write_text(json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n"))
    print(f"wrote {path}")
    return path


def python_cmd() -> list[str]:
    """The interpreter running the benchmark (the repo's .venv when started as documented)."""
    return [sys.executable]
