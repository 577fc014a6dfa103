"""Small local stand-ins the calibration and method tests build in seconds, offline:
a byte-level BPE tokenizer with a chat template, a random-init Qwen3 checkpoint, and
files in the schemas of the Hub calibration sets."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tokenizer(vocab_size: int = 400, chat_template: bool = True):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    texts = [f"Problem {i}: what is {i} plus {i * 3}? The answer is \\boxed{{{i * 4}}}." for i in range(500)]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(texts, trainer)
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    if chat_template:
        wrapped.chat_template = CHAT_TEMPLATE
    return wrapped


def build_random_checkpoint(folder: Path, hidden: int = 128, layers: int = 2) -> Path:
    """A random-init Qwen3 causal LM (bf16) with linear widths that groups 32/64/128 divide."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    tokenizer = build_tokenizer()
    config = Qwen3Config(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=3 * hidden, num_hidden_layers=layers,
        num_attention_heads=hidden // 64, num_key_value_heads=max(1, hidden // 128), head_dim=64,
        max_position_embeddings=512, tie_word_embeddings=False,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(config).to(torch.bfloat16)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return Path(folder)


def write_jsonl(path: Path, records: list[dict]) -> Path:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")
    return path


def hub_schema_files(folder: Path, count: int = 40) -> dict[str, Path]:
    """One local file per named Hub set, with the fields of the real dataset."""
    folder = Path(folder)
    words = "the cat sat on a mat while numbers like 12 and 7 added up to 19".split()

    def sentence(i: int) -> str:
        return " ".join(words[(i + k) % len(words)] for k in range(8 + i % 9)) + "."

    return {
        "openmath": write_jsonl(folder / "openmath.jsonl", [
            {"problem": f"What is {i} + {i + 2}?", "generated_solution": f"{i} + {i + 2} = {2 * i + 2}. \\boxed{{{2 * i + 2}}}",
             "expected_answer": str(2 * i + 2), "problem_source": "augmented_math"} for i in range(count)]),
        "pileval": write_jsonl(folder / "pileval.jsonl", [
            {"text": sentence(i) * 3, "meta": {"pile_set_name": "Pile-CC"}} for i in range(count)]),
        # wikitext rows are lines, many of them empty or headings
        "wikitext2": write_jsonl(folder / "wikitext2.jsonl", [
            {"text": "" if i % 3 == 0 else (f" = Heading {i} = \n" if i % 3 == 1 else sentence(i) + "\n")} for i in range(count * 3)]),
        "c4": write_jsonl(folder / "c4-train.json.gz", [
            {"text": sentence(i) * 2, "timestamp": "2019-04-25T12:57:54Z", "url": f"https://example.org/{i}"} for i in range(count)]),
        "ultrachat": write_jsonl(folder / "ultrachat.jsonl", [
            {"prompt": f"Tell me about {i}.", "prompt_id": str(i), "messages": [
                {"role": "user", "content": f"Tell me about {i}."},
                {"role": "assistant", "content": f"{i} is a number. " + sentence(i)}]} for i in range(count)]),
    }
