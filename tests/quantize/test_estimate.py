"""The dry run's estimates (quantize.estimate), without any weight: parameter counts against
the registry, sizes that follow the settings, settings that do not fit, and the dry runs of
`python -m quantize` and of the real-model sweeps. Estimates against measured artifacts and
peaks: tests/quantize/test_miniature_matrix.py (every method x family)."""

from __future__ import annotations

import json
import re

import pytest

from configs.compose import compose, group_choices
from quantize.estimate import DTYPE_BYTES, UnknownArchitecture, estimate
from quantize.methods.base import build_method
from tests.conftest import TINY_QUICK, run_cli

HUB_MODELS = [name for name in group_choices("model") if name != "local" and not name.startswith(("tiny", "mini"))]


def estimate_for(*overrides: str, **kwargs):
    job = compose("quantize", list(overrides))
    return estimate(job, build_method(job.method, job.quant, job.model.dtype), **kwargs)


@pytest.mark.parametrize("name", HUB_MODELS)
def test_the_parameter_count_from_the_registry_architecture_is_the_registered_size(name):
    job = compose("quantize", [f"model={name}"])
    found = estimate_for(f"model={name}", "method=rtn", "quant.bits=4")
    assert found.parameters / 1e9 == pytest.approx(job.model.params_b, rel=0.015)
    assert found.architecture_source.startswith(("the registry", "cached"))


def test_sizes_follow_the_settings():
    dense = estimate_for("model=qwen2.5-3b", "method=none")
    w8 = estimate_for("model=qwen2.5-3b", "method=rtn", "quant.bits=8", "quant.group_size=-1")
    w4 = estimate_for("model=qwen2.5-3b", "method=rtn", "quant.bits=4")
    assert dense.disk_bytes == dense.parameters * DTYPE_BYTES["bfloat16"]
    assert w4.disk_bytes < w8.disk_bytes < dense.disk_bytes
    # the embeddings (tied to lm_head) stay bfloat16, and say so
    assert any("lm_head, tied to the input embeddings, stays bfloat16" in note for note in w4.notes)
    calibrated = estimate_for("model=qwen2.5-3b", "method=gptq", "quant.bits=4")
    assert calibrated.quantize_peak_bytes > w4.quantize_peak_bytes  # activations and Hessians
    small_batch = estimate_for("model=qwen2.5-3b", "method=rtn", "quant.bits=4", eval_batch_size=1)
    assert small_batch.evaluate_peak_bytes < w4.evaluate_peak_bytes


def test_a_group_size_that_does_not_divide_a_dimension_is_said(tmp_path):
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "model_type": "llama", "hidden_size": 320, "intermediate_size": 640, "num_hidden_layers": 2,
        "num_attention_heads": 5, "num_key_value_heads": 5, "vocab_size": 1000}))
    found = estimate_for(f"model={folder}", "method=rtn", "quant.bits=4", "quant.group_size=128")
    assert any("does not fit: quant.group_size=128 does not divide hidden_size=320" in note for note in found.notes)
    assert not any("does not fit" in note for note in
                   estimate_for(f"model={folder}", "method=rtn", "quant.bits=4", "quant.group_size=64").notes)


def test_a_model_with_no_known_architecture_is_one_line(tmp_path):
    with pytest.raises(UnknownArchitecture, match="no estimate for model"):
        estimate_for("model=local", f"model.path={tmp_path}", "method=rtn")


def test_the_miniature_estimate_counts_the_built_model_exactly(tiny_family):
    from models.loading import load_model
    from models.sources import resolve_model_dir

    job = compose("quantize", ["model=mini-llama3", *TINY_QUICK])
    model, _ = load_model(resolve_model_dir(job.model), device="cpu")
    found = estimate_for("model=mini-llama3", *TINY_QUICK, "method=none")
    assert found.parameters == sum(p.numel() for p in model.parameters())
    assert found.architecture_source == "the registry, shrunk (miniature)"


def test_quantize_dry_run_prints_the_estimate_and_touches_nothing(tmp_path):
    result = run_cli("quantize", "model=qwen2.5-7b", "method=gptq", "quant.bits=4", f"output_dir={tmp_path / 'out'}",
                     "--dry-run")
    assert result.returncode == 0, result.stderr[-2000:]
    first = result.stdout.splitlines()[0]
    assert first.startswith("qwen2.5-7b gptq-w4a16-g128: 7.62B params, quantize ~")
    assert "lm_head stays bfloat16" in first  # Qwen2.5-7B's head is not tied
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("sweep", ["origin", pytest.param("size_ladder", marks=pytest.mark.slow)])  # 76 cells: ~1 min
def test_the_real_model_sweeps_dry_run_prints_every_cells_estimate(sweep, tmp_path):
    result = run_cli("evaluate", "sweep", f"sweep={sweep}", f"output_dir={tmp_path / 'a'}",
                     f"results_dir={tmp_path / 'r'}", f"sweeps_dir={tmp_path / 's'}", "--dry-run")
    assert result.returncode == 0, result.stderr[-2000:]
    cells = int(re.search(r"(\d+) cells", result.stdout).group(1))
    estimates = re.findall(r"\d[\d.]*B params, quantize ~[\d.]+ GB, evaluate ~[\d.]+ GB .*disk ~[\d.]+ GB",
                           result.stdout)
    assert cells > 0 and len(estimates) == cells, result.stdout[-3000:]
    assert not any((tmp_path / name).exists() for name in ("a", "r", "s"))  # nothing written, nothing downloaded
