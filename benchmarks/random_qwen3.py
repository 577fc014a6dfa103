"""A randomly initialised Qwen3 checkpoint of a chosen size, for timing llama.cpp on a model
larger than the tiny family without downloading one (gguf_speed's second case).

    .venv-gguf/bin/python -m benchmarks.random_qwen3 OUT [--layers 16] [--hidden 1024] [--seed 0]

Tokenizer and chat template: the tiny family's release (tiny-l); widths multiples of 256 (no
k-quant fallback); float32. The weights are random: a speed subject, not a language model.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json")
RELEASE = Path(__file__).resolve().parent.parent / "models" / "tiny" / "release" / "tiny-l"


def build(out: Path, *, layers: int, hidden: int, seed: int) -> Path:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    tiny = AutoConfig.from_pretrained(RELEASE)
    config = AutoConfig.for_model("qwen3", vocab_size=tiny.vocab_size, hidden_size=hidden,
                                  intermediate_size=3 * hidden, num_hidden_layers=layers,
                                  num_attention_heads=hidden // 64, num_key_value_heads=hidden // 128, head_dim=64,
                                  max_position_embeddings=2048, tie_word_embeddings=True,
                                  bos_token_id=tiny.bos_token_id, eos_token_id=tiny.eos_token_id,
                                  pad_token_id=tiny.pad_token_id, dtype="float32")
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    for name in TOKENIZER_FILES:
        if (RELEASE / name).is_file():
            shutil.copy2(RELEASE / name, out / name)
    print(f"{out}: {sum(p.numel() for p in model.parameters()):,} parameters")
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--layers", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    build(args.out, layers=args.layers, hidden=args.hidden, seed=args.seed)


if __name__ == "__main__":
    main()
