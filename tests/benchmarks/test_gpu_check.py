"""benchmarks.gpu_check: the bandwidth-bound helpers, the CPU plan's skip reasons, and a
CPU run in its small mode (tiny-s, a few methods) whose JSON is checked."""

from __future__ import annotations

import json

import pytest

from benchmarks import gpu_check
from tests.conftest import run_cli


def test_peak_bandwidth_by_device_name():
    assert gpu_check.peak_bandwidth("NVIDIA H100 80GB HBM3") == 3.35e12
    assert gpu_check.peak_bandwidth("NVIDIA H100 PCIe") == 2.0e12
    assert gpu_check.peak_bandwidth("NVIDIA H200") == 4.8e12
    assert gpu_check.peak_bandwidth("Some future GPU") is None


def test_bandwidth_bound_and_ratio():
    # 1 GB of weights read per step at 2 TB/s: 2000 steps/s, one token per sequence per step
    assert gpu_check.bandwidth_bound(1e9, 2e12) == pytest.approx(2000.0)
    assert gpu_check.bandwidth_bound(1e9, 2e12, batch_size=32) == pytest.approx(64000.0)
    assert gpu_check.bandwidth_bound(1e9, None) is None
    assert gpu_check.bandwidth_bound(0, 2e12) is None
    speed = {"by_batch": {"1": {"decode_tokens_per_s": 1000.0}, "32": {"decode_tokens_per_s": 16000.0}}}
    ratios = gpu_check.bound_ratios(speed, 1e9, {"data_sheet": 2e12})
    assert ratios["1"]["data_sheet"]["ratio"] == pytest.approx(0.5)
    assert ratios["32"]["data_sheet"]["ratio"] == pytest.approx(0.25)


def test_weight_bytes_per_token_counts_the_embedding_only_when_tied():
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    def model(tied):
        config = Qwen3Config(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                             num_attention_heads=2, num_key_value_heads=1, head_dim=8, tie_word_embeddings=tied)
        return Qwen3ForCausalLM(config).to(torch.float32)

    untied, tied = gpu_check.weight_bytes_per_token(model(False)), gpu_check.weight_bytes_per_token(model(True))
    embedding = 64 * 16 * 4
    assert untied["embedding_bytes"] == tied["embedding_bytes"] == embedding
    assert untied["bytes_per_token"] == untied["all_weights_bytes"] - embedding
    assert tied["tied_embeddings"] and tied["bytes_per_token"] == tied["all_weights_bytes"]
    assert untied["all_weights_bytes"] == tied["all_weights_bytes"] + embedding  # the head is its own matrix


def test_plan_without_cuda_keeps_the_tiny_subset_and_says_why():
    cells, skipped = gpu_check.plan([*gpu_check.ARCHITECTURES, *gpu_check.TINY], list(gpu_check.METHODS),
                                    cuda=False, small=True)
    assert cells == [("tiny-s", m) for m in gpu_check.CPU_METHODS]
    reasons = " ".join(s["what"] + " " + s["reason"] for s in skipped)
    assert "qwen3-0.6b-shape" in reasons and "qwen2.5-3b-shape" in reasons and "no CUDA" in reasons
    assert "gptq" in reasons and "tiny-m" in reasons
    cells, skipped = gpu_check.plan(["qwen3-0.6b-shape", "tiny-s"], ["none", "awq"], cuda=True, small=False)
    assert cells == [("qwen3-0.6b-shape", "none"), ("qwen3-0.6b-shape", "awq"), ("tiny-s", "none"), ("tiny-s", "awq")]
    assert skipped == []


@pytest.mark.slow
def test_cpu_small_mode_writes_the_json_and_prints_the_skips(tmp_path, tiny_family):
    out = tmp_path / "gpu_check.json"
    result = run_cli("benchmarks.gpu_check", "--device", "cpu", "--small", "--methods", "none,rtn,gptq",
                     "--models", "qwen3-0.6b-shape,tiny-s,tiny-m", "--out", str(out), timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "CUDA PARTS SKIPPED" in result.stderr and "SKIPPED models qwen3-0.6b-shape" in result.stderr
    data = json.loads(out.read_text())
    assert data["device"] == "cpu" and data["small"] is True and data["gpu"] is None
    assert {"machine", "settings", "bandwidth_bytes_per_s", "skipped", "models", "cells"} <= set(data)
    whats = " ".join(s["what"] for s in data["skipped"])
    assert "everything on CUDA" in whats and "qwen3-0.6b-shape" in whats and "gptq" in whats and "tiny-m" in whats
    assert all(s["reason"] for s in data["skipped"])
    assert [(c["model"], c["method"]) for c in data["cells"]] == [("tiny-s", "none"), ("tiny-s", "rtn")]
    for cell in data["cells"]:
        assert cell["status"] == "ok", cell.get("error")
        assert cell["quantize"]["timing"]["total_seconds"] > 0
        assert cell["weights"]["bytes_per_token"] > 0
        assert set(cell["speed"]["by_batch"]) == {"1", "4"}
        for batch, row in cell["speed"]["by_batch"].items():
            assert row["decode_tokens_per_s"] > 0 and row["time_to_first_token_s"] > 0
            assert row["latency_per_prompt_s"] > 0
            bound = cell["bandwidth_bound"][batch]["measured_copy"]
            assert bound["bound_tokens_per_s"] > 0 and 0 < bound["ratio"]
    assert data["bandwidth_bytes_per_s"]["measured_copy"] > 0 and "data_sheet" not in data["bandwidth_bytes_per_s"]
