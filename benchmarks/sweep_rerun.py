"""sweep_rerun: the rerun of a finished sweep: wall time, and proof that no model was loaded.

    python -m benchmarks.sweep_rerun                                  # the default sweep (sweep=demo) in lab/
    python -m benchmarks.sweep_rerun --results-root /tmp/mylab [sweep overrides ...]
    python -m benchmarks.sweep_rerun --run-missing ...                 # finish the sweep first if needed

`--results-root DIR` points the sweep at DIR/artifacts, DIR/results and DIR/sweeps (the
layout of the default `lab/`); any other argument is passed to `python -m evaluate sweep`
as an override (e.g. `sweep.name=small 'sweep.models=[tiny-s]' model.tiny_profile=...`).

1. `python -m evaluate sweep --dry-run` lists every cell's status. If any cell is not
   done, the benchmark prints the command that finishes the sweep and exits 2, unless
   `--run-missing` is given (then it runs that command first, and records its time).
2. `--repeats` timed reruns (`python -m evaluate sweep ...`, fresh processes), interleaved
   with reruns that skip the report (`report=false`), to show what the report costs.
   Each rerun's own summary line must say 0 done, every cell reused.
3. One more rerun under `benchmarks/audit_run.py`, which records weight files opened,
   cell subprocesses started and model-loading modules imported: all must be empty.
Target: the rerun under 10 s with >= 50 cells (`--min-cells`).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

from benchmarks.common import REPO_ROOT, Measurement, arm_summary, interleave, python_cmd, run_timed, write_result

NAME = "sweep_rerun"
TARGET_S = 10.0
SUMMARY = re.compile(r"sweep (?P<name>\S+): (?P<done>\d+) done, (?P<reused>\d+) reused, (?P<failed>\d+) failed, "
                     r"(?P<pending>\d+) pending")


def sweep_overrides(results_root, extra: list[str]) -> list[str]:
    paths = []
    if results_root:
        root = Path(results_root).resolve()
        paths = [f"output_dir={root / 'artifacts'}", f"results_dir={root / 'results'}", f"sweeps_dir={root / 'sweeps'}"]
    return [*paths, *extra]


def parse_dry_run(stdout: str) -> dict:
    """Cell statuses from `--dry-run` output lines '  <status> <memory>  <cell id>'."""
    statuses: dict[str, int] = {}
    cells = 0
    for line in stdout.splitlines():
        parts = line.split()
        if line.startswith("  ") and parts and parts[0] in ("done", "failed", "pending"):
            statuses[parts[0]] = statuses.get(parts[0], 0) + 1
            cells += 1
    return {"cells": cells, **statuses}


def parse_summary(stdout: str) -> dict:
    match = None
    for match in SUMMARY.finditer(stdout):
        pass
    if match is None:
        raise RuntimeError(f"no sweep summary line in the output:\n{stdout[-2000:]}")
    return {k: (int(v) if v.isdigit() else v) for k, v in match.groupdict().items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results-root", default=None, help="a lab folder with artifacts/, results/, sweeps/ "
                                                             "(default: the sweep config's own, i.e. lab/)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--min-cells", type=int, default=50, help="the official result needs at least this many")
    parser.add_argument("--run-missing", action="store_true", help="finish the sweep first if it is not finished")
    parser.add_argument("--validation", action="store_true",
                        help="a validation run (small sweep): written to benchmarks/results/sweep_rerun-validation.json")
    parser.add_argument("--threads", default="1")
    parser.add_argument("--out", default=None)
    args, extra = parser.parse_known_args(argv)
    env = {"OMP_NUM_THREADS": args.threads}
    overrides = sweep_overrides(args.results_root, extra)
    sweep = [*python_cmd(), "-m", "evaluate", "sweep", *overrides]
    shown = " ".join(["python -m evaluate sweep", *overrides])

    dry = parse_dry_run(run_timed([*sweep, "--dry-run"], env=env).stdout)
    print(f"sweep status: {dry}")
    finish = None
    # A failed cell is finished too (a rerun does not retry it without --retry-failed); pending ones are not.
    if dry.get("pending", 0):
        if not args.run_missing:
            print(f"\nThe sweep is not finished ({dry}). Finish it first (this runs the missing cells), then rerun "
                  f"this benchmark:\n\n    OMP_NUM_THREADS=1 .venv/bin/{shown}\n\n(or pass --run-missing)",
                  file=sys.stderr)
            return 2
        print(f"finishing the sweep: {shown}")
        p = run_timed(sweep, env=env, check=False)
        finish = {"wall_s": round(p.wall_s, 1), "returncode": p.returncode, "summary": parse_summary(p.stdout)}
        dry = parse_dry_run(run_timed([*sweep, "--dry-run"], env=env).stdout)
        if dry.get("pending", 0):
            print(f"the sweep still has unfinished cells after running it: {dry}", file=sys.stderr)
            return 1
    if dry.get("failed"):
        print(f"note: {dry['failed']} cell(s) failed in this sweep; the rerun keeps them failed (it does not retry "
              f"them) and they count as not reused", file=sys.stderr)

    summaries: list[dict] = []

    def rerun(report: bool):
        def run(r: int) -> Measurement:
            p = run_timed([*sweep, *([] if report else ["report=false"])], env=env, check=False)  # exit 1 if any failed
            summary = parse_summary(p.stdout)
            summaries.append(summary)
            return Measurement(p.wall_s, p.cpu_s, summary)
        return run

    print(f"{args.repeats} interleaved reruns (+{args.warmup} warmup): with report, without report")
    runs = interleave({"rerun": rerun(True), "rerun_no_report": rerun(False)}, args.repeats, args.warmup)
    failed = dry.get("failed", 0)
    all_reused = all(s["done"] == 0 and s["reused"] == dry["cells"] - failed and s["failed"] == failed
                     and s["pending"] == 0 for s in summaries)

    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "audit.json"
        run_timed([python_cmd()[0], str(REPO_ROOT / "benchmarks" / "audit_run.py"), "--log", str(log), "-m",
                   "evaluate", "sweep", *overrides], env=env, check=False)
        audit = json.loads(log.read_text())
    cell_processes = [cmd for cmd in audit["subprocesses"] if "cell" in cmd or "worker" in cmd]  # a cell worker
    no_model_loaded = not audit["weight_files_opened"] and not cell_processes and not audit["loading_modules_imported"]
    median = arm_summary(runs["rerun"])["wall_s"]["median"]
    result = {
        "official": dry["cells"] >= args.min_cells and not args.validation,
        "validation": args.validation,
        "command": shown,
        "cells": dry["cells"],
        "failed_cells": failed,
        "min_cells": args.min_cells,
        "finish_first": finish,
        "repeats": args.repeats, "warmup": args.warmup,
        "rerun": arm_summary(runs["rerun"]),
        "rerun_no_report": arm_summary(runs["rerun_no_report"]),
        "report_share_of_rerun": round(1 - arm_summary(runs["rerun_no_report"])["wall_s"]["median"] / median, 3),
        "summaries_all_reused": all_reused,
        "summary_example": summaries[-1],
        "audit": {**audit, "cell_processes": cell_processes, "subprocesses": audit["subprocesses"][:20]},
        "no_model_loaded": no_model_loaded,
        "meets_target": median < TARGET_S and all_reused and no_model_loaded and dry["cells"] >= args.min_cells,
        "target": f"rerun < {TARGET_S} s, >= {args.min_cells} cells, all reused, no model loaded",
    }
    print(f"rerun of {dry['cells']} cells: median {median:.2f}s (no report: "
          f"{result['rerun_no_report']['wall_s']['median']:.2f}s); all reused: {all_reused}; "
          f"no model loaded: {no_model_loaded}")
    name = f"{NAME}-validation" if args.validation else NAME
    write_result(name, result, args.out)
    return 0 if all_reused and no_model_loaded else 1


if __name__ == "__main__":
    raise SystemExit(main())
