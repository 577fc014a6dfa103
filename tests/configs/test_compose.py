"""Every shipped config composes and validates; every kind of bad input is one clear line."""

from __future__ import annotations

import json

import pytest

from configs.compose import compose, group_choices
from configs.errors import ConfigError
from quantize.methods.base import available_methods, build_method
from tests.conftest import run_cli


@pytest.mark.parametrize("model", [m for m in group_choices("model") if m != "local"])
@pytest.mark.parametrize("method", group_choices("method"))
def test_every_method_and_model_config_validates(method, model):
    job = compose("quantize", [f"method={method}", f"model={model}"])
    built = build_method(job.method, job.quant, job.model.dtype)
    assert built.name == method
    assert job.model.name == model


def test_every_method_yaml_has_a_registered_module_and_vice_versa():
    assert set(group_choices("method")) == set(available_methods())


def test_every_yaml_opens_with_a_comment():
    from configs.compose import CONFIG_DIR

    for path in CONFIG_DIR.rglob("*.yaml"):
        first = path.read_text().lstrip().splitlines()[0]
        assert first.startswith("#"), path


def test_calibration_file_shorthand_sets_the_source(tmp_path):
    data = tmp_path / "samples.txt"
    data.write_text("one sample\nanother sample\n")
    job = compose("quantize", ["method=gptq", f"calibration=file:{data}"])
    assert job.calibration.source == f"file:{data}"


def test_eval_seed_out_of_range_is_one_line():
    with pytest.raises(ConfigError, match=r"eval.seed=-1 must be between 0 and"):
        compose("evaluate_run", ["artifact=.", "eval=tiny", "eval.seed=-1"])


def test_thinking_needs_the_token_that_ends_it():
    assert compose("evaluate_run", ["artifact=.", "eval=tiny"]).eval.enable_thinking is False
    with pytest.raises(ConfigError, match=r"eval.enable_thinking=true needs eval.think_end_token"):
        compose("evaluate_run", ["artifact=.", "eval=tiny", "eval.enable_thinking=true", "eval.think_end_token="])


def test_thinking_is_refused_before_loading_for_tasks_that_score_log_likelihoods():
    from evaluate.harness import check_tasks

    job = compose("evaluate_run", ["artifact=.", "eval=tiny", "eval.tasks=[tiny_arc,tiny_arc_mc]", "eval.enable_thinking=true"])
    with pytest.raises(ConfigError, match=r"only with generation tasks; tiny_arc_mc score"):
        check_tasks(job.eval)
    check_tasks(compose("evaluate_run", ["artifact=.", "eval=tiny", "eval.enable_thinking=true"]).eval)  # perplexity is fine


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["method=awqq"], ["method='awqq'", "rtn"]),
        (["model=qwen9"], ["model='qwen9'", "qwen2.5-3b", "local checkpoint folder"]),
        (["model.dtype=int3"], ["model.dtype='int3'", "bfloat16"]),
        (["device=tpu"], ["device='tpu'", "cuda"]),
        (["quant.bitz=3"], ["quant.bitz", "bits, group_size, symmetric"]),
        (["quant.bits=four"], ["quant.bits", "four"]),
        (["model=/no/such/folder"], ["/no/such/folder", "no such folder"]),
        (["calibration.num_samples=0"], ["calibration.num_samples=0"]),
        (["model.tiny_size=tiny-xxl"], ["tiny-xxl", "tiny-s"]),
        (["seed=-3"], ["seed=-3", "between 0 and 4294967295"]),
        (["calibration.seed=4294967296"], ["calibration.seed=4294967296", "between 0"]),
        (["calibration=file:/no/such/file.txt"], ["calibration.source=file:/no/such/file.txt", "no such file"]),
    ],
)
def test_bad_settings_raise_one_line_naming_value_and_choices(overrides, expected):
    with pytest.raises(ConfigError) as error:
        compose("quantize", overrides)
    message = str(error.value)
    assert "\n" not in message
    for fragment in expected:
        assert fragment in message


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["method=rtn", "quant.bits=5"], ["quant.bits=5", "2, 3, 4, 8"]),
        (["method=rtn", "quant.group_size=48"], ["quant.group_size=48", "32, 64, 128, -1"]),
        (["method=rtn", "method.act_order=true"], ["method.act_order", "valid keys"]),
    ],
)
def test_method_rejects_settings_it_cannot_take(overrides, expected):
    with pytest.raises(ConfigError) as error:
        job = compose("quantize", overrides)
        build_method(job.method, job.quant, job.model.dtype)
    for fragment in expected:
        assert fragment in str(error.value)


def test_group_size_that_does_not_divide_model_dims_is_rejected_without_weights(tmp_path):
    """The folder holds only config.json: a check that loaded weights would crash instead."""
    from quantize.pipeline import plan

    config = {
        "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_size": 192,
        "intermediate_size": 384, "num_attention_heads": 3, "num_key_value_heads": 1,
        "head_dim": 64, "num_hidden_layers": 1, "vocab_size": 256,
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    job = compose("quantize", ["method=rtn", "quant.group_size=128", f"model={tmp_path}"])
    with pytest.raises(ConfigError, match="group_size=128 does not divide hidden_size=192"):
        plan(job)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["method=nope"], "method='nope'"),
        (["method=rtn", "quant.bits=7", "model=qwen2.5-3b"], "quant.bits=7"),
        (["model.dtype=fp8"], "model.dtype='fp8'"),
        (["quant.group_size=sixty"], "quant.group_size"),
        (["--bogus"], "'--bogus'"),
        (["quant.bits"], "key=value"),
        (["method=rtn", "model=tiny-s", "model.tiny_profile=quick", "threads=0"], "threads=0"),
        (["method=rtn", "model=tiny-s", "model.tiny_profile=quick", "output_dir=/proc/no/such/place"], "output_dir='/proc/no/such/place'"),
        pytest.param(["method=rtn", "model=tiny-s", "model.tiny_profile=quick", "device=cuda"], "no CUDA device is available here",
                     marks=pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")),
    ],
)
def test_cli_prints_one_error_line_and_exits_2(args, fragment):
    result = run_cli("quantize", *args, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and fragment in error_lines[0], result.stderr


def test_cli_help_lists_methods_and_models():
    result = run_cli("quantize", "--help", timeout=120)
    assert result.returncode == 0
    for name in [*available_methods(), "qwen2.5-3b", "llama3.2-1b", "tiny-s"]:
        assert name in result.stdout


def test_hub_model_without_network_says_how_to_predownload(tmp_path):
    result = run_cli("quantize", "model=qwen2.5-3b", f"output_dir={tmp_path}", env={"HF_HOME": str(tmp_path / "hf")}, timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "huggingface-cli download Qwen/Qwen2.5-3B-Instruct" in result.stderr


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_evaluate_subcommand_help_prints_usage(command):
    result = run_cli("evaluate", command, "--help", timeout=120)
    assert result.returncode == 0, result.stderr
    assert "--dry-run" in result.stdout and "artifact=<folder>" in result.stdout


@pytest.mark.parametrize("args, fragment", [(["sweep", "--bogus"], "'--bogus'"), (["frobnicate"], "'frobnicate'")])
def test_evaluate_cli_names_unknown_options_and_commands(args, fragment):
    result = run_cli("evaluate", *args, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and fragment in error_lines[0], result.stderr
