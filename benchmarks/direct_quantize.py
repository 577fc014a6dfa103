"""The same quantization the lab does, called directly on the libraries: the reference
arm of `benchmarks.quantize_overhead`.

    python benchmarks/direct_quantize.py --method rtn --model-dir DIR --out DIR [--bits 4 --group-size 128]
    python benchmarks/direct_quantize.py --method hqq --model-dir DIR --out DIR [--bits 4 --group-size 64 --axis 1]

load (transformers `from_pretrained`, CPU, the model's dtype) -> the same recipe
(llm-compressor `oneshot` with a `QuantizationModifier` W<bits>A16 int scheme ignoring
`lm_head`; or hqq `AutoHQQHFModel.quantize_model`) -> save (compressed-tensors / hqq's
own format, plus the tokenizer). Prints one JSON line with the in-process timings,
measured the way `quantize/pipeline.py` measures them (load, quantize, total incl. save).
Deliberately imports nothing from the lab.
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", choices=("rtn", "hqq"), required=True)
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--bits", type=int, default=4)
    parser.add_argument("--group-size", type=int, default=None, help="default: 128 (rtn), 64 (hqq); -1 per channel")
    parser.add_argument("--symmetric", action=argparse.BooleanOptionalAction, default=True, help="rtn only")
    parser.add_argument("--axis", type=int, default=1, help="hqq only")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    group = args.group_size or (128 if args.method == "rtn" else 64)

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(args.seed)
    started = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(args.model_dir, dtype=getattr(torch, args.dtype)).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    load_seconds = time.perf_counter() - started
    quantize_started = time.perf_counter()
    if args.method == "rtn":
        from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme
        from llmcompressor import oneshot
        from llmcompressor.modifiers.quantization import QuantizationModifier

        strategy = {"strategy": "channel"} if group == -1 else {"strategy": "group", "group_size": group}
        weights = QuantizationArgs(num_bits=args.bits, type="int", symmetric=args.symmetric, **strategy)
        recipe = QuantizationModifier(config_groups={"group_0": QuantizationScheme(targets=["Linear"], weights=weights)},
                                      ignore=["lm_head"])
        oneshot(model=model, recipe=recipe)
        quantize_seconds = time.perf_counter() - quantize_started
        model.save_pretrained(args.out, save_compressed=True)
    else:
        from hqq.core.quantize import BaseQuantizeConfig
        from hqq.models.hf.base import AutoHQQHFModel

        config = BaseQuantizeConfig(nbits=args.bits, group_size=None if group == -1 else group, axis=args.axis)
        AutoHQQHFModel.quantize_model(model, quant_config=config, compute_dtype=getattr(torch, args.dtype), device="cpu")
        quantize_seconds = time.perf_counter() - quantize_started
        AutoHQQHFModel.save_quantized(model, args.out)
    tokenizer.save_pretrained(args.out)
    total = time.perf_counter() - started
    print(json.dumps({"load_seconds": load_seconds, "quantize_seconds": quantize_seconds, "total_seconds": total}))


if __name__ == "__main__":
    main()
