"""eval_overhead: `python -m evaluate run` vs the `lm_eval` command line, same artifact and task.

    python -m benchmarks.eval_overhead [--tasks tiny_arc_mc,tiny_openmath] [--model tiny-s]
                                       [--profile quick] [--limit 64] [--batch-size 32]
                                       [--repeats 5] [--warmup 1] [--artifact FOLDER]

The artifact is the model's `method=none` artifact (made with `python -m quantize` in a
temporary folder unless `--artifact` is given). The task data is the tiny family's
held-out file, given to both sides as a local json file (the way the lab's lm_eval CLI
parity test does it: a small include YAML that points the lab's task at the file).
Both arms are fresh subprocesses, interleaved, each with a new output folder so
that nothing is reused:

  lab: python -m evaluate run artifact=A eval.tasks=[T] +eval.data_files.T=DATA eval.limit=L
       eval.batch_size=B eval.apply_chat_template=C eval.perplexity_task=null
       speed.enabled=false baseline=null results_dir=<new>
  cli: python -m lm_eval run --model hf --model_args pretrained=A,dtype=<dtype> --tasks T
       --include_path <dir> --limit L --batch_size B --device cpu --seed 0 --log_samples
       [--apply_chat_template] --output_path <new>

Like with like: the lab's speed measurement, KL divergence and baseline pairing are off
(they are extra work the CLI does not do); both sides log every sample to disk. The lab
still writes its record folder, samples.jsonl, and the results table
(table.parquet/csv), and scores boxed tasks with its own scorer on top of lm-eval's
metrics: that is included in its time. Reported: whether lm-eval's metrics are
identical (every numeric metric lm-eval reports for the task), and the wall-time ratio
lab/cli (target <= 1.05).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import yaml

from benchmarks.common import (Measurement, arm_summary, compare_runs, interleave, meets, python_cmd, run_timed,
                               summarize, write_result)
from evaluate import store
from tasks import TASKS_DIR

NAME = "eval_overhead"
TARGET = 1.05
# task -> (tiny family data file, chat template on): the tiny models answer boxed tasks
# only in their chat format; the stock-style multiple-choice task is scored without it.
TASKS = {"tiny_arc_mc": ("arc", False), "tiny_arc": ("arc", True), "tiny_openmath": ("openmath", True),
         "tiny_squad": ("squad", True)}


def make_artifact(model: str, profile: str, work: Path, env: dict) -> Path:
    cmd = [*python_cmd(), "-m", "quantize", "method=none", f"model={model}", f"output_dir={work / 'artifacts'}"]
    if profile:
        cmd.append(f"model.tiny_profile={profile}")
    return Path(run_timed(cmd, env=env).stdout.strip().splitlines()[-1])


def lab_cmd(artifact: Path, task: str, data: Path, limit: int, batch: int, chat: bool, results: Path) -> list[str]:
    plus = "" if task in _eval_tiny_data_files() else "+"  # a key eval=tiny already has is set, not added
    return [*python_cmd(), "-m", "evaluate", "run", f"artifact={artifact}", f"eval.tasks=[{task}]",
            f"{plus}eval.data_files.{task}={data}", f"eval.limit={limit}", f"eval.batch_size={batch}",
            f"eval.apply_chat_template={'true' if chat else 'false'}", "eval.perplexity_task=null",
            "speed.enabled=false", "baseline=null", f"results_dir={results}"]


def _eval_tiny_data_files() -> set:
    config = yaml.safe_load((TASKS_DIR.parent / "hydra_conf" / "eval" / "tiny.yaml").read_text())
    return set(config.get("data_files") or {})


def cli_cmd(artifact: Path, dtype: str, task: str, tasks_dir: Path, limit: int, batch: int, chat: bool,
            out: Path) -> list[str]:
    cmd = [*python_cmd(), "-m", "lm_eval", "run", "--model", "hf", "--model_args", f"pretrained={artifact},dtype={dtype}",
           "--tasks", task, "--include_path", str(tasks_dir), "--limit", str(limit), "--batch_size", str(batch),
           "--device", "cpu", "--seed", "0", "--log_samples", "--output_path", str(out)]
    return cmd + (["--apply_chat_template"] if chat else [])


def write_task_override(tasks_dir: Path, task: str, data: Path) -> None:
    """The lab's task YAML with its dataset pointed at a local file (as the parity test does)."""
    tasks_dir.mkdir(parents=True, exist_ok=True)
    (tasks_dir / f"{task}.yaml").write_text(yaml.safe_dump({
        "include": str(TASKS_DIR / f"{task}.yaml"), "task": task,
        "dataset_path": "json", "dataset_name": None,
        "dataset_kwargs": {"data_files": {"test": str(data)}}, "test_split": "test",
    }, sort_keys=False))


def lab_metrics(results: Path, task: str) -> tuple[dict, int, float, list]:
    folder, record = next((f, r) for f, r in store.iter_records(results) if r["task"] == task)
    return record["lm_eval"], record["n"], record["eval_seconds"], store.read_samples(folder)


def cli_samples(out: Path, task: str) -> list[dict]:
    path = next(out.rglob(f"samples_{task}_*.jsonl"))
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def compare_samples(lab_rows: list[dict], cli_rows: list[dict]) -> dict:
    """Per document: the lab's generation vs lm-eval's filtered response (generation
    tasks), or the per-sample metric values (multiple choice)."""
    cli = {row["doc_id"]: row for row in cli_rows}
    same, differing = 0, []
    for row in lab_rows:
        other = cli.get(row["doc_id"])
        if other is None:
            differing.append(row["doc_id"])
            continue
        if "generation" in row:
            equal = row["generation"] == other["filtered_resps"][0]
        else:
            metrics = [m for m in ("acc", "acc_norm", "exact_match") if m in row and m in other]
            equal = bool(metrics) and all(row[m] == other[m] for m in metrics)
        same += equal
        if not equal:
            differing.append(row["doc_id"])
    return {"compared": len(lab_rows), "cli_samples": len(cli_rows), "identical": same,
            "all_identical": same == len(lab_rows) == len(cli_rows), "differing_doc_ids": differing[:20]}


def cli_metrics(out: Path, task: str) -> tuple[dict, float]:
    results = json.loads(next(out.rglob("results_*.json")).read_text())
    return results["results"][task], float(results["total_evaluation_time_seconds"])


def task_index_seconds(env: dict) -> dict:
    """What building lm-eval's TaskManager costs with and without its ~10k default task
    YAMLs (the CLI always indexes them; the lab skips them when every task is its own)."""
    code = ("import time; from lm_eval.tasks import TaskManager; t=time.perf_counter(); "
            f"TaskManager(include_path=[{str(TASKS_DIR)!r}], include_defaults={{}}); print(time.perf_counter()-t)")
    out = {}
    for flag in (True, False):
        out["with_defaults" if flag else "lab_tasks_only"] = round(
            float(run_timed([*python_cmd(), "-c", code.format(flag)], env=env).stdout.strip().splitlines()[-1]), 3)
    return out


def numeric(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def compare_scores(lab: dict, cli: dict) -> dict:
    """Every numeric metric of lm-eval's, compared exactly (NaN == NaN)."""
    a, b = numeric(lab), numeric(cli)
    keys = sorted(set(a) | set(b))
    differing = {k: [a.get(k), b.get(k)] for k in keys
                 if not (k in a and k in b and (a[k] == b[k] or (a[k] != a[k] and b[k] != b[k])))}
    return {"identical": not differing, "metrics": {k: a.get(k) for k in keys}, "differing": differing}


def bench_task(task: str, args, artifact: Path, dtype: str, data_root: Path, work: Path) -> dict:
    data_name, chat = TASKS[task]
    data = data_root / f"tiny_{data_name}.jsonl"
    tasks_dir = work / "tasks"
    write_task_override(tasks_dir, task, data)
    scores: dict[str, dict] = {}

    def lab(r: int) -> Measurement:
        results = work / f"{task}-lab-{r}"
        p = run_timed(lab_cmd(artifact, task, data, args.limit, args.batch_size, chat, results), env=args.env)
        metrics, n, seconds, rows = lab_metrics(results, task)
        scores.setdefault("lab", metrics)
        scores.setdefault("lab_rows", rows)
        return Measurement(p.wall_s, p.cpu_s, {"n": n, "in_process_s": seconds})

    def cli(r: int) -> Measurement:
        out = work / f"{task}-cli-{r}"
        p = run_timed(cli_cmd(artifact, dtype, task, tasks_dir, args.limit, args.batch_size, chat, out), env=args.env)
        metrics, seconds = cli_metrics(out, task)
        scores.setdefault("cli", metrics)
        scores.setdefault("cli_rows", cli_samples(out, task))
        return Measurement(p.wall_s, p.cpu_s, {"in_process_s": seconds})

    print(f"{task}: {args.repeats} interleaved rounds (+{args.warmup} warmup) of lab vs lm_eval CLI")
    runs = interleave({"lab": lab, "cli": cli}, args.repeats, args.warmup)
    same = compare_scores(scores["lab"], scores["cli"])
    same["samples"] = compare_samples(scores["lab_rows"], scores["cli_rows"])
    result = {
        "data_file": str(data), "apply_chat_template": chat, "n": runs["lab"][0].info["n"],
        "commands": {"lab": " ".join(lab_cmd(artifact, task, data, args.limit, args.batch_size, chat, Path("<new>"))),
                     "cli": " ".join(cli_cmd(artifact, dtype, task, tasks_dir, args.limit, args.batch_size, chat,
                                             Path("<new>")))},
        "scores": same,
        "lab": arm_summary(runs["lab"]), "cli": arm_summary(runs["cli"]),
        "lab_over_cli": compare_runs(runs["lab"], runs["cli"]),
        "in_process": {
            "note": "lab: the record's eval_seconds (run_tasks: HFLM wrap, TaskManager, simple_evaluate; model "
                    "already loaded). cli: results JSON total_evaluation_time_seconds (simple_evaluate, which "
                    "loads the model from the path). Informational: the two spans are not the same.",
            "lab_s": summarize([m.info["in_process_s"] for m in runs["lab"]]),
            "cli_s": summarize([m.info["in_process_s"] for m in runs["cli"]]),
        },
    }
    wall = result["lab_over_cli"]["wall"]["ratio_of_medians"]
    result["meets_target"] = meets(wall, TARGET)
    print(f"{task}: identical scores: {same['identical']}, identical samples: {same['samples']['identical']}/"
          f"{same['samples']['compared']}, lab/cli wall {wall}")
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="tiny_arc_mc,tiny_openmath", help=f"from {', '.join(TASKS)}")
    parser.add_argument("--model", default="tiny-s")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--artifact", default=None, help="an existing method=none artifact of a tiny model")
    parser.add_argument("--limit", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32, help="default: eval=tiny's batch size")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", default="1", help="OMP_NUM_THREADS for both arms")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    args.env = {"OMP_NUM_THREADS": args.threads}
    work = Path(tempfile.mkdtemp(prefix="bench-eval-"))
    try:
        artifact = Path(args.artifact).resolve() if args.artifact else make_artifact(args.model, args.profile, work, args.env)
        manifest = json.loads((artifact / "manifest.json").read_text())
        data_root = Path(manifest["model"]["source_dir"]).parent / "data"
        dtype = manifest["model"]["dtype"]
        tasks = {t: bench_task(t, args, artifact, dtype, data_root, work) for t in args.tasks.split(",")}
        index = task_index_seconds(args.env)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_result(NAME, {
        "target": f"lab/cli <= {TARGET}, identical lm-eval metrics",
        "model": {"name": args.model, "tiny_profile": args.profile, "artifact_label": manifest["label"], "dtype": dtype},
        "limit": args.limit, "batch_size": args.batch_size, "repeats": args.repeats, "warmup": args.warmup,
        "omp_num_threads": args.threads,
        "like_with_like": {
            "both": ["fresh process (interpreter start + imports)", "model load from the artifact folder",
                     "lm-eval task build and scoring", "every sample logged to disk"],
            "lab_only": ["Hydra config composition and validation", "artifact manifest read",
                         "record folder + samples.jsonl, results table (table.parquet/csv)",
                         "the lab's boxed scoring on top of lm-eval's metrics (boxed tasks)"],
            "off_in_lab_arm": ["speed/memory measurement (speed.enabled=false)", "KL divergence and baseline "
                               "pairing (baseline=null)", "perplexity task (eval.perplexity_task=null)"],
        },
        "tasks": tasks,
        "profile": {"task_manager_build_s": index},
    }, args.out)
    return 0 if all(t["scores"]["identical"] and t["scores"]["samples"]["all_identical"] for t in tasks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
