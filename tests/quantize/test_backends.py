"""Every unsupported combination of method, settings, backend and model gets its one-line
message before any weight loads (the model folders here hold only config.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from configs.compose import compose
from configs.errors import ConfigError
from common.environments import REPO_ROOT, is_built, venv_dir
from quantize.backends.base import available_backends
from quantize.methods.base import build_method
from quantize.pipeline import plan
from tests.conftest import run_cli


def config_only_checkpoint(folder: Path, hidden: int = 128, intermediate: int = 384, heads: int = 2) -> Path:
    """A model folder with config.json and no weights: any weight load would crash."""
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_size": hidden,
        "intermediate_size": intermediate, "num_attention_heads": heads, "num_key_value_heads": 1,
        "head_dim": 64, "num_hidden_layers": 2, "vocab_size": 300,
    }
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return config_only_checkpoint(tmp_path_factory.mktemp("cfg") / "ckpt")


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["method=gptq", "quant.bits=5"], ["quant.bits=5", "method=gptq", "2, 3, 4, 8"]),
        (["method=gptq", "quant.group_size=48"], ["quant.group_size=48", "32, 64, 128, -1"]),
        (["method=gptq", "method.actorder=group"], ["method.actorder='group'", "static, none"]),
        (["method=gptq", "method.dampening_frac=0"], ["method.dampening_frac=0", "(0, 1)"]),
        (["method=awq", "quant.bits=3"], ["quant.bits=3", "method=awq", "4, 8"]),
        (["method=awq", "method.n_grid=0"], ["method.n_grid=0"]),
        (["method=smoothquant", "quant.bits=4"], ["quant.bits=4", "choices: 8"]),
        (["method=smoothquant", "quant.group_size=128"], ["quant.group_size=128", "-1"]),
        (["method=smoothquant", "quant.symmetric=false"], ["symmetric only"]),
        (["method=smoothquant", "method.smoothing_strength=1.5"], ["method.smoothing_strength=1.5", "[0, 1]"]),
        (["method=hqq", "quant.bits=5"], ["quant.bits=5", "1, 2, 3, 4, 8"]),
        (["method=hqq", "quant.symmetric=true"], ["zero point", "quant.symmetric=false"]),
        (["method=hqq", "method.axis=2"], ["method.axis=2", "0, 1"]),
        (["method=bnb_int8", "quant.bits=4"], ["quant.bits=4", "choices: 8"]),
        (["method=bnb_nf4", "quant.group_size=128"], ["quant.group_size=128", "choices: 64"]),
        (["method=bnb_fp4", "method.compute_dtype=int8"], ["method.compute_dtype='int8'", "bfloat16"]),
        (["method=bnb_nf4", "method.threshold=6"], ["method.threshold", "valid keys"]),
        (["method=autoround", "method.iters=0"], ["method.iters=0"]),
        (["method=autoround", "quant.bits=6"], ["quant.bits=6", "2, 3, 4, 8"]),
        (["method=gptq", "method.backend=autoawq"], ["method.backend='autoawq'", "llmcompressor, gptqmodel, auto-gptq"]),
        (["method=awq", "method.backend=auto-gptq"], ["method.backend='auto-gptq'", "llmcompressor, gptqmodel, autoawq"]),
        (["method=awq", "method.backend=autoawq", "model.dtype=float16", "quant.bits=8"], ["quant.bits=8", "choices: 4"]),
        (["method=awq", "method.backend=autoawq", "model.dtype=bfloat16"], ["model.dtype=bfloat16", "choices: float16"]),
        (["method=awq", "method.backend=autoawq", "model.dtype=float16", "method.n_grid=10"], ["method.n_grid=10", "20"]),
        (["method=awq", "method.backend=autoawq", "model.dtype=float16", "quant.group_size=-1"], ["quant.group_size=-1", "choices: 32, 64, 128"]),
        (["method=awq", "method.backend=autoawq", "model.dtype=float16", "quant.symmetric=true"], ["quant.symmetric=true", "zero points"]),
    ],
)
def test_unsupported_setting_is_one_line_before_weights(model_dir, overrides, expected):
    with pytest.raises(ConfigError) as error:
        plan(compose("quantize", [f"model={model_dir}", *overrides]))
    message = str(error.value)
    assert "\n" not in message
    for fragment in expected:
        assert fragment in message, message


@pytest.mark.parametrize("method", ["gptq", "awq", "autoround", "hqq", "rtn"])
def test_group_size_must_divide_the_model_dims(tmp_path, method):
    folder = config_only_checkpoint(tmp_path / "odd", hidden=192, intermediate=576, heads=3)
    symmetric = "quant.symmetric=false" if method == "hqq" else "quant.symmetric=true"
    with pytest.raises(ConfigError, match=r"quant.group_size=128 does not divide hidden_size=192"):
        plan(compose("quantize", [f"model={folder}", f"method={method}", "quant.group_size=128", "quant.bits=4", symmetric]))


@pytest.mark.parametrize("method, backend, environment", [("gptq", "gptqmodel", "gptqmodel"), ("awq", "gptqmodel", "gptqmodel"),
                                                         ("awq", "autoawq", "legacy")])
def test_backend_in_another_environment_says_what_is_missing_and_the_alternative(model_dir, method, backend, environment):
    if is_built(environment):
        pytest.skip(f"{venv_dir(environment)} is built on this machine (test_backends_gptqmodel.py and "
                    "test_backends_autoawq.py cover the message with the environments looked up elsewhere)")
    dtype = ["model.dtype=float16"] if backend == "autoawq" else []  # the only dtype it takes
    with pytest.raises(ConfigError) as error:
        plan(compose("quantize", [f"model={model_dir}", f"method={method}", f"method.backend={backend}", *dtype]))
    message = str(error.value)
    assert "\n" not in message
    assert available_backends()[backend].library in message
    assert f"scripts/setup.sh {environment}" in message
    assert f".venv-{environment} is missing" in message
    assert "method.backend=llmcompressor" in message


@pytest.mark.parametrize("method, backend", [("gptq", "auto-gptq")])
def test_a_backend_the_lab_does_not_run_is_refused_without_sending_the_user_to_build_it(model_dir, method, backend):
    """Whether or not .venv-legacy is built: building it would not make the run possible."""
    with pytest.raises(ConfigError) as error:
        plan(compose("quantize", [f"model={model_dir}", f"method={method}", f"method.backend={backend}"]))
    message = str(error.value)
    assert "\n" not in message
    assert available_backends()[backend].library in message and "code path is not written" in message
    assert "method.backend=llmcompressor" in message
    assert "scripts/setup.sh" not in message


@pytest.mark.parametrize("method, backend, expected", [("gptq", "gptqmodel", "scripts/setup.sh gptqmodel"),
                                                        ("awq", "autoawq", "scripts/setup.sh legacy"),
                                                        ("gptq", "auto-gptq", "code path is not written")])
def test_backend_message_from_the_cli_exits_2_without_traceback(model_dir, method, backend, expected):
    environment = available_backends()[backend].environment
    if backend != "auto-gptq" and is_built(environment):
        pytest.skip(f"{venv_dir(environment)} is built on this machine: the run would be handed to it")
    dtype = ["model.dtype=float16"] if backend == "autoawq" else []
    result = run_cli("quantize", f"method={method}", f"model={model_dir}", f"method.backend={backend}", *dtype)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0], result.stderr[-2000:]


def test_every_backend_environment_has_a_requirements_file():
    for backend in available_backends().values():
        assert (REPO_ROOT / "requirements" / f"{backend.environment}.txt").is_file(), backend


@pytest.mark.parametrize("overrides, label, environment, artifact_format, loader", [
    (["method=none"], "none-float32", "main", "dense", "transformers"),
    (["method=rtn"], "rtn-w4a16-g128", "main", "compressed-tensors", "transformers"),
    (["method=gptq", "method.actorder=none", "quant.bits=3"], "gptq-w3a16-g128-aonone", "main", "compressed-tensors",
     "transformers"),
    (["method=gptq", "method.backend=gptqmodel"], "gptq-w4a16-g128-gptqmodel", "gptqmodel", "gptq", "gptqmodel"),
    (["method=awq"], "awq-w4a16-g128-asym", "main", "compressed-tensors", "transformers"),
    (["method=awq", "method.backend=gptqmodel", "model.dtype=bfloat16"], "awq-w4a16-g128-asym-gptqmodel", "gptqmodel",
     "awq-gemm", "gptqmodel"),
    (["method=awq", "method.backend=autoawq", "model.dtype=float16"], "awq-w4a16-g128-asym-autoawq", "legacy", "awq-gemm",
     "gptqmodel"),
    (["method=smoothquant"], "smoothquant-w8a8-a0.8", "main", "compressed-tensors", "transformers"),
    (["method=autoround"], "autoround-w4a16-g128-i200", "main", "compressed-tensors", "transformers"),
    (["method=hqq"], "hqq-w4a16-g64-ax1", "main", "hqq", "hqq"),
    (["method=bnb_nf4"], "bnb_nf4-dq-bfloat16", "main", "bitsandbytes", "transformers"),
    (["method=bnb_int8"], "bnb_int8-t6", "main", "bitsandbytes", "transformers"),
])
def test_each_method_and_backend_names_its_artifact_and_says_where_it_runs(overrides, label, environment,
                                                                            artifact_format, loader):
    """The label names artifact folders and the description goes into fingerprints: both
    as they were before methods held backend objects, so existing artifacts are reused."""
    job = compose("quantize", ["model=tiny-s", *overrides])
    method = build_method(job.method, job.quant, job.model.dtype)
    described = method.describe()
    assert method.label() == label
    assert (described["environment"], described["artifact_format"], described["loader"]) == (environment, artifact_format,
                                                                                            loader)
    assert ("load_environment" in described) == (overrides[-1:] == ["model.dtype=float16"])  # AutoAWQ's: made in legacy
