"""The lab's one loading function, for source checkpoints and artifacts alike.

An artifact's manifest names its loader (`method.loader`); everything `transformers`
reads (dense, compressed-tensors, bitsandbytes) uses `from_pretrained`. A method whose
library saves its own format registers its loader in `LOADERS`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from models.artifact import read_manifest


def pick_device(requested: str = "auto") -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def load_model(folder: Path, *, dtype: str | None = None, device: str = "auto", **kwargs):
    """(model, tokenizer) from a checkpoint or artifact folder, in eval mode."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    loader = manifest["method"]["loader"] if manifest else "transformers"
    if loader not in LOADERS:
        raise ValueError(f"{folder}: manifest.json names loader {loader!r}; known: {', '.join(LOADERS)}")
    if dtype is None and manifest:
        dtype = manifest["model"]["dtype"]
    model, tokenizer = LOADERS[loader](folder, dtype, pick_device(device), **kwargs)
    return model.eval(), tokenizer


def _load_with_transformers(folder: Path, dtype: str | None, device: str, **kwargs):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(
        folder,
        dtype=getattr(torch, dtype) if dtype else "auto",
        device_map=device if device != "cpu" else None,
        **kwargs,
    )
    return model, AutoTokenizer.from_pretrained(folder)


def _load_with_hqq(folder: Path, dtype: str | None, device: str, **kwargs):
    """An artifact the hqq library saved (config.json + qmodel.pt): its own loader."""
    import torch
    from hqq.models.hf.base import AutoHQQHFModel
    from transformers import AutoTokenizer, GenerationConfig

    compute_dtype = getattr(torch, dtype) if dtype else torch.bfloat16
    model = AutoHQQHFModel.from_quantized(str(folder), compute_dtype=compute_dtype, device=device, **kwargs)
    if (folder / "generation_config.json").is_file():
        # hqq builds the model from config.json alone: without this, generation would not
        # stop at the chat model's end-of-turn token (only at config.json's eos).
        model.generation_config = GenerationConfig.from_pretrained(folder)
    return model, AutoTokenizer.from_pretrained(folder)


def _load_with_gptqmodel(folder: Path, dtype: str | None, device: str, **kwargs):
    """A GPTQModel artifact (GPTQ or AWQ GEMM format): `from_pretrained`, whose GPTQ/AWQ
    integration runs on gptqmodel, so only in the environment that has it (.venv-gptqmodel)."""
    from configs.errors import ConfigError

    try:
        from quantize.gptqmodel_support import import_gptqmodel

        import_gptqmodel()
    except ImportError:
        raise ConfigError(f"{folder} is a GPTQModel artifact and loads only where gptqmodel is installed: use "
                          ".venv-gptqmodel/bin/python (`python -m evaluate run` hands it over; build it with "
                          "`scripts/setup.sh gptqmodel`)") from None
    return _load_with_transformers(folder, dtype, device, **kwargs)


LOADERS: dict[str, Callable] = {
    "transformers": _load_with_transformers, "hqq": _load_with_hqq, "gptqmodel": _load_with_gptqmodel,
}
