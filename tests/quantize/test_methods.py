"""Every method on small models, with the real libraries: weights really quantized, the
expected size on disk, reload in a fresh process through `models.loading.load_model` and
generate, same seed -> identical weights, and a manifest that says what happened.

Models: the quick tiny family when `models.tiny` is importable, else random-init Qwen3
checkpoints of the same shapes (built here in a second); formats and levels do not
depend on what the weights learned.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from configs.compose import compose
from common.storage import read_manifest
from quantize.pipeline import quantize_job
from tests.calibration.fixtures import build_random_checkpoint
from tests.conftest import REPO_ROOT, TINY_QUICK

pytestmark = pytest.mark.slow

# id: (overrides, bits, group size along the input dim; -1 = a whole row)
VARIANTS = {
    "gptq-w4-g32": (["method=gptq", "quant.bits=4", "quant.group_size=32"], 4, 32),
    "gptq-w3-g64-noactorder": (["method=gptq", "quant.bits=3", "quant.group_size=64", "method.actorder=none"], 3, 64),
    "awq-w4-g64-asym": (["method=awq", "quant.group_size=64"], 4, 64),
    "smoothquant-w8a8": (["method=smoothquant"], 8, -1),
    "autoround-w4-g128": (["method=autoround", "method.iters=5", "method.batch_size=4"], 4, 128),
    "hqq-w4-g64": (["method=hqq"], 4, 64),
    "hqq-w2-g32": (["method=hqq", "quant.bits=2", "quant.group_size=32"], 2, 32),
    "bnb_int8": (["method=bnb_int8"], 8, -1),
    "bnb_nf4": (["method=bnb_nf4"], 4, 64),
    "bnb_fp4": (["method=bnb_fp4", "method.double_quant=false"], 4, 64),
}
CALIBRATION = ["calibration.num_samples=16", "calibration.seq_len=64"]
NEW_TOKENS = 4


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, list[str]]:
    """Model name -> the overrides selecting it."""
    try:
        from models.tiny import ensure_built  # noqa: F401
    except ImportError:
        root = tmp_path_factory.mktemp("models")
        return {f"random-h{h}": [f"model={build_random_checkpoint(root / f'random-h{h}', hidden=h)}"] for h in (128, 256)}
    from models.tiny import SIZES, ensure_built

    family = ensure_built(profile="quick")
    return {size: [f"model={size}", *TINY_QUICK] for size in SIZES if Path(family.model_path(size)).is_dir()}


@pytest.fixture(scope="module")
def calibration_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("calibration") / "calibration.txt"
    path.write_text("".join(f"Problem {i}: what is {i} plus {i + 3}? The answer is \\boxed{{{2 * i + 3}}}.\n" for i in range(64)))
    return path


def run(output_dir: Path, model: list[str], variant: list[str], calibration_file: Path) -> Path:
    job = compose("quantize", [*model, *variant, f"output_dir={output_dir}", "threads=1",
                               f"calibration.source=file:{calibration_file}", *CALIBRATION])
    return quantize_job(job)


@pytest.fixture(scope="module")
def artifacts(models, calibration_file, tmp_path_factory) -> dict[tuple[str, str], Path]:
    """(model, variant id) -> artifact folder; variant "none" is the baseline."""
    out = tmp_path_factory.mktemp("artifacts")
    built = {}
    for model, selection in models.items():
        built[model, "none"] = run(out, selection, ["method=none"], calibration_file)
        for variant, (overrides, _, _) in VARIANTS.items():
            built[model, variant] = run(out, selection, overrides, calibration_file)
    return built


@pytest.fixture(scope="module")
def inspected(artifacts) -> dict[str, dict]:
    """Each artifact reloaded in ONE fresh process through the lab's loading function:
    tokens generated, and per quantized linear layer its storage dtype and the largest
    number of distinct dequantized values in one group."""
    script = textwrap.dedent(
        f"""
        import json, sys, torch
        from models.loading import load_model

        def max_levels(weight, group):
            rows = weight.float().reshape(-1, weight.shape[-1] if group == -1 else group)
            ordered = rows.sort(dim=1).values
            return int((1 + (ordered[:, 1:] != ordered[:, :-1]).sum(dim=1)).max())

        report = {{}}
        for folder, group in json.loads(sys.argv[1]):
            model, tokenizer = load_model(folder, device="cpu")
            ids = tokenizer("Problem 3: what is", return_tensors="pt").input_ids
            out = model.generate(ids, max_new_tokens={NEW_TOKENS}, min_new_tokens={NEW_TOKENS}, do_sample=False)
            layers = {{}}
            for name, module in model.named_modules():
                kind = type(module).__name__
                if name.endswith("lm_head") or kind not in ("Linear", "HQQLinear", "Linear4bit", "Linear8bitLt"):
                    continue
                if kind == "HQQLinear":
                    weight, levels_group = module.dequantize(), group
                elif kind == "Linear4bit":
                    import bitsandbytes.functional as F
                    weight, levels_group = F.dequantize_4bit(module.weight.data, module.weight.quant_state), 64
                else:
                    weight, levels_group = module.weight.data, group
                layers[name] = {{"kind": kind, "dtype": str(module.weight.dtype).replace("torch.", ""),
                                 "levels": max_levels(weight, levels_group)}}
            eos = model.generation_config.eos_token_id
            report[folder] = {{"new_tokens": out.shape[1] - ids.shape[1], "layers": layers,
                               "eos": sorted(eos if isinstance(eos, list) else [eos])}}
        print("REPORT" + json.dumps(report))
        """
    )
    todo = [[str(folder), VARIANTS[variant][2] if variant in VARIANTS else -1] for (_, variant), folder in artifacts.items()]
    result = subprocess.run(
        [sys.executable, "-c", script, json.dumps(todo)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
        env={**__import__("os").environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr[-4000:]
    line = next(l for l in result.stdout.splitlines() if l.startswith("REPORT"))
    return json.loads(line[len("REPORT"):])


def each(artifacts, variant):
    return [(model, folder) for (model, v), folder in artifacts.items() if v == variant]


@pytest.mark.parametrize("variant", VARIANTS)
def test_artifact_reloads_in_a_fresh_process_and_generates(artifacts, inspected, variant):
    for model, folder in each(artifacts, variant):
        assert inspected[str(folder)]["new_tokens"] == NEW_TOKENS, model
        # generation must stop where the source model's does (a chat model's end of turn)
        assert inspected[str(folder)]["eos"] == inspected[str(artifacts[model, "none"])]["eos"], model


@pytest.mark.parametrize("variant", VARIANTS)
def test_weights_are_really_quantized(artifacts, inspected, variant):
    _, bits, _ = VARIANTS[variant]
    expected_kind = {"hqq": "HQQLinear", "bnb_int8": "Linear8bitLt", "bnb_nf4": "Linear4bit", "bnb_fp4": "Linear4bit"}
    expected_dtype = {"bnb_int8": "int8", "bnb_nf4": "uint8", "bnb_fp4": "uint8"}
    method = variant.split("-")[0]
    for model, folder in each(artifacts, variant):
        layers = inspected[str(folder)]["layers"]
        decoder_layers = json.loads((folder / "config.json").read_text())["num_hidden_layers"]
        assert len(layers) == 7 * decoder_layers, f"{model}: expected every decoder linear layer, got {sorted(layers)}"
        for name, layer in layers.items():
            assert layer["kind"] == expected_kind.get(method, "Linear"), (model, name, layer)
            if method in expected_dtype:  # the packed storage dtype, as loaded
                assert layer["dtype"] == expected_dtype[method], (model, name, layer)
            if method != "bnb_int8":  # int8 storage bounds it to 256 levels by construction
                assert 1 < layer["levels"] <= 2**bits, (model, name, layer)
    baseline = next(folder for (m, v), folder in artifacts.items() if v == "none")
    # float weights: nearly every value of a row is distinct (every model here has rows of >= 128 values)
    assert max(layer["levels"] for layer in inspected[str(baseline)]["layers"].values()) > 100


def linear_parameters(folder: Path) -> tuple[int, int]:
    """(parameters in the decoder's linear layers, their bytes) of a dense safetensors artifact."""
    from safetensors import safe_open

    count = size = 0
    for path in folder.glob("*.safetensors"):
        with safe_open(path, "pt") as handle:
            for name in handle.keys():
                if name.endswith("_proj.weight"):
                    tensor = handle.get_tensor(name)
                    count += tensor.numel()
                    size += tensor.numel() * tensor.element_size()
    return count, size


@pytest.mark.parametrize("variant", VARIANTS)
def test_size_on_disk_matches_the_bit_width(artifacts, variant):
    """Baseline minus its linear weights plus those weights at `bits` (packed into int32
    words where bits do not divide 32), plus per-group scales and zero points."""
    _, bits, group = VARIANTS[variant]
    for model, folder in each(artifacts, variant):
        baseline = artifacts[model, "none"]
        base_size = read_manifest(baseline)["size_on_disk_bytes"]
        count, dense_bytes = linear_parameters(baseline)
        packed_bits = 32 / (32 // bits)
        lower = base_size - dense_bytes + count * bits / 8
        upper = base_size - dense_bytes + count * packed_bits / 8 + count / (group if group > 0 else 128) * 8
        size = read_manifest(folder)["size_on_disk_bytes"]
        slack = 64 * 1024  # configs, tokenizer, format metadata
        assert lower - slack <= size <= upper + slack, (model, size, lower, upper, base_size)


@pytest.fixture(scope="module")
def second_run(models, calibration_file, tmp_path_factory) -> dict[str, Path]:
    """Every variant again on the first model, into another folder, same seed."""
    out = tmp_path_factory.mktemp("again")
    model = next(iter(models))
    return {variant: run(out, models[model], overrides, calibration_file) for variant, (overrides, _, _) in VARIANTS.items()}


def weight_tensors(folder: Path) -> dict[str, object]:
    from safetensors.torch import load_file

    tensors = {}
    for path in sorted(folder.glob("*.safetensors")):
        tensors.update({f"{path.name}:{k}": v for k, v in load_file(path).items()})
    if (folder / "qmodel.pt").is_file():  # the hqq library's format: {module: {key: tensor or meta}}
        for module, state in torch.load(folder / "qmodel.pt", weights_only=True).items():
            tensors.update({f"{module}.{key}": value for key, value in state.items()})
    return tensors


@pytest.mark.parametrize("variant", VARIANTS)
def test_same_seed_gives_identical_weights(artifacts, second_run, models, variant):
    first = weight_tensors(artifacts[next(iter(models)), variant])
    again = weight_tensors(second_run[variant])
    assert first and first.keys() == again.keys()
    for name, value in first.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, again[name]), name
        else:
            assert value == again[name], name


@pytest.mark.parametrize("variant", VARIANTS)
def test_manifest_says_how_to_load_and_what_was_done(artifacts, variant):
    for model, folder in each(artifacts, variant):
        manifest = read_manifest(folder)
        method = manifest["method"]
        assert method["loader"] == ("hqq" if variant.startswith("hqq") else "transformers")
        assert method["quantized_on_disk"] is True
        if method["needs_calibration"]:
            assert manifest["calibration"]["fingerprint"] and manifest["calibration"]["num_samples"] == 16
        else:
            assert manifest["calibration"] is None
        assert manifest["timing"]["total_seconds"] > 0 and manifest["peak_memory"]["cpu_rss_bytes"] > 0
