"""The dry run's estimates (quantize.estimate), without any weight: parameter counts against
the registry, sizes that follow the settings, settings that do not fit, and the dry runs of
`python -m quantize` and of the real-model sweeps. Estimates against measured artifacts and
peaks: tests/quantize/test_miniature_matrix.py (every method x family)."""

from __future__ import annotations

import json
import re

import pytest

from configs.compose import compose, group_choices
from quantize.estimate import DTYPE_BYTES, UnknownArchitecture, estimate, gguf_tensor_type, size_text
from quantize.methods.base import build_method
from tests.conftest import TINY_QUICK, run_cli

SIZE = r"[\d.]+ [KMG]B"  # size_text: 3 significant figures, KB/MB/GB
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
    estimates = re.findall(rf"\d[\d.]*B params, quantize ~{SIZE}, evaluate ~{SIZE} .*disk ~{SIZE}", result.stdout)
    assert cells > 0 and len(estimates) == cells, result.stdout[-3000:]
    assert not any((tmp_path / name).exists() for name in ("a", "r", "s"))  # nothing written, nothing downloaded


def test_sizes_are_printed_in_human_units_to_three_significant_figures():
    assert [size_text(n) for n in (0, 1000, 526_528, 1_390_464, 547_608_330, 16_320_875_724, 152_471_339_008)] == [
        "0 KB", "0.977 KB", "514 KB", "1.33 MB", "522 MB", "15.2 GB", "142 GB"]
    assert size_text(1023.9 * 1024**2) == "1 GB"  # never "1.02e+03 MB"


def test_a_tiny_models_dry_run_shows_kb_and_mb_not_zero_gb(tmp_path):
    result = run_cli("quantize", "model=tiny-s", *TINY_QUICK, "method=rtn", "quant.bits=4",
                     f"output_dir={tmp_path / 'out'}", "--dry-run")
    assert result.returncode == 0, result.stderr[-2000:]
    first = result.stdout.splitlines()[0]
    assert "0.00 GB" not in first and re.search(r"disk ~[\d.]+ (KB|MB)\b", first), first
    assert re.search(rf"quantize ~{SIZE}, evaluate ~{SIZE} \(\+{SIZE}/{SIZE} on a CPU\)", first), first


def test_a_gguf_levels_size_follows_llama_cpps_tensor_types():
    """Per tensor as llama.cpp's quantizer chooses: the level's type, Q6_K for the output
    matrix, the mixes' extra bits for attn_v/attn_output/ffn_down in some layers, another
    type where rows are not a multiple of 256 (written files: the miniature matrix)."""
    assert gguf_tensor_type("Q4_K_M", "q_proj", 2048, 5, 16) == "Q4_K"
    assert gguf_tensor_type("Q4_K_M", "output", 2048, 0, 16) == "Q6_K"
    assert gguf_tensor_type("Q4_K_M", "output", 896, 0, 24) == "Q8_0"  # Qwen2.5-0.5B's rows of 896
    assert gguf_tensor_type("Q4_K_M", "q_proj", 896, 5, 24) == "Q5_0"
    assert [gguf_tensor_type("Q4_K_M", "down_proj", 8192, i, 16) for i in (0, 1, 2, 4, 14)] == [
        "Q6_K", "Q6_K", "Q4_K", "Q6_K", "Q6_K"]
    assert gguf_tensor_type("Q8_0", "output", 2048, 0, 16) == "Q8_0"
    assert gguf_tensor_type("BF16", "q_proj", 896, 0, 24) == "BF16"
    # bartowski/Meta-Llama-3-8B-Instruct-GGUF's files (GB = 1e9 bytes; its README's table, as
    # copied in YinanWusoymilk/hf-readme): the shapes of Llama-3.1-8B, made by llama.cpp
    published = {"Q8_0": 8.54, "Q6_K": 6.59, "Q5_K_M": 5.73, "Q5_K_S": 5.59, "Q4_K_M": 4.92, "Q4_K_S": 4.69,
                 "Q3_K_L": 4.32, "Q3_K_M": 4.01, "Q3_K_S": 3.66, "Q2_K": 3.17}
    for level, size in published.items():
        found = estimate_for("model=llama3.1-8b", "method=gguf", f"quant.type={level}")
        assert found.disk_bytes / 1e9 == pytest.approx(size, rel=0.01), level
