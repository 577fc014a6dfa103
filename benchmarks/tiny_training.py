"""tiny_training: one tiny-family training step in bfloat16 autocast vs float32.

    python -m benchmarks.tiny_training [--sizes tiny-s,tiny-m,tiny-l] [--steps 20]
                                       [--repeats 3] [--warmup 1]

For each size of the `full` profile: a fresh model, the lab's own training step
(`models.tiny.training.train_step`: a batch of every task, answer-only loss, AdamW) on
one thread, on freshly generated and tokenized data. Arms, interleaved, `--steps` steps
per round each:
  bfloat16: what the build runs where the CPU has native bfloat16 (autocast, eager attention);
  float32:  what it runs elsewhere (and ran before 2026-11-26: float32, PyTorch's SDPA attention).
Reported per size: seconds per step and the ratio float32/bfloat16 (> 1: bfloat16 is faster).
The build's wall time follows from this ratio only on a machine with native bfloat16
(`models.tiny.settings.native_bfloat16`, recorded in the result).
"""

from __future__ import annotations

import argparse
import time

from benchmarks.common import Measurement, arm_summary, compare, interleave, write_result

NAME = "tiny_training"
ARMS = {"bfloat16": ("bfloat16", "eager"), "float32": ("float32", "sdpa")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="tiny-s,tiny-m,tiny-l")
    parser.add_argument("--steps", type=int, default=20, help="training steps per arm and round")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    import torch

    # torch and the lab's model stack load after the arguments are parsed (--help answers at once)
    from models.tiny.build import tokenizer_corpus
    from models.tiny.generator import DataSettings, generate_splits
    from models.tiny.settings import PROFILES, native_bfloat16
    from models.tiny.tokenizer import train_tokenizer
    from models.tiny.training import (encode_examples, new_model, new_optimizer, task_prefixes,
                                      train_step, training_batches)

    torch.set_num_threads(1)  # as the build trains each size
    profile = PROFILES["full"]
    splits = generate_splits(DataSettings(train_per_task=2000, dev_per_task=16), seed=0)
    tokenizer = train_tokenizer(tokenizer_corpus(splits["train"]), profile.tokenizer)
    train, dev = (encode_examples(tokenizer, splits[split]) for split in ("train", "dev"))
    prefixes = task_prefixes(train, dev)
    result = {"profile": "full", "steps_per_round": args.steps, "repeats": args.repeats,
              "warmup": args.warmup, "native_bfloat16": native_bfloat16(),
              "batch_size_per_task": profile.train.batch_size, "sizes": {}}

    for size in [s for s in args.sizes.split(",") if s]:
        def arm(matmul_dtype: str, attention: str):
            model = new_model(profile.sizes[size], tokenizer, seed=0)
            model.set_attn_implementation(attention)
            optimizer = new_optimizer(model, profile.sizes[size].learning_rate, profile.train)
            batches = training_batches(train, prefixes, profile.train.batch_size, seed=0)

            def run(_round: int) -> Measurement:
                start = time.perf_counter()
                for _ in range(args.steps):
                    train_step(model, optimizer, [next(b) for b in batches], matmul_dtype)
                return Measurement(time.perf_counter() - start)
            return run

        print(f"{size}: {args.steps} steps per round, {args.repeats} interleaved rounds (+{args.warmup} warmup)")
        runs = interleave({name: arm(*settings) for name, settings in ARMS.items()},
                          args.repeats, args.warmup)
        walls = {name: [m.wall_s for m in ms] for name, ms in runs.items()}
        speedup = compare(walls["float32"], walls["bfloat16"])
        summaries = {name: arm_summary(runs[name]) for name in ARMS}
        result["sizes"][size] = {
            **{name: {**summary, "seconds_per_step": round(summary["wall_s"]["median"] / args.steps, 4)}
               for name, summary in summaries.items()},
            "float32_over_bfloat16": speedup,
        }
        print(f"{size}: float32/bfloat16 step time {speedup['ratio_of_medians']}")
    write_result(NAME, result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
