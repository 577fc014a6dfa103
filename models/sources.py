"""Resolve a `ModelConfig` to a local checkpoint folder, without loading weights.

Sources, in order of precedence: `path` (any local folder), `miniature` (a random-init,
shrunk model of the registered `architecture`, built on first use: `models.miniature`),
`tiny_size` (the lab's self-trained family, built on first use), `hub_id` (the local
Hugging Face cache, or a download where the Hub is reachable). A missing model fails with a message saying how to
get it, not a stack trace. The folder found is checked before anything loads from it
(`check_checkpoint`): config.json (JSON, a model_type transformers knows), the tokenizer
files, every weights file's header and size; a damaged file is one line naming it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Optional

from common.files import TOKENIZER_FILES, WEIGHT_SUFFIXES, bad_file, file_problem, role
from configs.errors import ConfigError
from configs.schema import ModelConfig
from models import tiny
from models.miniature import ensure_miniature


class ModelNotAvailable(ConfigError):
    """The model cannot be found locally and cannot be downloaded here."""


def resolve_model_dir(model: ModelConfig, *, config_only: bool = False) -> Path:
    """The model's checkpoint folder, checked (`check_model_files`; `config_only`: only its
    config.json, the rest left to the caller); no weights are loaded."""
    if model.path:
        folder = _local_folder(Path(model.path).expanduser())
    elif model.miniature:
        folder = ensure_miniature(model.name, model.architecture, seed=model.miniature_seed,
                                  tiny_profile=model.tiny_profile)
    elif model.tiny_size:
        family = tiny.ensure_built(profile=model.tiny_profile)
        folder = family.model_path(model.tiny_size)
    else:
        folder = _hub_snapshot(model)
    check_model_files(model, folder, config_only=config_only)
    return folder


def check_model_files(model: ModelConfig, folder: Path, *, config_only: bool = False) -> None:
    """`check_checkpoint` with the advice that fits where the model came from."""
    if model.path:
        advice = "re-download or re-save the checkpoint"
    elif model.miniature:
        advice = f"delete {folder} and rerun to rebuild the miniature"
    elif model.tiny_size:
        advice = f"delete {Path(folder).parent} and rerun to rebuild the tiny family"
    else:
        advice = f"re-download it: `huggingface-cli download {model.hub_id} --force-download`"
    check_checkpoint(folder, advice=advice, trust_remote_code=model.trust_remote_code, config_only=config_only)


def check_checkpoint(folder: Path, *, advice: str, trust_remote_code: bool = False, config_only: bool = False) -> None:
    """A BadFile naming the first file of the checkpoint (or artifact) folder that a load
    would fail on, with `advice`; nothing is loaded and no tensor data is read."""
    found = checkpoint_problem(Path(folder), trust_remote_code=trust_remote_code, config_only=config_only)
    if found is not None:
        path, problem, own_advice = found
        raise bad_file(path, problem, own_advice or advice)  # no second advice after "convert it"


def checkpoint_problem(folder: Path, *, trust_remote_code: bool = False,
                       config_only: bool = False) -> Optional[tuple[Path, str, Optional[str]]]:
    """(file, what is wrong, what to do if not the caller's advice) for the first file of a
    checkpoint folder a load would fail on (`config_only`: of its config.json), else None."""
    config = folder / "config.json"
    if not config.is_file():
        return folder, "has no config.json: not a Hugging Face checkpoint folder", None
    files = sorted(p for p in folder.iterdir() if p.is_file())
    for path in [config, *(p for p in files if p != config and not config_only)]:  # the config says what the rest is
        if (problem := file_problem(path)) is not None:
            return path, f"{role(path)} {problem}", None
    if (problem := _model_type_problem(json.loads(config.read_text()), trust_remote_code)) is not None:
        return config, *problem
    if config_only:
        return None
    names = {p.name for p in files}
    weights = [p for p in files if p.name.endswith(WEIGHT_SUFFIXES)]
    for index in (p for p in files if p.name.endswith(".index.json")):
        weight_map = json.loads(index.read_text()).get("weight_map")
        if not isinstance(weight_map, dict) or not all(isinstance(f, str) for f in weight_map.values()):
            return index, "the weights index has no weight_map (an object of tensor name -> weights file)", None
        missing = sorted(set(weight_map.values()) - names)
        if missing:
            return index, f"the weights index lists {', '.join(missing[:3])}, which is not in the folder", None
    if not weights:
        return folder, "has no weights file (*.safetensors, *.bin, qmodel.pt, *.gguf)", None
    if not (names & set(TOKENIZER_FILES) or any(n.endswith(".tiktoken") for n in names)):
        return folder, f"has no tokenizer ({', '.join(TOKENIZER_FILES[:3])})", None
    return None


def _model_type_problem(config: dict, trust_remote_code: bool) -> Optional[tuple[str, str]]:
    from transformers import __version__
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    model_type = config.get("model_type")
    remote = "auto_map" in config
    if remote and trust_remote_code:
        return None
    if not model_type:
        return ("the model config names no model_type, so transformers cannot tell which model it is",
                "add the model_type of its architecture (e.g. \"qwen3\") or re-download the checkpoint")
    if model_type not in CONFIG_MAPPING_NAMES:
        advice = ("it ships its own code: set model.trust_remote_code=true if you trust it" if remote
                  else "check the spelling, or use a transformers version that knows it")
        return f"the model config names model_type {model_type!r}, which transformers {__version__} does not know", advice
    return None


def model_identity(model: ModelConfig, folder: Path) -> dict:
    """What distinguishes this model's weights, for artifact fingerprints."""
    if model.hub_id and not (model.path or model.miniature or model.tiny_size):
        return {"hub_id": model.hub_id, "revision": folder.name}  # snapshot folder = commit
    files = {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file()}
    config_hash = hashlib.sha256((folder / "config.json").read_bytes()).hexdigest()
    return {"path": str(folder.resolve()), "config_sha256": config_hash, "files": files}


def _local_folder(folder: Path) -> Path:
    if not folder.is_dir():
        raise ConfigError(f"model.path={str(folder)!r}: no such folder")
    if not (folder / "config.json").is_file():
        raise ConfigError(
            f"model.path={str(folder)!r} has no config.json: not a Hugging Face checkpoint folder"
        )
    return folder.resolve()


def _hub_snapshot(model: ModelConfig) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    patterns = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.py"]
    try:
        return Path(snapshot_download(model.hub_id, revision=model.revision, local_files_only=True, allow_patterns=patterns))
    except (LocalEntryNotFoundError, OSError):
        pass
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        raise _not_available(model, "HF_HUB_OFFLINE is set")
    try:
        return Path(snapshot_download(model.hub_id, revision=model.revision, allow_patterns=patterns))
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError, ValueError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise _not_available(model, reason) from None


def _not_available(model: ModelConfig, reason: str) -> ModelNotAvailable:
    return ModelNotAvailable(
        f"model {model.name!r} ({model.hub_id}@{model.revision}) is not in the local Hugging Face "
        f"cache and cannot be downloaded here ({reason}). Pre-download it on a machine with "
        f"network: `huggingface-cli download {model.hub_id}` (then copy ~/.cache/huggingface, "
        f"or set HF_HOME), or point at a local folder: model=/path/to/checkpoint"
    )
