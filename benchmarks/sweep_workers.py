"""sweep_workers: a sweep on long-lived cell workers vs one fresh process per cell.

    python -m benchmarks.sweep_workers                      # the default sweep (sweep=demo, 63 cells)
    python -m benchmarks.sweep_workers --slice demo         # the demo's 26-cell slice (scripts/demo.sh)
    python -m benchmarks.sweep_workers --repeats 2 --max-parallel 2 [sweep overrides ...]

Two arms, interleaved (workers, process per cell, workers, ...), each run a complete sweep
into a fresh folder and a fresh lab cache (nothing reused: artifacts, records, GGUF
conversions, calibration sets), `launcher.max_parallel` cells at a time, with report=false
(the report is built once either way). The demo slice's GGUF cells need `.venv-gguf`
(`bash scripts/setup.sh gguf`):

- workers: the default local launcher (a worker per slot runs cell after cell);
- process_per_cell: `launcher.cells_per_worker=1`, a fresh process per cell, as before.

Per round it checks that both arms' summaries say every cell done, and that their outputs
are the same: every artifact file and every record's samples byte-identical, every record
manifest identical but for time and memory measurements and the folders' paths
(`tests/sweep/identical.py`). Reported: the wall-time ratio process_per_cell / workers
(ratio of medians and median of paired ratios), the CPU-time ratio, and the cells' own
seconds (from their statuses) against the sweep's wall time. Target: >= 3x on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

from benchmarks.common import (Measurement, arm_summary, compare_runs, interleave, machine_info, python_cmd, run_timed,
                               write_result)
from tests.sweep.identical import differences

NAME = "sweep_workers"
TARGET = 3.0
SUMMARY = re.compile(r"sweep (?P<name>\S+): (?P<done>\d+) done, (?P<reused>\d+) reused, (?P<failed>\d+) failed, "
                     r"(?P<pending>\d+) pending")
SLICES = {
    "default": [],  # sweep=demo as configured: the tiny family x every main-environment method x 8/4/3/2 bits
    "demo": ["sweep.name=demo-cpu", "sweep.models=[tiny-s,tiny-l]", 'sweep.eval_overrides=["eval.limit=300"]',
             "sweep.methods=[{method: rtn, bits: [8, 4, 3, 2]}, {method: gptq, bits: [4, 3]}, {method: hqq, bits: [4, 2]},"
             " {method: bnb_nf4}, {method: gguf, types: [Q8_0, Q4_K_M, Q2_K]}]"],  # scripts/demo.sh's (a test checks)
}
ARMS = {"workers": [], "process_per_cell": ["launcher.cells_per_worker=1"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slice", choices=sorted(SLICES), default="default")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=0)
    parser.add_argument("--max-parallel", type=int, default=2)
    parser.add_argument("--threads", default="1")
    parser.add_argument("--keep", action="store_true", help="keep the sweeps' folders (under the printed folder)")
    parser.add_argument("--out", default=None)
    args, extra = parser.parse_known_args(argv)
    base = [*SLICES[args.slice], *extra, "report=false", f"launcher.max_parallel={args.max_parallel}"]
    work = Path(tempfile.mkdtemp(prefix="sweep-workers-"))
    print(f"sweeps under {work}")
    roots: dict[str, dict[int, Path]] = {arm: {} for arm in ARMS}
    checks: list[dict] = []
    seconds: dict[str, list[float]] = {arm: [] for arm in ARMS}

    def arm(name: str):
        def run(r: int) -> Measurement:
            root = work / f"{name}-{r}"
            paths = [f"output_dir={root / 'artifacts'}", f"results_dir={root / 'results'}", f"sweeps_dir={root / 'sweeps'}"]
            # Its own lab cache too: the GGUF conversions and calibration sets are made by each run.
            p = run_timed([*python_cmd(), "-m", "evaluate", "sweep", *base, *ARMS[name], *paths],
                          env={"OMP_NUM_THREADS": args.threads, "QLAB_CACHE": str(root / "cache")}, check=False)
            summary = _summary(p.stdout)
            if p.returncode != 0 or summary["failed"] or summary["pending"] or summary["reused"]:
                raise SystemExit(f"{name} round {r}: the sweep did not finish every cell fresh ({summary}, exit "
                                 f"{p.returncode}):\n{p.stderr[-3000:]}")
            roots[name][r] = root
            seconds[name].append(_cell_seconds(root))
            if r >= 0 and all(r in roots[a] for a in ARMS):  # both arms of this round ran: compare, then clean up
                diff = differences(roots["workers"][r], roots["process_per_cell"][r])
                checks.append({"round": r, "cells": summary["done"], "identical": not diff, "differences": diff[:20]})
                print(f"  round {r + 1}: {summary['done']} cells; identical outputs: {not diff}" +
                      ("" if not diff else f" ({len(diff)} differences, e.g. {diff[0]})"))
                if not args.keep:
                    for a in ARMS:
                        shutil.rmtree(roots[a][r], ignore_errors=True)
            elif r < 0 and not args.keep:
                shutil.rmtree(root, ignore_errors=True)
            return Measurement(p.wall_s, p.cpu_s, summary)
        return run

    info = machine_info()
    print(f"{args.repeats} interleaved rounds (+{args.warmup} warmup) of the {args.slice} sweep: workers, process per cell")
    runs = interleave({name: arm(name) for name in ARMS}, args.repeats, args.warmup)
    comparison = compare_runs(runs["process_per_cell"], runs["workers"])
    identical = bool(checks) and all(c["identical"] for c in checks)
    ratio = comparison["wall"]["ratio_of_medians"]
    result = {
        "slice": args.slice,
        "command": " ".join(["python -m evaluate sweep", *base]),
        "cells": checks[0]["cells"] if checks else None,
        "max_parallel": args.max_parallel,
        "repeats": args.repeats, "warmup": args.warmup,
        "workers": arm_summary(runs["workers"]),
        "process_per_cell": arm_summary(runs["process_per_cell"]),
        "process_per_cell_over_workers": comparison,
        "cell_seconds_sum": {arm: [round(s, 1) for s in values[-args.repeats:]] for arm, values in seconds.items()},
        "identical_outputs": identical,
        "checks": checks,
        "meets_target": bool(ratio is not None and ratio >= TARGET and identical),
        "target": f"process_per_cell / workers >= {TARGET} (wall), identical outputs",
        "machine": info,
    }
    print(f"process per cell / workers: wall {ratio} (paired {comparison['wall']['median_paired_ratio']}), CPU "
          f"{comparison.get('cpu', {}).get('ratio_of_medians')}; identical outputs: {identical}")
    write_result(NAME if args.slice == "default" else f"{NAME}-{args.slice}", result, args.out)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if identical else 1


def _summary(stdout: str) -> dict:
    match = None
    for match in SUMMARY.finditer(stdout):
        pass
    if match is None:
        raise SystemExit(f"no sweep summary line in the output:\n{stdout[-2000:]}")
    return {k: (int(v) if v.isdigit() else v) for k, v in match.groupdict().items()}


def _cell_seconds(root: Path) -> float:
    """The sum of the cells' own seconds (quantize + evaluate, as their statuses say)."""
    total = 0.0
    for path in (root / "sweeps").glob("*/cells/*.json"):
        try:
            total += json.loads(path.read_text()).get("seconds") or 0.0
        except (OSError, ValueError):
            continue
    return total


if __name__ == "__main__":
    sys.exit(main())
