"""GGUF files as the lab reads and runs them: tensor types and sizes, and llama.cpp itself.

A GGUF artifact (method=gguf) holds one `.gguf` file written by llama.cpp's converter and
quantizer, next to the source model's config.json and tokenizer files. Two runtimes read
it: transformers (`models.loading`'s `gguf` loader dequantizes every tensor, so the lab's
evaluation runs exactly the quantized values) and llama.cpp (llama-cpp-python, in
`.venv-gguf`), which computes with the quantized blocks: its speed is the native CPU speed
of the level, and its greedy generation is a second, genuinely different runtime (it also
quantizes activations for k-quant dot products).

Token ids: llama.cpp's own tokenizer is not used. The GGUF cannot carry every Hugging Face
pre-tokenizer (the lab's tiny tokenizer isolates braces, no llama.cpp pre-tokenizer does),
so prompts are tokenized with the artifact's Hugging Face tokenizer and the ids fed to
llama.cpp (`llm.eval(ids)`), which makes the two runtimes see identical inputs.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Optional

GGUF_SUFFIX = ".gguf"
# Tensor types that are not quantized (norms, biases: 1-D tensors stay F32).
FLOAT_TYPES = ("F32", "F16", "BF16")


def gguf_file(folder: Path) -> Path:
    """The one .gguf file of an artifact folder."""
    files = sorted(Path(folder).glob(f"*{GGUF_SUFFIX}"))
    if len(files) != 1:
        raise FileNotFoundError(f"{folder} holds {len(files)} .gguf files, expected 1")
    return files[0]


def tensor_table(path: Path) -> list[dict]:
    """Every tensor of a GGUF file as stored: name, type, shape (GGUF order: ne0 = the
    input/row length first), elements and bytes."""
    import gguf

    return [{"name": t.name, "type": t.tensor_type.name, "shape": [int(n) for n in t.shape],
             "n_elements": int(t.n_elements), "n_bytes": int(t.n_bytes)}
            for t in gguf.GGUFReader(str(path)).tensors]


def bits_per_weight(tensors: list[dict], *, matrices_only: bool = False) -> float:
    """8 x tensor bytes / elements: of every tensor, or of the 2-D weights only (the
    quantizable ones; norms are 1-D)."""
    chosen = [t for t in tensors if len(t["shape"]) >= 2] if matrices_only else tensors
    return 8 * sum(t["n_bytes"] for t in chosen) / max(1, sum(t["n_elements"] for t in chosen))


# -- llama.cpp ------------------------------------------------------------------------------
class LlamaCpp:
    """One GGUF file loaded in llama.cpp (CPU), fed token ids.

    `threads` is the thread count for both prompt processing and generation; it is recorded
    with every timing, as llama.cpp's speed depends on it.
    """

    def __init__(self, path: Path, *, n_ctx: int = 2048, threads: int = 1, n_batch: int = 512):
        import llama_cpp

        self.threads, self.n_batch = threads, n_batch
        self.llm = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_batch=n_batch, n_ubatch=n_batch,
                                   n_threads=threads, n_threads_batch=threads, verbose=False, seed=0)
        self.n_vocab = self.llm.n_vocab()
        self.eog = {i for i in range(self.n_vocab) if llama_cpp.llama_vocab_is_eog(self.llm._model.vocab, i)}

    def __enter__(self) -> "LlamaCpp":
        return self

    def __exit__(self, *exc) -> None:
        import llama_cpp

        if getattr(self, "_sampler", None) is not None:
            llama_cpp.llama_sampler_free(self._sampler)
            self._sampler = None
        self.llm.close()  # now, not in a finalizer at interpreter exit (where it fails noisily)

    def _clear(self) -> None:
        """Forget the previous sequence (its KV cache cells)."""
        import llama_cpp

        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(self.llm.ctx), True)

    def _decode(self, tokens) -> None:
        """llama_decode of a ctypes token array, straight through the C API: llama-cpp-python's
        `eval` adds Python work per call that would be a tenth of a tiny model's decode step."""
        import llama_cpp

        code = llama_cpp.llama_decode(self.llm.ctx, llama_cpp.llama_batch_get_one(tokens, len(tokens)))
        if code != 0:
            raise RuntimeError(f"llama_decode failed ({code})")

    def _tokens(self, ids: list[int]):
        import llama_cpp

        return (llama_cpp.llama_token * len(ids))(*ids)

    def _prompt(self, ids: list[int]) -> list:
        """The prompt as ctypes token arrays of at most n_batch tokens (what one decode takes)."""
        return [self._tokens(ids[i:i + self.n_batch]) for i in range(0, len(ids), self.n_batch)]

    def _greedy_steps(self):
        """(first, step): `first()` is the argmax of the last logits; `step(token)` decodes one
        token and returns the next argmax. Both run in C per token: llama.cpp's own greedy
        sampler reads the logits in place (the first largest, as numpy's argmax: the same
        tokens), and one batch struct, built once, points at the one-token array that `step`
        overwrites. No logits vector reaches Python."""
        import llama_cpp

        ctx, decode, sample = self.llm.ctx, llama_cpp.llama_decode, llama_cpp.llama_sampler_sample
        greedy = self._greedy
        one = self._tokens([0])
        batch = llama_cpp.llama_batch_get_one(one, 1)

        def first() -> int:
            return sample(greedy, ctx, -1)  # reading the logits also waits for the computation

        def step(token: int) -> int:
            one[0] = token
            if decode(ctx, batch):
                raise RuntimeError("llama_decode failed")
            return sample(greedy, ctx, -1)

        return first, step

    @property
    def _greedy(self):
        import llama_cpp

        if getattr(self, "_sampler", None) is None:
            self._sampler = llama_cpp.llama_sampler_init_greedy()
        return self._sampler

    def generate(self, ids: list[int], max_new_tokens: int) -> list[int]:
        """Greedy continuation of `ids` (stops at an end-of-generation token, not included)."""
        self._clear()
        for chunk in self._prompt(ids):
            self._decode(chunk)
        first, step = self._greedy_steps()
        out: list[int] = []
        token = first()
        while token not in self.eog and len(out) < max_new_tokens:
            out.append(token)
            if len(out) == max_new_tokens:
                break
            token = step(token)
        return out

    def measure_speed(self, ids: list[int], new_tokens: int, *, repeats: int = 9, warmup: int = 1) -> dict:
        """Batch-1 speed of greedy generation after the prompt `ids`, median of `repeats`:
        time to first token (prompt processed and first token chosen), prefill and decode
        tokens/s as the lab times them, and llama.cpp's own performance counters for the
        same runs (`llama_perf_context`), so the two can be compared. The tokens are those of
        `generate` (greedy; end-of-generation tokens do not stop it: a fixed count)."""
        import llama_cpp

        prompt = self._prompt(ids)
        first, step = self._greedy_steps()
        steps = range(new_tokens - 1)
        runs = []
        for repeat in range(warmup + repeats):
            self._clear()
            llama_cpp.llama_perf_context_reset(self.llm.ctx)
            started = time.perf_counter()
            for chunk in prompt:
                self._decode(chunk)
            token = first()
            first_at = time.perf_counter()
            for _ in steps:
                token = step(token)
            done = time.perf_counter()
            counters = llama_cpp.llama_perf_context(self.llm.ctx)
            if repeat >= warmup:
                runs.append({"ttft": first_at - started, "decode": done - first_at,
                             "counter_prefill": counters.t_p_eval_ms / 1e3, "counter_decode": counters.t_eval_ms / 1e3})
        median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        decoded = max(new_tokens - 1, 1)
        return {
            "time_to_first_token_s": median["ttft"],
            "prefill_tokens_per_s": len(ids) / median["ttft"],
            "decode_tokens_per_s": decoded / max(median["decode"], 1e-9),
            "llama_cpp_counters": {
                "prefill_tokens_per_s": len(ids) / max(median["counter_prefill"], 1e-9),
                "decode_tokens_per_s": decoded / max(median["counter_decode"], 1e-9),
                # per run, the lab's time over the counters' (paired: cancels the machine's drift)
                "prefill_ratio": statistics.median(r["ttft"] / max(r["counter_prefill"], 1e-9) for r in runs),
                "decode_ratio": statistics.median(r["decode"] / max(r["counter_decode"], 1e-9) for r in runs),
                # what the lab adds per generated token (Python, ctypes, reading the logits, the greedy
                # pick, llama_decode's work before its timer starts), against llama.cpp's time per token
                "decode_overhead_us_per_token": statistics.median(
                    (r["decode"] - r["counter_decode"]) / decoded * 1e6 for r in runs),
                "counter_decode_us_per_token": median["counter_decode"] / decoded * 1e6,
            },
            "threads": self.threads, "repeats": repeats,
        }


def llama_cpp_info() -> dict:
    """llama.cpp's version and the CPU features it was built for, for records."""
    import llama_cpp

    return {"llama_cpp_python": llama_cpp.__version__, "system_info": llama_cpp.llama_print_system_info().decode()}


def llama_cpp_tokenize(path: Path, text: str, *, parse_special: bool = True) -> list[int]:
    """llama.cpp's own token ids for `text` from the GGUF's vocabulary (for parity checks)."""
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    try:
        return llm.tokenize(text.encode(), add_bos=False, special=parse_special)
    finally:
        llm.close()


def first_difference(a: list[int], b: list[int]) -> Optional[int]:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))
