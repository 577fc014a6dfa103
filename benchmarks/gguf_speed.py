"""gguf_speed: the lab's llama.cpp timing against llama.cpp's own performance counters.

    .venv-gguf/bin/python -m benchmarks.gguf_speed ARTIFACT [ARTIFACT ...] [--prompt-tokens 128]
                                                   [--new-tokens 128] [--repeats 9] [--threads 1]

For each GGUF artifact (method=gguf), `models.gguf.LlamaCpp.measure_speed` (what `evaluate
run` records as the artifact's native speed) runs the fixed batch-1 prompt of the speed
task: time to first token and decode tokens/s as the lab times them around llama.cpp's
calls (Python included), and, for the same runs, llama.cpp's own counters
(`llama_perf_context`: prompt eval and eval time). Reported per artifact: the lab's time
over llama.cpp's counted time (>= 1; target <= 1.05: the lab's timing adds at most 5% to
what llama.cpp itself measures) for prefill and decode, the median of the per-run ratios of
`--repeats` runs (paired, so the shared machine's drift cancels), and the ratio of medians;
also the lab's fixed overhead per decode step in microseconds against llama.cpp's time per
step (why a tiny model's ratio is the hardest case), the CPU's flags and the load.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.common import write_result
from common.machine import cpu_flags
from common.storage import read_manifest
from evaluate.speed import fixed_prompt_ids
from models.gguf import LlamaCpp, gguf_file, llama_cpp_info
from models.loading import load_tokenizer

NAME = "gguf_speed"
TARGET = 1.05


def measure(artifact: Path, *, prompt_tokens: int, new_tokens: int, repeats: int, threads: int) -> dict:
    manifest = read_manifest(artifact)
    ids = fixed_prompt_ids(load_tokenizer(artifact), prompt_tokens)
    with LlamaCpp(gguf_file(artifact), n_ctx=prompt_tokens + new_tokens + 16, threads=threads,
                  n_batch=prompt_tokens) as llm:
        speed = llm.measure_speed(ids, new_tokens, repeats=repeats, warmup=1)
    counters = speed["llama_cpp_counters"]
    return {
        "artifact": str(artifact), "label": manifest["label"], "type": manifest["gguf"]["type"],
        "num_parameters": manifest["model"].get("num_parameters"),
        "bits_per_weight": manifest["gguf"]["bits_per_weight"], **{k: v for k, v in speed.items() if k != "llama_cpp_counters"},
        "counters": counters,
        "prefill_ratio": counters["prefill_ratio"], "decode_ratio": counters["decode_ratio"],
        "prefill_ratio_of_medians": counters["prefill_tokens_per_s"] / speed["prefill_tokens_per_s"],
        "decode_ratio_of_medians": counters["decode_tokens_per_s"] / speed["decode_tokens_per_s"],
        "decode_overhead_us_per_token": counters["decode_overhead_us_per_token"],
        "counter_decode_us_per_token": counters["counter_decode_us_per_token"],
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifacts", nargs="+", type=Path)
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    rows = [measure(a, prompt_tokens=args.prompt_tokens, new_tokens=args.new_tokens, repeats=args.repeats,
                    threads=args.threads) for a in args.artifacts]
    for row in rows:
        print(f"{row['type']:<7} bpw {row['bits_per_weight']:5.2f}  TTFT {row['time_to_first_token_s'] * 1e3:7.2f} ms  "
              f"prefill {row['prefill_tokens_per_s']:9.0f} tok/s (x{row['prefill_ratio']:.3f})  "
              f"decode {row['decode_tokens_per_s']:8.0f} tok/s (x{row['decode_ratio']:.3f}; "
              f"+{row['decode_overhead_us_per_token']:.1f} us on {row['counter_decode_us_per_token']:.1f} us per token)")
    worst = max(max(r["prefill_ratio"], r["decode_ratio"]) for r in rows)
    write_result(NAME, {"settings": vars(args) | {"artifacts": [str(a) for a in args.artifacts]},
                        "llama_cpp": llama_cpp_info(), "cpu_flags": cpu_flags(),
                        "rows": rows, "worst_ratio": worst, "target": TARGET, "meets_target": worst <= TARGET})


if __name__ == "__main__":
    main()
