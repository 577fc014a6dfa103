"""Run llama.cpp's own convert_hf_to_gguf.py with one change made from outside it.

The converter identifies a BPE tokenizer's pre-tokenizer by hashing its output on a fixed
text and refuses an unknown hash. A checkpoint the converter knows (Qwen, Llama) keeps its
own detection; only when the hash is unknown (the lab's self-trained tiny tokenizer) is
`--pre` used (default qwen2: byte-level BPE with the GPT-2/Qwen2 split). The lab feeds
llama.cpp Hugging Face token ids (models/gguf.py), so this name only matters to llama.cpp's
own tokenizer, which the parity test compares.

Run as a script in .venv-gguf (quantize/methods/gguf.py does):
    python quantize/gguf_convert.py LLAMA_CPP_DIR [--pre qwen2] -- <convert_hf_to_gguf.py args>
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str]) -> None:
    llama_dir, rest = Path(argv[0]).resolve(), argv[1:]
    pre = "qwen2"
    if rest[:1] == ["--pre"]:
        pre, rest = rest[1], rest[2:]
    if rest[:1] == ["--"]:
        rest = rest[1:]
    # the converter's own sys.path: its folder (conversion/) and its vendored gguf-py first
    sys.path.insert(0, str(llama_dir))
    sys.path.insert(1, str(llama_dir / "gguf-py"))
    import convert_hf_to_gguf as converter
    from conversion import TextModel

    original = TextModel.get_vocab_base_pre

    def get_vocab_base_pre(self, tokenizer) -> str:
        try:
            return original(self, tokenizer)
        except NotImplementedError:
            converter.logger.warning("pre-tokenizer not recognised by its hash: using %r", pre)
            return pre

    TextModel.get_vocab_base_pre = get_vocab_base_pre
    sys.argv = ["convert_hf_to_gguf.py", *rest]
    converter.main()


if __name__ == "__main__":
    main(sys.argv[1:])
