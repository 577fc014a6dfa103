"""method=gguf: llama.cpp's converter and quantizer in their own environment (.venv-gguf).

The first part needs no such environment: settings, the architecture check, the fallback
bookkeeping, where a run goes and what is said when the environment is missing, sweep grid
entries. The second part runs llama.cpp on the quick tiny family, as a user does: every
level quantizes (in one process of .venv-gguf, to keep the test time down; one level
through `python -m quantize` from the main environment), the tensor types read back from
the file are the ones llama.cpp said it would write, size falls with the level, a fresh
process reloads and generates, a rerun writes an identical file, llama.cpp's tokenizer
gives the Hugging Face ids on every evaluation prompt, the importance matrix changes the
weights, and `evaluate run` and a sweep cell work. Without the environment these skip,
loudly; with QLAB_REQUIRE_BACKEND_ENVS=1 they fail instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from common import environments
from common.storage import read_manifest
from configs.compose import compose
from configs.errors import ConfigError
from evaluate import store
from quantize.methods.base import build_method
from quantize.methods.gguf import FALLBACK, K_QUANTS, TYPES, fallback_summary, fallback_tensors, predicted_fallback_rows
from quantize.pipeline import plan
from tests.conftest import REPO_ROOT, TINY_QUICK, run_cli
from tests.quantize.test_backends import config_only_checkpoint

MODEL = "tiny-s"  # one decoder layer: the fastest to convert, quantize and evaluate
SMALL_EVAL = ["eval.limit=2", "eval.batch_size=2", "speed.prompt_tokens=8", "speed.new_tokens=4", "speed.repeats=1",
              "diagnostics.kl_prompts=2"]


def build_job(*overrides: str):
    job = compose("quantize", [f"model={MODEL}", *TINY_QUICK, "method=gguf", *overrides])
    return build_method(job.method, job.quant, job.model.dtype)


# -- settings and bookkeeping (no environment needed) -----------------------------------------
def test_gguf_declares_its_environment_loader_and_label():
    method = build_job("quant.type=Q4_K_M")
    assert (method.environment, method.loader, method.artifact_format) == ("gguf", "gguf", "gguf")
    assert method.label() == "gguf-Q4_K_M" and not method.needs_calibration
    assert method.describe()["type"] == "Q4_K_M"
    with_imatrix = build_job("quant.type=Q4_K_M", "method.imatrix=true")
    assert with_imatrix.label() == "gguf-Q4_K_M-imatrix" and with_imatrix.needs_calibration
    assert with_imatrix.describe() != method.describe()  # so the fingerprints differ


@pytest.mark.parametrize("overrides, expected", [
    (["method=gguf", "quant.type=Q9_K"], ["quant.type='Q9_K'", "Q4_K_M", "Q2_K", "BF16"]),
    (["method=gguf", "quant.type=F16", "method.imatrix=true"], ["method.imatrix=true", "quant.type=F16"]),
    (["method=rtn", "quant.type=Q4_K_M"], ["quant.type=Q4_K_M", "method=rtn", "method=gguf"]),
    (["method=gguf", "method.threads=0"], ["method.threads=0"]),
])
def test_bad_settings_are_one_line_before_anything_runs(tmp_path, overrides, expected):
    model = config_only_checkpoint(tmp_path / "ckpt")
    result = run_cli("quantize", f"model={model}", *overrides)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "running it with" not in result.stderr
    for fragment in expected:
        assert fragment in lines[0], lines[0]


def test_an_unsupported_architecture_is_refused_from_config_json():
    method = build_job("quant.type=Q4_K_M")
    with pytest.raises(ConfigError, match="model_type='phi'.*supported: llama, mistral, qwen2, qwen3"):
        method.check_model(SimpleNamespace(model_type="phi", hidden_size=256, intermediate_size=512,
                                           num_attention_heads=4, head_dim=64))


def test_an_unsupported_architecture_is_one_line_from_the_command(tmp_path):
    folder = tmp_path / "gpt2"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"],
                                                    "n_embd": 256, "n_layer": 2, "n_head": 4, "vocab_size": 300}))
    result = run_cli("quantize", f"model={folder}", "method=gguf", "quant.type=Q4_K_M")
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    if environments.is_built("gguf"):  # else the missing environment is said first (before the model is read)
        assert "model_type='gpt2'" in lines[0] and "supported: llama, mistral, qwen2, qwen3" in lines[0]
    else:
        assert "scripts/setup.sh gguf" in lines[0]


def test_rows_that_256_does_not_divide_are_predicted_from_config_json():
    config = SimpleNamespace(model_type="qwen2", hidden_size=896, intermediate_size=4864, num_attention_heads=14,
                             head_dim=64)  # Qwen2.5-0.5B
    assert predicted_fallback_rows(config) == {"hidden_size": 896, "num_attention_heads*head_dim": 896}  # 4864 = 19 x 256
    config = SimpleNamespace(model_type="qwen3", hidden_size=1024, intermediate_size=3072, num_attention_heads=16,
                             head_dim=128)  # Qwen3-0.6B
    assert predicted_fallback_rows(config) == {}


def test_fallbacks_are_the_tensors_whose_rows_256_does_not_divide():
    types = {"token_embd.weight": "Q8_0", "blk.0.attn_q.weight": "Q5_0", "blk.0.ffn_down.weight": "Q4_K",
             "blk.0.attn_norm.weight": "F32", "blk.0.ffn_up.weight": "Q4_K"}
    rows = {"token_embd.weight": 128, "blk.0.attn_q.weight": 128, "blk.0.ffn_down.weight": 256,
            "blk.0.attn_norm.weight": 128, "blk.0.ffn_up.weight": 512}
    fallbacks = fallback_tensors(types, rows, "Q4_K_M")
    assert fallbacks == {"token_embd.weight": "Q8_0", "blk.0.attn_q.weight": "Q5_0"}
    assert fallback_summary("Q4_K_M", types, fallbacks) == "Q4_K_M, 2 of 5 tensors fell back (1 Q8_0, 1 Q5_0)"
    assert fallback_tensors(types, rows, "Q8_0") == {}  # not a k-quant: nothing falls back
    assert fallback_summary("Q4_K_M", types, {}) == "Q4_K_M, no fallback"


def test_missing_environment_says_what_is_missing_and_the_command(tmp_path, monkeypatch):
    monkeypatch.setattr(environments, "REPO_ROOT", tmp_path / "elsewhere")
    model = config_only_checkpoint(tmp_path / "ckpt")
    with pytest.raises(ConfigError) as error:
        plan(compose("quantize", [f"model={model}", "method=gguf", "quant.type=Q4_K_M"]))
    message = str(error.value)
    assert "\n" not in message
    for fragment in ("method=gguf", "'gguf' environment", ".venv-gguf is missing", "`scripts/setup.sh gguf`"):
        assert fragment in message, message


def sweep_config(methods: list[dict]):
    from omegaconf import OmegaConf

    from configs.sweep_schema import EvalSweepConfig

    data = {"sweep": {"models": [MODEL], "methods": methods}}
    cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(EvalSweepConfig), data))
    cfg.validate()
    return cfg


def test_sweep_grid_entries_take_gguf_types(tmp_path, monkeypatch):
    from sweep import plan as sweep_plan

    monkeypatch.setattr(sweep_plan, "_validate", lambda cells: None)  # whether .venv-gguf is built does not matter here
    cfg = sweep_config([{"method": "gguf", "types": ["Q8_0", "Q2_K"]}])
    cfg.sweeps_dir = str(tmp_path)
    cells = sweep_plan.plan_cells(cfg)
    gguf = [cell for cell in cells if cell.method == "gguf"]
    assert cells[0].is_baseline
    assert [[o for o in c.quantize_overrides if o.startswith("quant.")] for c in gguf] == [["quant.type=Q8_0"],
                                                                                           ["quant.type=Q2_K"]]
    assert "gguf-Q8_0" in gguf[0].id and "gguf-Q2_K" in gguf[1].id


def test_a_grid_entry_with_both_bits_and_types_is_refused():
    with pytest.raises(ConfigError, match="either bits or types"):
        sweep_config([{"method": "gguf", "bits": [4], "types": ["Q4_K_M"]}])


# -- end to end in .venv-gguf -------------------------------------------------------------------
@pytest.fixture(scope="module")
def gguf_env():
    if environments.is_built("gguf"):
        return environments.environment_python("gguf")
    reason = (f"!!! {environments.venv_dir('gguf')} is not built: method=gguf (llama.cpp) is NOT tested here. "
              "Build it with `scripts/setup.sh gguf` (~8 min, compiles llama.cpp once); "
              "QLAB_REQUIRE_BACKEND_ENVS=1 makes this a failure")
    if os.environ.get("QLAB_REQUIRE_BACKEND_ENVS") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def in_gguf_env(python: Path, script: str, timeout: int = 1200) -> dict:
    """Run `script` with .venv-gguf's interpreter in the repo; its last stdout line is JSON."""
    result = subprocess.run([str(python), "-c", textwrap.dedent(script)], capture_output=True, text=True, cwd=REPO_ROOT,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}, timeout=timeout,
                            check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def lab(gguf_env, tmp_path_factory, tiny_family):
    """Every level of tiny-s quantized in one .venv-gguf process; Q4_K_M also through the CLI."""
    root = tmp_path_factory.mktemp("gguf")
    artifacts = root / "artifacts"
    folders = in_gguf_env(gguf_env, f"""
        import json, logging
        from configs.compose import compose
        from quantize.pipeline import quantize_job
        logging.basicConfig(level=logging.WARNING)
        folders = {{}}
        for level in {list(TYPES)!r}:
            job = compose("quantize", ["model={MODEL}", *{TINY_QUICK!r}, "method=gguf", f"quant.type={{level}}",
                                       "output_dir={artifacts}"])
            folders[level] = str(quantize_job(job))
        print(json.dumps(folders))
        """)
    cli = run_cli("quantize", f"model={MODEL}", *TINY_QUICK, "method=gguf", "quant.type=Q4_K_M",
                  f"output_dir={root / 'cli'}", timeout=900)
    assert cli.returncode == 0, cli.stderr[-4000:]
    return {"root": root, "levels": {k: Path(v) for k, v in folders.items()}, "cli": cli,
            "cli_folder": Path(cli.stdout.strip().splitlines()[-1])}


@pytest.mark.slow
def test_every_level_quantizes_and_the_file_holds_what_llama_cpp_said(lab):
    for level, folder in lab["levels"].items():
        manifest = read_manifest(folder)
        gguf = manifest["gguf"]
        assert manifest["method"]["name"] == "gguf" and gguf["type"] == level
        assert (folder / gguf["file"]).is_file() and (folder / "tokenizer.json").is_file()
        assert (folder / "config.json").is_file()
        types = gguf["tensor_types"]
        assert types == gguf["predicted_types"], level  # read back == llama.cpp's own dry run
        assert manifest["weight_bits"] == TYPES[level]
        assert 1 < gguf["bits_per_weight"] < 33
        matrices = {name: kind for name, kind in types.items() if not name.endswith("norm.weight")}
        if level in ("Q8_0", "F16", "BF16"):
            assert set(matrices.values()) == {level}, (level, matrices)
        for name, kind in matrices.items():
            if name in gguf["fallback_tensors"]:
                assert kind in {*FALLBACK.values(), "F16"}, (level, name, kind)
            elif level in K_QUANTS:
                assert "_K" in kind, (level, name, kind)  # not a fallback: a k-quant of the mix
        if level in K_QUANTS and gguf["fallback_tensors"]:
            assert f"{len(gguf['fallback_tensors'])} of {len(types)} tensors fell back" in gguf["fallback_summary"]


@pytest.mark.slow
def test_the_cli_hands_the_run_to_gguf_and_says_the_fallbacks_before_quantizing(lab):
    run, folder = lab["cli"], lab["cli_folder"]
    assert ".venv-gguf/bin/python" in run.stderr
    manifest = read_manifest(folder)
    assert manifest["versions"].get("gguf") or manifest["method"]["llama_cpp_python"] == "0.3.36"
    if manifest["gguf"]["fallback_tensors"]:  # the quick tiny family's 128-wide rows
        said = run.stderr.index("llama.cpp's dry run: Q4_K_M")
        assert said < run.stderr.index("artifact written")
        assert "not a multiple of 256" in run.stderr
    assert manifest["gguf"]["tensor_types"] == read_manifest(lab["levels"]["Q4_K_M"])["gguf"]["tensor_types"]


@pytest.mark.slow
def test_size_on_disk_falls_with_the_level(lab):
    size = {level: (folder / read_manifest(folder)["gguf"]["file"]).stat().st_size
            for level, folder in lab["levels"].items()}
    chain = ["F16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q3_K_M", "Q2_K"]
    assert all(size[a] > size[b] for a, b in zip(chain, chain[1:])), {k: size[k] for k in chain}
    assert size["F16"] == size["BF16"] and size["Q4_K_M"] >= size["Q4_K_S"] and size["Q3_K_L"] >= size["Q3_K_M"]


@pytest.mark.slow
def test_the_same_input_and_seed_give_an_identical_file(gguf_env, lab, tiny_family):
    again = in_gguf_env(gguf_env, f"""
        import json
        from configs.compose import compose
        from quantize.pipeline import quantize_job
        job = compose("quantize", ["model={MODEL}", *{TINY_QUICK!r}, "method=gguf", "quant.type=Q4_K_M",
                                   "output_dir={lab['root'] / 'again'}"])
        print(json.dumps(str(quantize_job(job))))
        """)
    first = lab["levels"]["Q4_K_M"]
    name = read_manifest(first)["gguf"]["file"]
    assert Path(again).name == first.name  # same fingerprint
    assert (Path(again) / name).read_bytes() == (first / name).read_bytes()


def quantize_levels_concurrently(python: Path, source: Path, levels: list[str], output: Path, cache: Path) -> str:
    """Quantize `levels` of the checkpoint `source`, one process each, all started at once
    with the lab cache `cache`; returns their logs."""
    script = textwrap.dedent("""
        import logging, sys
        from configs.compose import compose
        from quantize.pipeline import quantize_job
        logging.basicConfig(level=logging.INFO)
        quantize_job(compose("quantize", [f"model={sys.argv[1]}", "model.dtype=float32", "method=gguf",
                                          f"quant.type={sys.argv[2]}", f"output_dir={sys.argv[3]}"]))
        """)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "QLAB_CACHE": str(cache)}
    runs = [subprocess.Popen([str(python), "-c", script, str(source), level, str(output)], cwd=REPO_ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for level in levels]
    logs = [run.communicate(timeout=900)[0] for run in runs]
    assert all(run.returncode == 0 for run in runs), "\n".join(log[-3000:] for log in logs)
    return "\n".join(logs)


@pytest.mark.slow
def test_levels_share_one_cached_conversion_and_a_damaged_one_is_made_again(gguf_env, lab, tiny_family, tmp_path):
    source, cache, output = tiny_family.model_path(MODEL), tmp_path / "cache", tmp_path / "artifacts"
    logs = quantize_levels_concurrently(gguf_env, source, ["Q4_K_M", "Q4_0"], output, cache)
    assert logs.count("with llama.cpp's converter (once") == 1, logs[-4000:]  # the other level waited and reused it
    assert logs.count("reused from the cache") == 1, logs[-4000:]
    [conversion] = [p for p in (cache / "gguf-conversions").iterdir() if not p.name.startswith(".")]
    cached = conversion / "source-f32.gguf"

    def same_as_before(level: str) -> None:  # the lab fixture's artifact of the same checkpoint
        [made] = (output / MODEL).glob(f"gguf-{level}-*")
        before = lab["levels"][level]
        name = read_manifest(before)["gguf"]["file"]
        assert (made / name).read_bytes() == (before / name).read_bytes(), level
        assert read_manifest(made)["gguf"] == read_manifest(before)["gguf"], level

    same_as_before("Q4_K_M")
    same_as_before("Q4_0")
    size = cached.stat().st_size
    with open(cached, "r+b") as handle:  # a copy cut short: the size no longer matches its manifest
        handle.truncate(size // 2)
    logs = quantize_levels_concurrently(gguf_env, source, ["Q8_0"], output, cache)
    assert "the cached conversion at" in logs and "unusable" in logs and "truncated" in logs, logs[-4000:]
    assert logs.count("with llama.cpp's converter (once") == 1
    assert cached.stat().st_size == size
    same_as_before("Q8_0")


@pytest.mark.slow
def test_a_fresh_process_reloads_and_generates_in_both_runtimes(gguf_env, lab):
    folder = lab["levels"]["Q4_K_M"]
    out = in_gguf_env(gguf_env, f"""
        import json
        from models.gguf import LlamaCpp, gguf_file
        from models.loading import load_model
        model, tokenizer = load_model({str(folder)!r}, device="cpu")
        messages = [{{"role": "user", "content": "What is 2 + 3? Put the answer in \\\\boxed{{}}."}}]
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        ids = ids["input_ids"] if hasattr(ids, "keys") else ids
        import torch
        out = model.generate(torch.tensor([ids]), max_new_tokens=8, do_sample=False)
        with LlamaCpp(gguf_file({str(folder)!r})) as llm:
            native = llm.generate(list(ids), 8)
        top3 = model(torch.tensor([ids])).logits[0, -1].topk(3).indices.tolist()
        print(json.dumps({{"hf": out[0, len(ids):].tolist(), "native": native, "top3": top3,
                          "kind": type(model).__name__}}))
        """)
    assert out["kind"] == "Qwen3ForCausalLM"
    assert out["hf"] and out["native"]
    assert out["hf"][0] == out["top3"][0]
    # The same quantized weights in two runtimes: llama.cpp's first token is one the dequantized
    # model ranks in its top three (the quick model is barely trained, so its top logits are
    # close and the two runtimes' rounding can swap them; they agreed exactly before the
    # tiny family's data changed)
    assert out["native"][0] in out["top3"]


@pytest.mark.slow
def test_llama_cpps_greedy_sampler_picks_the_tokens_of_an_argmax_over_the_logits(gguf_env, lab):
    """What measure_speed and generate time and return: llama.cpp's own greedy pick, the same
    tokens as numpy's argmax over the whole logits vector (the lab's earlier loop)."""
    out = in_gguf_env(gguf_env, f"""
        import json
        import llama_cpp, numpy as np
        from models.gguf import LlamaCpp, gguf_file
        results = {{}}
        for level, folder in {({k: str(v) for k, v in lab["levels"].items() if k in ("Q8_0", "Q4_K_M", "Q2_K")})!r}.items():
            with LlamaCpp(gguf_file(folder), n_ctx=256) as llm:
                ids = list(range(5, 45))
                sampled = llm.generate(ids, 48)
                llm._clear()
                llm._decode(llm._tokens(ids))
                argmax = []
                for _ in range(48):  # no stop at end-of-generation tokens: compared below
                    logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.llm.ctx, -1), shape=(llm.n_vocab,))
                    argmax.append(int(np.argmax(logits)))
                    llm._decode(llm._tokens(argmax[-1:]))
                results[level] = [sampled, argmax, sorted(llm.eog)]
        print(json.dumps(results))
        """)
    for level, (sampled, argmax, eog) in out.items():
        assert sampled == argmax[:len(sampled)], level
        assert len(sampled) == 48 or argmax[len(sampled)] in eog, level  # generate stopped at an end token


@pytest.mark.slow
def test_llama_cpp_tokenizes_every_evaluation_prompt_as_hugging_face_does(gguf_env, lab, tiny_family):
    folder = lab["levels"]["Q8_0"]
    data = tiny_family.root / "data"
    out = in_gguf_env(gguf_env, f"""
        import json
        from pathlib import Path
        from models.gguf import gguf_file, first_difference
        from models.loading import load_tokenizer
        from tasks.prompts import chat_messages
        import llama_cpp
        folder = Path({str(folder)!r})
        tokenizer = load_tokenizer(folder)
        llm = llama_cpp.Llama(model_path=str(gguf_file(folder)), vocab_only=True, verbose=False)
        checked, mismatches = 0, []
        for task in ("tiny_arc", "tiny_squad", "tiny_openmath"):
            for line in (Path({str(data)!r}) / f"{{task}}.jsonl").read_text().splitlines():
                doc = json.loads(line)
                prompt = tokenizer.apply_chat_template(chat_messages(task, doc), add_generation_prompt=True,
                                                       tokenize=False)
                ours = tokenizer(prompt, add_special_tokens=False).input_ids
                theirs = llm.tokenize(prompt.encode(), add_bos=False, special=True)
                checked += 1
                if ours != theirs:
                    mismatches.append([task, first_difference(ours, theirs), prompt[:200]])
        llm.close()
        print(json.dumps({{"checked": checked, "mismatches": mismatches[:5], "n_mismatches": len(mismatches)}}))
        """)
    assert out["checked"] >= 30
    assert out["n_mismatches"] == 0, out["mismatches"]


@pytest.mark.slow
def test_the_importance_matrix_changes_the_weights_and_the_fingerprint(gguf_env, lab, tiny_family):
    folder = Path(in_gguf_env(gguf_env, f"""
        import json
        from configs.compose import compose
        from quantize.pipeline import quantize_job
        job = compose("quantize", ["model={MODEL}", *{TINY_QUICK!r}, "method=gguf", "quant.type=Q4_K_M",
                                   "method.imatrix=true", "calibration.num_samples=16", "calibration.seq_len=128",
                                   "output_dir={lab['root'] / 'artifacts'}"])
        print(json.dumps(str(quantize_job(job))))
        """))
    plain = lab["levels"]["Q4_K_M"]
    manifest, plain_manifest = read_manifest(folder), read_manifest(plain)
    assert manifest["fingerprint"] != plain_manifest["fingerprint"]
    assert manifest["method"]["options"]["imatrix"] is True and manifest["calibration"]["num_samples"] == 16
    assert manifest["gguf"]["imatrix"]["entries"] > 0 and manifest["gguf"]["imatrix"]["tool"] == "llama-imatrix"
    changed = in_gguf_env(gguf_env, f"""
        import json, gguf
        def tensors(path):
            return {{t.name: bytes(t.data.tobytes()) for t in gguf.GGUFReader(path).tensors}}
        a = tensors({str(folder / manifest['gguf']['file'])!r})
        b = tensors({str(plain / plain_manifest['gguf']['file'])!r})
        print(json.dumps(sorted(name for name in a if a[name] != b[name])))
        """)
    assert any(name.startswith("blk.") for name in changed), changed
    assert manifest["gguf"]["tensor_types"] == plain_manifest["gguf"]["tensor_types"]


@pytest.mark.slow
def test_evaluate_run_scores_the_gguf_and_times_it_in_llama_cpp(lab):
    artifact, results = lab["levels"]["Q4_K_M"], lab["root"] / "results"
    result = run_cli("evaluate", "run", f"artifact={artifact}", "eval=tiny", "eval.limit=4", "eval.batch_size=4",
                     "speed.prompt_tokens=16", "speed.new_tokens=8", "speed.repeats=3", f"results_dir={results}",
                     timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    assert ".venv-gguf/bin/python" in result.stderr
    fingerprint = read_manifest(artifact)["fingerprint"]
    records = {r["task"]: r for _, r in store.iter_records(results) if r["artifact"]["fingerprint"] == fingerprint}
    speed = records["speed"]["speed"]
    assert speed["runtime"] == "llama.cpp" and speed["threads"] >= 1
    at_1 = speed["by_batch"]["1"]
    for key in ("time_to_first_token_s", "prefill_tokens_per_s", "decode_tokens_per_s"):
        assert at_1[key] > 0, key
    assert at_1["llama_cpp_counters"]["decode_tokens_per_s"] > 0
    manifest = read_manifest(artifact)
    artifact_fields = records["speed"]["artifact"]  # what the report tells the levels apart by
    assert (artifact_fields["level"], artifact_fields["bits_per_weight"]) == ("Q4_K_M", manifest["gguf"]["bits_per_weight"])
    assert artifact_fields["label"].startswith("gguf Q4_K_M") and artifact_fields["label"].endswith(" bpw)")
    if manifest["gguf"]["fallback_tensors"]:  # the report shows the level with its fallbacks
        said = f"{len(manifest['gguf']['fallback_tensors'])} of {len(manifest['gguf']['tensor_types'])} tensors "
        assert f"Q4_K_M, {said}" in artifact_fields["label"] and artifact_fields["fallback"].startswith(said)
    boxed = [r for r in records.values() if r.get("task_type") == "boxed"]
    assert boxed
    for record in boxed:
        column = record["llama_cpp"]
        assert column["n"] == record["n"] == 4 and 0 <= column["same_generation"] <= 4
        assert 0 <= column["metrics"]["accuracy"] <= 1


@pytest.mark.slow
def test_a_sweep_cell_quantizes_and_evaluates_a_gguf_level(lab, tiny_family):
    root = lab["root"] / "sweep"
    result = run_cli("evaluate", "sweep", "sweep.name=gguf-cell", f"sweep.models=[{MODEL}]",
                     "sweep.methods=[{method: gguf, types: [Q8_0]}]",
                     "sweep.quantize_overrides=[" + ",".join(f'"{o}"' for o in TINY_QUICK) + "]",
                     "sweep.eval_overrides=[" + ",".join(f'"{o}"' for o in SMALL_EVAL) + "]", "report=false",
                     f"output_dir={root / 'artifacts'}", f"results_dir={root / 'results'}",
                     f"sweeps_dir={root / 'sweeps'}", timeout=1800)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    statuses = [json.loads(p.read_text()) for p in (root / "sweeps" / "gguf-cell" / "cells").glob("*.json")]
    gguf = [s for s in statuses if s["cell"]["method"] == "gguf"]
    assert len(gguf) == 1 and gguf[0]["status"] == "done", statuses
    assert read_manifest(Path(gguf[0]["artifact"]))["gguf"]["type"] == "Q8_0"
