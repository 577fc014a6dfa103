"""demo_and_tests: wall time of the two commands, `bash scripts/demo.sh` and `bash scripts/test.sh`.

    python -m benchmarks.demo_and_tests                 # both (long: the demo, then the whole test suite)
    python -m benchmarks.demo_and_tests --only demo     # or --only tests
    python -m benchmarks.demo_and_tests --only tests -- -m "not slow"   # arguments after -- go to test.sh

Measured "after setup": the demo is timed when .venv exists and the tiny family is there
(a cached build of the default settings or the release in the repository, which a fresh
clone has; the benchmark checks both and says how to get there; `--allow-setup` times it
anyway, setup included). A rerun of the demo does no work, so the demo's time is that of its
*first* run on a machine: remove `lab/` (or point elsewhere) for a fresh measurement;
the benchmark records whether lab/sweeps existed before. Each command runs once (these take
minutes; the ratio to the target is what is reported), with its output in
lab/benchmark-logs/<part>.log (ignored by git). Targets on 2 cores: demo < 10 min,
tests < 30 min. The JSON is merged per part, so `--only demo` and `--only tests` runs
fill in the same benchmarks/results/demo_and_tests.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

from benchmarks.common import OFFLINE_ENV, REPO_ROOT, RESULTS_DIR, machine_info, ratio, write_result

NAME = "demo_and_tests"
TARGETS_S = {"demo": 600.0, "tests": 1800.0}
COMMANDS = {"demo": ["bash", "scripts/demo.sh"], "tests": ["bash", "scripts/test.sh"]}


def preconditions() -> dict:
    """Whether the environment is set up and the (default-profile) tiny family is there:
    built in the cache, or the release (`python -m models.tiny path` finds either)."""
    venv = (REPO_ROOT / ".venv" / "bin" / "python").is_file()
    built = None
    if venv:
        p = subprocess.run([str(REPO_ROOT / ".venv" / "bin" / "python"), "-m", "models.tiny", "path"],
                           cwd=REPO_ROOT, capture_output=True, text=True, env={**os.environ, **OFFLINE_ENV})
        built = p.returncode == 0
    return {"venv": venv, "tiny_family_built": built, "lab_has_sweeps": (REPO_ROOT / "lab" / "sweeps").exists()}


def run_part(part: str, extra: list[str], log_dir: Path) -> dict:
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{part}.log"
    cmd = COMMANDS[part] + (extra if part == "tests" else [])
    print(f"{part}: {' '.join(cmd)}  (log: {log})", flush=True)
    start = time.perf_counter()
    with open(log, "w") as handle:
        rc = subprocess.run(cmd, cwd=REPO_ROOT, stdout=handle, stderr=subprocess.STDOUT,
                            env={**os.environ, **OFFLINE_ENV}).returncode
    wall = time.perf_counter() - start
    tail = log.read_text(errors="replace").splitlines()[-15:]
    target = TARGETS_S[part]
    print(f"{part}: exit {rc}, {wall / 60:.1f} min (target < {target / 60:.0f} min)")
    return {"command": " ".join(cmd), "returncode": rc, "wall_s": round(wall, 1), "target_s": target,
            "ratio_to_target": round(ratio(wall, target), 3), "meets_target": rc == 0 and wall < target,
            "log": str(log.relative_to(REPO_ROOT)), "log_tail": tail}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=tuple(COMMANDS), default=None)
    parser.add_argument("--allow-setup", action="store_true", help="time the demo even if setup is not done")
    parser.add_argument("--out", default=None)
    args, extra = parser.parse_known_args(argv)
    extra = [a for a in extra if a != "--"]
    parts = [args.only] if args.only else list(COMMANDS)
    before = preconditions()
    print(f"preconditions: {before}")
    if "demo" in parts and not args.allow_setup and not (before["venv"] and before["tiny_family_built"]):
        print("the demo is timed after setup: run `bash scripts/setup.sh main` first, and `.venv/bin/python -m "
              "models.tiny build` if the release is not there (or pass --allow-setup to time setup too)")
        return 2
    out = Path(args.out) if args.out else RESULTS_DIR / f"{NAME}.json"
    previous = json.loads(out.read_text()) if out.is_file() else {}
    results = dict(previous.get("parts", {}))
    for part in parts:
        results[part] = {**run_part(part, extra, REPO_ROOT / "lab" / "benchmark-logs"), "preconditions": before,
                         "machine": machine_info()}
    write_result(NAME, {"targets_s": TARGETS_S, "parts": results,
                        "note": "each part carries its own machine info (parts may be run at different times)"}, out)
    return 0 if all(results[p]["meets_target"] for p in parts) else 1


if __name__ == "__main__":
    raise SystemExit(main())
