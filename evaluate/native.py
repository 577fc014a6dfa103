"""A GGUF artifact in llama.cpp itself, next to the transformers path every method takes.

Quality is evaluated like every other artifact (transformers runs the dequantized weights).
For a GGUF artifact two things are also measured in llama.cpp, which computes with the
quantized blocks (and quantizes activations for k-quant dot products):
- speed: time to first token, prefill and decode tokens/s at batch 1, with the thread
  count, in the speed record's usual fields, so the report's cost and decision tables use
  them; llama.cpp's own performance counters for the same runs are recorded beside them;
- a second generation column for boxed tasks: the same prompts (the same token ids, from
  the artifact's Hugging Face tokenizer), greedy, scored by the same rules; the record says
  how many generations and verdicts agree with the transformers column.
"""

from __future__ import annotations

from pathlib import Path

from common.memory import peak_rss_bytes
from evaluate import records
from evaluate.speed import fixed_prompt_ids
from models.gguf import LlamaCpp, gguf_file, llama_cpp_info

RUNTIME = "llama.cpp"


def is_gguf(manifest: dict) -> bool:
    return (manifest.get("method") or {}).get("artifact_format") == "gguf"


def label(manifest: dict) -> str:
    """The artifact's label; a GGUF level's says its level, its effective bits per weight and
    its fallbacks ("gguf Q4_K_M, 12 of 24 tensors Q5_0 (6.51 bpw)"): a Q4_K_M whose rows are
    not multiples of 256 is not a Q4_K_M model, and the report must not show it as one."""
    if not is_gguf(manifest):
        return manifest["label"]
    gguf = manifest["gguf"]
    fallback = fallback_text(manifest)
    return f"gguf {level(manifest)}" + (f", {fallback}" if fallback else "") + f" ({gguf['bits_per_weight']:.2f} bpw)"


def level(manifest: dict) -> str:
    """A GGUF artifact's level as the report names it: "Q4_K_M", "Q4_K_M imatrix"."""
    imatrix = ((manifest.get("method") or {}).get("options") or {}).get("imatrix")
    return manifest["gguf"]["type"] + (" imatrix" if imatrix else "")


def fallback_text(manifest: dict) -> str:
    """"12 of 24 tensors Q5_0" (the types llama.cpp gave instead, most frequent first), or ""."""
    fallbacks = (manifest.get("gguf") or {}).get("fallback_tensors") or {}
    if not fallbacks:
        return ""
    counts: dict[str, int] = {}
    for kind in fallbacks.values():
        counts[kind] = counts.get(kind, 0) + 1
    kinds = "/".join(kind for kind, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0])))
    return f"{len(fallbacks)} of {len(manifest['gguf']['tensor_types'])} tensors {kinds}"


def record_fields(manifest: dict) -> dict:
    """What a record says about a GGUF artifact beyond the common fields, so that the report
    (which reads only records) tells its levels apart: the level, the effective bits per
    weight from the manifest, and the fallbacks."""
    if not is_gguf(manifest):
        return {}
    return {"level": level(manifest), "bits_per_weight": manifest["gguf"]["bits_per_weight"],
            "fallback": fallback_text(manifest) or None}


def measure_native_speed(artifact: Path, tokenizer, *, prompt_tokens: int, new_tokens: int, threads: int,
                         repeats: int, warmup: int) -> dict:
    """The speed record's fields (batch 1 only: llama.cpp's batch-1 CPU path) from llama.cpp."""
    ids = fixed_prompt_ids(tokenizer, prompt_tokens)
    with LlamaCpp(gguf_file(artifact), n_ctx=prompt_tokens + new_tokens + 16, threads=threads,
                  n_batch=max(prompt_tokens, 32)) as llm:
        at_batch_1 = llm.measure_speed(ids, new_tokens, repeats=repeats, warmup=warmup)
    at_batch_1["latency_per_prompt_s"] = at_batch_1["time_to_first_token_s"] + (new_tokens - 1) / at_batch_1["decode_tokens_per_s"]
    at_batch_1["batch_latency_s"] = at_batch_1["latency_per_prompt_s"]
    return {
        "device": f"cpu ({RUNTIME}, {threads} thread{'s' if threads > 1 else ''})", "runtime": RUNTIME,
        "threads": threads, "prompt_tokens": prompt_tokens, "new_tokens": new_tokens,
        "by_batch": {"1": at_batch_1}, "llama_cpp": llama_cpp_info(),
        "peak_memory_bytes": peak_rss_bytes(),
        "peak_memory_kind": "process_max_rss",
    }


def native_generation_column(artifact: Path, run, rows: list[dict], tokenizer, *, threads: int) -> dict:
    """Greedy generations of llama.cpp for a boxed task's samples, scored like `rows` (the
    transformers column); adds `llama_cpp_*` fields to each row and returns the summary."""
    prompts = [sample["arguments"][0] for sample in run.samples]
    longest = max((len(tokenizer(p, add_special_tokens=False).input_ids) for p, _ in prompts), default=0)
    max_tokens = max((kwargs.get("max_gen_toks", 256) for _, kwargs in prompts), default=256)
    generations = []
    with LlamaCpp(gguf_file(artifact), n_ctx=longest + max_tokens + 16, threads=threads) as llm:
        for prompt, kwargs in prompts:
            ids = tokenizer(prompt, add_special_tokens=False).input_ids
            new = llm.generate(ids, kwargs.get("max_gen_toks", 256))
            generations.append(tokenizer.decode(new, skip_special_tokens=True))
    native_rows = records.boxed_rows(run, tokenizer, generations=generations)
    same_text = same_verdict = 0
    for row, native in zip(rows, native_rows):
        row["llama_cpp_generation"] = native["generation"]
        row["llama_cpp_correct"] = native["correct"]
        same_text += native["generation"].strip() == row["generation"].strip()
        same_verdict += native["correct"] == row["correct"]
    metrics = records.boxed_metrics(native_rows)
    return {"runtime": RUNTIME, "threads": threads, "n": len(rows), "metrics": metrics,
            "same_generation": same_text, "same_verdict": same_verdict,
            "disagreements": [row["doc_id"] for row in rows if row["llama_cpp_correct"] != row["correct"]],
            "llama_cpp": llama_cpp_info()}

