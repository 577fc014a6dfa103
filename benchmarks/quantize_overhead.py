"""quantize_overhead: `python -m quantize` vs the same library call made directly.

    python -m benchmarks.quantize_overhead [--methods rtn,hqq] [--model tiny-s] [--profile quick]
                                           [--repeats 5] [--warmup 1] [--no-importtime]

For each method, two arms run as fresh subprocesses, interleaved (lab, direct, lab,
direct, ...), each writing a new artifact folder:
  lab:    python -m quantize method=<m> model=<model> model.tiny_profile=<p> quant.* output_dir=<new>
  direct: python benchmarks/direct_quantize.py --method <m> --model-dir <same folder> ... (load ->
          same recipe -> save, nothing from the lab)
Reported: the ratio lab/direct of the median wall time (and of the children's CPU time),
and of the in-process quantize step (the manifest's `timing.quantize_seconds` vs the
direct script's), and of load+quantize+save (`total_seconds`). The two outputs are
checked to hold identical tensors. With importtime on, one extra run of each arm under
`python -X importtime` attributes the start-up difference to packages.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from benchmarks.common import (REPO_ROOT, Measurement, arm_summary, compare, compare_runs, interleave, meets,
                               python_cmd, run_timed, summarize, write_result)

NAME = "quantize_overhead"
TARGET = 1.05
DEFAULTS = {"rtn": {"bits": 4, "group_size": 128}, "hqq": {"bits": 4, "group_size": 64}}


def lab_cmd(method: str, model: str, profile: str, out: Path, bits: int, group: int) -> list[str]:
    cmd = [*python_cmd(), "-m", "quantize", f"method={method}", f"model={model}", f"quant.bits={bits}",
           f"quant.group_size={group}", f"output_dir={out}"]
    if profile:
        cmd.append(f"model.tiny_profile={profile}")
    return cmd


def direct_cmd(method: str, model_dir: Path, out: Path, bits: int, group: int, dtype: str) -> list[str]:
    return [*python_cmd(), str(REPO_ROOT / "benchmarks" / "direct_quantize.py"), "--method", method,
            "--model-dir", str(model_dir), "--out", str(out), "--bits", str(bits), "--group-size", str(group),
            "--dtype", dtype]


def resolve_model(model: str, profile: str) -> tuple[Path, str]:
    """The model's checkpoint folder and dtype, through the lab's own config."""
    # imported here: this benchmark times imports, and its helpers must not pay the lab's beforehand
    from configs.compose import compose
    from models.sources import resolve_model_dir

    overrides = [f"model={model}"] + ([f"model.tiny_profile={profile}"] if profile else [])
    job = compose("quantize", ["method=none", *overrides])
    return resolve_model_dir(job.model), job.model.dtype


def importtime_profile(stderr: str, top: int = 15) -> dict:
    """Cumulative import time (seconds) per top-level package from `-X importtime` output."""
    per_package: dict[str, float] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = line[len("import time:"):].split("|")
        if len(parts) != 3 or not parts[0].strip().isdigit():
            continue
        name = parts[2]
        if name.startswith("  "):  # nested import: counted in its parent's cumulative time
            continue
        package = name.strip().split(".")[0]
        per_package[package] = per_package.get(package, 0.0) + int(parts[1]) / 1e6
    total = sum(per_package.values())
    ranked = sorted(per_package.items(), key=lambda kv: -kv[1])[:top]
    return {"total_s": round(total, 3), "top": {k: round(v, 3) for k, v in ranked}}


def same_tensors(a: Path, b: Path) -> dict:
    """Whether two artifacts hold identical weights (safetensors or hqq's qmodel.pt)."""
    import torch

    def flat(obj, prefix=""):
        if isinstance(obj, torch.Tensor):
            yield prefix, obj
        elif isinstance(obj, dict):
            for key, value in obj.items():
                yield from flat(value, f"{prefix}.{key}" if prefix else str(key))

    if (a / "qmodel.pt").is_file():
        ta = dict(flat(torch.load(a / "qmodel.pt", map_location="cpu", weights_only=False)))
        tb = dict(flat(torch.load(b / "qmodel.pt", map_location="cpu", weights_only=False)))
    else:
        from safetensors.torch import load_file

        ta = {k: v for f in sorted(a.glob("*.safetensors")) for k, v in load_file(f).items()}
        tb = {k: v for f in sorted(b.glob("*.safetensors")) for k, v in load_file(f).items()}
    differing = [k for k in ta if k not in tb or ta[k].shape != tb[k].shape or not torch.equal(ta[k], tb[k])]
    return {"tensors": len(ta), "identical": not differing and set(ta) == set(tb), "differing": differing[:10]}


def bench_method(method: str, args, model_dir: Path, dtype: str, work: Path) -> dict:
    bits, group = DEFAULTS[method]["bits"], DEFAULTS[method]["group_size"]
    outputs: dict[str, dict[int, Path]] = {"lab": {}, "direct": {}}

    def lab(r: int) -> Measurement:
        out = work / f"{method}-lab-{r}"
        p = run_timed(lab_cmd(method, args.model, args.profile, out, bits, group), env=args.env)
        folder = Path(p.stdout.strip().splitlines()[-1])
        outputs["lab"][r] = folder
        timing = json.loads((folder / "manifest.json").read_text())["timing"]
        return Measurement(p.wall_s, p.cpu_s, timing)

    def direct(r: int) -> Measurement:
        out = work / f"{method}-direct-{r}"
        p = run_timed(direct_cmd(method, model_dir, out, bits, group, dtype), env=args.env)
        outputs["direct"][r] = out
        return Measurement(p.wall_s, p.cpu_s, json.loads(p.stdout.strip().splitlines()[-1]))

    print(f"{method}: {args.repeats} interleaved rounds (+{args.warmup} warmup) of lab vs direct")
    runs = interleave({"lab": lab, "direct": direct}, args.repeats, args.warmup)
    result = {
        "settings": {"bits": bits, "group_size": group, "dtype": dtype},
        "commands": {"lab": " ".join(lab_cmd(method, args.model, args.profile, Path("<out>"), bits, group)),
                     "direct": " ".join(direct_cmd(method, model_dir, Path("<out>"), bits, group, dtype))},
        "subprocess": {"lab": arm_summary(runs["lab"]), "direct": arm_summary(runs["direct"]),
                       "lab_over_direct": compare_runs(runs["lab"], runs["direct"])},
        "in_process": {},
        "same_output": same_tensors(outputs["lab"][0], outputs["direct"][0]),
    }
    for step in ("quantize_seconds", "total_seconds", "load_seconds"):
        a = [m.info[step] for m in runs["lab"]]
        b = [m.info[step] for m in runs["direct"]]
        result["in_process"][step] = {"lab": summarize(a), "direct": summarize(b), "lab_over_direct": compare(a, b)}
    wall = result["subprocess"]["lab_over_direct"]["wall"]["ratio_of_medians"]
    step = result["in_process"]["quantize_seconds"]["lab_over_direct"]["ratio_of_medians"]
    result["meets_target"] = {"subprocess_wall": meets(wall, TARGET), "in_process_quantize": meets(step, TARGET)}
    if args.importtime:
        lab_p = run_timed([*python_cmd()[:1], "-X", "importtime", *lab_cmd(method, args.model, args.profile,
                                                                            work / f"{method}-lab-imp", bits, group)[1:]],
                          env=args.env)
        direct_p = run_timed([*python_cmd()[:1], "-X", "importtime", *direct_cmd(method, model_dir,
                                                                                 work / f"{method}-direct-imp", bits,
                                                                                 group, dtype)[1:]], env=args.env)
        result["importtime"] = {"lab": importtime_profile(lab_p.stderr), "direct": importtime_profile(direct_p.stderr)}
    print(f"{method}: lab/direct wall {wall}, in-process quantize step {step}, "
          f"identical output: {result['same_output']['identical']}")
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default="rtn,hqq")
    parser.add_argument("--model", default="tiny-s")
    parser.add_argument("--profile", default="quick", help="tiny family profile ('' for a non-tiny model)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", default="1", help="OMP_NUM_THREADS for both arms")
    parser.add_argument("--no-importtime", dest="importtime", action="store_false")
    parser.add_argument("--out", default=None, help="result JSON (default benchmarks/results/quantize_overhead.json)")
    args = parser.parse_args(argv)
    args.env = {"OMP_NUM_THREADS": args.threads}
    model_dir, dtype = resolve_model(args.model, args.profile)
    work = Path(tempfile.mkdtemp(prefix="bench-quantize-"))
    try:
        methods = {m: bench_method(m, args, model_dir, dtype, work) for m in args.methods.split(",")}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_result(NAME, {
        "target": f"lab/direct <= {TARGET}",
        "model": {"name": args.model, "tiny_profile": args.profile, "dir": str(model_dir), "dtype": dtype},
        "repeats": args.repeats, "warmup": args.warmup, "omp_num_threads": args.threads,
        "methods": methods,
    }, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
