"""The evaluate recipe: artifact -> lm-eval tasks, speed, KL -> records in the results store.

Records that already exist are found first and not recomputed; when everything exists
no model is loaded. The baseline (the method=none artifact of the same model) is
evaluated first when it exists, so that every variant's record can carry its paired
comparison and the baseline gate.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Optional

from common.files import file_problem, read_jsonl
from configs.errors import BadFile, ConfigError
from configs.eval_schema import EvalRunConfig
from evaluate import diagnostics, native, records, store
from evaluate.harness import check_tasks, run_tasks, task_yaml
from evaluate.speed import measure_speed
from common.storage import (MANIFEST, ensure_writable_dir, fingerprint, folder_problem, read_manifest,
                            replace_atomically)
from models.loading import load_model, pick_device
from models.provenance import provenance
from models.sources import check_checkpoint
from tasks.prompts import task_config

log = logging.getLogger("evaluate")

REBUILD = "rebuild it with the `python -m quantize` command that made it (a damaged artifact is replaced)"


@dataclasses.dataclass
class PlannedRecord:
    task: str
    settings: dict
    folder: Path


def evaluate_artifact(job: EvalRunConfig) -> list[Path]:
    """Evaluate `job.artifact` (and its baseline first); returns the record folders."""
    artifact = Path(job.artifact).expanduser().resolve()
    manifest = _manifest(artifact)
    check_tasks(job.eval)
    pick_device(job.device)  # no CUDA where CUDA is asked for: said before the baseline is evaluated
    ensure_writable_dir("results_dir", job.results_dir)
    baseline = find_baseline(job, artifact, manifest)
    if baseline is not None:
        evaluate_artifact(dataclasses.replace(job, artifact=str(baseline), baseline=None))
    data_files = resolve_data_files(job, manifest)
    planned = plan_records(job, artifact, manifest, data_files)
    pending, damaged = [], set()
    for plan in planned:
        record, problem = store.check_record(plan.folder)
        if problem is not None:
            log.warning("the record %s is damaged (%s); recomputing it", plan.folder, problem)
            damaged.add(plan.folder)
        if record is None:
            pending.append(plan)
    if not pending:
        log.info("every record already exists for %s; nothing to do", artifact.name)
        store.ensure_table(Path(job.results_dir))
        return [p.folder for p in planned]
    _set_threads(job.threads)
    started = time.perf_counter()
    model, tokenizer = load_model(artifact, device=job.device)
    load_seconds = time.perf_counter() - started
    context = _Context(job, artifact, manifest, baseline, model, tokenizer, load_seconds, data_files, damaged)
    task_plans = [p for p in pending if p.task not in ("speed", "kl_divergence")]
    if task_plans:
        _evaluate_tasks(context, task_plans)
    for plan in pending:
        if plan.task == "speed":
            _measure_speed(context, plan)
        elif plan.task == "kl_divergence":
            _measure_kl(context, plan, planned)
    store.write_table(Path(job.results_dir))
    return [p.folder for p in planned]


# -- planning (no model loaded) ----------------------------------------------------------
def plan_records(job: EvalRunConfig, artifact: Path, manifest: dict, data_files: dict) -> list[PlannedRecord]:
    chat = use_chat_template(job, artifact)
    common = {"limit": job.eval.limit, "num_fewshot": job.eval.num_fewshot, "max_gen_toks": job.eval.max_gen_toks,
              "apply_chat_template": chat, "seed": job.eval.seed, "scoring_version": records.SCORING_VERSION}
    if chat and job.eval.enable_thinking is not None and has_thinking_switch(artifact):
        common["enable_thinking"] = job.eval.enable_thinking  # only where it changes the prompt: other keys stay
        if job.eval.enable_thinking:
            common["think_end_token"] = job.eval.think_end_token
    tasks = list(job.eval.tasks) + ([job.eval.perplexity_task] if job.eval.perplexity_task else [])
    plans = []
    for task in tasks:
        settings = {"task": task, "task_config": _task_config_hash(task), "data": _file_hash(data_files.get(task)), **common}
        plans.append(_planned(job, manifest, task, settings))
    if job.speed.enabled:
        speed = {**dataclasses.asdict(job.speed), "batch_sizes": sorted({*job.speed.batch_sizes, job.eval.batch_size}),
                 "device": job.device}
        plans.append(_planned(job, manifest, "speed", {"task": "speed", **speed}))
    if not _is_baseline(manifest) and find_baseline(job, artifact, manifest) is not None:
        # "rows" and "continuation": what older KL records lacked, so they are measured again
        kl = {"task": "kl_divergence", "rows": "per_prompt", "continuation": "baseline",
              **dataclasses.asdict(job.diagnostics), "prompts_from": plans[0].settings}
        plans.append(_planned(job, manifest, "kl_divergence", kl))
    return plans


def _planned(job, manifest, task, settings) -> PlannedRecord:
    key = fingerprint(settings)
    folder = store.record_folder(Path(job.results_dir), manifest["fingerprint"], task, key)
    return PlannedRecord(task, {**settings, "fingerprint": key}, folder)


def find_baseline(job: EvalRunConfig, artifact: Path, manifest: dict) -> Optional[Path]:
    """The baseline artifact to compare with, or None (the artifact is a baseline itself,
    `baseline=null`, or no method=none artifact of the same model exists)."""
    if job.baseline is None or _is_baseline(manifest):
        return None
    if job.baseline != "auto":
        folder = Path(job.baseline).expanduser().resolve()
        check_artifact(folder, "baseline")
        return folder
    for candidate in sorted(artifact.parent.glob("none-*")):
        other = _raw_manifest(candidate)
        if other is None:
            log.warning("not considering %s as the baseline: its %s is missing or damaged", candidate, MANIFEST)
            continue
        model = other.get("model") if isinstance(other.get("model"), dict) else {}
        if model.get("identity") == manifest["model"]["identity"] and model.get("dtype") == manifest["model"]["dtype"]:
            problem = folder_problem(candidate)
            if problem is not None:
                raise BadFile(f"baseline {candidate}", f"the baseline artifact of this model is damaged: {problem}",
                              f"{REBUILD}, or evaluate without it: baseline=null")
            return candidate
    return None


def _raw_manifest(folder: Path) -> Optional[dict]:
    """The manifest's content however damaged the folder is, if its JSON reads."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def check_artifact(folder: Path, setting: str = "artifact") -> dict:
    """The manifest of a complete, readable artifact folder; else one BadFile line naming the
    file that is missing or damaged and how (a weights file, the manifest, a tokenizer file)."""
    problem = folder_problem(folder)
    if problem is not None:
        advice = "create one with python -m quantize" if f"has no {MANIFEST}" in problem or "does not exist" in problem else REBUILD
        raise BadFile(f"{setting} {folder}", problem, advice)
    manifest = read_manifest(folder)
    check_checkpoint(folder, advice=REBUILD, trust_remote_code=bool(manifest["model"].get("trust_remote_code")))
    return manifest


def resolve_data_files(job: EvalRunConfig, manifest: dict) -> dict[str, str]:
    """eval.data_files with `tiny:<task>` resolved to the tiny family's held-out files."""
    resolved = {}
    tasks = {*job.eval.tasks, job.eval.perplexity_task}
    for task, value in job.eval.data_files.items():
        if task not in tasks:
            continue
        if value.startswith("tiny:"):
            root = Path(manifest["model"]["source_dir"]).parent
            if not (root / "data").is_dir():
                raise ConfigError(f"eval.data_files.{task}={value!r}: the artifact is not of a tiny-family model")
            value = str(_tiny_data_file(root / "data", value.removeprefix("tiny:"), Path(job.results_dir)))
        if not Path(value).is_file():
            raise ConfigError(f"eval.data_files.{task}={value!r}: no such file")
        _check_data_file(Path(value), f"eval.data_files.{task}")
        resolved[task] = str(Path(value).resolve())
    return resolved


def _check_data_file(path: Path, setting: str) -> None:
    """A task's local data file, checked before any model loads (lm-eval reads it through
    `datasets`, which would fail later, deep in its own code)."""
    rows = read_jsonl(path, f"fix the file {setting} names") if path.suffix == ".jsonl" else None
    problem = file_problem(path) if rows is None else ("has no records" if not rows else None)
    if problem is not None:
        raise BadFile(path, problem, f"fix the file {setting} names")


def use_chat_template(job: EvalRunConfig, artifact: Path) -> bool:
    if job.eval.apply_chat_template != "auto":
        return job.eval.apply_chat_template == "true"
    return bool(chat_templates(artifact))


def has_thinking_switch(artifact: Path) -> bool:
    """Whether the artifact's chat template reads `enable_thinking` (Qwen3's hybrid models)."""
    return any("enable_thinking" in template for template in chat_templates(artifact))


def chat_templates(artifact: Path) -> list[str]:
    """The artifact's chat templates as text: chat_template.jinja, and the one in
    tokenizer_config.json (a string or a list of named templates)."""
    templates = []
    if (artifact / "chat_template.jinja").is_file():
        templates.append((artifact / "chat_template.jinja").read_text())
    tokenizer_config = artifact / "tokenizer_config.json"
    if tokenizer_config.is_file() and (configured := json.loads(tokenizer_config.read_text()).get("chat_template")):
        templates.append(json.dumps(configured))
    return templates


# -- work (model loaded) -----------------------------------------------------------------
@dataclasses.dataclass
class _Context:
    job: EvalRunConfig
    artifact: Path
    manifest: dict
    baseline: Optional[Path]
    model: object
    tokenizer: object
    load_seconds: float
    data_files: dict
    damaged: set  # record folders found damaged: replaced when written again


def _evaluate_tasks(ctx: _Context, plans: list[PlannedRecord]) -> None:
    job = ctx.job
    chat = plans[0].settings["apply_chat_template"]
    thinking = plans[0].settings.get("enable_thinking")  # absent: the template has no switch
    started = time.perf_counter()
    runs = run_tasks(
        ctx.model, ctx.tokenizer, [p.task for p in plans], batch_size=job.eval.batch_size, limit=job.eval.limit,
        num_fewshot=job.eval.num_fewshot, apply_chat_template=chat, max_gen_toks=job.eval.max_gen_toks,
        data_files={t: f for t, f in ctx.data_files.items() if t in {p.task for p in plans}},
        include_path=job.eval.include_path, seed=job.eval.seed, enable_thinking=thinking,
        think_end_token=plans[0].settings.get("think_end_token"), scratch_dir=Path(job.results_dir),
    )
    seconds = time.perf_counter() - started
    for plan in plans:
        run = runs[plan.task]
        boxed = "answer_kind" in (run.config.get("metadata") or {})
        rows = records.boxed_rows(run, ctx.tokenizer) if boxed else records.stock_rows(run)
        metrics = records.boxed_metrics(rows) if boxed else records.stock_metrics(run)
        record = _record(ctx, plan, metrics, n=len(rows), seconds=seconds)
        record["task_type"] = "boxed" if boxed else run.output_type
        record["lm_eval"] = {k: records._plain(v) for k, v in run.metrics.items()}
        record["baseline"] = _baseline_comparison(ctx, plan, metrics, rows) if "correct" in (rows[0] if rows else {}) else None
        if boxed and rows and native.is_gguf(ctx.manifest):  # a second column: the same prompts in llama.cpp
            record["llama_cpp"] = native.native_generation_column(ctx.artifact, run, rows, ctx.tokenizer,
                                                                  threads=_threads(job))
        store.write_record(plan.folder, record, rows, replace=plan.folder in ctx.damaged)
        log.info("%s %s: %s", ctx.artifact.name, plan.task, _summary(metrics))


def _baseline_comparison(ctx: _Context, plan: PlannedRecord, metrics: dict, rows: list[dict]) -> Optional[dict]:
    if ctx.baseline is None:
        return {"is_baseline": _is_baseline(ctx.manifest)}
    base_manifest = read_manifest(ctx.baseline)
    folder = _baseline_record_folder(ctx, base_manifest, plan)
    base_record = store.find_record(folder)
    if base_record is None:
        return {"is_baseline": False, "baseline_artifact": str(ctx.baseline), "missing": True}
    base_metrics = base_record["metrics"]
    comparison = {
        "is_baseline": False,
        "baseline_artifact": str(ctx.baseline),
        "baseline_fingerprint": base_manifest["fingerprint"],
        "flips": diagnostics.flips(rows, store.read_samples(folder)),
    }
    if "accuracy" in metrics and "accuracy" in base_metrics:
        comparison["delta_accuracy"] = metrics["accuracy"] - base_metrics["accuracy"]
        comparison["recovery"] = metrics["accuracy"] / base_metrics["accuracy"] if base_metrics["accuracy"] else None
    if "format_compliance" in metrics and "format_compliance" in base_metrics:
        comparison["delta_format_compliance"] = metrics["format_compliance"] - base_metrics["format_compliance"]
    comparison["gate"] = diagnostics.baseline_gate(
        metrics, base_metrics, weight_bits=ctx.manifest["weight_bits"], model_kind=ctx.manifest["model"]["kind"],
        chat_template=plan.settings["apply_chat_template"], min_compliance=ctx.job.diagnostics.gate_min_baseline_compliance,
        max_8bit_drop=ctx.job.diagnostics.gate_max_8bit_drop,
    )
    return comparison


def _baseline_record_folder(ctx: _Context, base_manifest: dict, plan: PlannedRecord) -> Path:
    """Where the baseline's record of the same task and settings is (it is evaluated first)."""
    return store.record_folder(Path(ctx.job.results_dir), base_manifest["fingerprint"], plan.task,
                               plan.settings["fingerprint"])


def _measure_speed(ctx: _Context, plan: PlannedRecord) -> None:
    if native.is_gguf(ctx.manifest):  # native CPU speed: llama.cpp computes with the quantized blocks
        speed = native.measure_native_speed(
            ctx.artifact, ctx.tokenizer, prompt_tokens=ctx.job.speed.prompt_tokens, new_tokens=ctx.job.speed.new_tokens,
            threads=_threads(ctx.job), repeats=ctx.job.speed.repeats, warmup=ctx.job.speed.warmup)
    else:
        speed = measure_speed(
            ctx.model, ctx.tokenizer, prompt_tokens=ctx.job.speed.prompt_tokens, new_tokens=ctx.job.speed.new_tokens,
            batch_sizes=plan.settings["batch_sizes"], warmup=ctx.job.speed.warmup, repeats=ctx.job.speed.repeats,
        )
    speed["load_seconds"] = ctx.load_seconds
    speed["size_on_disk_bytes"] = ctx.manifest["size_on_disk_bytes"]
    record = _record(ctx, plan, {}, n=0, seconds=0.0)
    record["speed"] = speed
    store.write_record(plan.folder, record, [], replace=plan.folder in ctx.damaged)


def _measure_kl(ctx: _Context, plan: PlannedRecord, planned: list[PlannedRecord]) -> None:
    """KL against the baseline's reference distribution, created on first use."""
    settings = ctx.job.diagnostics
    base_manifest = read_manifest(ctx.baseline)
    doc_ids, prompts = _kl_prompts(ctx, planned, base_manifest)
    prompts_key = hashlib.sha256(json.dumps(prompts).encode()).hexdigest()[:12]
    path = Path(ctx.job.results_dir) / "cache" / f"kl-reference-{base_manifest['fingerprint'][:16]}-{prompts_key}-k{settings.kl_top_k}.pt"
    reference = diagnostics.load_reference(path)
    if reference is None:
        base_model, base_tokenizer = load_model(ctx.baseline, device=ctx.job.device)
        reference = diagnostics.reference_distribution(base_model, base_tokenizer, prompts, top_k=settings.kl_top_k,
                                                       max_tokens=settings.kl_max_tokens)
        del base_model
        diagnostics.save_reference(path, reference)
    metrics, per_prompt = diagnostics.kl_to_reference(ctx.model, ctx.tokenizer, prompts, reference,
                                                      max_tokens=settings.kl_max_tokens)
    record = _record(ctx, plan, metrics, n=metrics["n_prompts"], seconds=0.0)
    record["baseline"] = {"baseline_artifact": str(ctx.baseline), "baseline_fingerprint": base_manifest["fingerprint"]}
    samples = [{"doc_id": doc, "task": planned[0].task, **row} for doc, row in zip(doc_ids, per_prompt)]
    store.write_record(plan.folder, record, samples, replace=plan.folder in ctx.damaged)


def _kl_prompts(ctx: _Context, planned: list[PlannedRecord], base_manifest: dict) -> tuple[list, list[str]]:
    """The first prompts of the first task, each continued with the baseline's generation,
    and their doc ids: every variant is scored on the same text (so per-prompt KL pairs
    across variants, and the baseline's reference distribution is computed once)."""
    first = planned[0]
    folder = _baseline_record_folder(ctx, base_manifest, first)
    if store.find_record(folder) is None:  # evaluate_artifact evaluates the baseline first
        raise BadFile(str(folder), f"the baseline's {first.task} record, whose generations KL is measured on, is "
                      "missing or damaged", "run `python -m evaluate run` on the baseline artifact, then this again")
    rows = [row for row in store.read_samples(folder) if "prompt" in row][: ctx.job.diagnostics.kl_prompts]
    if not rows:
        raise ConfigError(f"KL divergence needs a generation task first in eval.tasks (got {first.task!r})")
    return [row.get("doc_id") for row in rows], [row["prompt"] + row.get("generation", "") for row in rows]


# -- helpers -----------------------------------------------------------------------------
def _record(ctx: _Context, plan: PlannedRecord, metrics: dict, *, n: int, seconds: float) -> dict:
    manifest = ctx.manifest
    quant = manifest.get("quant") or {}
    return {
        "task": plan.task,
        "n": n,
        "metrics": metrics,
        "settings": plan.settings,
        "settings_fingerprint": plan.settings["fingerprint"],
        "artifact": {
            "path": str(ctx.artifact), "fingerprint": manifest["fingerprint"], "label": native.label(manifest),
            "model": manifest["model"]["name"], "model_kind": manifest["model"]["kind"],
            "params_b": manifest["model"].get("params_b"), "num_parameters": manifest["model"].get("num_parameters"),
            "method": manifest["method"]["name"], "weight_bits": manifest["weight_bits"],
            "group_size": quant.get("group_size"), "size_on_disk_bytes": manifest["size_on_disk_bytes"],
            "is_baseline": _is_baseline(manifest), **native.record_fields(manifest),
        },
        "eval_seconds": round(seconds, 3),
        "eval_batch_size": ctx.job.eval.batch_size,
        "data_files": ctx.data_files,
        **provenance(),
    }


def _summary(metrics: dict) -> str:
    keys = ("accuracy", "rescored_accuracy", "format_compliance", "word_perplexity")
    return ", ".join(f"{k}={metrics[k]:.3f}" for k in keys if isinstance(metrics.get(k), float))


def _manifest(artifact: Path) -> dict:
    return check_artifact(artifact)


def _is_baseline(manifest: dict) -> bool:
    return manifest["method"]["name"] == "none"


def _task_config_hash(task: str) -> Optional[str]:
    path = task_yaml(task)
    if path is None:
        return None
    return fingerprint(task_config(task))[:16]


def _file_hash(path: Optional[str]) -> Optional[str]:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16] if path else None


def _tiny_data_file(data_dir: Path, name: str, results_dir: Path) -> Path:
    """tiny:<task> -> data/tiny_<task>.jsonl; tiny:text -> held-out passages as {"text"}."""
    if name != "text":
        return data_dir / f"tiny_{name}.jsonl"
    source = data_dir / "tiny_squad.jsonl"
    rows = read_jsonl(source, "the tiny family's data is damaged: delete its folder and rerun to rebuild it")
    target = results_dir / "cache" / f"tiny_text-{_file_hash(str(source))}.jsonl"
    if not target.is_file() or file_problem(target) is not None:  # a derived file: (re)made from its source
        lines = [json.dumps({"text": row.get("context", "")}) for row in rows]
        replace_atomically(target, lambda tmp: tmp.write_text("\n".join(lines) + "\n"))
    return target


def _threads(job: EvalRunConfig) -> int:
    """The CPU threads llama.cpp runs with: `threads`, else as many as torch uses."""
    import torch

    return job.threads or torch.get_num_threads()


def _set_threads(threads: Optional[int]) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)
