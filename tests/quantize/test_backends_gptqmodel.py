"""method=gptq|awq method.backend=gptqmodel: GPTQModel in its own environment (.venv-gptqmodel).

The first part needs no such environment: where a run goes (the dispatch decision) and
what is said when the environment is missing. The second part is end to end, as a user
runs it from the main environment: `python -m quantize` hands the run to
`.venv-gptqmodel/bin/python`, the artifact is checked (manifest, packed weights, size),
reloaded in that environment and generates, and `python -m evaluate run` evaluates it
there. Without the environment the end-to-end tests skip, loudly; with
QLAB_REQUIRE_BACKEND_ENVS=1 they fail instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from configs.compose import compose
from configs.errors import ConfigError
from evaluate import store
from common.storage import publish, read_manifest, staging_folder
from common import environments
from quantize.methods.base import build_method
from quantize.pipeline import plan
from tests.conftest import REPO_ROOT, TINY_QUICK, run_cli
from tests.quantize.test_backends import config_only_checkpoint

SMALL_CALIBRATION = ["calibration.num_samples=16", "calibration.seq_len=128"]
GPTQMODEL = ["method.backend=gptqmodel", "quant.group_size=32", *SMALL_CALIBRATION]


def build_job(*overrides: str):
    job = compose("quantize", ["model=tiny-s", *TINY_QUICK, *overrides])
    return build_method(job.method, job.quant, job.model.dtype)


@pytest.fixture
def no_environments(tmp_path, monkeypatch):
    """The lab's environments looked up under an empty folder: none of them is built."""
    monkeypatch.setattr(environments, "REPO_ROOT", tmp_path)
    return tmp_path


# -- where a run goes (no environment needed) ---------------------------------------------
@pytest.mark.parametrize("method", ["gptq", "awq"])
def test_gptqmodel_backend_declares_its_environment_and_loader(method):
    built = build_job(f"method={method}", "method.backend=gptqmodel", "model.dtype=bfloat16")
    assert built.environment == "gptqmodel"
    assert built.describe()["environment"] == "gptqmodel" and built.describe()["loader"] == "gptqmodel"
    assert built.label().endswith("-gptqmodel")
    assert "GPTQModel" in built.runs_in() and "'gptqmodel' environment" in built.runs_in()
    default = build_job(f"method={method}")
    assert default.environment == "main" and default.loader == "transformers"


def test_the_dispatch_decision_follows_the_running_environment():
    assert environments.running_environment() == "main"  # the tests run in .venv (or a plain interpreter)
    assert environments.needs_dispatch("gptqmodel") and environments.needs_dispatch("legacy")
    assert not environments.needs_dispatch("main")
    assert environments.manifest_environment({"method": {"environment": "gptqmodel"}}) == "gptqmodel"
    assert environments.manifest_environment({"method": {"name": "rtn"}}) == "main"  # manifests from before environments
    assert environments.manifest_environment(None) == "main"


@pytest.mark.parametrize("method", ["gptq", "awq"])
def test_missing_environment_says_what_is_missing_the_command_and_the_alternative(no_environments, tmp_path, method):
    model = config_only_checkpoint(tmp_path / "ckpt")
    with pytest.raises(ConfigError) as error:
        plan(compose("quantize", [f"model={model}", f"method={method}", "method.backend=gptqmodel"]))
    message = str(error.value)
    assert "\n" not in message
    for fragment in ("GPTQModel", ".venv-gptqmodel is missing", "`scripts/setup.sh gptqmodel`",
                     "method.backend=llmcompressor"):
        assert fragment in message, message


def test_a_venv_whose_install_did_not_finish_counts_as_missing(no_environments):
    python = environments.environment_python("gptqmodel")
    python.parent.mkdir(parents=True)
    python.touch()  # scripts/setup.sh writes its stamp only after pip install succeeded
    assert not environments.is_built("gptqmodel")
    with pytest.raises(ConfigError, match="install did not finish"):
        environments.interpreter("gptqmodel", "method=gptq runs in the 'gptqmodel' environment")
    (python.parent.parent / environments.STAMP).write_text("x")
    assert environments.interpreter("gptqmodel", "x") == python


def test_a_sweep_cell_runs_with_its_environments_interpreter(no_environments):
    from sweep.cells import Cell
    from sweep.plan import cell_python

    cell = Cell("tiny-s", "gptq", ("method=gptq", "model=tiny-s", "method.backend=gptqmodel"), ())
    with pytest.raises(ConfigError, match="scripts/setup.sh gptqmodel"):
        cell_python(cell)
    python = environments.environment_python("gptqmodel")
    python.parent.mkdir(parents=True)
    python.touch()
    (python.parent.parent / environments.STAMP).write_text("x")
    assert cell_python(cell) == str(python)
    import sys

    assert cell_python(Cell("tiny-s", "rtn", ("method=rtn", "model=tiny-s"), ())) == sys.executable


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["method=gptq", "quant.bits=5"], ["quant.bits=5", "2, 3, 4, 8"]),
        (["method=awq", "quant.bits=8"], ["quant.bits=8", "4-bit"]),
        (["method=awq", "method.n_grid=10"], ["method.n_grid", "20-point grid"]),
        (["method=awq", "model.dtype=float32"], ["model.dtype=float32", "bfloat16"]),
    ],
)
def test_bad_settings_fail_in_the_main_environment_before_the_run_is_handed_on(tmp_path, overrides, expected):
    model = config_only_checkpoint(tmp_path / "ckpt")
    result = run_cli("quantize", f"model={model}", "method.backend=gptqmodel", *overrides)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert "running it with" not in result.stderr  # nothing was handed on
    for fragment in expected:
        assert fragment in lines[0], lines[0]


def test_evaluate_run_hands_an_artifact_to_the_environment_its_manifest_names(tmp_path):
    """An artifact of an environment that is not built: one line and exit 2, no model loaded."""
    final = tmp_path / "tiny-s" / "fake-0000000000"
    with staging_folder(final) as staging:
        (staging / "config.json").write_text("{}")
        publish(staging, final, {"fingerprint": "0" * 64, "method": {"name": "gptq", "environment": "nosuchenv"}})
    result = run_cli("evaluate", "run", f"artifact={final}", "eval=tiny", f"results_dir={tmp_path / 'results'}")
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert "'nosuchenv' environment" in result.stderr and "scripts/setup.sh nosuchenv" in result.stderr


# -- end to end in .venv-gptqmodel ----------------------------------------------------------
@pytest.fixture(scope="module")
def gptqmodel_env():
    if environments.is_built("gptqmodel"):
        return environments.environment_python("gptqmodel")
    reason = (f"!!! {environments.venv_dir('gptqmodel')} is not built: the GPTQModel backend is NOT tested here. "
              "Build it with `scripts/setup.sh gptqmodel` (~5 min); QLAB_REQUIRE_BACKEND_ENVS=1 makes this a failure")
    if os.environ.get("QLAB_REQUIRE_BACKEND_ENVS") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def quantize(output_dir: Path, *overrides: str) -> tuple[Path, subprocess.CompletedProcess]:
    result = run_cli("quantize", "model=tiny-s", *overrides, *TINY_QUICK, f"output_dir={output_dir}", timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return Path(result.stdout.strip().splitlines()[-1]), result


@pytest.fixture(scope="module")
def lab(gptqmodel_env, tmp_path_factory, tiny_family):
    root = tmp_path_factory.mktemp("gptqmodel")
    baselines = {"gptq": quantize(root / "artifacts", "method=none")[0],  # tiny-s is float32
                 "awq": quantize(root / "artifacts", "method=none", "model.dtype=bfloat16")[0]}
    gptq, gptq_run = quantize(root / "artifacts", "method=gptq", "quant.bits=4", *GPTQMODEL)
    awq, awq_run = quantize(root / "artifacts", "method=awq", "quant.bits=4", "model.dtype=bfloat16", *GPTQMODEL)
    return {"root": root, "baselines": baselines, "gptq": gptq, "awq": awq, "runs": {"gptq": gptq_run, "awq": awq_run}}


def generate_in_gptqmodel_env(python: Path, artifact: Path) -> dict:
    """Load `artifact` with the lab's loader in that environment and generate 5 tokens:
    the new token ids and the class names of the q_proj modules."""
    return in_gptqmodel_env(python, f"""
        import json
        from models.loading import load_model
        model, tokenizer = load_model({str(artifact)!r}, device="cpu")
        kinds = sorted({{type(m).__name__ for n, m in model.named_modules() if n.endswith("q_proj")}})
        ids = tokenizer("What is 2 + 3?", return_tensors="pt").input_ids
        out = model.generate(ids, max_new_tokens=5, do_sample=False)
        print(json.dumps({{"new": out[0, ids.shape[1]:].tolist(), "kinds": kinds}}))
        """)


def packed_linears(folder: Path, baseline: Path) -> dict[str, dict]:
    """Per packed linear of `folder` (one decoder layer in the quick profile: 7 of them):
    the (rows, columns) of its dense weight in `baseline`, and its qweight's and scales'
    shapes."""
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), "pt") as packed, \
            safe_open(str(baseline / "model.safetensors"), "pt") as dense:
        names = [key.removesuffix(".qweight") for key in packed.keys() if key.endswith(".qweight")]  # noqa: SIM118
        linears = {name: {"dense": tuple(dense.get_slice(name + ".weight").get_shape()),
                          "qweight": packed.get_slice(name + ".qweight").get_shape(),
                          "scales": packed.get_slice(name + ".scales").get_shape()} for name in names}
    assert len(linears) == 7, sorted(linears)
    return linears


def evaluate_small(artifact: Path, results: Path) -> tuple[subprocess.CompletedProcess, dict[str, dict]]:
    """`python -m evaluate run` on `artifact` with a tiny budget, from the main environment:
    the finished run and its records by task."""
    result = run_cli("evaluate", "run", f"artifact={artifact}", "eval=tiny", "eval.limit=4", "eval.batch_size=4",
                     "speed.prompt_tokens=8", "speed.new_tokens=2", "speed.repeats=1", "diagnostics.kl_prompts=2",
                     f"results_dir={results}", timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    fingerprint = read_manifest(artifact)["fingerprint"]
    return result, {r["task"]: r for _, r in store.iter_records(results) if r["artifact"]["fingerprint"] == fingerprint}


def in_gptqmodel_env(python: Path, script: str) -> dict:
    result = subprocess.run([str(python), "-c", textwrap.dedent(script)], capture_output=True, text=True, cwd=REPO_ROOT,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])



@pytest.mark.slow
@pytest.mark.parametrize("method", ["gptq", "awq"])
def test_quantize_is_handed_to_the_gptqmodel_environment(lab, method):
    run = lab["runs"][method]
    assert ".venv-gptqmodel/bin/python" in run.stderr  # said where it went
    manifest = read_manifest(lab[method])
    assert manifest["method"]["environment"] == "gptqmodel"
    assert manifest["method"]["loader"] == "gptqmodel"
    assert manifest["method"]["options"]["backend"] == "gptqmodel"
    assert manifest["method"]["artifact_format"] == ("gptq" if method == "gptq" else "awq-gemm")
    versions = manifest["versions"]
    assert "gptqmodel" in versions and "llmcompressor" not in versions  # made in the other environment
    assert versions["torch"].startswith("2.14")
    assert manifest["calibration"]["num_samples"] == 16
    assert manifest["model"]["num_parameters"] == read_manifest(lab["baselines"][method])["model"]["num_parameters"]
    config = json.loads((lab[method] / "config.json").read_text())["quantization_config"]
    assert config["bits"] == 4 and config["group_size"] == 32
    assert config.get("quant_method", config.get("method")) == method


@pytest.mark.slow
@pytest.mark.parametrize("method", ["gptq", "awq"])
def test_weights_are_packed_4_bit_and_smaller(lab, method):
    from safetensors import safe_open

    folder = lab[method]
    files = sorted(folder.glob("*.safetensors"))
    tensors = {}
    for path in files:
        with safe_open(str(path), "pt") as weights:
            tensors.update({key: weights.get_tensor(key) for key in weights.keys()})  # noqa: SIM118 (not a dict)
    qweights = {k: v for k, v in tensors.items() if k.endswith(".qweight")}
    # one decoder layer in the quick profile: q, k, v, o, gate, up, down
    assert len(qweights) == 7, sorted(tensors)
    import torch

    assert all(t.dtype == torch.int32 for t in qweights.values())
    assert not any(k.endswith(("q_proj.weight", "down_proj.weight")) for k in tensors)  # no dense copy kept
    assert "lm_head.weight" in tensors or "model.embed_tokens.weight" in tensors
    size = read_manifest(folder)["size_on_disk_bytes"]
    baseline = lab["baselines"][method]  # same dtype
    assert size < 0.8 * read_manifest(baseline)["size_on_disk_bytes"]
    # 8 int4 codes per int32 word (GPTQ packs along the input dimension, AWQ GEMM along the
    # output dimension): exactly one 4-bit code per weight of the baseline's linear
    with safe_open(str(baseline / "model.safetensors"), "pt") as weights:
        for key, packed in qweights.items():
            dense = weights.get_slice(key.removesuffix(".qweight") + ".weight").get_shape()
            assert packed.numel() * 8 == dense[0] * dense[1], key


@pytest.mark.slow
@pytest.mark.parametrize("method", ["gptq", "awq"])
def test_reloads_in_the_gptqmodel_environment_and_generates(lab, gptqmodel_env, method):
    out = generate_in_gptqmodel_env(gptqmodel_env, lab[method])
    assert len(out["new"]) >= 1
    assert out["kinds"] and all("Linear" in k and k != "Linear" for k in out["kinds"]), out["kinds"]  # a quantized linear


@pytest.mark.slow
@pytest.mark.parametrize("method", ["gptq", "awq"])
def test_the_same_seed_gives_identical_weights(lab, method):
    import torch
    from safetensors.torch import load_file

    extra = ["model.dtype=bfloat16"] if method == "awq" else []
    again = quantize(lab["root"] / "again", f"method={method}", "quant.bits=4", *extra, *GPTQMODEL)[0]
    first, second = load_file(lab[method] / "model.safetensors"), load_file(again / "model.safetensors")
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)


@pytest.mark.slow
def test_the_main_environment_refuses_to_load_it_with_the_reason(lab):
    from models.loading import load_model

    with pytest.raises(ConfigError, match="loads only where gptqmodel is installed"):
        load_model(lab["gptq"], device="cpu")


@pytest.mark.slow
def test_evaluate_run_is_handed_to_the_gptqmodel_environment(lab):
    result, found = evaluate_small(lab["gptq"], lab["root"] / "results")
    assert ".venv-gptqmodel/bin/python" in result.stderr
    assert {"tiny_arc", "tiny_squad", "tiny_openmath", "text_perplexity", "speed", "kl_divergence"} <= set(found)
    assert found["tiny_arc"]["n"] == 4 and 0.0 <= found["tiny_arc"]["metrics"]["accuracy"] <= 1.0
    assert found["tiny_arc"]["artifact"]["method"] == "gptq"
    assert "gptqmodel" in found["tiny_arc"]["versions"]  # evaluated in that environment
    assert found["kl_divergence"]["metrics"]["kl_divergence"] >= 0.0


# Other bit widths and group sizes than the 4-bit, group-32 artifact above.
GPTQ_WIDTHS = [(2, 64), (3, 128), (8, -1)]


@pytest.fixture(scope="module")
def gptq_widths(lab):
    return {(bits, group): quantize(lab["root"] / "artifacts", "method=gptq", "method.backend=gptqmodel",
                                    f"quant.bits={bits}", f"quant.group_size={group}", *SMALL_CALIBRATION)[0]
            for bits, group in GPTQ_WIDTHS}


@pytest.mark.slow
@pytest.mark.parametrize("bits, group", GPTQ_WIDTHS)
def test_gptq_at_other_widths_packs_that_many_bits_and_reloads(lab, gptq_widths, gptqmodel_env, bits, group):
    folder = gptq_widths[(bits, group)]
    config = json.loads((folder / "config.json").read_text())["quantization_config"]
    assert (config["bits"], config["group_size"]) == (bits, group)
    for name, linear in packed_linears(folder, lab["baselines"]["gptq"]).items():
        rows, columns = linear["dense"]
        assert linear["qweight"] == [columns * bits // 32, rows], name  # `bits` per weight
    assert len(generate_in_gptqmodel_env(gptqmodel_env, folder)["new"]) >= 1


# GPTQModel's AWQ at the other group sizes than the group-32 artifact above (its GEMM format is 4-bit only).
AWQ_GROUPS = [64, 128, -1]


@pytest.fixture(scope="module")
def awq_groups(lab):
    return {group: quantize(lab["root"] / "artifacts", "method=awq", "method.backend=gptqmodel", "model.dtype=bfloat16",
                            "quant.bits=4", f"quant.group_size={group}", *SMALL_CALIBRATION)[0]
            for group in AWQ_GROUPS}


@pytest.mark.slow
@pytest.mark.parametrize("group", AWQ_GROUPS)
def test_awq_at_other_group_sizes_packs_4_bits_with_one_scale_per_group_and_reloads(lab, awq_groups, gptqmodel_env,
                                                                                   group):
    folder = awq_groups[group]
    config = json.loads((folder / "config.json").read_text())["quantization_config"]
    assert (config["bits"], config["group_size"]) == (4, group)
    for name, linear in packed_linears(folder, lab["baselines"]["awq"]).items():
        rows, columns = linear["dense"]
        assert linear["qweight"] == [columns, rows * 4 // 32], name  # GEMM packs the output dimension
        assert linear["scales"] == [1 if group == -1 else columns // group, rows], name
    assert len(generate_in_gptqmodel_env(gptqmodel_env, folder)["new"]) >= 1
