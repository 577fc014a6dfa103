"""python -m evaluate run artifact=<folder> [eval=<set>] [key=value ...]"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from common.cli import run_command
from common.environments import dispatch, manifest_environment, needs_dispatch
from common.storage import ensure_writable_dir, read_manifest
from configs.compose import compose, describe_config, group_choices
from configs.errors import ConfigError, LabError

# Each command imports its stage when it runs, not here: `--help` and a bad setting answer
# before torch, lm-eval and scipy load, and a command runs in an environment that has only
# its own stage's libraries (.venv-gptqmodel evaluates and runs sweep cells, but has no
# submitit, statsmodels or matplotlib for the sweep's launchers and the report).

COMMANDS = {"run": "evaluate_run", "sweep": "evaluate_sweep"}
FLAGS = {"--dry-run": "dry_run=true", "--retry-failed": "retry_failed=true"}
USAGE = """usage: python -m evaluate run artifact=<folder> [eval=<set>] [key=value ...]
       python -m evaluate report [results_dir=lab/results] [gate.min_recovery=0.95] [models=[...]]
       python -m evaluate sweep [sweep=<name>] [launcher=local|submitit_local|slurm] [--dry-run] [--retry-failed]

run      evaluate one artifact (and its baseline, if any) on a set of tasks; one record per
         (artifact, task, settings) in results_dir, with every model answer beside it.
         A second identical run finds the records and does nothing.

common settings:
  eval=<set>  eval.tasks=[arc_easy,gsm8k]  eval.limit=200  eval.batch_size=16
  eval.apply_chat_template=auto|true|false  +eval.data_files.<task>=/path/local.jsonl
  eval.enable_thinking=false|true|null (chat templates with a thinking switch, e.g. Qwen3)
  baseline=auto|null|<folder>  results_dir=lab/results  device=auto|cpu|cuda  speed.enabled=true
report   [key=value ...]  the method comparison report (HTML, Markdown, CSV) from the results
         store; gate.min_recovery=0.95 exits 1 naming the variants under it.

sweep    quantize + evaluate every (model, method, bits) cell of a sweep; resumable: a rerun
         does only unfinished work. Exit code 1 if any cell failed.
  sweep=demo|origin|size_ladder  sweep.models=[...]  launcher.max_parallel=2
  --dry-run       list the cells with their status and memory estimate, run nothing
  --retry-failed  also rerun the cells that failed before

  --cfg    print the composed config and exit (validated; it says what was checked)

A bad setting or a damaged input file is one line (exit code 2); Ctrl-C or SIGTERM stops
run and report cleanly (exit code 130 / 143) and a rerun resumes.
"""
CFG_CHECKED = {
    "run": "# valid: the settings, results_dir; checked when it runs: the artifact's files, the tasks, data files",
    "report": "# valid: the settings; checked when it runs: the records in results_dir",
    "sweep": "# valid: the settings, the launcher's services and every cell not done yet; checked when it runs: each cell's model and files",
}

def main(argv: list[str]) -> int:
    # force: libraries imported above may already have configured the root logger
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S", force=True)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE + f"\neval sets: {', '.join(group_choices('eval'))}; sweeps: {', '.join(group_choices('sweep'))}")
        return 0
    command, args = argv[0], [FLAGS.get(a, a) for a in argv[1:]]
    if command in COMMANDS and any(a in ("-h", "--help") for a in args):
        print(USAGE)
        return 0
    if command == "cell":  # internal: one sweep cell in the foreground (`python -m evaluate cell <spec.json>`)
        from sweep.execute import run_cell_from_spec  # its stage, imported when run (see above)

        return run_cell_from_spec(args[0])
    if command == "worker":  # internal: a sweep's cell worker (sweep.pool starts it; requests on stdin)
        from sweep.worker import serve  # its stage, imported when run (see above)

        return serve(args)
    if command == "report":
        return report(args)
    if command not in COMMANDS:
        print(f"error: unknown command {command!r}; choices: {', '.join([*COMMANDS, 'report'])}", file=sys.stderr)
        return 2
    try:
        if "--cfg" in args:
            return print_config(command, [a for a in args if a != "--cfg"])
        job = compose(COMMANDS[command], args)
        if command == "run":  # an artifact loads in the environment it was made in (its manifest says which)
            environment = manifest_environment(read_manifest(Path(job.artifact)))
            if needs_dispatch(environment):
                return dispatch(environment, "evaluate", argv, f"artifact={job.artifact} loads in the '{environment}' environment")
        if command == "sweep":
            from sweep.run import run_sweep  # its stage, imported when run (see above)

            return run_sweep(job)
        from evaluate.run import evaluate_artifact  # its stage, imported when run (see above)

        folders = evaluate_artifact(job)
    except LabError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    print("\n".join(str(folder) for folder in folders))
    return 0

def report(args: list[str]) -> int:
    """`report`: the results table checked (rebuilt from the records, with a warning, if it
    is damaged or out of date), then the report stage."""
    try:
        if "--cfg" in args:
            return print_config("report", [a for a in args if a != "--cfg"])
        try:
            results_dir = compose("report", args).results_dir
        except ConfigError:
            results_dir = None  # the report stage says what is wrong with the settings
        if results_dir is not None:
            from evaluate import store  # pandas: loaded when a command needs it (see above)

            store.ensure_table(Path(results_dir))
        from report.cli import main as report_main  # its stage, imported when run (see above)

        return report_main(args)
    except LabError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code

def print_config(command: str, overrides: list[str]) -> int:
    """`--cfg`: the composed config, then whether it is valid and what was checked."""

    def check(job) -> None:
        if command == "run":
            ensure_writable_dir("results_dir", job.results_dir)
        if command == "sweep":
            from sweep.run import check_sweep  # its stage, imported when run (see above)

            check_sweep(job)

    text, error = describe_config(COMMANDS.get(command, command), overrides, check)
    print(text.rstrip("\n"))
    if error is not None:
        print(f"error: {error} (the config printed above is not valid)", file=sys.stderr)
        return error.exit_code
    print(CFG_CHECKED[command])
    return 0

# run and report stop cleanly on Ctrl-C / SIGTERM and say failures in one line (common.cli);
# sweep and its cells keep their own handling (sweep/).
SHELLED = ("run", "report")

if __name__ == "__main__":
    sys.exit(run_command(main, sys.argv[1:]) if sys.argv[1:2] and sys.argv[1] in SHELLED else main(sys.argv[1:]))
