"""The lab's one loading function, for source checkpoints and artifacts alike.

An artifact's manifest names its loader; everything that `transformers` can read
(dense, compressed-tensors, bitsandbytes) uses `from_pretrained`.
"""

from __future__ import annotations

from pathlib import Path

from models.artifact import read_manifest

TORCH_DTYPES = {"float32": "float32", "float16": "float16", "bfloat16": "bfloat16"}


def pick_device(requested: str = "auto") -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def load_model(folder: Path, *, dtype: str | None = None, device: str = "auto"):
    """(model, tokenizer) from a checkpoint or artifact folder, in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(folder)
    manifest = read_manifest(folder)
    loader = manifest["method"]["loader"] if manifest else "transformers"
    if loader != "transformers":
        raise ValueError(f"{folder}: unknown loader {loader!r} in manifest.json")
    if dtype is None and manifest:
        dtype = manifest["model"]["dtype"]
    device = pick_device(device)
    model = AutoModelForCausalLM.from_pretrained(
        folder,
        dtype=getattr(torch, TORCH_DTYPES[dtype]) if dtype else "auto",
        device_map=device if device != "cpu" else None,
    )
    tokenizer = AutoTokenizer.from_pretrained(folder)
    return model.eval(), tokenizer
