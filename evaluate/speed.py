"""Speed and memory of a loaded model, measured the way optimum-benchmark does it.

Warmup runs first; prompts have a fixed token count and generation a fixed number of new
tokens (`min_new_tokens == max_new_tokens`, no early stop); timers are synchronized with
the device. Prefill (time to first token) is one forward pass over the prompt batch;
decode throughput is (new tokens - 1) x batch over the time generation spends after it.
"""

from __future__ import annotations

import statistics
import time
from contextlib import contextmanager

from tqdm import tqdm

from common.memory import peak_rss_bytes


def measure_speed(model, tokenizer, *, prompt_tokens: int, new_tokens: int, batch_sizes: list[int],
                  warmup: int = 1, repeats: int = 3) -> dict:
    import torch

    device = next(model.parameters()).device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    results = {"device": str(device), "prompt_tokens": prompt_tokens, "new_tokens": new_tokens, "by_batch": {}}
    for batch_size in tqdm(sorted(set(batch_sizes)), desc="speed", unit="batch size"):
        inputs = _fixed_prompts(tokenizer, batch_size, prompt_tokens, device)
        for _ in range(warmup):
            _generate(model, inputs, new_tokens)
        prefill = [_timed(lambda: model(**inputs), device) for _ in range(repeats)]
        total = [_timed(lambda: _generate(model, inputs, new_tokens), device) for _ in range(repeats)]
        prefill_s, total_s = statistics.median(prefill), statistics.median(total)
        decode_s = max(total_s - prefill_s, 1e-9)
        results["by_batch"][str(batch_size)] = {
            "time_to_first_token_s": prefill_s,
            "prefill_tokens_per_s": batch_size * prompt_tokens / prefill_s,
            "decode_tokens_per_s": batch_size * (new_tokens - 1) / decode_s,
            # each repeat's own rate, so the report can tell a real difference from timing noise
            "decode_tokens_per_s_repeats": [batch_size * (new_tokens - 1) / max(t - prefill_s, 1e-9) for t in total],
            "latency_per_prompt_s": total_s / batch_size,
            "batch_latency_s": total_s,
        }
    results["peak_memory_bytes"] = _peak_memory(device)
    results["peak_memory_kind"] = "cuda_max_allocated" if device.type == "cuda" else "process_max_rss"
    return results


def fixed_prompt_ids(tokenizer, prompt_tokens: int) -> list[int]:
    """The batch-1 prompt every runtime is timed on, as token ids."""
    return _fixed_prompts(tokenizer, 1, prompt_tokens, "cpu")["input_ids"][0].tolist()


def _fixed_prompts(tokenizer, batch_size: int, prompt_tokens: int, device):
    import torch

    vocab = len(tokenizer)
    generator = torch.Generator().manual_seed(0)
    special = set(tokenizer.all_special_ids)
    ids = torch.randint(0, vocab, (batch_size, prompt_tokens), generator=generator)
    for token in special:  # random ids, but never a special token that could end generation
        ids[ids == token] = (token + 1) % vocab if (token + 1) % vocab not in special else 3
    return {"input_ids": ids.to(device), "attention_mask": torch.ones_like(ids).to(device)}


def _generate(model, inputs, new_tokens: int):
    return model.generate(
        **inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
        pad_token_id=model.config.pad_token_id or 0,
    )


def _timed(fn, device) -> float:

    with _no_grad():
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
    return time.perf_counter() - start


@contextmanager
def _no_grad():
    import torch

    with torch.inference_mode():
        yield


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_memory(device) -> int:
    import torch

    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return peak_rss_bytes()
