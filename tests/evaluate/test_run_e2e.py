"""`python -m evaluate run` end to end on quick tiny-family artifacts, with the real lm-eval."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from evaluate import store
from tasks import TASKS_DIR
from common.storage import read_manifest
from tests.conftest import REPO_ROOT, TINY_QUICK, run_cli

pytestmark = pytest.mark.slow

FAST_EVAL = ["eval=tiny", "eval.limit=12", "eval.batch_size=12", "speed.prompt_tokens=16", "speed.new_tokens=4",
             "speed.repeats=1", "diagnostics.kl_prompts=4"]


def quantize(output_dir: Path, *overrides: str) -> Path:
    result = run_cli("quantize", "model=tiny-s", *overrides, *TINY_QUICK, f"output_dir={output_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    return Path(result.stdout.strip().splitlines()[-1])


def evaluate(artifact: Path, results: Path, *overrides: str):
    result = run_cli("evaluate", "run", f"artifact={artifact}", *FAST_EVAL, f"results_dir={results}", *overrides)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


@pytest.fixture(scope="module")
def lab(tmp_path_factory, tiny_family):
    root = tmp_path_factory.mktemp("lab")
    artifacts = {
        "none": quantize(root / "artifacts", "method=none"),
        "w8": quantize(root / "artifacts", "method=rtn", "quant.bits=8", "quant.group_size=-1"),
        "w4": quantize(root / "artifacts", "method=rtn", "quant.bits=4", "quant.group_size=32"),
    }
    results = root / "results"
    first = evaluate(artifacts["w4"], results)
    return {"root": root, "artifacts": artifacts, "results": results, "first": first}


def records_of(results: Path, artifact: Path) -> dict[str, dict]:
    fingerprint = read_manifest(artifact)["fingerprint"]
    return {r["task"]: r for _, r in store.iter_records(results) if r["artifact"]["fingerprint"] == fingerprint}


def test_every_task_gets_a_record_with_its_samples(lab):
    found = records_of(lab["results"], lab["artifacts"]["w4"])
    assert set(found) == {"tiny_arc", "tiny_squad", "tiny_openmath", "text_perplexity", "speed", "kl_divergence"}
    for task in ("tiny_arc", "tiny_squad", "tiny_openmath"):
        record = found[task]
        metrics = record["metrics"]
        assert record["n"] == 12
        for name in ("accuracy", "rescored_accuracy", "format_compliance"):
            assert 0.0 <= metrics[name] <= 1.0 and f"{name}_stderr" in metrics
        assert metrics["rescored_accuracy"] >= metrics["accuracy"]
        assert sum(metrics["behaviour"].values()) == 12
        folder = store.record_folder(lab["results"], record["artifact"]["fingerprint"], task, record["settings_fingerprint"])
        samples = store.read_samples(folder)
        assert len(samples) == 12 and all("\\boxed" in s["prompt"] and "generation" in s for s in samples)
        assert record["settings"]["apply_chat_template"] is True
    assert found["text_perplexity"]["metrics"]["word_perplexity"] > 1.0
    speed = found["speed"]["speed"]
    assert speed["by_batch"]["1"]["decode_tokens_per_s"] > 0 and speed["peak_memory_bytes"] > 0
    assert set(speed["by_batch"]) == {"1", "12"}
    assert len(speed["by_batch"]["1"]["decode_tokens_per_s_repeats"]) == 1  # speed.repeats=1: one rate per repeat
    kl = found["kl_divergence"]
    assert 0.0 <= kl["metrics"]["kl_divergence"] < 50
    rows = store.read_samples(store.record_folder(lab["results"], kl["artifact"]["fingerprint"], "kl_divergence",
                                                  kl["settings_fingerprint"]))
    first_task = [s["doc_id"] for s in store.read_samples(store.record_folder(
        lab["results"], kl["artifact"]["fingerprint"], "tiny_arc", found["tiny_arc"]["settings_fingerprint"]))]
    assert len(rows) == kl["metrics"]["n_prompts"] > 0  # one row per prompt: the report pairs them across methods
    assert [r["doc_id"] for r in rows] == first_task[:len(rows)] and {r["task"] for r in rows} == {"tiny_arc"}
    assert sum(r["kl_divergence"] for r in rows) / len(rows) == pytest.approx(kl["metrics"]["kl_divergence"])


def test_every_variant_is_scored_for_kl_on_the_baselines_text(lab, tmp_path):
    """KL reads the baseline's generations, so two variants share one reference
    distribution (computed once) and their per-prompt rows pair on the same text."""
    results = tmp_path / "results"
    shutil.copytree(lab["results"], results)
    evaluate(lab["artifacts"]["w8"], results)
    references = sorted((results / "cache").glob("kl-reference-*.pt"))
    assert len(references) == 1, references
    kl = {name: records_of(results, lab["artifacts"][name])["kl_divergence"] for name in ("w4", "w8")}
    assert kl["w4"]["settings"]["continuation"] == "baseline"
    assert kl["w4"]["settings_fingerprint"] == kl["w8"]["settings_fingerprint"]
    assert kl["w8"]["metrics"]["kl_divergence"] < kl["w4"]["metrics"]["kl_divergence"]  # 8 bits stay closer


def test_the_baseline_is_evaluated_first_and_variants_are_paired_with_it(lab):
    baseline = records_of(lab["results"], lab["artifacts"]["none"])
    assert {"tiny_arc", "tiny_squad", "tiny_openmath", "speed"} <= set(baseline)
    assert "kl_divergence" not in baseline
    variant = records_of(lab["results"], lab["artifacts"]["w4"])["tiny_arc"]
    comparison = variant["baseline"]
    assert comparison["baseline_fingerprint"] == read_manifest(lab["artifacts"]["none"])["fingerprint"]
    assert comparison["flips"]["paired"] == 12
    base_accuracy = baseline["tiny_arc"]["metrics"]["accuracy"]
    assert comparison["delta_accuracy"] == pytest.approx(variant["metrics"]["accuracy"] - base_accuracy)
    assert isinstance(comparison["gate"]["suspect_pipeline"], bool)


def test_a_second_identical_run_does_no_work(lab):
    before = {folder: (folder / "manifest.json").stat().st_mtime_ns for folder, _ in store.iter_records(lab["results"])}
    again = evaluate(lab["artifacts"]["w4"], lab["results"])
    assert "nothing to do" in again.stderr
    assert "Loading weights" not in again.stderr
    assert again.stdout == lab["first"].stdout
    after = {folder: (folder / "manifest.json").stat().st_mtime_ns for folder, _ in store.iter_records(lab["results"])}
    assert after == before


def test_an_unknown_task_is_one_line_with_the_closest_names_before_any_model_loads(lab, tmp_path):
    result = run_cli("evaluate", "run", f"artifact={lab['artifacts']['w8']}", "eval=tiny", "eval.tasks=[arc_easyy,tiny_arc]",
                     f"results_dir={tmp_path}")
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr
    assert "'arc_easyy'" in errors[0] and "arc_easy" in errors[0] and "tiny_arc" not in errors[0]
    assert not (tmp_path / "records").exists()  # nothing was evaluated, the baseline neither


@pytest.mark.parametrize("setting, fragment", [
    ("results_dir=/proc/no/such/place", "results_dir='/proc/no/such/place': cannot create it"),
    pytest.param("device=cuda", "no CUDA device is available here",
                 marks=pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")),
])
def test_a_bad_device_or_results_dir_is_one_line_before_any_model_loads(lab, setting, fragment):
    result = run_cli("evaluate", "run", f"artifact={lab['artifacts']['w8']}", "eval=tiny", setting)
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and fragment in errors[0] and "Traceback" not in result.stderr


def test_table_view_has_one_row_per_record(lab):
    frame = pd.read_parquet(lab["results"] / "table.parquet")
    assert len(frame) == len(list(store.iter_records(lab["results"])))
    assert not frame.duplicated(["artifact_fingerprint", "task", "settings_fingerprint"]).any()
    assert {"accuracy", "format_compliance", "artifact_method", "artifact_weight_bits"} <= set(frame.columns)


def test_baseline_gate_flags_a_broken_pipeline(lab):
    """No chat template and a generation budget too short for any box (3 tokens: "{", the
    answer, "}" alone fill it): the baseline cannot comply, whatever the model does."""
    results = lab["root"] / "results-broken"
    evaluate(lab["artifacts"]["w8"], results, "eval.apply_chat_template=false", "eval.max_gen_toks=3",
             "speed.enabled=false", "eval.perplexity_task=null")
    baseline = records_of(results, lab["artifacts"]["none"])["tiny_arc"]
    assert baseline["metrics"]["format_compliance"] < 0.8
    gate = records_of(results, lab["artifacts"]["w8"])["tiny_arc"]["baseline"]["gate"]
    assert gate["suspect_pipeline"] is True
    reason = next(r for r in gate["reasons"] if r.startswith("baseline format compliance"))
    assert "no chat template was applied" in reason and "max_gen_toks" in reason


def test_stock_task_numbers_equal_the_lm_eval_command_line(lab, tiny_family, tmp_path):
    artifact = lab["artifacts"]["none"]
    data = tiny_family.data_path("arc")
    common = {"limit": 20, "batch_size": 8}
    ours = run_cli("evaluate", "run", f"artifact={artifact}", "eval.tasks=[tiny_arc_mc]", f"+eval.data_files.tiny_arc_mc={data}",
                   f"eval.limit={common['limit']}", f"eval.batch_size={common['batch_size']}", "eval.perplexity_task=null",
                   "eval.apply_chat_template=false", "speed.enabled=false", "baseline=null", f"results_dir={tmp_path / 'r'}")
    assert ours.returncode == 0, ours.stderr[-3000:]
    record = next(r for _, r in store.iter_records(tmp_path / "r") if r["task"] == "tiny_arc_mc")

    tasks_dir = tmp_path / "tasks"
    tasks_dir.mkdir()
    (tasks_dir / "tiny_arc_mc.yaml").write_text(yaml.safe_dump({
        "include": str(TASKS_DIR / "tiny_arc_mc.yaml"), "task": "tiny_arc_mc",
        "dataset_kwargs": {"data_files": {"test": str(data)}},
    }))
    result = subprocess.run(
        [sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args", f"pretrained={artifact},dtype=float32",
         "--tasks", "tiny_arc_mc", "--include_path", str(tasks_dir), "--limit", str(common["limit"]),
         "--batch_size", str(common["batch_size"]), "--device", "cpu", "--output_path", str(tmp_path / "cli")],
        capture_output=True, text=True, cwd=REPO_ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    cli_results = json.loads(next((tmp_path / "cli").rglob("results_*.json")).read_text())["results"]["tiny_arc_mc"]
    assert record["metrics"]["acc"] == cli_results["acc,none"]
    assert record["metrics"]["acc_norm"] == cli_results["acc_norm,none"]
    assert record["n"] == common["limit"]


THINKING_TEMPLATE = (  # the tiny template plus Qwen3's switch: an empty think block when thinking is off
    "{%- for message in messages %}{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>'"
    " + '\\n' }}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{%- endif %}")


def test_thinking_switch_reaches_the_chat_template_and_the_record_settings(tiny_family, tmp_path):
    """Qwen3-style templates think unless told not to: the lab answers directly by default
    (eval.enable_thinking=false, recorded), and `null` leaves the template's default (and the
    settings as they were before the switch existed)."""
    source = tmp_path / "thinking-model"
    shutil.copytree(tiny_family.model_path("tiny-s"), source)
    (source / "chat_template.jinja").write_text(THINKING_TEMPLATE)
    result = run_cli("quantize", "method=none", f"model={source}", f"output_dir={tmp_path / 'artifacts'}")
    assert result.returncode == 0, result.stderr[-3000:]
    artifact = Path(result.stdout.strip().splitlines()[-1])
    quick = ["eval.tasks=[tiny_arc]", f"eval.data_files.tiny_arc={tiny_family.data_path('arc')}", "eval.limit=2", "eval.batch_size=2", "eval.max_gen_toks=4", "speed.enabled=false",
             "baseline=null", "eval.perplexity_task=null"]
    prompts = {}
    for value in ("false", "null"):
        results = tmp_path / f"r-{value}"
        evaluate(artifact, results, *quick, f"eval.enable_thinking={value}")
        record = next(r for _, r in store.iter_records(results))
        assert record["settings"].get("enable_thinking", "absent") == {"false": False, "null": "absent"}[value]
        folder = store.record_folder(results, record["artifact"]["fingerprint"], "tiny_arc", record["settings_fingerprint"])
        prompts[value] = store.read_samples(folder)[0]["prompt"]
    assert prompts["false"].endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert prompts["null"].endswith("<|im_start|>assistant\n")


def test_templates_without_a_thinking_switch_keep_their_record_settings(lab):
    found = records_of(lab["results"], lab["artifacts"]["w4"])
    assert "enable_thinking" not in found["tiny_arc"]["settings"]
