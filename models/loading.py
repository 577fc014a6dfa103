"""The lab's one loading function, for source checkpoints and artifacts alike.

An artifact's manifest names its loader (`method.loader`); everything `transformers`
reads (dense, compressed-tensors, bitsandbytes) uses `from_pretrained`. A method whose
library saves its own format registers its loader in `LOADERS`.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Callable

from common.storage import read_manifest
from configs.errors import BadFile, ConfigError
from models.gguf import gguf_file


class OncePerMessage(logging.Filter):
    """Lets each distinct message through once per process."""

    def __init__(self):
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message in self.seen:
            return False
        self.seen.add(message)
        return True


# bitsandbytes' LLM.int8() logs this on every int8 matmul whose input is not float16 (a
# bfloat16 model on CUDA): 52,374 lines in one gpu_check run. Said once, it still says why.
logging.getLogger("bitsandbytes.autograd._functions").addFilter(OncePerMessage())


def pick_device(requested: str = "auto") -> str:
    """`auto`: CUDA when there is one, else CPU. Asking for CUDA where there is none is a
    ConfigError (said before any model loads), not a failure deep in torch."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={requested}: no CUDA device is available here (torch {torch.__version__}); "
                          "use device=auto or device=cpu")
    return requested


def load_model(folder: Path, *, dtype: str | None = None, device: str = "auto", **kwargs):
    """(model, tokenizer) from a checkpoint or artifact folder, in eval mode. A file that
    turns out damaged only when loaded is one BadFile line naming the folder (callers check
    the files first: `models.sources.check_checkpoint`, `common.storage.folder_problem`)."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    loader = manifest["method"]["loader"] if manifest else "transformers"
    if loader not in LOADERS:
        raise BadFile(folder / "manifest.json", f"names loader {loader!r}, which this lab does not have "
                      f"(known: {', '.join(LOADERS)})", "rebuild the artifact with this version of the lab")
    if dtype is None and manifest:
        dtype = manifest["model"]["dtype"]
    try:
        model, tokenizer = LOADERS[loader](folder, dtype, pick_device(device), **kwargs)
    except Exception as error:
        cause = None if isinstance(error, ConfigError) else damage_in(error)
        if cause is None:
            raise
        raise BadFile(folder, f"loading it failed, a file is damaged ({type(cause).__name__}: {_first_line(cause)})",
                      "rebuild or re-download it") from None
    return model.eval(), tokenizer


# What the loaders raise on a damaged file: safetensors' and zip's errors, a truncated
# pickle, and the messages transformers and torch wrap them in.
_DAMAGED_TYPES = ("SafetensorError", "HeaderTooLarge", "BadZipFile", "UnpicklingError", "EOFError",
                  "UnicodeDecodeError", "JSONDecodeError")
_DAMAGED_WORDS = ("pytorchstreamreader failed", "not a valid json", "invalid load key", "unable to load weights",
                  "incomplete metadata", "file not fully covered", "header too large", "unexpected eof",
                  "failed to read", "invalid header", "error while deserializing")


def damage_in(error: BaseException):
    """The error in `error`'s chain (itself, or one it was raised from) that a damaged file
    makes a loader raise, or None."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if type(error).__name__ in _DAMAGED_TYPES or any(w in str(error).lower() for w in _DAMAGED_WORDS):
            return error
        error = error.__cause__ or error.__context__
    return None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    if "WeightsUnpickler error:" in text:  # torch.load's first lines are about weights_only, not the file
        after = [line.strip() for line in text.split("WeightsUnpickler error:", 1)[1].splitlines() if line.strip()]
        return f"its pickle does not read: {after[0][:160]}" if after else "its pickle does not read"
    return text.splitlines()[0][:200] if text else type(error).__name__


def load_tokenizer(folder, **kwargs):
    """`AutoTokenizer.from_pretrained`, also where transformers 4 reads a tokenizer that
    transformers 5 saved (the tiny family's, in the legacy environment): its config names
    a class 4.x does not have, so it is rebuilt from its tokenizer.json, special tokens and
    chat template, which are all that decide its token ids."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast, __version__

    config_file = Path(folder) / "tokenizer_config.json"
    config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    if int(__version__.split(".")[0]) >= 5 or config.get("tokenizer_class") != "TokenizersBackend":
        return AutoTokenizer.from_pretrained(folder, **kwargs)
    specials = {key: config[key] for key in ("bos_token", "eos_token", "pad_token", "unk_token") if config.get(key)}
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(Path(folder) / "tokenizer.json"), **specials,
                                        additional_special_tokens=list(config.get("extra_special_tokens") or []),
                                        model_max_length=config.get("model_max_length", int(1e30)))
    template = Path(folder) / "chat_template.jinja"
    tokenizer.chat_template = template.read_text() if template.is_file() else config.get("chat_template")
    return tokenizer


def _load_with_transformers(folder: Path, dtype: str | None, device: str, **kwargs):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        folder,
        dtype=getattr(torch, dtype) if dtype else "auto",
        device_map=device if device != "cpu" else None,
        **kwargs,
    )
    return model, load_tokenizer(folder)


def _load_with_hqq(folder: Path, dtype: str | None, device: str, **kwargs):
    """An artifact the hqq library saved (config.json + qmodel.pt): its own loader."""
    import torch
    from hqq.models.hf.base import AutoHQQHFModel
    from transformers import GenerationConfig

    compute_dtype = getattr(torch, dtype) if dtype else torch.bfloat16
    model = AutoHQQHFModel.from_quantized(str(folder), compute_dtype=compute_dtype, device=device, **kwargs)
    if (folder / "generation_config.json").is_file():
        # hqq builds the model from config.json alone: without this, generation would not
        # stop at the chat model's end-of-turn token (only at config.json's eos).
        model.generation_config = GenerationConfig.from_pretrained(folder)
    return model, load_tokenizer(folder)


def _load_with_gptqmodel(folder: Path, dtype: str | None, device: str, **kwargs):
    """A GPTQModel artifact (GPTQ or AWQ GEMM format): `from_pretrained`, whose GPTQ/AWQ
    integration runs on gptqmodel, so only in the environment that has it (.venv-gptqmodel)."""
    try:
        import_gptqmodel()
    except ImportError:
        raise ConfigError(f"{folder} is packed in a GPTQ/AWQ format and loads only where gptqmodel is installed: use "
                          ".venv-gptqmodel/bin/python (`python -m evaluate run` hands it over; build it with "
                          "`scripts/setup.sh gptqmodel`)") from None
    return _load_with_transformers(folder, dtype, device, **kwargs)


def _load_with_gguf(folder: Path, dtype: str | None, device: str, **kwargs):
    """A GGUF artifact (method=gguf): transformers dequantizes every tensor of the .gguf file
    (needs the `gguf` package: .venv-gguf). The model's config comes from the source's
    config.json kept beside it (transformers' GGUF config mapping misses e.g. Qwen3's
    head_dim), the tokenizer from the source's tokenizer files (the GGUF's vocabulary cannot
    carry every pre-tokenizer)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

    try:
        import gguf  # noqa: F401
    except ImportError:
        raise ConfigError(f"{folder} is a GGUF file and loads only where the gguf package is installed: use "
                          ".venv-gguf/bin/python (`python -m evaluate run` hands it over; build it with "
                          "`scripts/setup.sh gguf`)") from None
    model = AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=gguf_file(folder).name, config=AutoConfig.from_pretrained(folder),
        dtype=getattr(torch, dtype) if dtype else torch.float32, device_map=device if device != "cpu" else None, **kwargs)
    if (folder / "generation_config.json").is_file():  # the GGUF's own eos is not the chat model's end of turn
        model.generation_config = GenerationConfig.from_pretrained(folder)
    return model, load_tokenizer(folder)


# GPTQModel runs its per-module work on a pool of CPU workers; on a 2-core machine its
# default did not start (shared/notes/cpu-feasibility.md), 2 workers did. Must be set
# before gptqmodel is imported; an explicit setting wins.
GPTQMODEL_CPU_WORKERS = "2"


def import_gptqmodel():
    """gptqmodel, imported with the lab's settings (only in `.venv-gptqmodel`)."""
    os.environ.setdefault("GPTQMODEL_CPU_WORKERS", GPTQMODEL_CPU_WORKERS)
    import gptqmodel
    from gptqmodel.looper import loop_processor

    # GPTQModel writes per-module stats to ./logs (relative to the working directory, i.e.
    # into the user's checkout); keep them out of it.
    loop_processor._PROJECT_LOG_DIR = Path(tempfile.gettempdir()) / "qlab-gptqmodel-logs"
    return gptqmodel


LOADERS: dict[str, Callable] = {
    "transformers": _load_with_transformers, "hqq": _load_with_hqq, "gptqmodel": _load_with_gptqmodel,
    "gguf": _load_with_gguf,
}
