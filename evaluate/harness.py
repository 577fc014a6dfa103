"""The bridge to lm-evaluation-harness: an already loaded model, any task lm-eval knows.

The (quantized) model is wrapped in lm-eval's own `HFLM`, so stock tasks give the numbers
the `lm_eval` command line gives on the same artifact and settings. The lab's task YAMLs
(`tasks/`) are added through an include path. A task can be pointed at a local
data file in its schema (`data_files`): a small YAML that includes the task and swaps
its dataset is written to a temporary include folder.
"""

from __future__ import annotations

import difflib
import functools
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import yaml

from common.files import yaml_problem
from common.storage import scratch_folder, writing
from configs.errors import BadFile, ConfigError
from tasks import TASKS_DIR
from tasks.prompts import task_config

log = logging.getLogger(__name__)

@dataclass
class TaskRun:
    """What lm-eval returned for one task."""

    name: str
    output_type: str
    metrics: dict  # lm-eval's aggregated metrics for the task
    samples: list  # lm-eval's logged samples (doc, resps, filtered_resps, target, metrics)
    config: dict  # the task config lm-eval used
    n_samples: int


def run_tasks(
    model,
    tokenizer,
    tasks: list[str],
    *,
    batch_size: int,
    limit: Optional[int] = None,
    num_fewshot: Optional[int] = None,
    apply_chat_template: bool = False,
    max_gen_toks: Optional[int] = None,
    data_files: Optional[dict[str, str]] = None,
    include_path: Optional[str] = None,
    seed: int = 0,
    enable_thinking: Optional[bool] = None,
    think_end_token: Optional[str] = None,
    scratch_dir: Optional[Path] = None,
) -> dict[str, TaskRun]:
    """Run `tasks` on the loaded model. `enable_thinking` (None: not passed) goes to the chat
    template; with it true, lm-eval scores only the text after `think_end_token`. The task
    YAMLs that point tasks at local data files go to a temporary folder under `scratch_dir`
    (the results folder: removed when done, or by the next run if this one is killed),
    else under the system's temporary directory."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    scratch = (scratch_folder(scratch_dir, "lab-tasks") if scratch_dir is not None
               else tempfile.TemporaryDirectory(prefix="lab-tasks-"))
    with scratch as overrides_dir:
        include = [str(TASKS_DIR)] + ([include_path] if include_path else [])
        with writing("lm-eval's task files", Path(overrides_dir).parent):
            for task, path in (data_files or {}).items():
                _write_local_data_task(Path(overrides_dir), task, Path(path))
        if data_files:
            include.append(str(overrides_dir))
        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, enable_thinking=enable_thinking,
                  think_end_token=think_end_token if enable_thinking else None)
        results = simple_evaluate(
            model=lm,
            tasks=list(tasks),
            # lm-eval's ~10k own task YAMLs are indexed only when a stock task is asked for
            task_manager=(TaskManager(include_path=include, include_defaults=not all(map(task_yaml, tasks))) if data_files
                          else _task_manager(tuple(include), not all(map(task_yaml, tasks)))),
            limit=limit,
            num_fewshot=num_fewshot,
            apply_chat_template=apply_chat_template,
            gen_kwargs={"max_gen_toks": max_gen_toks} if max_gen_toks else None,
            log_samples=True,
            random_seed=seed,
            numpy_random_seed=seed,
            torch_random_seed=seed,
            fewshot_random_seed=seed,
            bootstrap_iters=1000,
        )
    return {
        name: TaskRun(
            name=name,
            output_type=results["configs"][name].get("output_type", ""),
            metrics=results["results"][name],
            samples=results["samples"][name],
            config=results["configs"][name],
            n_samples=results["n-samples"][name]["effective"],
        )
        for name in tasks
    }


def check_tasks(eval_config) -> None:
    """A ConfigError naming every task of `eval_config` (its tasks and perplexity task) that
    lm-eval does not know, with the closest names, before any model is loaded. Only a stock
    task makes lm-eval index its own task YAMLs (seconds)."""
    tasks = [*eval_config.tasks, *filter(None, [eval_config.perplexity_task])]
    if eval_config.enable_thinking:
        _check_generative(eval_config.tasks)
    include_path = eval_config.include_path
    if include_path:
        _check_include_path(Path(include_path))
    if all(map(task_yaml, tasks)) and not include_path:
        return
    known = _known_tasks(include_path)
    unknown = [task for task in tasks if task not in known]
    if unknown:
        hints = [f"{task!r} (closest: {', '.join(difflib.get_close_matches(task, known, n=3)) or 'none'})"
                 for task in unknown]
        raise ConfigError(f"eval.tasks: lm-eval knows no task {'; '.join(hints)}; list them with `lm_eval --tasks list`"
                          + (f" (include path {include_path})" if include_path else ""))


def _check_include_path(folder: Path) -> None:
    """The user's task YAMLs, each readable (lm-eval would skip or fail on a broken one deep
    in its task index)."""
    if not folder.is_dir():
        raise ConfigError(f"eval.include_path={str(folder)!r}: no such folder")
    for path in sorted(folder.rglob("*.yaml")):
        if (problem := yaml_problem(path)) is not None:
            raise BadFile(path, f"the task YAML {problem}", "fix it, or remove it from eval.include_path")


def _check_generative(tasks: list[str]) -> None:
    """lm-eval refuses thinking on loglikelihood tasks (multiple choice), but only once the
    model is loaded: the lab's tasks are checked now (stock ones are left to lm-eval)."""
    scored = [t for t in tasks if task_yaml(t) and task_config(t).get("output_type", "generate_until") != "generate_until"]
    if scored:
        raise ConfigError(f"eval.enable_thinking=true works only with generation tasks; {', '.join(scored)} "
                          "score(s) log-likelihoods: drop them from eval.tasks or set eval.enable_thinking=false")


@functools.lru_cache(maxsize=None)
def _known_tasks(include_path: Optional[str]) -> frozenset[str]:
    include = (str(TASKS_DIR),) + ((include_path,) if include_path else ())
    return frozenset(_task_manager(include, True).all_tasks)


@functools.lru_cache(maxsize=4)
def _task_manager(include: tuple[str, ...], include_defaults: bool):
    """lm-eval's task index (of lm-eval's own ~10k YAMLs too: seconds), built once per process
    for the same folders: a sweep's worker evaluates cell after cell. It holds no state of a
    run: each simple_evaluate builds its tasks anew."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=list(include), include_defaults=include_defaults)


def task_yaml(task: str) -> Optional[Path]:
    """The lab's YAML for `task`, if it is one of ours (stock tasks return None)."""
    path = TASKS_DIR / f"{task}.yaml"
    return path if path.is_file() else None


def _write_local_data_task(folder: Path, task: str, data_file: Path) -> None:
    parent = task_yaml(task)
    if parent is None:
        raise ValueError(f"eval.data_files: {task!r} is not one of the lab's tasks ({TASKS_DIR})")
    if not data_file.is_file():
        raise FileNotFoundError(f"eval.data_files.{task}: no such file {data_file}")
    override = {
        "include": str(parent),
        "task": task,
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": {"test": str(data_file.resolve())}},
        "test_split": "test",
    }
    (folder / f"{task}.yaml").write_text(yaml.safe_dump(override, sort_keys=False))
