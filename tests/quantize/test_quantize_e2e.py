"""`python -m quantize` end to end on the quick tiny family: none and RTN, as a user runs it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from configs.compose import compose
from common.storage import read_manifest
from quantize.pipeline import plan
from tests.conftest import REPO_ROOT, TINY_QUICK, run_cli

pytestmark = pytest.mark.slow


def quantize(output_dir: Path, *overrides: str) -> Path:
    result = run_cli("quantize", *overrides, *TINY_QUICK, f"output_dir={output_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    folder = Path(result.stdout.strip().splitlines()[-1])
    assert read_manifest(folder) is not None
    return folder


@pytest.fixture(scope="module")
def out(tmp_path_factory, tiny_family):
    return tmp_path_factory.mktemp("artifacts")


@pytest.fixture(scope="module")
def baseline(out):
    return quantize(out, "method=none", "model=tiny-s")


@pytest.fixture(scope="module")
def rtn_w4(out):
    return quantize(out, "method=rtn", "model=tiny-s", "quant.bits=4", "quant.group_size=32")


def reload_and_generate(folder: Path) -> list[int]:
    """Plain transformers, in a fresh process: what a user of the artifact does."""
    script = textwrap.dedent(
        f"""
        import json, torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        model = AutoModelForCausalLM.from_pretrained({str(folder)!r})
        tokenizer = AutoTokenizer.from_pretrained({str(folder)!r})
        ids = tokenizer("What is 2 + 3?", return_tensors="pt").input_ids
        out = model.generate(ids, max_new_tokens=5, do_sample=False)
        print(json.dumps(out[0, ids.shape[1]:].tolist()))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_baseline_and_rtn_reload_in_a_fresh_process_and_generate(baseline, rtn_w4):
    for folder in (baseline, rtn_w4):
        assert len(reload_and_generate(folder)) >= 1


def test_rtn_w4_weights_have_at_most_16_levels_per_group(rtn_w4):
    from transformers import AutoModelForCausalLM
    from transformers.utils.quantization_config import CompressedTensorsConfig

    with safe_open(str(rtn_w4 / "model.safetensors"), "pt") as weights:
        packed = [k for k in weights.keys() if k.endswith("weight_packed")]
        assert packed and all(weights.get_tensor(k).dtype == torch.int32 for k in packed)
    model = AutoModelForCausalLM.from_pretrained(rtn_w4, quantization_config=CompressedTensorsConfig(run_compressed=False))
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and n != "lm_head"]
    assert len(linears) == len(packed)
    for name, linear in linears:
        groups = linear.weight.detach().reshape(-1, 32)
        levels = torch.tensor([len(torch.unique(g)) for g in groups])
        assert levels.max() <= 16, name
        assert levels.float().mean() > 4, f"{name}: suspiciously few levels, weights collapsed?"


def test_rtn_w4_is_smaller_on_disk_than_the_baseline(baseline, rtn_w4):
    ratio = read_manifest(rtn_w4)["size_on_disk_bytes"] / read_manifest(baseline)["size_on_disk_bytes"]
    assert ratio < 0.9


def test_manifest_records_what_produced_the_artifact(rtn_w4):
    manifest = read_manifest(rtn_w4)
    assert manifest["method"]["name"] == "rtn" and manifest["quant"]["bits"] == 4
    assert manifest["label"] == "rtn-w4a16-g32"
    assert rtn_w4.name.startswith("rtn-w4a16-g32-") and manifest["fingerprint"].startswith(rtn_w4.name.rsplit("-", 1)[1])
    assert {"torch", "transformers", "llmcompressor"} <= set(manifest["versions"])
    assert "commit" in manifest["git"]
    assert manifest["timing"]["total_seconds"] > 0
    assert manifest["peak_memory"]["cpu_rss_bytes"] > 10_000_000
    assert manifest["model"]["num_parameters"] > 0
    assert manifest["config"]["model"]["tiny_size"] == "tiny-s"


def test_second_identical_run_reuses_the_artifact(out, rtn_w4):
    before = (rtn_w4 / "manifest.json").stat().st_mtime_ns
    again = quantize(out, "method=rtn", "model=tiny-s", "quant.bits=4", "quant.group_size=32")
    assert again == rtn_w4
    assert (rtn_w4 / "manifest.json").stat().st_mtime_ns == before


def test_different_settings_give_a_different_artifact(out, rtn_w4):
    w8 = quantize(out, "method=rtn", "model=tiny-s", "quant.bits=8", "quant.group_size=-1")
    assert w8 != rtn_w4 and read_manifest(w8)["label"] == "rtn-w8a16-ch"


@pytest.mark.parametrize("bits, group", [(8, -1), (4, 128)])
def test_every_tiny_model_quantizes(out, tiny_family, bits, group):
    from models.tiny import SIZES

    for size in SIZES:
        folder = quantize(out, "method=rtn", f"model={size}", f"quant.bits={bits}", f"quant.group_size={group}")
        assert read_manifest(folder)["model"]["name"] == size
        baseline = quantize(out, "method=none", f"model={size}")
        assert read_manifest(baseline)["weight_bits"] in (16, 32)


def test_local_folder_is_a_model_source(tmp_path, tiny_family):
    source = tiny_family.model_path("tiny-s")
    folder = quantize(tmp_path, "method=rtn", f"model={source}", "quant.bits=8", "quant.group_size=-1")
    assert folder.parent.name == source.name
    assert read_manifest(folder)["model"]["path"] == str(source)
    assert len(reload_and_generate(folder)) >= 1


@pytest.mark.parametrize("kill_after", [0.5, 2.0, 4.0, 6.0])
def test_killed_run_never_leaves_a_half_written_artifact(tmp_path, tiny_family, kill_after):
    settings = ["method=rtn", "model=tiny-m", "quant.bits=4", "quant.group_size=64"]
    overrides = [*settings, *TINY_QUICK, f"output_dir={tmp_path}"]
    final = plan(compose("quantize", overrides)).folder
    process = subprocess.Popen([sys.executable, "-m", "quantize", *overrides], cwd=REPO_ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(kill_after)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not final.exists() or read_manifest(final) is not None
    finished = quantize(tmp_path, *settings)
    assert finished == final
    assert [p.name for p in final.parent.iterdir()] == [final.name]  # dead staging removed
