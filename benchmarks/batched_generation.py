"""batched_generation: boxed generation through lm-eval's HFLM, batched vs one prompt at a time.

    python -m benchmarks.batched_generation [--task tiny_openmath] [--model tiny-s] [--profile quick]
                                            [--limit 64] [--batch-size 32] [--repeats 3] [--warmup 1]

The model is loaded once (the lab's `models.loading.load_model` on the tiny model's
checkpoint), then the lab's own bridge `evaluate.harness.run_tasks` (lm-eval's
`simple_evaluate` on `HFLM`, chat template on, the task's own generation settings) runs
the same `--limit` boxed prompts at `--batch-size` (default: eval=tiny's batch size, the
one the lab evaluates with) and at batch size 1, interleaved. Throughput is generated
tokens (the responses lm-eval logged, re-tokenized) per wall second of `run_tasks`;
reported: the ratio batched/sequential (> 1: batching helps), and how many responses
are identical between the two (padding can change greedy outputs in low precision).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from benchmarks.common import Measurement, arm_summary, compare, interleave, summarize, write_result

NAME = "batched_generation"


def default_batch_size() -> int:
    from configs.compose import compose  # Hydra, only when the default is asked for

    return compose("evaluate_run", ["artifact=."]).eval.batch_size


def generated_tokens(tokenizer, samples: list[dict]) -> tuple[int, list[str]]:
    texts = []
    for sample in samples:
        resp = sample.get("resps") or [[""]]
        first = resp[0]
        texts.append(first[0] if isinstance(first, (list, tuple)) else first)
    return sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts), texts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="tiny_openmath", help="a boxed generation task of the tiny family")
    parser.add_argument("--model", default="tiny-s")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--limit", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=None, help="default: eval=tiny's eval.batch_size")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    import torch

    # torch and the lab's model stack load after the arguments are parsed (--help answers at once)
    from configs.compose import compose
    from evaluate.harness import run_tasks
    from models.loading import load_model
    from models.sources import resolve_model_dir

    torch.set_num_threads(args.threads)
    batch = args.batch_size or default_batch_size()
    job = compose("quantize", ["method=none", f"model={args.model}", f"model.tiny_profile={args.profile}"])
    model_dir = resolve_model_dir(job.model)
    data = Path(model_dir).parent / "data" / f"{args.task}.jsonl"  # the tiny family's held-out file
    model, tokenizer = load_model(model_dir, dtype=job.model.dtype, device="cpu")
    outputs: dict[str, list[str]] = {}

    def arm(batch_size: int, name: str):
        def run(r: int) -> Measurement:
            start = time.perf_counter()
            runs = run_tasks(model, tokenizer, [args.task], batch_size=batch_size, limit=args.limit,
                             apply_chat_template=True, data_files={args.task: str(data)}, seed=0)
            wall = time.perf_counter() - start
            tokens, texts = generated_tokens(tokenizer, runs[args.task].samples)
            outputs.setdefault(name, texts)
            return Measurement(wall, None, {"tokens": tokens, "tokens_per_s": tokens / wall,
                                            "samples": len(texts), "accuracy": runs[args.task].metrics})
        return run

    print(f"{args.task}: {args.limit} prompts, batch {batch} vs 1, {args.repeats} interleaved rounds (+{args.warmup} warmup)")
    runs = interleave({"batched": arm(batch, "batched"), "sequential": arm(1, "sequential")}, args.repeats, args.warmup)
    tps = {name: [m.info["tokens_per_s"] for m in ms] for name, ms in runs.items()}
    same = sum(a == b for a, b in zip(outputs["batched"], outputs["sequential"]))
    throughput = compare(tps["batched"], tps["sequential"])
    result = {
        "task": args.task, "model": {"name": args.model, "tiny_profile": args.profile, "dir": str(model_dir),
                                     "dtype": job.model.dtype},
        "limit": args.limit, "batch_size": batch, "torch_threads": args.threads, "repeats": args.repeats,
        "warmup": args.warmup,
        "batched": {**arm_summary(runs["batched"]), "tokens_per_s": summarize(tps["batched"]),
                    "tokens": runs["batched"][0].info["tokens"]},
        "sequential": {**arm_summary(runs["sequential"]), "tokens_per_s": summarize(tps["sequential"]),
                       "tokens": runs["sequential"][0].info["tokens"]},
        "throughput_batched_over_sequential": throughput,
        "identical_responses": {"same": same, "of": len(outputs["batched"])},
    }
    print(f"throughput batched/sequential: {throughput['ratio_of_medians']} "
          f"(identical responses {same}/{len(outputs['batched'])})")
    write_result(NAME, result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
