"""gpu_check: every method on CUDA, on real-architecture shapes and the tiny family.

    bash scripts/gpu_check.sh [args]              # sets up the CUDA environment, then runs this
    python -m benchmarks.gpu_check [--models ...] [--methods ...] [--device auto|cuda|cpu] [--small]

Models: Qwen3-0.6B, Qwen2.5-1.5B and Qwen2.5-3B *shapes* (their config.json values are
written below; no Hub access) with random bf16 weights, saved as ordinary checkpoint
folders with the tiny family's tokenizer, plus the tiny family (`--tiny-profile`).
For each (model, method) cell, through the lab itself (`quantize.pipeline.quantize_job`,
`models.loading.load_model`, `evaluate.speed.measure_speed`):
  - quantize time (the manifest's timing) and peak memory while quantizing
    (torch.cuda.max_memory_allocated; process max RSS on CPU),
  - time to first token, decode tokens/s, and latency per prompt at batch 1 and 32 with
    fixed prompt and new-token counts,
  - bytes of weights read per decoded token (every parameter and buffer of the loaded
    model, plus hqq's quantization metadata, less the input embedding unless it is tied
    to the output head) and the memory-bandwidth bound on decode throughput:
    batch x bandwidth / bytes per token; the ratio measured / bound (1.0 = at the bound).

Without CUDA (or with --device cpu) it still runs, on CPU, on a small subset (the tiny
family's tiny-s, methods none/rtn/hqq, short prompts) and prints which CUDA parts were
skipped and why, also recorded under "skipped" in the JSON. The JSON is rewritten after
every cell, so an interrupted run keeps what it measured.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Optional

from benchmarks.common import RESULTS_DIR, machine_info, ratio, write_result

NAME = "gpu_check"
METHODS = ("none", "rtn", "gptq", "awq", "smoothquant", "autoround", "hqq", "bnb_int8", "bnb_nf4", "bnb_fp4")
CPU_METHODS = ("none", "rtn", "hqq")
CALIBRATED = ("gptq", "awq", "smoothquant", "autoround")
TINY = ("tiny-s", "tiny-m", "tiny-l")
LIBRARY = {"rtn": "llmcompressor", "gptq": "llmcompressor", "awq": "llmcompressor", "smoothquant": "llmcompressor",
           "autoround": "auto_round", "hqq": "hqq", "bnb_int8": "bitsandbytes", "bnb_nf4": "bitsandbytes",
           "bnb_fp4": "bitsandbytes"}

# config.json values of the released checkpoints (architecture only; weights are random).
ARCHITECTURES = {
    "qwen3-0.6b-shape": {
        "model_type": "qwen3", "architectures": ["Qwen3ForCausalLM"], "hidden_size": 1024,
        "intermediate_size": 3072, "num_hidden_layers": 28, "num_attention_heads": 16, "num_key_value_heads": 8,
        "head_dim": 128, "vocab_size": 151936, "max_position_embeddings": 40960, "rope_theta": 1000000,
        "rms_norm_eps": 1e-6, "hidden_act": "silu", "attention_bias": False, "tie_word_embeddings": True,
        "bos_token_id": 151643, "eos_token_id": 151643,
    },
    "qwen2.5-1.5b-shape": {
        "model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "hidden_size": 1536,
        "intermediate_size": 8960, "num_hidden_layers": 28, "num_attention_heads": 12, "num_key_value_heads": 2,
        "vocab_size": 151936, "max_position_embeddings": 32768, "rope_theta": 1000000.0, "rms_norm_eps": 1e-6,
        "hidden_act": "silu", "tie_word_embeddings": True, "sliding_window": 32768, "use_sliding_window": False,
        "bos_token_id": 151643, "eos_token_id": 151645,
    },
    "qwen2.5-3b-shape": {
        "model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "hidden_size": 2048,
        "intermediate_size": 11008, "num_hidden_layers": 36, "num_attention_heads": 16, "num_key_value_heads": 2,
        "vocab_size": 151936, "max_position_embeddings": 32768, "rope_theta": 1000000.0, "rms_norm_eps": 1e-6,
        "hidden_act": "silu", "tie_word_embeddings": True, "sliding_window": 32768, "use_sliding_window": False,
        "bos_token_id": 151643, "eos_token_id": 151645,
    },
}

# Peak memory bandwidth from the vendors' data sheets, bytes/s (matched on the device name).
PEAK_BANDWIDTH = (
    ("H200", 4.8e12), ("H100 NVL", 3.9e12), ("H100 PCIe", 2.0e12), ("H100", 3.35e12), ("GH200", 4.0e12),
    ("A100-SXM4-80GB", 2.039e12), ("A100 80GB PCIe", 1.935e12), ("A100", 1.555e12), ("L40S", 8.64e11),
    ("L40", 8.64e11), ("L4", 3.0e11), ("A10G", 6.0e11), ("A10", 6.0e11), ("RTX 4090", 1.008e12),
    ("RTX 3090", 9.36e11), ("V100", 9.0e11), ("T4", 3.2e11),
)


# -- pure helpers (unit-tested) ----------------------------------------------------------
def peak_bandwidth(device_name: str) -> Optional[float]:
    """The data-sheet bandwidth of a GPU by name, or None if unknown."""
    for key, value in PEAK_BANDWIDTH:
        if key.lower() in device_name.lower():
            return value
    return None


def bandwidth_bound(bytes_per_token: float, bandwidth: Optional[float], batch_size: int = 1) -> Optional[float]:
    """Decode tokens/s if every step only had to read the weights once at `bandwidth`
    (bytes/s): one step reads the weights once and yields one token per sequence."""
    if not bandwidth or not bytes_per_token or bytes_per_token <= 0:
        return None
    return batch_size * bandwidth / bytes_per_token


def bound_ratios(speed: dict, bytes_per_token: float, bandwidths: dict) -> dict:
    """Per batch size: measured decode tokens/s over the bound, for each known bandwidth."""
    out = {}
    for batch, row in speed.get("by_batch", {}).items():
        entry = {}
        for name, bandwidth in bandwidths.items():
            bound = bandwidth_bound(bytes_per_token, bandwidth, int(batch))
            entry[name] = {"bound_tokens_per_s": bound, "ratio": ratio(row["decode_tokens_per_s"], bound) if bound else None}
        out[batch] = entry
    return out


def plan(models: list[str], methods: list[str], cuda: bool, small: bool) -> tuple[list[tuple[str, str]], list[dict]]:
    """The (model, method) cells to run and the skipped parts with their reasons."""
    skipped = []
    if not cuda:
        arch = [m for m in models if m in ARCHITECTURES]
        if arch:
            skipped.append({"what": f"models {', '.join(arch)} (real-architecture shapes)",
                            "reason": "no CUDA: these run only on a GPU (random-weight 0.6B-3B models on 2 CPU cores "
                                      "would take hours and measure nothing about the CUDA path)"})
        models = [m for m in models if m not in ARCHITECTURES]
        if small:
            extra = [m for m in models if m != "tiny-s"]
            if extra:
                skipped.append({"what": f"models {', '.join(extra)}", "reason": "no CUDA: CPU subset is tiny-s only"})
            models = [m for m in models if m == "tiny-s"]
            cpu_skip = [m for m in methods if m not in CPU_METHODS]
            if cpu_skip:
                skipped.append({"what": f"methods {', '.join(cpu_skip)}",
                                "reason": f"no CUDA: CPU subset is methods {', '.join(CPU_METHODS)}"})
            methods = [m for m in methods if m in CPU_METHODS]
        skipped.append({"what": "CUDA quantize time, peak VRAM, CUDA decode speed", "reason": "no CUDA device: "
                        "measured on CPU instead (process max RSS, CPU speed)"})
        skipped.append({"what": "data-sheet GPU bandwidth bound", "reason": "no CUDA device: only the measured "
                        "host memory-copy bandwidth is used for the bound"})
    return [(model, method) for model in models for method in methods], skipped


def missing_libraries(methods: list[str]) -> dict[str, str]:
    """method -> the library it needs that is not installed here."""
    import importlib.util

    return {m: LIBRARY[m] for m in methods if m in LIBRARY and importlib.util.find_spec(LIBRARY[m]) is None}


def weight_bytes_per_token(model) -> dict:
    """Bytes of weights one decode step reads: all parameters and buffers (each once),
    plus hqq's per-layer metadata tensors, less the input embedding when it is not the
    output head's weight (a lookup reads one row of it)."""
    import torch

    seen, total = set(), 0
    for tensor in list(model.parameters()) + list(model.buffers()):
        if tensor.data_ptr() in seen:
            continue
        seen.add(tensor.data_ptr())
        total += tensor.numel() * tensor.element_size()
    for module in model.modules():
        meta = getattr(module, "meta", None)
        if isinstance(meta, dict):
            for value in meta.values():
                if isinstance(value, torch.Tensor) and value.data_ptr() not in seen:
                    seen.add(value.data_ptr())
                    total += value.numel() * value.element_size()
    embedding = model.get_input_embeddings().weight
    head = model.get_output_embeddings()
    tied = head is not None and getattr(head, "weight", None) is not None and head.weight.data_ptr() == embedding.data_ptr()
    embedding_bytes = embedding.numel() * embedding.element_size()
    return {"all_weights_bytes": total, "embedding_bytes": embedding_bytes, "tied_embeddings": tied,
            "bytes_per_token": total if tied else total - embedding_bytes}


# -- measurement -----------------------------------------------------------------------
def measured_copy_bandwidth(device: str, megabytes: int) -> float:
    """Bytes/s of a device-to-device copy, counting bytes read and written."""
    import torch

    n = megabytes * 1024 * 1024 // 4
    x = torch.empty(n, dtype=torch.float32, device=device).fill_(1.0)
    y = torch.empty_like(x)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    y.copy_(x)
    sync()
    times = []
    for _ in range(5):
        start = time.perf_counter()
        y.copy_(x)
        sync()
        times.append(time.perf_counter() - start)
    del x, y
    return 2 * n * 4 / sorted(times)[len(times) // 2]


def build_arch_model(name: str, folder: Path, tokenizer_dir: Path, device: str, seed: int) -> dict:
    """A random-weight checkpoint folder of the named architecture (made once per run)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    settings = dict(ARCHITECTURES[name])
    config = AutoConfig.for_model(settings.pop("model_type"), **settings)
    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(folder)
    params = sum(p.numel() for p in model.parameters())
    del model
    return {"source": "random init", "config": ARCHITECTURES[name], "num_parameters": params, "dtype": "bfloat16"}


def quantize_overrides(model: str, method: str, model_dirs: dict, args, device: str) -> list[str]:
    overrides = [f"method={method}", f"device={device}", f"output_dir={args.work / 'artifacts'}",
                 f"model.tiny_profile={args.tiny_profile}"]
    overrides.append(f"model={model}" if model in TINY else f"model={model_dirs[model]}")
    if method in CALIBRATED:
        overrides += ["calibration=tiny", f"calibration.num_samples={args.calib_samples}",
                      f"calibration.seq_len={args.calib_seq_len}"]
    if method == "autoround":
        overrides.append(f"method.iters={args.autoround_iters}")
    return overrides


def run_cell(model: str, method: str, model_dirs: dict, args, device: str, bandwidths: dict) -> dict:
    import torch

    # the lab's stack loads in the cell (the GPU image's environment is checked first)
    from common.storage import read_manifest
    from configs.compose import compose
    from evaluate.speed import measure_speed
    from models.loading import load_model
    from quantize.pipeline import quantize_job

    cell = {"model": model, "method": method, "status": "failed"}
    overrides = quantize_overrides(model, method, model_dirs, args, device)
    cell["overrides"] = overrides
    try:
        if device == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        folder = quantize_job(compose("quantize", overrides))
        manifest = read_manifest(folder)
        cell["label"] = manifest["label"]
        cell["quantize"] = {"timing": manifest["timing"], "size_on_disk_bytes": manifest["size_on_disk_bytes"]}
        if device == "cuda":
            cell["quantize"]["peak_vram_bytes"] = int(torch.cuda.max_memory_allocated())
        else:
            cell["quantize"]["process_max_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            cell["quantize"]["max_rss_grew"] = cell["quantize"]["process_max_rss_bytes"] > rss_before
        gc.collect()
        if device == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        loaded, tokenizer = load_model(folder, device=device)
        cell["load_seconds"] = round(time.perf_counter() - start, 3)
        weights = weight_bytes_per_token(loaded)
        speed = measure_speed(loaded, tokenizer, prompt_tokens=args.prompt_tokens, new_tokens=args.new_tokens,
                              batch_sizes=args.batch_sizes, warmup=1, repeats=args.repeats)
        cell["weights"] = weights
        cell["speed"] = speed
        cell["bandwidth_bound"] = bound_ratios(speed, weights["bytes_per_token"], bandwidths)
        cell["status"] = "ok"
        del loaded
    except Exception as error:  # noqa: BLE001 - one cell's failure is recorded, the rest go on
        cell["error"] = f"{type(error).__name__}: {str(error).strip()[:500]}"
        cell["traceback"] = traceback.format_exc()[-2000:]
    finally:
        gc.collect()
        if device == "cuda":
            torch.cuda.empty_cache()
    return cell


def print_skipped(skipped: list[dict]) -> None:
    if not skipped:
        return
    bar = "!" * 78
    print(f"\n{bar}\n!! gpu_check: CUDA PARTS SKIPPED ({len(skipped)})", file=sys.stderr)
    for item in skipped:
        print(f"!!   SKIPPED {item['what']}: {item['reason']}", file=sys.stderr)
    print(f"{bar}\n", file=sys.stderr, flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join([*ARCHITECTURES, *TINY]))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    parser.add_argument("--small", action="store_true", help="the CPU subset (implied without CUDA)")
    parser.add_argument("--tiny-profile", default="quick", help="tiny family build profile (quick: about a minute)")
    parser.add_argument("--prompt-tokens", type=int, default=None, help="default 128 (CUDA) / 8 (CPU)")
    parser.add_argument("--new-tokens", type=int, default=None, help="default 128 (CUDA) / 4 (CPU)")
    parser.add_argument("--batch-sizes", default=None, help="default 1,32 (CUDA) / 1,4 (CPU)")
    parser.add_argument("--repeats", type=int, default=None, help="default 3 (CUDA) / 1 (CPU)")
    parser.add_argument("--calib-samples", type=int, default=64)
    parser.add_argument("--calib-seq-len", type=int, default=256)
    parser.add_argument("--autoround-iters", type=int, default=50)
    parser.add_argument("--bandwidth-gbs", type=float, default=None, help="override the data-sheet bandwidth (GB/s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the work folder (models, artifacts)")
    parser.add_argument("--out", default=str(RESULTS_DIR / f"{NAME}.json"))
    args = parser.parse_args(argv)

    import torch

    from models import tiny  # after the arguments are parsed (--help answers at once)

    cuda_available = torch.cuda.is_available()
    device = ("cuda" if cuda_available else "cpu") if args.device == "auto" else args.device
    if device == "cuda" and not cuda_available:
        print("error: --device cuda but torch sees no CUDA device", file=sys.stderr)
        return 2
    cuda = device == "cuda"
    small = args.small or not cuda
    args.prompt_tokens = args.prompt_tokens or (128 if cuda else 8)
    args.new_tokens = args.new_tokens or (128 if cuda else 4)
    args.batch_sizes = [int(b) for b in (args.batch_sizes or ("1,32" if cuda else "1,4")).split(",")]
    args.repeats = args.repeats or (3 if cuda else 1)
    cells, skipped = plan(args.models.split(","), args.methods.split(","), cuda, small)
    missing = missing_libraries(sorted({m for _, m in cells}))
    for method, library in missing.items():
        skipped.append({"what": f"method {method}", "reason": f"its library {library} is not installed in this "
                        f"environment ({sys.executable}); carry its wheel (scripts/gpu_check.sh --download-wheels)"})
    cells = [(model, method) for model, method in cells if method not in missing]
    if not cuda_available:
        skipped.insert(0, {"what": "everything on CUDA", "reason": f"torch {torch.__version__} sees no CUDA device"})
    elif not cuda:
        skipped.insert(0, {"what": "everything on CUDA", "reason": "--device cpu was requested"})
    print_skipped(skipped)

    args.work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    family = tiny.ensure_built(profile=args.tiny_profile)
    bandwidths = {"measured_copy": measured_copy_bandwidth(device, 1024 if cuda else 256)}
    gpu_name = torch.cuda.get_device_name(0) if cuda else None
    if args.bandwidth_gbs:
        bandwidths["given"] = args.bandwidth_gbs * 1e9
    elif gpu_name and peak_bandwidth(gpu_name):
        bandwidths["data_sheet"] = peak_bandwidth(gpu_name)
    result = {
        "device": device, "gpu": gpu_name, "cuda_available": cuda_available, "small": small,
        "settings": {"prompt_tokens": args.prompt_tokens, "new_tokens": args.new_tokens,
                     "batch_sizes": args.batch_sizes, "repeats": args.repeats, "tiny_profile": args.tiny_profile,
                     "calib_samples": args.calib_samples, "calib_seq_len": args.calib_seq_len,
                     "autoround_iters": args.autoround_iters},
        "bandwidth_bytes_per_s": bandwidths,
        "skipped": skipped, "models": {}, "cells": [],
        "machine": machine_info(),
    }
    model_dirs: dict[str, Path] = {}
    try:
        for model in dict.fromkeys(m for m, _ in cells):
            if model in ARCHITECTURES:
                model_dirs[model] = args.work / "models" / model
                print(f"building {model} (random weights) ...", flush=True)
                result["models"][model] = build_arch_model(model, model_dirs[model], family.model_path("tiny-s"),
                                                           device, args.seed)
            else:
                result["models"][model] = {"source": f"tiny family ({args.tiny_profile})",
                                           "dir": str(family.model_path(model))}
        for model, method in cells:
            print(f"== {model} x {method} on {device}", flush=True)
            cell = run_cell(model, method, model_dirs, args, device, bandwidths)
            print(f"   {cell['status']}" + (f": {cell.get('error')}" if cell["status"] != "ok" else ""), flush=True)
            result["cells"].append(cell)
            write_result(NAME, result, Path(args.out))
    finally:
        if not args.keep:
            shutil.rmtree(args.work, ignore_errors=True)
    write_result(NAME, result, Path(args.out))
    print_skipped(skipped)  # again at the end, where it is seen
    failed = [c for c in result["cells"] if c["status"] != "ok"]
    print(f"gpu_check: {len(result['cells']) - len(failed)} cells ok, {len(failed)} failed" +
          "".join(f"\n  failed {c['model']} x {c['method']}: {c.get('error')}" for c in failed))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
