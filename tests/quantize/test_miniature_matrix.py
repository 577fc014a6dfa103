"""Every method (and backend environment) x every registered family, on the miniatures.

A miniature (`models/miniature.py`) is a random-init, shrunk model built from a registered
model's architecture: Qwen3 (mini-qwen3), Qwen2.5 (mini-qwen2.5), Llama 3.x with its
llama3 rope scaling (mini-llama3). Fast part: the shrinking rule and the build
(deterministic for a seed, the same rope settings read by every environment's
transformers). Slow part, as a user runs it: `python -m quantize` (which hands a run to
its backend's environment), then `python -m evaluate run` in a fresh process (reload,
generate on a boxed task, perplexity); a cell a library cannot do is refused before any
work, in one line with the reason. GGUF (Q4_K_M) goes through llama.cpp's converter with
the tiny tokenizer on every family (its pre-tokenizer hash is unknown to the converter:
quantize/gguf_convert.py names one; the lab feeds llama.cpp Hugging Face token ids). Runtime of the slow part: docs/miniatures.md.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from common import environments
from common.files import WEIGHT_SUFFIXES
from configs.compose import compose
from models.miniature import WIDTH_MULTIPLE, ensure_miniature, shrink
from quantize.estimate import estimate
from quantize.methods.base import build_method
from tests.conftest import TINY_QUICK, run_cli

FAMILIES = ("mini-qwen3", "mini-qwen2.5", "mini-llama3")
CALIBRATION = ["calibration.num_samples=16", "calibration.seq_len=64"]
# id: (quantize overrides, the environment it needs, the refusal's expected words or None)
VARIANTS = {
    "none": (["method=none"], "main", None),
    "rtn-w4-g32": (["method=rtn", "quant.bits=4", "quant.group_size=32"], "main", None),
    "gptq-w4-g64": (["method=gptq", "quant.bits=4", "quant.group_size=64"], "main", None),
    "gptq-gptqmodel": (["method=gptq", "quant.bits=4", "quant.group_size=32", "method.backend=gptqmodel"],
                       "gptqmodel", None),
    "gptq-auto-gptq": (["method=gptq", "method.backend=auto-gptq"], "main", "the lab does not run it"),
    "awq-w4-g64": (["method=awq", "quant.group_size=64"], "main", None),
    "awq-gptqmodel": (["method=awq", "quant.group_size=32", "method.backend=gptqmodel", "model.dtype=bfloat16"],
                      "gptqmodel", None),
    "awq-autoawq": (["method=awq", "quant.group_size=32", "method.backend=autoawq", "model.dtype=float16"],
                    "legacy", None),
    "smoothquant": (["method=smoothquant"], "main", None),
    "autoround": (["method=autoround", "method.iters=5", "method.batch_size=4"], "main", None),
    "hqq": (["method=hqq"], "main", None),
    "bnb_int8": (["method=bnb_int8"], "main", None),
    "bnb_nf4": (["method=bnb_nf4"], "main", None),
    "bnb_fp4": (["method=bnb_fp4"], "main", None),
    # llama.cpp's converter and quantizer in .venv-gguf; evaluated dequantized by transformers,
    # timed natively in llama.cpp
    "gguf-q4_k_m": (["method=gguf", "quant.type=Q4_K_M"], "gguf", None),
}
# What llama.cpp gives the rows that 256 does not divide (mini-qwen3: hidden 128 and
# intermediate 384; mini-qwen2.5: hidden 384): the estimate counts them, the manifest says them
GGUF_FALLBACKS = {"mini-qwen3": "13 of 24 tensors fell back (10 Q5_0, 3 Q8_0)",
                  "mini-qwen2.5": "13 of 26 tensors fell back (11 Q5_0, 2 Q8_0)", "mini-llama3": "no fallback"}
EVAL_BATCH = 2
EVAL = ["eval=tiny", "eval.tasks=[tiny_arc]", "eval.limit=2", f"eval.batch_size={EVAL_BATCH}", "speed.prompt_tokens=16",
        "speed.new_tokens=4", "speed.repeats=1", "baseline=null", "threads=1"]
# How far the dry run's estimates (quantize.estimate) may be from what the cell measures:
# the weights files' bytes, and the process's max RSS when quantizing and when evaluating.
DISK_ERROR = 0.10
PEAK_ERROR = 0.35


def registered(name: str):
    return compose("quantize", [f"model={name}", *TINY_QUICK]).model


# -- the shrinking rule and the build (fast) ----------------------------------------------
@pytest.mark.parametrize("name", ["qwen3-0.6b", "qwen3-4b", "qwen2.5-0.5b", "qwen2.5-1.5b", "qwen2.5-7b",
                                  "llama3.2-1b", "llama3.2-3b"])
def test_a_miniature_keeps_what_chooses_code_paths_and_shrinks_the_widths(name):
    real = registered(name).architecture
    mini = shrink(real, vocab_size=1024)
    for key in ("model_type", "tie_word_embeddings", "rope_theta", "rope_scaling", "rms_norm_eps", "hidden_act"):
        assert mini.get(key) == real.get(key), key
    real_heads, real_kv = real["num_attention_heads"], real["num_key_value_heads"]
    assert mini["num_attention_heads"] // mini["num_key_value_heads"] == real_heads // real_kv  # the GQA ratio
    assert mini["num_key_value_heads"] == min(real_kv, 2)
    widths = [mini["hidden_size"], mini["intermediate_size"], mini["num_attention_heads"] * mini["head_dim"]]
    assert all(width % WIDTH_MULTIPLE == 0 for width in widths), widths  # groups 32/64/128 divide every input
    real_head_dim = real.get("head_dim") or real["hidden_size"] // real_heads
    assert (mini["num_attention_heads"] * mini["head_dim"] / mini["hidden_size"]
            == real_heads * real_head_dim / real["hidden_size"])  # Qwen2.5/Llama: hidden = heads x head_dim
    # 7 query heads per KV head (Qwen2.5-0.5B, 7B): 896 is the least multiple of 128 that keeps the ratio
    assert mini["hidden_size"] <= min(real["hidden_size"], 896) and mini["num_hidden_layers"] == 2
    assert mini["intermediate_size"] <= real["intermediate_size"]


def test_the_family_entries_are_miniatures_of_registered_models():
    for name, of in (("mini-qwen3", "qwen3-0.6b"), ("mini-qwen2.5", "qwen2.5-1.5b"), ("mini-llama3", "llama3.2-1b")):
        model = registered(name)
        assert model.miniature and model.name == name and model.architecture == registered(of).architecture
        assert model.params_b is None  # not the real model's size in reports
    switched = compose("quantize", ["model=qwen3-4b", "model.miniature=true", *TINY_QUICK]).model
    assert switched.name == "mini-qwen3-4b"  # its artifacts never mix with the real model's


@pytest.fixture(scope="module")
def miniatures(tiny_family, tmp_path_factory) -> dict[str, Path]:
    cache = tmp_path_factory.mktemp("cache")
    return {name: ensure_miniature(name, registered(name).architecture, tiny_profile="quick", cache_dir=cache)
            for name in FAMILIES}


def weights_digest(folder: Path) -> str:
    return hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()


def test_a_miniature_is_deterministic_for_a_seed(tiny_family, tmp_path):
    architecture = registered("mini-llama3").architecture
    first = ensure_miniature("mini-llama3", architecture, tiny_profile="quick", cache_dir=tmp_path / "a")
    again = ensure_miniature("mini-llama3", architecture, tiny_profile="quick", cache_dir=tmp_path / "b")
    other = ensure_miniature("mini-llama3", architecture, tiny_profile="quick", cache_dir=tmp_path / "b", seed=1)
    assert weights_digest(again) == weights_digest(first)
    assert weights_digest(other) != weights_digest(again)
    assert (again.parent / "data" / "tiny_arc.jsonl").is_file()  # eval=tiny works on its artifacts


def test_a_build_killed_midway_leaves_nothing_the_next_one_keeps(tiny_family, tmp_path):
    """A killed build's staging folders (its pid dead) go when the next build runs, and
    only the finished checkpoint and data stay."""
    architecture = registered("mini-qwen3").architecture
    first = ensure_miniature("mini-qwen3", architecture, tiny_profile="quick", cache_dir=tmp_path)
    root, host = first.parent, socket.gethostname()
    shutil.rmtree(first)
    shutil.rmtree(root / "data")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    left = [root / f".{first.name}.tmp-{host}-{dead}-0000abcd", root / f".data.tmp-{host}-{dead}-0000abcd"]
    for folder in left:
        folder.mkdir()
        (folder / "config.json").write_text("{")  # half-written
    again = ensure_miniature("mini-qwen3", architecture, tiny_profile="quick", cache_dir=tmp_path)
    assert again == first and (again / "model.safetensors").is_file()
    assert sorted(p.name for p in root.iterdir() if not p.name.endswith(".lock")) == ["data", first.name]
    (again / "model.safetensors").unlink()  # a folder not left by the lab, without its weights: built again
    assert (ensure_miniature("mini-qwen3", architecture, tiny_profile="quick", cache_dir=tmp_path)
            / "model.safetensors").is_file()


@pytest.mark.slow  # starts every environment's interpreter (~1 min)
def test_every_environment_reads_the_same_rope_settings(miniatures):
    """config.json is written as the Hub writes it, so transformers 4 (.venv-legacy) does
    not fall back to default rope where transformers 5 reads llama3 scaling."""
    script = ("import json, sys; from transformers import AutoConfig\n"
              "c = AutoConfig.from_pretrained(sys.argv[1])\n"
              "p = getattr(c, 'rope_parameters', None) or dict(c.rope_scaling or {}, rope_theta=c.rope_theta)\n"
              "print(json.dumps({'theta': p.get('rope_theta'), 'type': p.get('rope_type', 'default'),"
              " 'factor': p.get('factor')}))")
    pythons = [environments.environment_python(env) for env in ("main", "gptqmodel", "legacy")
               if environments.is_built(env)]
    for name, folder in miniatures.items():
        read = {str(python): json.loads(subprocess.run([str(python), "-c", script, str(folder)], capture_output=True,
                                                       text=True, check=True).stdout.strip().splitlines()[-1])
                for python in pythons}
        architecture = registered(name).architecture
        expected = {"theta": architecture["rope_theta"],
                    "type": (architecture.get("rope_scaling") or {}).get("rope_type", "default"),
                    "factor": (architecture.get("rope_scaling") or {}).get("factor")}
        assert all(value == expected for value in read.values()), read


# -- the matrix (slow) -----------------------------------------------------------------------
def needs(environment: str) -> None:
    if environment != "main" and not environments.is_built(environment):
        reason = f"!!! {environments.venv_dir(environment)} is not built: its backend is NOT tested here"
        if os.environ.get("QLAB_REQUIRE_BACKEND_ENVS") == "1":
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("family", FAMILIES)
def test_every_method_on_every_family(family, variant, tiny_family, tmp_path):
    overrides, environment, refusal = VARIANTS[variant]
    needs(environment)
    artifacts = tmp_path / "artifacts"
    quantized = run_cli("quantize", f"model={family}", *overrides, *TINY_QUICK, *CALIBRATION,
                        f"output_dir={artifacts}", "threads=1", timeout=1200)
    if refusal is not None:
        errors = [line for line in quantized.stderr.splitlines() if line.startswith("error:")]
        assert quantized.returncode == 2 and len(errors) == 1 and refusal in errors[0], quantized.stderr[-2000:]
        assert "Traceback" not in quantized.stderr and "quantizing" not in quantized.stderr  # before any work
        assert not artifacts.exists()
        return
    assert quantized.returncode == 0, quantized.stdout[-2000:] + quantized.stderr[-4000:]
    artifact = Path(quantized.stdout.strip().splitlines()[-1])
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert manifest["model"]["name"] == family and Path(manifest["model"]["source_dir"]).name.startswith(f"{family}-")
    if manifest["method"]["artifact_format"] == "gguf":
        assert manifest["gguf"]["fallback_summary"] == f"Q4_K_M, {GGUF_FALLBACKS[family]}", manifest["gguf"]

    job = compose("quantize", [f"model={family}", *overrides, *TINY_QUICK, *CALIBRATION])
    found = estimate(job, build_method(job.method, job.quant, job.model.dtype), eval_batch_size=EVAL_BATCH)
    disk = sum(size for name, size in manifest["files"].items() if name.endswith(WEIGHT_SUFFIXES))
    assert abs(found.disk_bytes / disk - 1) <= DISK_ERROR, (found.disk_bytes, disk)
    peak = found.quantize_peak_bytes + found.quantize_runtime_bytes
    assert abs(peak / manifest["peak_memory"]["cpu_rss_bytes"] - 1) <= PEAK_ERROR, (peak, manifest["peak_memory"])

    results = tmp_path / "results"
    evaluated = run_cli("evaluate", "run", f"artifact={artifact}", *EVAL, f"results_dir={results}", timeout=1200)
    assert evaluated.returncode == 0, evaluated.stdout[-2000:] + evaluated.stderr[-4000:]
    records = {path.parent.parent.name + "/" + path.parent.name: json.loads(path.read_text())
               for path in results.glob("records/*/*/manifest.json")}
    tasks = {record["task"]: record for record in records.values()}
    assert {"tiny_arc", "text_perplexity", "speed"} <= set(tasks), sorted(tasks)
    samples = [json.loads(line) for line in
               next(results.glob("records/*/tiny_arc--*/samples.jsonl")).read_text().splitlines()]
    # a randomly initialised model's text is arbitrary (AutoRound's mini-qwen3 once wrote only
    # newlines): what is checked is that it generated
    assert len(samples) == 2 and all(sample["generation"] for sample in samples), samples[:1]
    perplexity = tasks["text_perplexity"]["metrics"]
    assert any(isinstance(value, float) and math.isfinite(value) for value in perplexity.values()), perplexity
    measured = _find(tasks["speed"], "peak_memory_bytes")
    peak = found.evaluate_peak_bytes + found.evaluate_runtime_bytes
    assert abs(peak / measured - 1) <= PEAK_ERROR, (peak, measured)


def _find(record: dict, key: str):
    """The value of `key` anywhere in a record's nested dicts."""
    for name, value in record.items():
        if name == key:
            return value
        if isinstance(value, dict) and (found := _find(value, key)) is not None:
            return found
    return None
