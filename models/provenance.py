"""What produced an artifact or a result: library versions, git revision, hardware."""

from __future__ import annotations

import platform
import socket
import subprocess
from importlib import metadata
from pathlib import Path

LIBRARIES = (
    "torch", "transformers", "accelerate", "llmcompressor", "compressed-tensors", "hqq",
    "bitsandbytes", "lm_eval", "datasets", "hydra-core", "auto-round", "gptqmodel", "optimum",
    "autoawq", "auto-gptq",
)
REPO_ROOT = Path(__file__).resolve().parent.parent


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def git_revision() -> dict:
    def git(*args: str) -> str:
        result = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True)
        return result.stdout.strip() if result.returncode == 0 else ""

    return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain"))}


def hardware() -> dict:
    import torch

    info = {"host": socket.gethostname(), "platform": platform.platform(), "cpu": platform.processor()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_count"] = torch.cuda.device_count()
    return info


def provenance() -> dict:
    return {"versions": library_versions(), "git": git_revision(), "hardware": hardware()}
