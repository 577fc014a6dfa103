"""Resolve a `ModelConfig` to a local checkpoint folder, without loading weights.

Sources, in order of precedence: `path` (any local folder), `tiny_size` (the lab's
self-trained family, built on first use), `hub_id` (the local Hugging Face cache, or a
download where the Hub is reachable). A missing model fails with a message saying how to
get it, not a stack trace.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from configs.errors import ConfigError
from configs.schema import ModelConfig
from models import tiny


class ModelNotAvailable(ConfigError):
    """The model cannot be found locally and cannot be downloaded here."""


def resolve_model_dir(model: ModelConfig) -> Path:
    if model.path:
        return _local_folder(Path(model.path).expanduser())
    if model.tiny_size:
        family = tiny.ensure_built(profile=model.tiny_profile)
        return family.model_path(model.tiny_size)
    return _hub_snapshot(model)


def model_identity(model: ModelConfig, folder: Path) -> dict:
    """What distinguishes this model's weights, for artifact fingerprints."""
    if model.hub_id and not model.path and not model.tiny_size:
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
