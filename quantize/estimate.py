"""What a quantize run and its evaluation will need, from the model's architecture alone.

`python -m quantize ... --dry-run` and `python -m evaluate sweep --dry-run` print it; no
weight is read, downloaded or built. The architecture is the model's config.json as far as
it is known here (`models.architecture`); a model with that config is built on torch's
meta device (shapes, no memory), which gives the exact parameter count and every linear
layer's shape. From those:

- size on disk: the layers the method leaves alone in the model's dtype, each quantized
  linear at its bit width (packed into 32-bit words as the formats store them) plus its
  per-group metadata (scale, zero point) as its format stores it; a GGUF level: every
  weight matrix at the llama.cpp type it gets (`gguf_tensor_type`: the level's type, the
  output matrix at Q6_K, the mixes' extra bits for attn_v/attn_output/ffn_down, a type
  without k-quant blocks where rows are not a multiple of 256), 1-D tensors F32, plus the
  file's tokenizer metadata;
- peak memory to quantize: the model in its load dtype, plus, for a calibrated method, the
  cached calibration activations of one layer boundary and one layer's working set (GPTQ's
  Hessians, AutoRound's float32 copy and gradients), plus the quantized copy written at save;
  bitsandbytes quantizes while loading, so it holds the quantized model and one dense tensor;
- peak memory to evaluate: the quantized model, the KV cache of a batch of `eval_batch_size`
  sequences of up to 2048 tokens, and the logits: one position per sequence when generating,
  every position of every window when the eval has a perplexity task (lm-eval scores rolling
  windows of 2048 tokens in batches: logits and their log-softmax in the model's dtype,
  which for a 150k-token vocabulary dwarf a small model);
- a GGUF artifact is evaluated dequantized by transformers (the model in its dtype) and
  timed in llama.cpp (the file, memory-mapped) in the same process;
- on a CPU, each process also holds its libraries (`RUNTIME_BYTES`, measured per
  environment), which a process's max RSS includes; a GPU's memory holds only the model
  and its work (the CUDA context aside).

Checked against measured artifacts and peaks of the tiny family and the miniatures
(tests/quantize/test_estimate.py states the error allowed).
"""

from __future__ import annotations

import functools
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from configs.errors import ConfigError
from configs.schema import PER_CHANNEL, QuantizeJobConfig
from models.architecture import known_architecture
from quantize.backends.llmcompressor import IGNORED_LAYERS
from quantize.methods.base import QuantMethod
from quantize.methods.gguf import FALLBACK, K_BLOCK

GB = 1024**3
DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
# Max RSS of a `python -m quantize` / `evaluate run` process on a model of a few MB (its
# libraries: torch, transformers, llm-compressor or GPTQModel, lm-eval), per environment;
# measured on the miniatures, CPU, 2026-12 (docs/miniatures.md).
RUNTIME_BYTES = {"main": int(0.65 * GB), "gptqmodel": int(1.0 * GB), "legacy": int(0.95 * GB), "gguf": int(0.55 * GB)}
EVAL_CONTEXT = 2048  # tokens per sequence lm-eval batches at most (its max_length)
# Bytes of metadata per group (scale, zero point, block absmax) by artifact format.
GROUP_BYTES = {"hqq": 4, "bitsandbytes": 4, "gptq": 2.5, "awq-gemm": 2.5}
# Bits per weight of llama.cpp's tensor types (a block's bytes x 8 / its weights; ggml-common.h).
GGML_BITS = {"F32": 32, "F16": 16, "BF16": 16, "Q8_0": 8.5, "Q6_K": 6.5625, "Q5_1": 6, "Q5_K": 5.5, "Q5_0": 5.5,
             "Q4_K": 4.5, "Q4_0": 4.5, "Q3_K": 3.4375, "Q2_K": 2.625}
GGUF_BYTES_PER_TOKEN = 29  # the file's tokenizer (tokens, scores, types, merges): 29 KB for a 1024-token vocabulary


@dataclass
class Estimate:
    """What one quantize + evaluate cell needs; bytes unless said otherwise."""

    parameters: int
    quantized_parameters: int  # weights of the linear layers the method quantizes
    disk_bytes: int
    quantize_peak_bytes: int  # model and work: on a GPU, its memory; on a CPU add quantize_runtime_bytes
    evaluate_peak_bytes: int  # on a CPU add evaluate_runtime_bytes
    quantize_runtime_bytes: int  # the quantizing process's libraries (CPU max RSS)
    evaluate_runtime_bytes: int
    architecture_source: str
    notes: list[str] = field(default_factory=list)  # settings that do not fit, layers left alone

    def line(self) -> str:
        notes = "; ".join(self.notes)
        runtime = f"+{size_text(self.quantize_runtime_bytes)}/{size_text(self.evaluate_runtime_bytes)} on a CPU"
        return (f"{self.parameters / 1e9:.3g}B params, quantize ~{size_text(self.quantize_peak_bytes)}, "
                f"evaluate ~{size_text(self.evaluate_peak_bytes)} ({runtime}), disk ~{size_text(self.disk_bytes)}"
                + (f"  [{notes}]" if notes else ""))


def size_text(value: float) -> str:
    """Bytes to 3 significant figures in the smallest unit (KB, MB, GB; steps of 2^10) that
    keeps the number below 1000: "514 KB", "1.33 MB", "522 MB", "15.2 GB"."""
    for unit, scale in (("KB", 1024), ("MB", 1024**2)):
        if value / scale < 999.5:
            return f"{value / scale:.3g} {unit}"
    return f"{value / GB:.3g} GB" if value / GB < 999.5 else f"{value / GB:.0f} GB"


@dataclass(frozen=True)
class Shapes:
    parameters: int
    linears: tuple[tuple[str, int, int], ...]  # (name, in_features, out_features) of every quantized linear
    skipped: tuple[tuple[str, int], ...]  # (name, parameters) of linears left in full precision
    hidden: int
    layers: int
    kv_width: int  # key (or value) features per token per layer
    vocab: int
    max_positions: int
    tied: bool
    config: Any  # the transformers config


class UnknownArchitecture(ConfigError):
    """Nothing is known here about the model's architecture (no config.json, no registry entry)."""


def estimate(job: QuantizeJobConfig, method: QuantMethod, *, eval_batch_size: int = 16,
             perplexity: bool = True) -> Estimate:
    """The estimate for a validated job and its method; UnknownArchitecture (one line) if
    neither a config.json nor the registry says what the model is."""
    fields, source = known_architecture(job.model)
    if fields is None:
        raise UnknownArchitecture(f"no estimate for model {job.model.name!r}: {source}")
    shapes = model_shapes(fields)
    dtype_bytes = DTYPE_BYTES[job.model.dtype]
    dense = shapes.parameters * dtype_bytes
    quantized_weights = sum(i * o for _, i, o in shapes.linears) if method.supported_bits else 0
    stored = _quantized_bytes(method, shapes, dtype_bytes) if method.supported_bits else 0
    kept = (shapes.parameters - quantized_weights) * dtype_bytes
    disk = kept + stored
    loaded = disk
    if method.artifact_format == "gguf":
        disk = gguf_bytes(method.quant.type, shapes)
        loaded = dense + disk  # dequantized by transformers, and the file mapped by llama.cpp
    evaluate_peak = _evaluate_peak(shapes, loaded, dtype_bytes, eval_batch_size, perplexity)
    notes = _notes(method, shapes, job.model.dtype)
    logits = logits_bytes(shapes, eval_batch_size, perplexity, dtype_bytes)
    if perplexity and logits > evaluate_peak / 2:
        notes.append(f"{size_text(logits)} of the evaluation is perplexity logits ({eval_batch_size} windows x "
                     f"{min(EVAL_CONTEXT, shapes.max_positions)} tokens x {shapes.vocab} vocab): a smaller "
                     "eval.batch_size cuts it")
    return Estimate(
        parameters=shapes.parameters,
        quantized_parameters=quantized_weights,
        disk_bytes=int(disk),
        quantize_peak_bytes=int(_quantize_peak(job, method, shapes, dense, stored, kept)),
        evaluate_peak_bytes=int(evaluate_peak),
        quantize_runtime_bytes=RUNTIME_BYTES.get(method.environment, max(RUNTIME_BYTES.values())),
        evaluate_runtime_bytes=RUNTIME_BYTES.get(method.load_environment or method.environment,
                                                 max(RUNTIME_BYTES.values())),
        architecture_source=source,
        notes=notes,
    )


def model_shapes(fields: dict[str, Any]) -> Shapes:
    """Parameter count and linear shapes of a model with these config.json fields, from a
    model built on the meta device (no memory, no weights)."""
    return _shapes(json.dumps(fields, sort_keys=True))


@functools.lru_cache(maxsize=32)  # a sweep asks once per cell, for a few models
def _shapes(fields_json: str) -> Shapes:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    fields = json.loads(fields_json)
    config = AutoConfig.for_model(fields.pop("model_type"), **fields)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    text = getattr(config, "text_config", None) or config
    linears, skipped = [], []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            if name.split(".")[-1] in IGNORED_LAYERS:
                skipped.append((name, module.in_features * module.out_features))
            else:
                linears.append((name, module.in_features, module.out_features))
    heads = text.num_attention_heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    return Shapes(
        parameters=sum(p.numel() for p in model.parameters()),
        linears=tuple(linears),
        skipped=tuple(skipped),
        hidden=text.hidden_size,
        layers=text.num_hidden_layers,
        kv_width=(getattr(text, "num_key_value_heads", None) or heads) * head_dim,
        vocab=text.vocab_size,
        max_positions=getattr(text, "max_position_embeddings", EVAL_CONTEXT),
        tied=bool(getattr(config, "tie_word_embeddings", False)),
        config=config,
    )


def gguf_bytes(level: str, shapes: Shapes) -> float:
    """A GGUF file of this level: every weight matrix at the type llama.cpp gives it, 1-D
    tensors (norms, biases) F32, and the tokenizer metadata."""
    embedding = shapes.vocab * shapes.hidden
    matrices = [(name, i, o) for name, i, o in shapes.linears]
    matrices.append(("token_embd", shapes.hidden, shapes.vocab))
    if not shapes.tied:
        matrices.append(("output", shapes.hidden, shapes.vocab))
    weights = sum(i * o for _, i, o in shapes.linears) + embedding * (1 if shapes.tied else 2)
    text = getattr(shapes.config, "text_config", None) or shapes.config
    gqa = text.num_attention_heads // (getattr(text, "num_key_value_heads", None) or text.num_attention_heads)
    total = (shapes.parameters - weights) * GGML_BITS["F32"] / 8 + shapes.vocab * GGUF_BYTES_PER_TOKEN
    for name, rows, columns in matrices:
        role = "output" if name == "output" or (name == "token_embd" and shapes.tied) else name.split(".")[-1]
        layer = re.search(r"\.(\d+)\.", name)
        kind = gguf_tensor_type(level, role, rows, int(layer.group(1)) if layer else 0, shapes.layers, gqa)
        total += rows * columns * GGML_BITS[kind] / 8
    return total


def gguf_tensor_type(level: str, role: str, row: int, layer: int, layers: int, gqa: int = 1) -> str:
    """The type llama.cpp's quantizer gives a weight matrix (src/llama-quant.cpp
    llama_tensor_get_type, for dense models): `role` is "output" (the output matrix, or the
    embedding tied to it), else the Hugging Face module name (v_proj, o_proj, down_proj,
    ...); `row` its row length; `gqa` query heads per KV head."""
    base = re.sub(r"_[SML]$", "", level)
    if base in ("F16", "BF16"):
        return base
    if role == "output":
        return "Q8_0" if base == "Q8_0" or row % K_BLOCK else "Q6_K"
    kind = _MIXES.get((level, role), lambda i, n, g: None)(layer, layers, gqa) or base
    return FALLBACK.get(kind, kind) if row % K_BLOCK else kind


def _use_more_bits(layer: int, layers: int) -> bool:
    """llama.cpp's use_more_bits: the first and last eighth of the layers and every third between."""
    return layer < layers // 8 or layer >= 7 * layers // 8 or (layer - layers // 8) % 3 == 2


# The _S/_M/_L mixes and Q2_K: (level, module) -> the type of layer i of n (None: the level's own).
_MIXES = {
    ("Q2_K", "v_proj"): lambda i, n, gqa: "Q4_K" if gqa >= 4 else "Q3_K",
    ("Q2_K", "o_proj"): lambda i, n, gqa: "Q3_K",
    ("Q2_K", "down_proj"): lambda i, n, gqa: "Q3_K",
    ("Q3_K_M", "v_proj"): lambda i, n, gqa: "Q5_K" if i < 2 else "Q4_K",
    ("Q3_K_M", "o_proj"): lambda i, n, gqa: "Q4_K",
    ("Q3_K_M", "down_proj"): lambda i, n, gqa: "Q5_K" if i < n // 16 else "Q4_K",
    ("Q3_K_L", "v_proj"): lambda i, n, gqa: "Q5_K",
    ("Q3_K_L", "o_proj"): lambda i, n, gqa: "Q5_K",
    ("Q3_K_L", "down_proj"): lambda i, n, gqa: "Q5_K",
    ("Q4_K_S", "v_proj"): lambda i, n, gqa: "Q5_K" if i < 4 else None,
    ("Q4_K_S", "down_proj"): lambda i, n, gqa: "Q5_K" if i < n // 8 else None,
    ("Q4_K_M", "v_proj"): lambda i, n, gqa: "Q6_K" if _use_more_bits(i, n) else None,
    ("Q4_K_M", "down_proj"): lambda i, n, gqa: "Q6_K" if _use_more_bits(i, n) else None,
    ("Q5_K_M", "v_proj"): lambda i, n, gqa: "Q6_K" if _use_more_bits(i, n) else None,
    ("Q5_K_M", "down_proj"): lambda i, n, gqa: "Q6_K" if _use_more_bits(i, n) else None,
}


def _groups(method: QuantMethod, in_features: int, out_features: int) -> int:
    group = method.quant.group_size
    return out_features * (1 if group == PER_CHANNEL else math.ceil(in_features / group))


def _quantized_bytes(method: QuantMethod, shapes: Shapes, dtype_bytes: int) -> float:
    """The quantized linears as stored: packed codes plus per-group metadata."""
    bits = method.quant.bits
    stored_bits = 32 / (32 // bits) if bits < 8 else bits  # codes packed into 32-bit words
    group_bytes = GROUP_BYTES.get(method.artifact_format, dtype_bytes + (0 if method.quant.symmetric else 1))
    return sum(i * o * stored_bits / 8 + _groups(method, i, o) * group_bytes for _, i, o in shapes.linears)


def _quantize_peak(job: QuantizeJobConfig, method: QuantMethod, shapes: Shapes, dense: float, stored: float,
                   kept: float) -> float:
    if not method.supported_bits:
        return dense
    if method.artifact_format == "bitsandbytes":  # quantized while loading, one dense tensor at a time
        largest = max([i * o for _, i, o in shapes.linears] + [n for _, n in shapes.skipped] + [shapes.vocab * shapes.hidden])
        return kept + stored + largest * DTYPE_BYTES[job.model.dtype]
    work = 0.0
    if method.needs_calibration:
        calibration = job.calibration
        tokens = calibration.num_samples * calibration.seq_len
        work += 2 * tokens * shapes.hidden * 4  # one layer boundary's inputs and outputs, float32
        layer = [(i, o) for _, i, o in shapes.linears[: max(1, len(shapes.linears) // max(shapes.layers, 1))]]
        work += sum(i * i for i, _ in layer) * 4  # GPTQ's Hessians of one layer (float32)
        work += 3 * sum(i * o for i, o in layer) * 4  # a layer's float32 copy and gradients (AutoRound)
    return dense + work + stored


def _evaluate_peak(shapes: Shapes, loaded: float, dtype_bytes: int, batch: int, perplexity: bool) -> float:
    context = min(EVAL_CONTEXT, shapes.max_positions)
    kv_cache = batch * context * shapes.layers * 2 * shapes.kv_width * dtype_bytes
    return loaded + kv_cache + logits_bytes(shapes, batch, perplexity, dtype_bytes)


def logits_bytes(shapes: Shapes, batch: int, perplexity: bool, dtype_bytes: int) -> float:
    """Logits and their log-softmax: every position of a batch of windows for perplexity,
    else the last position of each sequence."""
    positions = min(EVAL_CONTEXT, shapes.max_positions) if perplexity else 1
    return 2 * batch * positions * shapes.vocab * dtype_bytes


def _notes(method: QuantMethod, shapes: Shapes, dtype: str) -> list[str]:
    notes = []
    try:
        method.check_model(shapes.config)
    except ConfigError as error:
        notes.append(f"does not fit: {error}")
    if method.supported_bits and shapes.skipped:
        head = sum(n for _, n in shapes.skipped)
        share = head / shapes.parameters
        tied = ", tied to the input embeddings," if shapes.tied else ""
        notes.append(f"lm_head{tied} stays {dtype} ({head / 1e6:.0f}M params, {share:.0%} of the model)")
    return notes
