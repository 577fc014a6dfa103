"""method=awq method.backend=autoawq: AutoAWQ, the origin pipeline's library, in .venv-legacy.

AutoAWQ quantizes in the legacy environment (transformers 4); its GEMM checkpoint loads
with GPTQModel in .venv-gptqmodel, where lm-eval is, so `evaluate run` and sweep cells go
there. The first part needs neither environment: what a sweep cell needs and says when one
is missing. The second part is end to end from the main environment, as a user runs it.
Without the environments the end-to-end tests skip, loudly; with
QLAB_REQUIRE_BACKEND_ENVS=1 they fail instead.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from configs.errors import ConfigError
from evaluate import store
from common.storage import read_manifest
from common import environments
from tests.conftest import TINY_QUICK, run_cli
from tests.quantize.test_backends_gptqmodel import (SMALL_CALIBRATION, evaluate_small, generate_in_gptqmodel_env,
                                                    packed_linears)

AUTOAWQ = ["method=awq", "method.backend=autoawq", "model.dtype=float16", "quant.bits=4", *SMALL_CALIBRATION]


def built(root: Path, environment: str) -> Path:
    """Fake a built environment under `root` (what environments.is_built checks)."""
    python = root / f".venv-{environment}" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.touch()
    (python.parent.parent / environments.STAMP).write_text("x")
    return python


def test_a_sweep_cell_quantizes_in_legacy_and_runs_where_the_artifact_loads(tmp_path, monkeypatch):
    from sweep.cells import Cell
    from sweep.plan import cell_python

    monkeypatch.setattr(environments, "REPO_ROOT", tmp_path)
    cell = Cell("tiny-s", "awq", ("method=awq", "model=tiny-s", "method.backend=autoawq", "model.dtype=float16"), ())
    with pytest.raises(ConfigError, match="scripts/setup.sh legacy"):
        cell_python(cell)
    built(tmp_path, "legacy")
    with pytest.raises(ConfigError, match="scripts/setup.sh gptqmodel"):
        cell_python(cell)
    python = built(tmp_path, "gptqmodel")
    assert cell_python(cell) == str(python)


def test_missing_legacy_environment_says_what_is_missing_the_command_and_the_alternative(tmp_path, monkeypatch):
    from configs.compose import compose
    from quantize.pipeline import plan
    from tests.quantize.test_backends import config_only_checkpoint

    model = config_only_checkpoint(tmp_path / "ckpt")
    monkeypatch.setattr(environments, "REPO_ROOT", tmp_path)
    with pytest.raises(ConfigError) as error:
        plan(compose("quantize", [f"model={model}", *AUTOAWQ[:3]]))
    message = str(error.value)
    assert "\n" not in message
    for fragment in ("AutoAWQ", ".venv-legacy is missing", "`scripts/setup.sh legacy`", "method.backend=llmcompressor"):
        assert fragment in message, message


def test_the_manifest_names_where_the_artifact_loads():
    assert environments.manifest_environment({"method": {"environment": "legacy", "load_environment": "gptqmodel"}}) == "gptqmodel"
    assert environments.manifest_environment({"method": {"environment": "gptqmodel"}}) == "gptqmodel"


# -- end to end in .venv-legacy and .venv-gptqmodel -------------------------------------------
@pytest.fixture(scope="module")
def backend_pythons():
    missing = [env for env in ("legacy", "gptqmodel") if not environments.is_built(env)]
    if not missing:
        return {env: environments.environment_python(env) for env in ("legacy", "gptqmodel")}
    reason = (f"!!! {', '.join(f'.venv-{env}' for env in missing)} not built: the AutoAWQ backend is NOT tested here. "
              f"Build with `scripts/setup.sh {' '.join(missing)}`; QLAB_REQUIRE_BACKEND_ENVS=1 makes this a failure")
    if os.environ.get("QLAB_REQUIRE_BACKEND_ENVS") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def quantize(output_dir: Path, *overrides: str):
    result = run_cli("quantize", "model=tiny-s", *overrides, *TINY_QUICK, f"output_dir={output_dir}", timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return Path(result.stdout.strip().splitlines()[-1]), result


def quoted(overrides: list[str]) -> str:
    """A Hydra list of override strings (each quoted: they contain '=')."""
    return "[" + ",".join(f'"{o}"' for o in overrides) + "]"


def tensors(folder: Path) -> dict:
    from safetensors.torch import load_file

    return {k: v for path in sorted(folder.glob("*.safetensors")) for k, v in load_file(path).items()}


@pytest.fixture(scope="module")
def lab(backend_pythons, tmp_path_factory, tiny_family):
    root = tmp_path_factory.mktemp("autoawq")
    baseline = quantize(root / "artifacts", "method=none", "model.dtype=float16")[0]
    awq, run = quantize(root / "artifacts", *AUTOAWQ, "quant.group_size=32")
    again = quantize(root / "again", *AUTOAWQ, "quant.group_size=32")[0]
    return {"root": root, "baseline": baseline, "awq": awq, "run": run, "again": again}


@pytest.mark.slow
def test_quantize_is_made_in_legacy_with_autoawq(lab):
    assert ".venv-legacy/bin/python" in lab["run"].stderr  # said where it went
    manifest = read_manifest(lab["awq"])
    method = manifest["method"]
    assert (method["environment"], method["load_environment"], method["loader"]) == ("legacy", "gptqmodel", "gptqmodel")
    assert method["options"]["backend"] == "autoawq" and method["artifact_format"] == "awq-gemm"
    assert manifest["versions"]["autoawq"] == "0.2.9" and manifest["versions"]["transformers"].startswith("4.")
    assert manifest["calibration"]["num_samples"] == 16
    assert manifest["model"]["num_parameters"] == read_manifest(lab["baseline"])["model"]["num_parameters"]
    assert manifest["timing"]["quantize_seconds"] > 0 and manifest["peak_memory"]["cpu_rss_bytes"] > 0
    config = json.loads((lab["awq"] / "config.json").read_text())["quantization_config"]
    assert (config["quant_method"], config["version"], config["bits"], config["group_size"]) == ("awq", "gemm", 4, 32)


@pytest.mark.slow
def test_weights_are_packed_4_bit_with_one_scale_per_group_and_smaller(lab):
    import torch

    packed, dense = tensors(lab["awq"]), tensors(lab["baseline"])
    qweights = [k for k in packed if k.endswith(".qweight")]
    assert len(qweights) == 7  # one decoder layer in the quick profile: q, k, v, o, gate, up, down
    assert not any(k.endswith("proj.weight") for k in packed)  # no dense copy kept
    for key in qweights:
        rows, columns = dense[key.removesuffix(".qweight") + ".weight"].shape
        assert packed[key].dtype == torch.int32
        assert list(packed[key].shape) == [columns, rows * 4 // 32], key  # 8 codes per int32: 4 bits per weight
        assert list(packed[key.removesuffix(".qweight") + ".scales"].shape) == [columns // 32, rows], key
    assert read_manifest(lab["awq"])["size_on_disk_bytes"] < 0.8 * read_manifest(lab["baseline"])["size_on_disk_bytes"]


@pytest.mark.slow
def test_the_same_seed_gives_identical_weights(lab):
    import torch

    first, second = tensors(lab["awq"]), tensors(lab["again"])
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)


@pytest.mark.slow
def test_reloads_in_the_gptqmodel_environment_and_generates(lab, backend_pythons):
    out = generate_in_gptqmodel_env(backend_pythons["gptqmodel"], lab["awq"])
    assert len(out["new"]) >= 1
    assert out["kinds"] and all("Awq" in k for k in out["kinds"]), out["kinds"]  # GPTQModel's AWQ linear


@pytest.mark.slow
@pytest.mark.parametrize("group", [64, 128])
def test_other_group_sizes_pack_one_scale_per_group_and_reload(lab, backend_pythons, group):
    folder = quantize(lab["root"] / "artifacts", *AUTOAWQ, f"quant.group_size={group}")[0]
    for name, linear in packed_linears(folder, lab["baseline"]).items():
        rows, columns = linear["dense"]
        assert linear["scales"] == [columns // group, rows], name
    assert len(generate_in_gptqmodel_env(backend_pythons["gptqmodel"], folder)["new"]) >= 1


@pytest.mark.slow
def test_evaluate_run_is_handed_to_where_the_artifact_loads(lab):
    result, found = evaluate_small(lab["awq"], lab["root"] / "results")
    assert ".venv-gptqmodel/bin/python" in result.stderr
    assert {"tiny_arc", "tiny_squad", "tiny_openmath", "speed", "kl_divergence"} <= set(found)  # the fp16 baseline is there
    assert found["tiny_openmath"]["n"] == 4 and found["tiny_openmath"]["metrics"]["format_compliance"] >= 0.0
    assert "gptqmodel" in found["tiny_openmath"]["versions"]


@pytest.mark.slow
def test_a_sweep_cell_quantizes_in_legacy_and_evaluates_in_gptqmodel(lab, backend_pythons, tmp_path):
    root = tmp_path
    args = ["sweep", "sweep.name=autoawq", "sweep.models=[tiny-s]",
            "sweep.methods=[{method: awq, bits: [4], overrides: " + quoted(AUTOAWQ[1:3] + SMALL_CALIBRATION) + "}]",
            "sweep.eval_overrides=" + quoted(["eval.limit=4", "eval.batch_size=4", "speed.prompt_tokens=8",
                                              "speed.new_tokens=2", "speed.repeats=1", "diagnostics.kl_prompts=2"]),
            "sweep.quantize_overrides=" + quoted(TINY_QUICK), "report=false",
            f"output_dir={root / 'artifacts'}", f"results_dir={root / 'results'}", f"sweeps_dir={root / 'sweeps'}"]
    result = run_cli("evaluate", *args, timeout=1200)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "3 done, 0 reused, 0 failed" in result.stdout  # baselines in float32 (the model's) and float16 (AWQ's)
    records = [r for _, r in store.iter_records(root / "results")]
    made = [r for r in records if r["artifact"]["method"] == "awq"]
    assert made and all("gptqmodel" in r["versions"] for r in made)
    float16_baseline = {r["artifact"]["fingerprint"] for r in records
                        if r["artifact"]["is_baseline"] and r["artifact"]["label"] == "none-float16"}
    assert len(float16_baseline) == 1
    assert {r["task"] for r in made if (r.get("baseline") or {}).get("baseline_fingerprint") in float16_baseline} >= {
        "tiny_arc", "kl_divergence"}
    log = next((root / "sweeps" / "autoawq" / "logs").glob("tiny-s__awq*"))
    assert ".venv-legacy/bin/python" in log.read_text()
    again = run_cli("evaluate", *args, timeout=600)
    assert again.returncode == 0 and "0 done, 3 reused, 0 failed" in again.stdout
